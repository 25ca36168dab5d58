from django.contrib import admin
from django.urls import include, path

from core.models import AuditEvent


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    """Read-only: the audit log is append-only, written by services alone."""

    list_display = ("at", "action", "object_type", "object_id", "actor")
    list_filter = ("action", "object_type")
    search_fields = ("object_id", "action", "actor__username")
    list_select_related = ("actor",)
    date_hierarchy = "at"

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


def former_admin_paths() -> list:
    """The audit log's admin pages at the address they had while the log lived in labeling (bookmarks and
    scripts use it): the same views, mounted once more."""
    return [path("admin/labeling/auditevent/", include(admin.site._registry[AuditEvent].urls))]
