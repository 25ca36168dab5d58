"""Roster admin: everyone who labels (crowd annotators, experts, reviewers; `role` says which) with their
expertise, shifts, time off and (read-only) accuracy; domains; on-call."""

from typing import Any

from django import forms
from django.conf import settings
from django.contrib import admin
from django.contrib.admin.widgets import FilteredSelectMultiple
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone

from core.admin import AuditedModelAdmin
from core.formatting import rounded
from experts.availability import is_on_shift, on_call
from experts.models import (
    Domain,
    Expert,
    ExpertAccuracy,
    Expertise,
    OnCallMember,
    OnCallRotation,
    Shift,
    TimeOff,
)
from experts.selectors import (
    active_members_prefetch,
    expert_ids_on_shift,
    roster_prefetches,
    rotation_spec,
    snapshot_from_expert,
)


class OnShiftNowFilter(admin.SimpleListFilter):
    title = "on shift now"
    parameter_name = "on_shift"

    def lookups(self, request, model_admin):
        return (("yes", "On shift now"), ("no", "Off shift now"))

    def queryset(self, request, queryset):
        if self.value() not in {"yes", "no"}:
            return queryset
        # One set computed from prefetched shifts and time off, then a single id filter: no per-row queries.
        on_shift = expert_ids_on_shift(at=timezone.now())
        if self.value() == "yes":
            return queryset.filter(pk__in=on_shift)
        return queryset.exclude(pk__in=on_shift)


def bcp47_case(code: str) -> str:
    """Django's lower-case language codes in BCP 47's conventional case, as the roster stores them:
    pt-br -> pt-BR, zh-hans -> zh-Hans."""
    first, *rest = code.split("-")
    subtags = [first.lower()]
    for tag in rest:
        subtags.append(tag.upper() if len(tag) == 2 or tag.isdigit() else tag.title() if len(tag) == 4 else tag.lower())
    return "-".join(subtags)


def language_choices(stored: Any = ()) -> list[tuple[str, str]]:
    """The languages a roster member can be given: settings.LANGUAGES (Django's list unless the deployment
    sets its own), plus any code already stored that the list lacks, so saving the form never drops it."""
    choices = [(bcp47_case(code), f"{name} ({bcp47_case(code)})") for code, name in settings.LANGUAGES]
    known = {code for code, _ in choices}
    extra = [str(c) for c in (stored if isinstance(stored, list) else ()) if str(c) not in known]
    return sorted(choices, key=lambda c: c[1]) + [(code, f"{code} (not in the list)") for code in extra]


class RosterMemberForm(forms.ModelForm):
    """Languages picked from a list instead of typed as JSON; still stored as the JSON list of codes."""

    languages = forms.MultipleChoiceField(
        required=False,
        widget=FilteredSelectMultiple("languages", is_stacked=False),
        error_messages={"invalid_choice": "%(value)r is not a language code of the list (e.g. 'en', 'pt-BR')."},
        help_text="Items in a language go to people speaking it; 'pt' and 'pt-BR' match each other.",
    )

    class Meta:
        model = Expert
        fields = ("user", "display_name", "time_zone", "languages", "role", "capacity", "active", "email_notifications")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["languages"].choices = language_choices(self.instance.languages if self.instance.pk else ())

    def clean_languages(self) -> list[str]:
        return list(self.cleaned_data["languages"])


class ExpertiseInline(admin.TabularInline):
    model = Expertise
    extra = 0
    autocomplete_fields = ("domain",)


class ShiftInline(admin.TabularInline):
    model = Shift
    extra = 0
    fields = ("weekday", "start", "end")
    verbose_name_plural = "shifts (local time; an end at or before the start runs past midnight)"


class TimeOffInline(admin.TabularInline):
    model = TimeOff
    extra = 0
    fields = ("start_date", "end_date", "reason")
    verbose_name_plural = "time off (whole local days, both ends included)"


class ExpertAccuracyInline(admin.TabularInline):
    """Measured by a job from gold checks and agreement; shown, never edited here."""

    model = ExpertAccuracy
    extra = 0
    fields = ("domain", "accuracy_shown", "gold_correct", "gold_total", "agreement_correct", "agreement_total",
              "updated_at")
    readonly_fields = fields
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    @admin.display(description="accuracy")
    def accuracy_shown(self, obj: ExpertAccuracy) -> str:
        return rounded(obj.accuracy)


@admin.register(Expert)
class ExpertAdmin(AuditedModelAdmin):
    """The roster: crowd annotators, experts and reviewers alike (filter by role). Edits and deletes are
    audited (role, capacity, active and the rest, before and after); only the changed columns are written,
    so claims bumping claims_made while the form is open are kept."""

    list_display = (
        "display_name",
        "user",
        "role",
        "active",
        "time_zone",
        "language_list",
        "capacity",
        "on_shift_now",
        "overall_accuracy",
    )
    list_filter = (OnShiftNowFilter, "role", "active", ("expertise__domain", admin.RelatedOnlyFieldListFilter))
    # The user column would cost one query per row without this.
    list_select_related = ("user",)
    search_fields = ("display_name", "user__username", "user__email")
    autocomplete_fields = ("user",)
    form = RosterMemberForm
    fields = RosterMemberForm.Meta.fields
    inlines = (ExpertiseInline, ShiftInline, TimeOffInline, ExpertAccuracyInline)

    def get_queryset(self, request: HttpRequest) -> QuerySet[Expert]:
        # The on-shift and accuracy columns read these; prefetching keeps the page at a fixed query count.
        return super().get_queryset(request).prefetch_related(*roster_prefetches())

    @admin.display(description="languages")
    def language_list(self, obj: Expert) -> str:
        return ", ".join(obj.languages or ())

    @admin.display(description="on shift now", boolean=True)
    def on_shift_now(self, obj: Expert) -> bool:
        return is_on_shift(snapshot_from_expert(obj), timezone.now())

    @admin.display(description="accuracy (all domains)")
    def overall_accuracy(self, obj: Expert) -> str:
        overall = next((a.accuracy for a in obj.accuracy.all() if a.domain_id is None), None)
        return rounded(overall)


@admin.register(Domain)
class DomainAdmin(admin.ModelAdmin):
    list_display = ("indented_path", "name", "parent")
    list_select_related = ("parent",)
    search_fields = ("path", "name")
    autocomplete_fields = ("parent",)
    ordering = ("path",)

    @admin.display(description="path", ordering="path")
    def indented_path(self, obj: Domain) -> str:
        # Ordered by path, so indenting by depth draws the tree.
        return "\u2003" * obj.depth + obj.path.rpartition("/")[2] if obj.depth else obj.path


class OnCallMemberInline(admin.TabularInline):
    model = OnCallMember
    extra = 0
    fields = ("position", "expert")
    autocomplete_fields = ("expert",)
    ordering = ("position", "pk")


@admin.register(OnCallRotation)
class OnCallRotationAdmin(admin.ModelAdmin):
    list_display = ("name", "domain", "period_days", "starts_on", "on_call_now")
    list_filter = ("domain",)
    list_select_related = ("domain",)
    search_fields = ("name", "domain__path")
    autocomplete_fields = ("domain",)
    inlines = (OnCallMemberInline,)

    def get_queryset(self, request: HttpRequest) -> QuerySet[OnCallRotation]:
        return super().get_queryset(request).prefetch_related(active_members_prefetch())

    @admin.display(description="on call now")
    def on_call_now(self, obj: OnCallRotation) -> str:
        expert_id = on_call(rotation_spec(obj), timezone.now())
        names = {m.expert_id: m.expert.display_name for m in obj.members.all()}
        return names.get(expert_id, "–")
