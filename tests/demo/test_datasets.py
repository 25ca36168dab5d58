"""The pure demo generator (demo.datasets): no database."""
import base64
import datetime as dt
import math
import re
import zoneinfo

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer, load_digits

from demo import datasets as demo


@pytest.fixture(scope="module")
def full_demo():
    return demo.build_demo(seed=demo.DEFAULT_SEED)


@pytest.fixture(scope="module")
def digits(full_demo):
    return next(p for p in full_demo if p.slug == demo.DIGITS_SLUG)


@pytest.fixture(scope="module")
def biopsy(full_demo):
    return next(p for p in full_demo if p.slug == demo.BIOPSY_SLUG)


class TestNormalizedProbabilities:
    @pytest.mark.parametrize(
        "values",
        [
            [1 / 3, 1 / 3, 1 / 3],
            [0.1] * 10,
            [0.7, 0.2, 0.1],
            [2.0, 1.0, 1.0],  # unnormalised input
            [1e-12, 1 - 1e-12],
            [0.1234567, 0.2345678, 0.3456789, 0.2962966],
            list(np.random.default_rng(3).dirichlet(np.full(10, 0.3))),
        ],
    )
    def test_rounded_values_sum_to_one_within_1e_6(self, values):
        classes = [f"c{i}" for i in range(len(values))]
        probabilities = demo.normalized_probabilities(values, classes)
        assert list(probabilities) == classes
        assert abs(sum(probabilities.values()) - 1.0) <= 1e-6
        for p in probabilities.values():
            assert 0.0 <= p <= 1.0
            assert round(p, 6) == p

    def test_order_of_classes_is_kept_with_values(self):
        assert demo.normalized_probabilities([0.25, 0.75], ["b", "a"]) == {"b": 0.25, "a": 0.75}

    @pytest.mark.parametrize("values, classes", [([0.0, 0.0], ["a", "b"]), ([0.5, 0.5], ["a", "b", "c"])])
    def test_bad_input_is_an_error(self, values, classes):
        with pytest.raises(ValueError, match="per class"):
            demo.normalized_probabilities(values, classes)


class TestGenerator:
    def test_same_seed_gives_same_rows_and_another_seed_differs(self, full_demo):
        again = demo.build_demo(seed=demo.DEFAULT_SEED)
        assert [p.rows for p in again] == [p.rows for p in full_demo]
        other = demo.build_demo(seed=demo.DEFAULT_SEED + 1, max_items=50)
        assert [r["external_id"] for r in other[0].rows] != [r["external_id"] for r in full_demo[0].rows[:50]]

    def test_capped_rows_are_a_prefix_of_the_full_rows(self, full_demo):
        capped = demo.build_demo(seed=demo.DEFAULT_SEED, max_items=25)
        for small, full in zip(capped, full_demo):
            assert len(small.rows) == 25
            assert list(small.rows) == list(full.rows[:25])

    def test_cap_below_one_is_an_error(self):
        with pytest.raises(ValueError, match="max_items"):
            demo.digits_project(max_items=0)

    def test_held_out_sizes(self, digits, biopsy):
        assert len(digits.rows) == len(load_digits().target) - demo.DIGITS_TRAIN
        assert len(biopsy.rows) == len(load_breast_cancer().target) - demo.BIOPSY_TRAIN
        for project in (digits, biopsy):
            ids = [r["external_id"] for r in project.rows]
            assert len(set(ids)) == len(ids)

    @pytest.mark.parametrize("slug", demo.DEMO_PROJECT_SLUGS)
    def test_every_prediction_is_valid_wire_format(self, full_demo, slug):
        project = next(p for p in full_demo if p.slug == slug)
        classes = set(project.class_names)
        for row in project.rows:
            assert row["predictions"], row["external_id"]
            for prediction in row["predictions"]:
                assert set(prediction["probabilities"]) == classes
                assert all(0.0 <= p <= 1.0 for p in prediction["probabilities"].values())
                assert abs(sum(prediction["probabilities"].values()) - 1.0) <= 1e-6
            if "gold" in row:
                assert row["gold"] in classes

    def test_confidences_are_genuinely_spread(self, full_demo):
        for project in full_demo:
            for version, figures in demo.confidence_summary(project).items():
                assert figures["confident_share"] > 0.3, version
                assert figures["uncertain_share"] > 0.05, version

    def test_better_trained_digits_model_is_more_accurate_and_the_versions_disagree(self, digits):
        summary = demo.confidence_summary(digits)
        assert summary["digits-lr-2"]["gold_accuracy"] > summary["digits-lr-1"]["gold_accuracy"]
        assert summary["digits-lr-2"]["gold_accuracy"] > 0.9
        disagreements = sum(
            len({max(p["probabilities"], key=p["probabilities"].get) for p in row["predictions"]}) > 1
            for row in digits.rows
        )
        assert disagreements > 0.03 * len(digits.rows)

    def test_gold_is_a_sample_of_true_labels(self, digits, biopsy):
        targets = load_digits().target
        cancer = load_breast_cancer()
        for project, truth in (
            (digits, lambda index: str(targets[index])),
            (biopsy, lambda index: str(cancer.target_names[cancer.target[index]])),
        ):
            gold_rows = [r for r in project.rows if "gold" in r]
            assert 0.10 < len(gold_rows) / len(project.rows) < 0.20
            for row in gold_rows:
                index = int(row["external_id"].rsplit("-", 1)[1])
                assert row["gold"] == truth(index)

    def test_digit_image_is_an_svg_of_the_scan(self, digits):
        images = load_digits().images
        row = digits.rows[0]
        prefix = "data:image/svg+xml;base64,"
        assert row["data"]["image"].startswith(prefix)
        svg = base64.b64decode(row["data"]["image"][len(prefix):]).decode("ascii")
        assert svg.startswith("<svg")
        index = int(row["external_id"].rsplit("-", 1)[1])
        inked = {(int(x), int(y)) for x, y in re.findall(r'<rect x="(\d+)" y="(\d+)"', svg)}
        assert inked == {(x, y) for y in range(8) for x in range(8) if images[index][y, x] > 0}

    def test_scanner_tag_is_mostly_right_sometimes_wrong_sometimes_absent(self, digits):
        outcomes = {"right": 0, "wrong": 0, "absent": 0}
        for row in digits.rows:
            truth = str(load_digits_target(row))
            tag = row["metadata"].get("scanner_tag")
            outcomes["absent" if tag is None else "right" if tag == truth else "wrong"] += 1
        assert outcomes["right"] > 0.8 * len(digits.rows)
        assert outcomes["wrong"] > 0.03 * len(digits.rows)
        assert outcomes["absent"] > 0

    def test_rows_use_declared_domains_with_parents_first(self, full_demo):
        for project in full_demo:
            paths = [d.path for d in project.domains]
            for i, path in enumerate(paths):
                if "/" in path:
                    assert path.rsplit("/", 1)[0] in paths[:i]
            used = {r["domain"] for r in project.rows}
            assert used <= set(paths)
            assert len(used) >= 2

    def test_digit_hotkeys_are_the_digits_themselves(self, digits):
        assert {c["name"]: c["hotkey"] for c in digits.classes} == {str(d): str(d) for d in range(10)}

    def test_biopsy_record_shows_the_measurements(self, biopsy):
        keys = {key for _, key, _ in demo.BIOPSY_FEATURES}
        for row in biopsy.rows:
            assert set(row["data"]) == keys
            assert all(isinstance(v, (int, float)) and math.isfinite(v) for v in row["data"].values())


_DIGIT_TARGETS = load_digits().target


def load_digits_target(row):
    return _DIGIT_TARGETS[int(row["external_id"].rsplit("-", 1)[1])]


def on_shift(person: demo.DemoPerson, moment: dt.datetime) -> bool:
    local = moment.astimezone(zoneinfo.ZoneInfo(person.time_zone))
    clock = local.time()
    for shift in person.shifts:
        start, end = dt.time.fromisoformat(shift.start), dt.time.fromisoformat(shift.end)
        if end > start:
            if shift.weekday == local.weekday() and start <= clock < end:
                return True
        else:  # crosses midnight: the evening part on its weekday, the morning part on the next day
            if shift.weekday == local.weekday() and clock >= start:
                return True
            if (shift.weekday + 1) % 7 == local.weekday() and clock < end:
                return True
    return False


class TestPeople:
    def test_documented_logins_and_roles(self):
        by_name = {p.username: p for p in demo.DEMO_PEOPLE}
        assert len(by_name) == len(demo.DEMO_PEOPLE)
        assert by_name["admin"].role == "admin" and by_name["admin"].password == "admin"
        assert {u for u, p in by_name.items() if p.role == "expert"} == {"dr.ada", "dr.grace", "dr.alan", "dr.maria"}
        assert {u for u, p in by_name.items() if p.role == "crowd"} == {"crowd1", "crowd2", "crowd3", "crowd4"}
        assert by_name["reviewer"].role == "reviewer"
        assert by_name["stakeholder"].role == "stakeholder" and not by_name["stakeholder"].on_roster

    def test_roster_is_spread_across_time_zones_and_knows_the_demo_domains(self, full_demo):
        roster = [p for p in demo.DEMO_PEOPLE if p.on_roster]
        zones = {"Europe/Berlin", "America/New_York", "Asia/Kolkata", "America/Sao_Paulo"}
        assert {p.time_zone for p in roster} >= zones
        for person in roster:
            zoneinfo.ZoneInfo(person.time_zone)
            assert person.capacity > 0 and person.languages and person.shifts
            assert all(1 <= level <= 5 for _, level in person.expertise)
        covered = {path for p in roster if p.role == "expert" for path, _ in p.expertise}
        for project in full_demo:
            for row in project.rows:
                # An expert covers a domain when it is the domain or one of its ancestors.
                assert any(row["domain"] == c or row["domain"].startswith(c + "/") for c in covered)

    @pytest.mark.parametrize("monday", [dt.date(2026, 1, 5), dt.date(2026, 7, 6)])  # winter and summer time
    def test_experts_cover_every_weekday_utc_hour_and_most_of_the_week(self, monday):
        experts = [p for p in demo.DEMO_PEOPLE if p.role == "expert"]
        start = dt.datetime.combine(monday, dt.time(0, 30), tzinfo=dt.UTC)
        hours = [start + dt.timedelta(hours=h) for h in range(7 * 24)]
        covered = [any(on_shift(p, moment) for p in experts) for moment in hours]
        assert all(covered[: 5 * 24]), [h.isoformat() for h, c in zip(hours, covered) if not c][:5]
        assert sum(covered) / len(covered) > 0.75

    @pytest.mark.parametrize("monday", [dt.date(2026, 1, 5), dt.date(2026, 7, 6)])
    def test_crowd_covers_every_hour_of_the_week(self, monday):
        crowd = [p for p in demo.DEMO_PEOPLE if p.role == "crowd"]
        start = dt.datetime.combine(monday, dt.time(0, 30), tzinfo=dt.UTC)
        uncovered = [
            moment
            for moment in (start + dt.timedelta(hours=h) for h in range(7 * 24))
            if not any(on_shift(p, moment) for p in crowd)
        ]
        assert uncovered == []
