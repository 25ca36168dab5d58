import json
from collections.abc import Mapping
from typing import Any

from django import forms
from django.contrib import admin
from django.core.exceptions import ValidationError

from core.access import FIELD_AUDIENCES
from core.admin import AuditedModelAdmin
from labeling import memberships, selectors, services
from labeling.models import Annotation, GoldLabel, ImportJob, Item, Prediction, Project, ProjectMembership, Review

PROJECT_FIELDS = (
    "name", "slug", "instructions", "data_type", "classes", "decision_factors", "show_suggestion_to_crowd",
    "field_visibility", "rationale_required", "review_sample_rate",
)


# Empty rows under the known fields, for a field no item has yet or a nested one ("metadata.patient.name").
NEW_FIELD_ROWS = 2


def _as_mapping(value: Any) -> Mapping[str, Any]:
    if isinstance(value, str):
        try:
            value = json.loads(value or "{}")
        except json.JSONDecodeError:
            return {}
    return value if isinstance(value, Mapping) else {}


class FieldVisibilityWidget(forms.Widget):
    """One row per item field with a checkbox per role that sees it (all ticked: everyone sees it), and
    empty rows to name another field (fields no sampled item has are editable text, clear one to drop it).
    Posts `<name>-rows` and, per row i, `<name>-i-path` and `<name>-i-roles`."""

    template_name = "admin/labeling/field_visibility_widget.html"

    def __init__(self, attrs: dict[str, Any] | None = None) -> None:
        super().__init__(attrs)
        # The fields the project's items have (ProjectAdminForm sets them).
        self.paths: list[str] = []

    def get_context(self, name: str, value: Any, attrs: dict[str, Any] | None) -> dict[str, Any]:
        context = super().get_context(name, value, attrs)
        shown = _as_mapping(value)
        everyone = [str(r) for r in FIELD_AUDIENCES]
        paths = sorted(set(self.paths) | set(shown))
        # A field no sampled item has (nested, misspelt, or not yet ingested) stays editable: clear it to drop it.
        rows = [{"path": path, "roles": list(shown.get(path, everyone)), "new": path not in self.paths}
                for path in paths]
        rows += [{"path": "", "roles": everyone, "new": True} for _ in range(NEW_FIELD_ROWS)]
        context["widget"].update(rows=rows, audiences=everyone, row_count=len(rows))
        return context

    def value_from_datadict(self, data: Any, files: Any, name: str) -> Any:
        if f"{name}-rows" not in data:
            # A JSON object posted as the field itself (scripts, tests), as the model stores it.
            return data.get(name)
        try:
            count = int(data[f"{name}-rows"])
        except (TypeError, ValueError):
            count = 0
        value = {}
        for i in range(max(0, min(count, 1000))):
            path = (data.get(f"{name}-{i}-path") or "").strip()
            if path:
                roles = data.getlist(f"{name}-{i}-roles") if hasattr(data, "getlist") else data.get(f"{name}-{i}-roles")
                value[path] = list(roles or ())
        return value

    def value_omitted_from_data(self, data: Any, files: Any, name: str) -> bool:
        return f"{name}-rows" not in data and name not in data


class FieldVisibilityField(forms.Field):
    """Project.field_visibility, checked and normalised by labeling.services (the API's rule too)."""

    widget = FieldVisibilityWidget

    def to_python(self, value: Any) -> Any:
        if isinstance(value, str):
            try:
                return json.loads(value or "{}")
            except json.JSONDecodeError as exc:
                raise forms.ValidationError(f"Not valid JSON: {exc.msg}.") from exc
        return {} if value is None else value

    def clean(self, value: Any) -> dict[str, list[str]]:
        try:
            return services.project_check_field_visibility(self.to_python(value))
        except ValidationError as exc:
            raise forms.ValidationError(exc.messages) from exc

    def has_changed(self, initial: Any, data: Any) -> bool:
        try:
            return self.clean(data) != services.project_check_field_visibility(_as_mapping(initial))
        except (forms.ValidationError, ValidationError):
            return True


class ProjectAdminForm(forms.ModelForm):
    field_visibility = FieldVisibilityField(
        required=False,
        label="Field visibility",
        help_text="Who sees each item field on their labeling work. Untick the crowd for a field that would "
        "anchor their answer (a scanner's guess, a model's tag). Staff see every field; trails and decisions "
        "show a field to others only when every role sees it.",
    )

    class Meta:
        model = Project
        fields = PROJECT_FIELDS

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            self.fields["field_visibility"].widget.paths = selectors.item_field_paths(project=self.instance)

    def clean_classes(self):
        project = self.instance if self.instance.pk else None
        try:
            return services.project_check_classes(project=project, classes=self.cleaned_data["classes"])
        except ValidationError as exc:
            raise forms.ValidationError(exc.messages) from exc


class ProjectMembershipInline(admin.TabularInline):
    """The people on the project; added and removed through labeling.memberships (audited)."""

    model = ProjectMembership
    extra = 0
    fields = ("user", "added_at")
    readonly_fields = ("added_at",)
    autocomplete_fields = ("user",)
    verbose_name = "member"
    verbose_name_plural = "members (annotators claim, stakeholders and pipelines read, only in their projects)"


@admin.register(Project)
class ProjectAdmin(AuditedModelAdmin):
    form = ProjectAdminForm
    # Its own audit events say "project" (labeling.services); an admin delete records the same way.
    audit_type = "project"
    inlines = (ProjectMembershipInline,)
    list_display = ("name", "slug", "data_type", "created_at")
    search_fields = ("name", "slug")
    prepopulated_fields = {"slug": ("name",)}
    fields = PROJECT_FIELDS

    def get_prepopulated_fields(self, request, obj=None):
        return {} if obj is not None else self.prepopulated_fields

    def get_readonly_fields(self, request, obj=None):
        # The slug is in every API URL and export file name clients already use.
        return ("slug",) if obj is not None else ()

    def save_model(self, request, obj, form, change):
        # Creation and edits go through the services so the audit log is written; the form has already
        # run the services' checks, so they do not fail here.
        values = {f: form.cleaned_data[f] for f in PROJECT_FIELDS if f in form.cleaned_data}
        if change:
            changed = {f: values[f] for f in form.changed_data if f in values and f != "slug"}
            saved = services.project_update(project=Project.objects.get(pk=obj.pk), actor=request.user, **changed)
        else:
            saved = services.project_create(actor=request.user, **values)
        obj.pk = saved.pk
        obj.classes = saved.classes

    def save_formset(self, request, form, formset, change):
        if formset.model is not ProjectMembership:
            return super().save_formset(request, form, formset, change)
        # What formset.save() would do, through the audited services (the admin's history reads the lists).
        project = form.instance
        formset.new_objects, formset.changed_objects, formset.deleted_objects = [], [], []
        for inline in formset.forms:
            data = getattr(inline, "cleaned_data", None) or {}
            # The form has already written its values onto the instance: what is stored is in `initial`.
            user, old, stored = data.get("user"), inline.instance, inline.initial.get("user")
            if old.pk and (data.get("DELETE") or stored != getattr(user, "pk", None)):
                memberships.membership_remove(project=project, user=ProjectMembership.objects.get(pk=old.pk).user,
                                              actor=request.user)
                formset.deleted_objects.append(old)
            if user is not None and not data.get("DELETE") and stored != user.pk:
                membership, _ = memberships.membership_add(project=project, user=user, actor=request.user)
                formset.new_objects.append(membership)


@admin.register(Item)
class ItemAdmin(AuditedModelAdmin):
    list_display = ("external_id", "project", "status", "final_label", "final_source", "domain", "language",
        "created_at")
    list_filter = ("project", "status", "final_source", "language")
    search_fields = ("external_id",)
    # project and domain are shown in every row: join them instead of one query per row.
    list_select_related = ("project", "domain")
    raw_id_fields = ("domain",)
    readonly_fields = ("created_at", "updated_at")
    date_hierarchy = "created_at"


@admin.register(Prediction)
class PredictionAdmin(admin.ModelAdmin):
    list_display = ("item", "model_name", "model_version", "created_at")
    list_filter = ("model_name", "model_version")
    search_fields = ("item__external_id",)
    list_select_related = ("item__project",)
    raw_id_fields = ("item",)


@admin.register(Annotation)
class AnnotationAdmin(AuditedModelAdmin):
    list_display = ("item", "annotator", "label", "role", "confidence", "unsure", "submitted_at")
    list_filter = ("role", "unsure")
    search_fields = ("item__external_id", "annotator__username", "label")
    list_select_related = ("item__project", "annotator")
    raw_id_fields = ("item", "annotator")


@admin.register(GoldLabel)
class GoldLabelAdmin(AuditedModelAdmin):
    list_display = ("item", "label", "provenance", "created_at")
    search_fields = ("item__external_id", "label")
    list_select_related = ("item__project",)
    raw_id_fields = ("item",)


@admin.register(Review)
class ReviewAdmin(AuditedModelAdmin):
    list_display = ("item", "reviewer", "verdict", "previous_label", "label", "created_at")
    list_filter = ("verdict",)
    search_fields = ("item__external_id", "reviewer__username")
    list_select_related = ("item__project", "reviewer")
    raw_id_fields = ("item", "reviewer")


@admin.register(ImportJob)
class ImportJobAdmin(admin.ModelAdmin):
    list_display = ("original_name", "project", "status", "processed_rows", "total_rows", "created_items",
                    "updated_items", "created_at", "finished_at")
    list_filter = ("status", "project")
    list_select_related = ("project", "created_by")
    readonly_fields = ("status", "total_rows", "processed_rows", "created_items", "updated_items", "errors",
                       "created_at", "finished_at")
