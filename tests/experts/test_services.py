import datetime as dt

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from experts import services
from experts.models import Domain, Expert, ExpertAccuracy, Expertise, OnCallRotation, Shift, TimeOff

pytestmark = pytest.mark.django_db


class TestDomainEnsure:
    def test_creates_missing_ancestors_once(self):
        leaf = services.domain_ensure(path="medical/radiology/ct", name="CT")
        again = services.domain_ensure(path="/medical/radiology/ct/")
        assert again.pk == leaf.pk
        assert leaf.name == "CT"
        assert leaf.parent.path == "medical/radiology"
        assert leaf.parent.parent.path == "medical"
        assert leaf.parent.parent.parent is None
        assert Domain.objects.count() == 3

    @pytest.mark.parametrize("path", ["", "medical//x", "medical/with space"])
    def test_bad_paths_are_refused_and_nothing_is_written(self, path):
        with pytest.raises(ValidationError) as err:
            services.domain_ensure(path=path)
        assert "path" in err.value.message_dict
        assert Domain.objects.count() == 0

    def test_parent_must_match_the_path(self):
        medical = services.domain_ensure(path="medical")
        services.domain_ensure(path="legal")
        with pytest.raises(ValidationError, match="does not match"):
            Domain(path="legal/contracts", name="c", parent=medical).full_clean()
        with pytest.raises(ValidationError, match="needs the parent 'legal'"):
            Domain(path="legal/contracts", name="c").full_clean()


class TestExpertCreate:
    def test_writes_the_expert_and_its_rows(self, make_user):
        services.domain_ensure(path="medical/radiology")
        expert = services.expert_create(
            user=make_user(),
            display_name="Ada",
            time_zone="America/New_York",
            languages=["en", "pt-BR"],
            expertise={"medical/radiology": 4},
            shifts=[(0, dt.time(22), dt.time(6))],
            time_off=[(dt.date(2026, 4, 1), dt.date(2026, 4, 3))],
        )
        assert expert.languages == ["en", "pt-BR"]
        assert Expertise.objects.get(expert=expert).proficiency == 4
        assert Shift.objects.get(expert=expert).end == dt.time(6)
        assert TimeOff.objects.get(expert=expert).end_date == dt.date(2026, 4, 3)

    def test_unknown_time_zone_is_a_field_error_and_nothing_is_written(self, make_user):
        with pytest.raises(ValidationError) as err:
            services.expert_create(user=make_user(), display_name="Ada", time_zone="Europe/Atlantis")
        assert "Europe/Atlantis" in err.value.message_dict["time_zone"][0]
        assert Expert.objects.count() == 0

    def test_bad_language_tag_is_named(self, make_user):
        with pytest.raises(ValidationError) as err:
            services.expert_create(user=make_user(), display_name="Ada", languages=["en", "english"])
        assert "'english'" in err.value.message_dict["languages"][0]

    def test_unknown_domain_rolls_back_the_expert(self, make_user):
        with pytest.raises(ValidationError, match="Unknown domain.*medical/radiology"):
            services.expert_create(user=make_user(), display_name="Ada", expertise={"medical/radiology": 3})
        assert Expert.objects.count() == 0

    def test_bad_row_is_named_and_rolls_back(self, make_user):
        services.domain_ensure(path="medical")
        with pytest.raises(ValidationError) as err:
            services.expert_create(
                user=make_user(),
                display_name="Ada",
                expertise={"medical": 3},
                time_off=[(dt.date(2026, 4, 1), dt.date(2026, 4, 2)), (dt.date(2026, 4, 5), dt.date(2026, 4, 1))],
            )
        assert err.value.message_dict["time_off"][0].startswith("row 2:")
        assert Expert.objects.count() == 0
        assert Expertise.objects.count() == 0

    def test_one_expert_per_user(self, make_user):
        user = make_user()
        services.expert_create(user=user, display_name="Ada")
        with pytest.raises(ValidationError):
            services.expert_create(user=user, display_name="Ada again")


class TestAccuracyRecord:
    @pytest.mark.parametrize(
        "gold, agreement, expected",
        [
            # (5 * 0.8 + correct) / (5 + total), agreements counting half.
            ((10, 10), (0, 0), 14 / 15),
            ((0, 10), (0, 0), 4 / 15),
            ((0, 0), (20, 20), 14 / 15),
            ((9, 10), (18, 20), (4 + 9 + 9) / (5 + 10 + 10)),
            ((0, 0), (0, 0), None),
        ],
    )
    def test_smoothed_accuracy(self, make_expert, gold, agreement, expected):
        row = services.expert_accuracy_record(
            expert=make_expert(),
            domain=Domain.objects.get(path="medical"),
            gold_correct=gold[0],
            gold_total=gold[1],
            agreement_correct=agreement[0],
            agreement_total=agreement[1],
        )
        assert row.accuracy == (None if expected is None else pytest.approx(expected))

    def test_upserts_per_expert_and_domain(self, make_expert):
        expert = make_expert()
        radiology = Domain.objects.get(path="medical/radiology")
        for domain in (radiology, None):
            services.expert_accuracy_record(
                expert=expert, domain=domain, gold_correct=1, gold_total=2, agreement_correct=0, agreement_total=0
            )
            services.expert_accuracy_record(
                expert=expert, domain=domain, gold_correct=2, gold_total=2, agreement_correct=0, agreement_total=0
            )
        assert ExpertAccuracy.objects.filter(expert=expert).count() == 2
        assert ExpertAccuracy.objects.get(expert=expert, domain=None).gold_correct == 2
        assert ExpertAccuracy.objects.get(expert=expert, domain=radiology).accuracy == pytest.approx(6 / 7)

    @pytest.mark.parametrize(
        "counts, field",
        [
            ({"gold_correct": 3, "gold_total": 2}, "gold_correct"),
            ({"agreement_correct": 1, "agreement_total": 0}, "agreement_correct"),
            ({"gold_total": -1}, "gold_total"),
        ],
    )
    def test_impossible_counts_are_refused(self, make_expert, counts, field):
        expert = make_expert()
        values = {"gold_correct": 0, "gold_total": 0, "agreement_correct": 0, "agreement_total": 0, **counts}
        with pytest.raises(ValidationError) as err:
            services.expert_accuracy_record(expert=expert, domain=None, **values)
        assert field in err.value.message_dict
        assert not ExpertAccuracy.objects.exists()

    def test_database_refuses_correct_above_total(self, make_expert):
        with pytest.raises(IntegrityError), transaction.atomic():
            ExpertAccuracy.objects.create(expert=make_expert(), gold_correct=3, gold_total=2)


def test_rotation_period_must_be_positive(make_expert):
    expert = make_expert()
    with pytest.raises(ValidationError):
        services.on_call_rotation_create(
            domain=Domain.objects.get(path="medical"),
            name="x",
            starts_on=dt.date(2026, 1, 1),
            members=[expert],
            period_days=0,
        )
    assert not OnCallRotation.objects.exists()
