from django.contrib import admin
from django.urls import include, path

from core.audit import object_save_audited, objects_delete_audited
from core.models import AuditEvent


class AuditedModelAdmin(admin.ModelAdmin):
    """An admin whose saves and deletes go through the audited services (core.audit): every edit is
    recorded with its fields before and after, every delete with what it deleted."""

    # The audit log's object_type for this model ("" = its label, e.g. "labeling.Item").
    audit_type = ""

    def save_model(self, request, obj, form, change):
        object_save_audited(obj=obj, actor=request.user, changed=form.changed_data if change else None,
                            obj_type=self.audit_type)

    def delete_model(self, request, obj):
        objects_delete_audited(objs=[obj], actor=request.user, obj_type=self.audit_type)

    def delete_queryset(self, request, queryset):
        objects_delete_audited(objs=list(queryset), actor=request.user, obj_type=self.audit_type)


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
    # Namespaced, so these names do not shadow the admin's own (core.access gives them the admin's rule).
    return [path("admin/labeling/auditevent/", include((admin.site._registry[AuditEvent].urls, "former_admin")))]
