import datetime as dt

import pytest
from django.db import connection
from django.db.models import F
from django.db.models.signals import pre_save
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from experts import services
from experts.models import Domain, Expert

pytestmark = pytest.mark.django_db

# A Monday in April: Berlin is on UTC+2, so a 09-17 Berlin shift is 07-15 UTC.
MONDAY_10_UTC = dt.datetime(2026, 4, 6, 10, tzinfo=dt.UTC)
MONDAY_20_UTC = dt.datetime(2026, 4, 6, 20, tzinfo=dt.UTC)


@pytest.fixture
def roster(make_expert):
    day = make_expert("Berlin Day")  # 09-17 local every day
    night = make_expert("Berlin Night", shifts=[(wd, dt.time(21), dt.time(5)) for wd in range(7)])
    away = make_expert("Berlin Away", time_off=[(dt.date(2026, 4, 6), dt.date(2026, 4, 6))])
    services.expert_accuracy_record(
        expert=day, domain=None, gold_correct=10, gold_total=10, agreement_correct=0, agreement_total=0
    )
    return {"day": day, "night": night, "away": away}


def changelist_names(response) -> set[str]:
    return {e.display_name for e in response.context["cl"].result_list}


@pytest.mark.parametrize(
    "now, value, expected",
    [
        (MONDAY_10_UTC, "yes", {"Berlin Day"}),
        (MONDAY_10_UTC, "no", {"Berlin Night", "Berlin Away"}),
        (MONDAY_20_UTC, "yes", {"Berlin Night"}),
        (MONDAY_20_UTC, None, {"Berlin Day", "Berlin Night", "Berlin Away"}),
    ],
)
def test_on_shift_now_filter(admin_client, roster, monkeypatch, now, value, expected):
    monkeypatch.setattr(timezone, "now", lambda: now)
    url = reverse("admin:experts_expert_changelist")
    response = admin_client.get(url, {"on_shift": value} if value else {})
    assert response.status_code == 200
    assert changelist_names(response) == expected


def test_changelist_query_count_is_fixed(admin_client, make_expert, monkeypatch):
    monkeypatch.setattr(timezone, "now", lambda: MONDAY_10_UTC)
    url = reverse("admin:experts_expert_changelist")

    def queries() -> int:
        with CaptureQueriesContext(connection) as ctx:
            assert admin_client.get(url, {"on_shift": "yes"}).status_code == 200
        return len(ctx.captured_queries)

    make_expert("A")
    few = queries()
    for n in range(6):
        make_expert(f"B{n}")
    assert queries() == few


def test_changelist_filters_by_role_and_domain(admin_client, roster, make_expert):
    make_expert("Lawyer", expertise={"legal": 4}, role="reviewer")
    url = reverse("admin:experts_expert_changelist")
    assert changelist_names(admin_client.get(url, {"role": "reviewer"})) == {"Lawyer"}
    legal = Domain.objects.get(path="legal")
    assert changelist_names(admin_client.get(url, {"expertise__domain__id__exact": legal.pk})) == {"Lawyer"}


def test_change_page_shows_every_inline(admin_client, roster):
    response = admin_client.get(reverse("admin:experts_expert_change", args=[roster["day"].pk]))
    assert response.status_code == 200
    prefixes = {formset.formset.prefix for formset in response.context["inline_admin_formsets"]}
    assert prefixes == {"expertise", "shifts", "time_off", "accuracy"}
    assert "0.93" in response.content.decode()  # the read-only accuracy: (4 + 10) / 15


def expert_form(expert, **fields):
    """The expert change form as posted, with no inline rows, overridden by `fields`."""
    return {
        "user": expert.user_id,
        "display_name": "Ada",
        "time_zone": "Europe/Berlin",
        "languages": ["en"],
        "role": "expert",
        "capacity": 5,
        "active": "on",
        **{f"{p}-TOTAL_FORMS": 0 for p in ("expertise", "shifts", "time_off", "accuracy")},
        **{f"{p}-INITIAL_FORMS": 0 for p in ("expertise", "shifts", "time_off", "accuracy")},
        **fields,
    }


def test_change_page_reports_an_invalid_time_zone(admin_client, roster):
    expert = roster["day"]
    url = reverse("admin:experts_expert_change", args=[expert.pk])
    response = admin_client.post(url, expert_form(expert, time_zone="Mars/Olympus"))
    assert response.status_code == 200
    assert "Mars/Olympus" in str(response.context["adminform"].form.errors["time_zone"])
    expert.refresh_from_db()
    assert expert.time_zone == "Europe/Berlin"


@pytest.mark.parametrize("name", ["expert", "domain", "oncallrotation"])
def test_add_pages_render(admin_client, name):
    assert admin_client.get(reverse(f"admin:experts_{name}_add")).status_code == 200


def test_domain_and_rotation_pages_render(admin_client, roster, monkeypatch):
    monkeypatch.setattr(timezone, "now", lambda: MONDAY_10_UTC)
    rotation = services.on_call_rotation_create(
        domain=Domain.objects.get(path="medical/radiology"),
        name="Radiology nights",
        starts_on=dt.date(2026, 4, 6),
        members=[roster["night"], roster["day"]],
    )
    response = admin_client.get(reverse("admin:experts_oncallrotation_changelist"))
    assert response.status_code == 200
    assert "Berlin Night" in response.content.decode()  # first member on call in the first week
    assert admin_client.get(reverse("admin:experts_oncallrotation_change", args=[rotation.pk])).status_code == 200
    response = admin_client.get(reverse("admin:experts_domain_changelist"))
    assert response.status_code == 200
    assert "radiology" in response.content.decode()
    assert admin_client.get(reverse("admin:experts_domain_change", args=[rotation.domain_id])).status_code == 200
    assert Expert.objects.count() == 3


def test_saving_an_expert_keeps_the_claims_made_meanwhile(admin_client, roster):
    expert = roster["day"]
    url = reverse("admin:experts_expert_change", args=[expert.pk])
    form = expert_form(expert, display_name="Ada L.", capacity=7, email_notifications="on")

    def claims_while_the_form_is_saved(sender, instance, **kwargs):
        Expert.objects.filter(pk=instance.pk).update(claims_made=F("claims_made") + 3)

    pre_save.connect(claims_while_the_form_is_saved, sender=Expert)
    try:
        response = admin_client.post(url, form)
    finally:
        pre_save.disconnect(claims_while_the_form_is_saved, sender=Expert)
    assert response.status_code == 302, response.context and response.context["adminform"].form.errors
    expert.refresh_from_db()
    assert (expert.display_name, expert.capacity, expert.claims_made) == ("Ada L.", 7, 3)


def test_change_page_says_on_call_pages_ignore_the_email_setting(admin_client, roster):
    response = admin_client.get(reverse("admin:experts_expert_change", args=[roster["day"].pk]))
    assert response.status_code == 200
    help_text = str(response.context["adminform"].form.fields["email_notifications"].help_text)
    assert "on-call" in help_text and "even when off" in help_text
    assert help_text in response.content.decode()


def test_the_roster_is_named_for_everyone_on_it(admin_client, roster, make_expert):
    make_expert("Crowd Carl", role="crowd")
    response = admin_client.get(reverse("admin:experts_expert_changelist"))
    body = response.content.decode()
    assert "4 roster members" in body and "experts" not in body.split("<title>")[1].split("</title>")[0].lower()
    assert "Roster members" in admin_client.get(reverse("admin:index")).content.decode()


def test_the_roster_shows_accuracy_rounded(admin_client, roster):
    services.expert_accuracy_record(
        expert=roster["night"], domain=None, gold_correct=5, gold_total=6, agreement_correct=0, agreement_total=0
    )
    body = admin_client.get(reverse("admin:experts_expert_changelist")).content.decode()
    overall = Expert.objects.get(pk=roster["night"].pk).accuracy.get(domain=None).accuracy
    assert repr(overall) not in body and f"{overall:.3g}" in body
    page = admin_client.get(reverse("admin:experts_expert_change", args=[roster["night"].pk])).content.decode()
    assert repr(overall) not in page and f"{overall:.3g}" in page


def test_languages_are_picked_from_the_list_and_stored_as_codes(admin_client, roster):
    expert = roster["day"]
    url = reverse("admin:experts_expert_change", args=[expert.pk])
    page = admin_client.get(url).content.decode()
    assert 'value="pt-BR"' in page and "Brazilian Portuguese (pt-BR)" in page
    response = admin_client.post(url, expert_form(expert, languages=["pt-BR", "de"]))
    assert response.status_code == 302
    expert.refresh_from_db()
    assert sorted(expert.languages) == ["de", "pt-BR"]


def test_a_language_not_in_the_list_is_refused_by_name(admin_client, roster):
    expert = roster["day"]
    before = list(expert.languages)
    url = reverse("admin:experts_expert_change", args=[expert.pk])
    response = admin_client.post(url, expert_form(expert, languages=["en", "klingon"]))
    assert response.status_code == 200
    assert "klingon" in str(response.context["adminform"].form.errors["languages"])
    expert.refresh_from_db()
    assert expert.languages == before


def test_a_stored_language_the_list_lacks_survives_an_edit(admin_client, roster):
    expert = roster["day"]
    Expert.objects.filter(pk=expert.pk).update(languages=["zh", "en"])
    url = reverse("admin:experts_expert_change", args=[expert.pk])
    assert "zh (not in the list)" in admin_client.get(url).content.decode()
    assert admin_client.post(url, expert_form(expert, languages=["zh", "en"], capacity=7)).status_code == 302
    expert.refresh_from_db()
    assert (expert.languages, expert.capacity) == (["zh", "en"], 7)
