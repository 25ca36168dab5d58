"""Admin for routing: edit a policy by publishing new versions, read decisions, re-route items.

Nothing here changes a stored version or decision: every write goes through routing.services.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.translation import ngettext

from core.formatting import rounded
from routing import policies, selectors, services
from routing.engine.policy import policy_errors
from routing.engine.rules import OPERATORS, validate_rule
from routing.engine.types import FeatureRule, PolicyConfig, json_ready
from routing.models import Assignment, EscalationPolicy, PolicyVersion, RoutedItem, RoutingDecision

PREVIEW_LAST_N = 1000
JSON_FIELDS = ("triggers", "feature_rules")
HELP = {
    "auto_accept_min_top_probability": "Accept the model's label only if its top probability is at least this.",
    "auto_accept_min_margin": "... and the gap between the top two probabilities is at least this.",
    "auto_accept_max_entropy": "... and the prediction's normalised entropy (0 certain, 1 uniform) is at most this.",
    "crowd_overlap": "Crowd labels wanted before a consensus can be accepted.",
    "max_crowd_labels": "Most crowd labels before escalating to an expert.",
    "consensus_min_agreement": "Share of crowd labels that must agree to accept the crowd's label.",
    "consensus_min_posterior": "Posterior probability the crowd's label needs to be accepted.",
    "triggers": 'JSON list: [{"signal": "margin", "comparison": "<", "threshold": 0.2, "reason_code": "low_margin"}]',
    "feature_rules": (
        'JSON list: [{"field": "data.text", "operator": "len_gt", "value": 500, "reason_code": "long_text", '
        f'"action": "expert"}}]. Operators: {", ".join(OPERATORS)}.'
    ),
    "metadata_conflict_field": (
        "Metadata field holding a class name; a value other than the predicted label is a conflict."
    ),
    "model_prior_weight": "Exponent of the model prior in the posterior (0 ignores the model).",
    "gold_check_rate": "Share of crowd/expert work that is a hidden gold check (0 to 1).",
    "sla_hours": "Hours within which escalated items should be labeled.",
    "expert_cost": "Cost of one expert label relative to one crowd label.",
    "second_expert_on_conflict": "Ask a second expert when an expert contradicts a confident crowd consensus.",
    "second_expert_min_consensus": "How confident the crowd consensus must be for that.",
    "crowd_prior_accuracy": "Assumed accuracy of a crowd annotator with no history (between 0 and 1, exclusive).",
    "expert_prior_accuracy": "The same for experts and reviewers.",
    "class_prior_weight": (
        "Exponent of the learned class prevalence as the prior of items without a prediction (0: uniform)."
    ),
    "consensus_requires_majority": "Accept a consensus only when its label is also the crowd's most given label.",
    "consensus_recheck": "Route consensus items again after every reliability refresh.",
    "learn_model_temperature": (
        "Learn how far to trust the model's probabilities from the project's labels (temperature scaling)."
    ),
    "target_labels_per_item": (
        "Budget: once the project has spent this many crowd labels per item on average, items accept their "
        "current label instead of asking again (0: no budget)."
    ),
}


def _shown(value: Any) -> str:
    """A stored config value as an admin reads it: JSON for lists, numbers rounded (core.formatting; the
    version's page shows them whole), the plain value otherwise."""
    if isinstance(value, (list, dict)):
        return json.dumps(value, indent=1)
    return rounded(value)


def _shown_pair(before: Any, after: Any) -> tuple[str, str]:
    """A change's two values as _shown writes them, unless rounding makes them look equal: then whole."""
    shown = _shown(before), _shown(after)
    if shown[0] == shown[1] and before != after:
        return str(before), str(after)
    return shown


class PolicyConfigForm(forms.Form):
    """Every PolicyConfig field as a form field (numbers as number inputs, lists as JSON) plus a change note."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for f in dataclasses.fields(PolicyConfig):
            default = f.default
            label = f.name.replace("_", " ").capitalize()
            help_text = HELP.get(f.name, "")
            if isinstance(default, bool):
                field = forms.BooleanField(required=False, label=label, help_text=help_text)
            elif isinstance(default, int):
                field = forms.IntegerField(min_value=0, label=label, help_text=help_text)
            elif isinstance(default, float):
                field = forms.FloatField(
                    label=label, help_text=help_text, widget=forms.NumberInput(attrs={"step": "any"})
                )
            elif isinstance(default, str):
                field = forms.CharField(required=False, label=label, help_text=help_text)
            else:
                field = forms.CharField(
                    required=False,
                    label=label,
                    help_text=help_text,
                    widget=forms.Textarea(attrs={"rows": 6, "cols": 90, "class": "vLargeTextField"}),
                )
            self.fields[f.name] = field
        self.fields["change_note"] = forms.CharField(
            required=False,
            widget=forms.Textarea(attrs={"rows": 2, "cols": 90}),
            help_text="Why this change (required to publish; kept with the version).",
        )
        self.config: PolicyConfig | None = None

    @staticmethod
    def initial_for(config: PolicyConfig) -> dict[str, Any]:
        # Every field, even those to_dict leaves out at their legacy values: the form posts them all.
        initial = json_ready(dataclasses.asdict(config))
        for name in JSON_FIELDS:
            initial[name] = json.dumps(initial[name], indent=2)
        return initial

    def _json_list(self, name: str) -> list[Any] | None:
        raw = (self.cleaned_data.get(name) or "").strip()
        if not raw:
            return []
        try:
            value = json.loads(raw)
        except json.JSONDecodeError as exc:
            self.add_error(name, f"Not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}.")
            return None
        if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
            self.add_error(name, "Must be a JSON list of objects, e.g. [{...}, {...}].")
            return None
        return value

    def _check_entries(self, name: str, entries: list[dict[str, Any]]) -> bool:
        """Each trigger/rule alone, so an error names its position and what is wrong with it."""
        ok = True
        kind = "trigger" if name == "triggers" else "rule"
        for position, entry in enumerate(entries, start=1):
            try:
                config = PolicyConfig.from_dict({name: [entry]})
            except KeyError as exc:
                self.add_error(name, f"{kind} {position}: missing key {exc.args[0]!r}.")
                ok = False
                continue
            except (TypeError, ValueError) as exc:
                self.add_error(
                    name, f"{kind} {position}: {_readable(exc, FeatureRule if name == 'feature_rules' else None)}"
                )
                ok = False
                continue
            if name == "feature_rules":
                for error in validate_rule(config.feature_rules[0]):
                    self.add_error(name, f"rule {position}: {error}.")
                    ok = False
        return ok

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        if self.errors:
            return cleaned
        values: dict[str, Any] = {}
        for f in dataclasses.fields(PolicyConfig):
            if f.name in JSON_FIELDS:
                entries = self._json_list(f.name)
                if entries is None or not self._check_entries(f.name, entries):
                    continue
                values[f.name] = entries
            else:
                values[f.name] = cleaned.get(f.name)
        if self.errors:
            return cleaned
        config = PolicyConfig.from_dict(values)
        for error in dict.fromkeys(policy_errors(config)):
            self.add_error(_field_named_in(error), error)
        if not self.errors:
            self.config = config
        return cleaned


def _readable(exc: Exception, dataclass_type: type | None) -> str:
    if dataclass_type is not None and isinstance(exc, TypeError):
        names = ", ".join(f.name for f in dataclasses.fields(dataclass_type))
        return f"keys must be among: {names} ({exc})."
    return f"{exc}."


def _field_named_in(error: str) -> str | None:
    """The form field an engine error message starts with, so the error shows beside it."""
    for f in dataclasses.fields(PolicyConfig):
        if error.startswith(f.name) or error.startswith(f.name.replace("_", " ")):
            return f.name
    return None


@admin.register(EscalationPolicy)
class EscalationPolicyAdmin(admin.ModelAdmin):
    list_display = ("project", "live_version_number", "created_at")
    # The project and the live version are shown in every row.
    list_select_related = ("project", "live_version")
    search_fields = ("project__name", "project__slug")
    fields = ("project",)
    # The change page is our own (edit = publish a version); the add page stays Django's.
    policy_template = "admin/routing/escalationpolicy/policy_change.html"

    def other_forms(self, request: HttpRequest, policy: EscalationPolicy) -> PageExtras:
        """Forms the apps above routing add to the policy page (the pilot adds calibration, pilot/admin.py)."""
        return PageExtras()

    @admin.display(description="live version")
    def live_version_number(self, obj: EscalationPolicy) -> str:
        return f"v{obj.live_version.number}" if obj.live_version else "—"

    def has_delete_permission(self, request: HttpRequest, obj: EscalationPolicy | None = None) -> bool:
        # Decisions cite versions; a policy goes away only with its project.
        return False

    def save_model(self, request: HttpRequest, obj: EscalationPolicy, form: forms.Form, change: bool) -> None:
        # Adding = creating the project's policy with the default version 1, through the service.
        created = policies.policy_for_project(obj.project)
        obj.pk = created.pk
        obj.live_version = created.live_version
        obj.created_at = created.created_at

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: dict | None = None
    ) -> HttpResponse:
        policy = self.get_object(request, unquote(object_id))
        if policy is None:
            return self._get_obj_does_not_exist_redirect(request, self.opts, object_id)
        if not self.has_view_or_change_permission(request, policy):
            raise PermissionDenied
        can_change = self.has_change_permission(request, policy)
        if request.method == "POST" and not can_change:
            raise PermissionDenied
        if policy.live_version is None:
            policy = policies.policy_for_project(policy.project)
        live = PolicyConfig.from_dict(policy.live_version.config)
        preview = None
        form = PolicyConfigForm(initial=PolicyConfigForm.initial_for(live))
        if request.method == "POST" and ("_rollback" in request.POST or "_publish_draft" in request.POST):
            return self._rollback(request, policy)
        extras = self.other_forms(request, policy)
        if extras.response is not None:
            return extras.response
        if request.method == "POST" and not extras.handled_post:
            form = PolicyConfigForm(request.POST)
            if form.is_valid():
                note = form.cleaned_data["change_note"]
                try:
                    if "_preview" in request.POST:
                        preview = policies.policy_preview(
                            project=policy.project, config=form.config, last_n=PREVIEW_LAST_N
                        )
                    elif "_save_draft" in request.POST:
                        draft = policies.policy_draft_save(
                            policy=policy, config=form.config, author=request.user, change_note=note
                        )
                        self.message_user(request, f"Saved draft v{draft.number}; it is not live.", messages.SUCCESS)
                        return HttpResponseRedirect(request.path)
                    else:
                        if form.config == live:
                            raise ValidationError("Nothing changed: the fields equal the live version's.")
                        version = policies.policy_version_publish(
                            policy=policy, config=form.config, author=request.user, change_note=note
                        )
                        self.message_user(request, f"Published v{version.number}; it is now live.", messages.SUCCESS)
                        return HttpResponseRedirect(request.path)
                except ValidationError as exc:
                    for field, errors in validation_errors(exc):
                        form.add_error(field if field in form.fields else None, errors)
        context = {
            **self.admin_site.each_context(request),
            "title": f"Escalation policy: {policy.project}",
            "subtitle": None,
            "opts": self.opts,
            "app_label": self.opts.app_label,
            "original": policy,
            "policy": policy,
            "form": form,
            "can_change": can_change,
            "preview": preview,
            "preview_last_n": PREVIEW_LAST_N,
            **extras.context,
            "history": [
                {
                    "version": row.version,
                    "is_live": row.version.pk == policy.live_version_id,
                    "status": selectors.policy_version_status(row.version),
                    "predecessor": row.predecessor,
                    "changes": [(c.field, *_shown_pair(c.before, c.after)) for c in row.changes],
                }
                for row in selectors.policy_history(policy)
            ],
            "has_view_permission": True,
            "media": self.media + form.media,
            **(extra_context or {}),
        }
        return TemplateResponse(request, self.policy_template, context)

    def _rollback(self, request: HttpRequest, policy: EscalationPolicy) -> HttpResponse:
        try:
            version = policy.versions.get(pk=request.POST.get("version"))
        except (PolicyVersion.DoesNotExist, ValueError):
            self.message_user(request, "No such version of this policy.", messages.ERROR)
            return HttpResponseRedirect(request.path)
        try:
            new = policies.policy_version_rollback(
                policy=policy, version=version, author=request.user, note=request.POST.get("note", "")
            )
        except ValidationError as exc:
            self.message_user(request, "; ".join(exc.messages), messages.ERROR)
        else:
            self.message_user(
                request, f"Published v{new.number} as a copy of v{version.number}; it is now live.", messages.SUCCESS
            )
        return HttpResponseRedirect(request.path)


@dataclasses.dataclass
class PageExtras:
    """What another app's forms add to the policy page: context, and for a POST that was theirs, the
    response when they are done with it (else the page shows again, with their form's errors)."""

    context: dict[str, Any] = dataclasses.field(default_factory=dict)
    handled_post: bool = False
    response: HttpResponse | None = None


def validation_errors(exc: ValidationError) -> list[tuple[str | None, list[str]]]:
    if hasattr(exc, "error_dict"):
        return [(field, [m for e in errors for m in e.messages]) for field, errors in exc.error_dict.items()]
    return [(None, exc.messages)]


class _ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(PolicyVersion)
class PolicyVersionAdmin(_ReadOnlyAdmin):
    """Versions are immutable: viewable here, created only by publishing on the policy's page."""

    list_display = ("__str__", "number", "status", "author", "published_at", "change_note")
    list_filter = ("policy__project",)
    # __str__ shows the project of each row's policy, and the status compares with its live version.
    list_select_related = ("policy__project", "author")
    fields = ("policy_link", "number", "status", "author", "created_at", "published_at", "change_note", "config_json")
    readonly_fields = fields

    @admin.display(description="status")
    def status(self, obj: PolicyVersion) -> str:
        return selectors.policy_version_status(obj)

    @admin.display(description="policy")
    def policy_link(self, obj: PolicyVersion) -> str:
        url = reverse("admin:routing_escalationpolicy_change", args=[obj.policy_id])
        return format_html('<a href="{}">{}</a>', url, obj.policy)

    @admin.display(description="config")
    def config_json(self, obj: PolicyVersion) -> str:
        return format_html("<pre>{}</pre>", json.dumps(obj.config, indent=2))


class PolicyVersionFilter(admin.SimpleListFilter):
    title = "policy version"
    parameter_name = "policy_version"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        # One query with the project joined, instead of one per version label.
        versions = PolicyVersion.objects.filter(published_at__isnull=False).select_related("policy__project")
        return [(str(v.pk), str(v)) for v in versions.order_by("policy__project__name", "-number")]

    def queryset(self, request: HttpRequest, queryset: Any) -> Any:
        return queryset.filter(policy_version_id=self.value()) if self.value() else queryset


@admin.register(RoutingDecision)
class RoutingDecisionAdmin(_ReadOnlyAdmin):
    list_display = ("id", "item", "stage", "outcome", "final_label", "confidence_shown", "version_number", "created_at")
    list_filter = ("outcome", "stage", PolicyVersionFilter)
    # Each row prints the item (with its project's slug) and the version number.
    list_select_related = ("item__project", "policy_version")
    search_fields = ("item__external_id",)
    date_hierarchy = "created_at"
    readonly_fields = (
        "item",
        "policy_version",
        "stage",
        "outcome",
        "final_label",
        "final_source",
        "confidence_shown",
        "labels_requested",
        "reasons_list",
        "signals_json",
        "inputs_json",
        "inputs_digest",
        "expert_ranking_text",
        "actor",
        "created_at",
    )
    fields = readonly_fields

    def get_queryset(self, request: HttpRequest) -> Any:
        return super().get_queryset(request).select_related("item__project", "policy_version__policy__project")

    @admin.display(description="confidence", ordering="confidence")
    def confidence_shown(self, obj: RoutingDecision) -> str:
        return rounded(obj.confidence)

    @admin.display(description="version")
    def version_number(self, obj: RoutingDecision) -> str:
        return f"v{obj.policy_version.number}"

    @admin.display(description="reasons")
    def reasons_list(self, obj: RoutingDecision) -> str:
        items = format_html_join("", "<li><b>{}</b>: {}</li>", ((r["code"], r["evidence"]) for r in obj.reasons))
        return format_html("<ul>{}</ul>", items)

    @admin.display(description="signals")
    def signals_json(self, obj: RoutingDecision) -> str:
        return format_html("<pre>{}</pre>", json.dumps(obj.signals, indent=2))

    @admin.display(description="inputs")
    def inputs_json(self, obj: RoutingDecision) -> str:
        return format_html("<pre>{}</pre>", json.dumps(obj.inputs, indent=2))

    @admin.display(description="expert ranking")
    def expert_ranking_text(self, obj: RoutingDecision) -> str:
        return (obj.expert_ranking or {}).get("explanation", "—")


@admin.register(Assignment)
class AssignmentAdmin(_ReadOnlyAdmin):
    """Assignments change only through the services (claim, submit, decline, jobs): read-only here."""

    list_display = ("id", "item", "kind", "status", "assignee", "due_at", "lease_expires_at", "created_at")
    list_filter = ("status", "kind", "item__project")
    # Each row prints the item (with its project's slug) and the assignee.
    list_select_related = ("item__project", "assignee")
    search_fields = ("item__external_id", "assignee__username")
    date_hierarchy = "created_at"
    fields = (
        "item",
        "kind",
        "status",
        "assignee",
        "decision",
        "annotation",
        "due_at",
        "lease_expires_at",
        "created_at",
        "claimed_at",
        "completed_at",
        "decline_reason",
    )
    readonly_fields = fields


@admin.register(RoutedItem)
class RoutedItemAdmin(admin.ModelAdmin):
    """Items with routing actions; labeling's Item admin cannot offer them (labeling must not import routing)."""

    list_display = ("external_id", "project", "status", "final_label", "final_source", "confidence_shown", "updated_at")
    list_filter = ("project", "status", "final_source")
    # Every row shows its project.
    list_select_related = ("project",)
    search_fields = ("external_id",)
    actions = ("reroute", "override_final_label")
    fields = (
        "project",
        "external_id",
        "status",
        "final_label",
        "final_source",
        "confidence_shown",
        "labeled_at",
        "trail",
    )
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description="final confidence", ordering="final_confidence")
    def confidence_shown(self, obj: RoutedItem) -> str:
        return rounded(obj.final_confidence)

    @admin.display(description="decision trail")
    def trail(self, obj: RoutedItem) -> str:
        rows = format_html_join(
            "",
            '<li><a href="{}">{} · {} · v{}</a> → {} {}</li>',
            (
                (
                    reverse("admin:routing_routingdecision_change", args=[d.pk]),
                    d.created_at.strftime("%Y-%m-%d %H:%M:%S"),
                    d.stage,
                    d.policy_version.number,
                    d.outcome,
                    d.final_label,
                )
                for d in selectors.decision_trail(obj)
            ),
        )
        return format_html(
            '<ol>{}</ol><p><a href="{}">Full trail</a>: assignments, annotations, reviews and audit events.</p>',
            rows,
            reverse("routing:trail", args=[obj.project.slug, obj.external_id]),
        )

    @admin.action(description="Re-route selected items under the live policy", permissions=("change",))
    def reroute(self, request: HttpRequest, queryset: Any) -> None:
        result = services.items_reroute(
            item_ids=list(queryset.values_list("id", flat=True)), actor=request.user, note="admin re-route"
        )
        summary = ", ".join(f"{n} {outcome}" for outcome, n in result.counts.items())
        count = len(result.decisions)
        message = ngettext("Re-routed %(count)d item", "Re-routed %(count)d items", count) % {"count": count}
        self.message_user(request, f"{message}: {summary}." if summary else f"{message}.", messages.SUCCESS)

    @admin.action(description="Override the final label of selected items…", permissions=("change",))
    def override_final_label(self, request: HttpRequest, queryset: Any) -> HttpResponse | None:
        items = list(queryset.select_related("project"))
        projects = {i.project_id for i in items}
        if len(projects) != 1:
            self.message_user(request, "Select items of one project to override their label.", messages.ERROR)
            return None
        form = FinalLabelOverrideForm(
            request.POST if "apply" in request.POST else None, classes=items[0].project.class_names
        )
        if form.is_valid():
            for item in items:
                services.item_final_label_override(
                    item=item, label=form.cleaned_data["label"], actor=request.user, reason=form.cleaned_data["reason"]
                )
            message = ngettext(
                "Set the final label of %(count)d item to %(label)r.",
                "Set the final label of %(count)d items to %(label)r.",
                len(items),
            ) % {"count": len(items), "label": form.cleaned_data["label"]}
            self.message_user(request, message, messages.SUCCESS)
            return None
        context = {
            **self.admin_site.each_context(request),
            "title": "Override final label",
            "opts": self.opts,
            "items": items,
            "form": form,
            "action_checkbox_name": ACTION_CHECKBOX_NAME,
        }
        return TemplateResponse(request, "admin/routing/routeditem/override_final_label.html", context)


class FinalLabelOverrideForm(forms.Form):
    label = forms.ChoiceField(choices=())
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 2, "cols": 60}), help_text="Kept in the audit log.")

    def __init__(self, *args: Any, classes: list[str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["label"].choices = [(c, c) for c in classes]
