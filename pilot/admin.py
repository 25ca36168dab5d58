"""The pilot's part of the policy page: calibrate the live version on the project's own history, and
follow the runs. Registered over routing's policy admin (the pilot is the higher app), so the page and its
addresses stay routing's."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path

from pilot import feedback, selectors
from routing.admin import EscalationPolicyAdmin, PageExtras, validation_errors
from routing.models import EscalationPolicy


class CalibrationRunForm(forms.Form):
    """The goal of a calibration on the project's own history: a target accuracy or a budget, not both."""

    target_accuracy = forms.FloatField(
        required=False,
        min_value=0.0,
        max_value=1.0,
        widget=forms.NumberInput(attrs={"step": "any", "placeholder": "e.g. 0.95"}),
        help_text="The cheapest thresholds reaching this accuracy…",
    )
    budget = forms.FloatField(
        required=False,
        min_value=0.0,
        widget=forms.NumberInput(attrs={"step": "any", "placeholder": "e.g. 2.5"}),
        help_text="… or the most accurate within this many labels per item. Fill in exactly one.",
    )
    last_n = forms.IntegerField(
        min_value=1,
        max_value=feedback.RUN_MAX_LAST_N,
        initial=feedback.RUN_DEFAULT_LAST_N,
        label="Last N labeled items",
        help_text="Calibrate on the project's most recently labeled items (those with a gold label or an "
        "expert's final label are scored).",
    )


class CalibratingPolicyAdmin(EscalationPolicyAdmin):
    policy_template = "admin/pilot/policy_change.html"
    calibration_progress_template = "admin/pilot/_calibration_runs.html"

    def get_urls(self) -> list[Any]:
        return [
            path(
                "<path:object_id>/calibration-runs/",
                self.admin_site.admin_view(self.calibration_runs_view),
                name="routing_escalationpolicy_calibration_runs",
            ),
            *super().get_urls(),
        ]

    def _calibration_context(self, policy: EscalationPolicy) -> dict[str, Any]:
        runs = selectors.calibration_runs_recent(project=policy.project)
        unfinished = [run.pk for run in runs if not run.finished]
        return {
            "policy": policy,
            "calibration_runs": runs,
            "calibration_polling": bool(unfinished),
            "calibration_watching": ",".join(map(str, unfinished)),
        }

    def calibration_runs_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """The calibration runs block alone; the policy page polls it (htmx) while a run is unfinished.
        When a run it was watching has finished, the whole page reloads, so its draft shows in the history."""
        policy = self.get_object(request, unquote(object_id))
        if policy is None or not self.has_view_or_change_permission(request, policy):
            raise PermissionDenied
        context = self._calibration_context(policy)
        response = TemplateResponse(request, self.calibration_progress_template, context)
        watched = {part for part in request.GET.get("watching", "").split(",") if part.isdigit()}
        still_running = set(context["calibration_watching"].split(","))
        if getattr(request, "htmx", False) and watched - still_running:
            response["HX-Refresh"] = "true"
        return response

    def other_forms(self, request: HttpRequest, policy: EscalationPolicy) -> PageExtras:
        calibration_form = CalibrationRunForm()
        handled = request.method == "POST" and "_calibrate" in request.POST
        if handled:
            calibration_form = CalibrationRunForm(request.POST)
            if calibration_form.is_valid():
                try:
                    run = feedback.calibration_run_start(
                        project=policy.project,
                        actor=request.user,
                        target_accuracy=calibration_form.cleaned_data["target_accuracy"],
                        budget=calibration_form.cleaned_data["budget"],
                        last_n=calibration_form.cleaned_data["last_n"],
                    )
                except ValidationError as exc:
                    for field, errors in validation_errors(exc):
                        calibration_form.add_error(field if field in calibration_form.fields else None, errors)
                else:
                    self.message_user(
                        request,
                        f"Calibration run {run.pk} started; its draft will appear in the version history.",
                        messages.SUCCESS,
                    )
                    return PageExtras(handled_post=True, response=HttpResponseRedirect(request.path + "#calibration"))
        return PageExtras(
            context={"calibration_form": calibration_form, **self._calibration_context(policy)}, handled_post=handled
        )


admin.site.unregister(EscalationPolicy)
admin.site.register(EscalationPolicy, CalibratingPolicyAdmin)
