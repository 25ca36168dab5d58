"""GET /api/projects/<slug>/next-to-label: unlabeled items, most uncertain prediction first, for staff and
API token clients off the labeling roster."""

import pytest
from rest_framework.test import APIClient

from routing.engine.types import PolicyConfig
from tests.routing.api_clients import ROSTER_ROLES, session_client, staff_client, token_client
from tests.routing.assignment_helpers import CONFIDENT, ingest_at, project, row

pytestmark = pytest.mark.django_db

# Normalised entropies (−Σ p ln p / ln 3): flat ≈ 1.00, leaning ≈ 0.82, torn ≈ 0.78, fairly_sure ≈ 0.58.
PREDICTIONS = {
    "leaning": {"cat": 0.6, "dog": 0.3, "bird": 0.1},
    "flat": {"cat": 0.34, "dog": 0.33, "bird": 0.33},
    "fairly_sure": {"cat": 0.8, "dog": 0.1, "bird": 0.1},
    "torn": {"cat": 0.5, "dog": 0.45, "bird": 0.05},
}
MOST_UNCERTAIN_FIRST = ["flat", "leaning", "torn", "fairly_sure", "no_prediction"]


@pytest.fixture
def proj():
    created = project("al", policy=PolicyConfig(gold_check_rate=0.0))
    ingest_at(
        created,
        [
            row("sure", CONFIDENT),  # auto-accepted: labeled, never suggested
            *(row(name, probabilities) for name, probabilities in PREDICTIONS.items()),
            row("no_prediction", CONFIDENT, predictions=[]),
        ],
    )
    return created


def url(proj, query=""):
    return f"/api/projects/{proj.slug}/next-to-label{query}"


def test_unlabeled_items_come_most_uncertain_first_with_their_signals(proj):
    response = staff_client().get(url(proj))
    assert response.status_code == 200
    body = response.json()
    assert [r["external_id"] for r in body["results"]] == MOST_UNCERTAIN_FIRST
    first = body["results"][0]
    assert first["status"] == "in_crowd_review" and first["data"]["text"] == "text of flat"
    assert first["signals"]["entropy"] > 0.99 and first["signals"]["margin"] == pytest.approx(0.01)
    assert body["results"][-1]["signals"]["entropy"] is None


def test_a_labeled_item_drops_out_and_an_escalated_one_stays(proj):
    proj.items.filter(external_id="flat").update(status="labeled")
    proj.items.filter(external_id="torn").update(status="escalated")
    ids = [r["external_id"] for r in staff_client().get(url(proj)).json()["results"]]
    assert ids == ["leaning", "torn", "fairly_sure", "no_prediction"]


def test_limit_and_offset_page_through_the_order(proj):
    client = token_client()
    pages = [client.get(url(proj, f"?limit=2&offset={offset}")).json()["results"] for offset in (0, 2, 4)]
    assert [[r["external_id"] for r in page] for page in pages] == [
        MOST_UNCERTAIN_FIRST[:2],
        MOST_UNCERTAIN_FIRST[2:4],
        MOST_UNCERTAIN_FIRST[4:],
    ]


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("?limit=-1", "limit"), ("?limit=1001", "limit"), ("?limit=ten", "limit"), ("?offset=-1", "offset"),
        # Once a 500: past what either database takes as an OFFSET.
        ("?offset=99999999999999999999", "offset"), ("?limit=99999999999999999999", "limit"),
    ],
)
def test_bad_paging_is_a_400_naming_the_field(proj, query, field):
    response = staff_client().get(url(proj, query))
    assert response.status_code == 400
    assert [e["field"] for e in response.json()["errors"]] == [field]


def test_limit_zero_is_accepted_as_the_schema_allows(proj):
    response = staff_client().get(url(proj, "?limit=0"))
    assert response.status_code == 200 and response.json()["results"] == []


def test_limit_up_to_1000_is_accepted(proj):
    assert len(staff_client().get(url(proj, "?limit=1000")).json()["results"]) == 5


def test_only_staff_and_token_clients_off_the_roster_may_ask(proj):
    anonymous = APIClient().get(url(proj))
    assert anonymous.status_code in (401, 403)
    assert session_client().get(url(proj)).status_code == 403
    assert token_client().get(url(proj)).status_code == 200
    for role in ROSTER_ROLES:
        refused = token_client(f"{role}-with-token", roster_role=role).get(url(proj))
        assert refused.status_code == 403 and "annotators" in refused.json()["detail"]
    assert staff_client().get("/api/projects/nope/next-to-label").status_code == 404
