import pytest
from django.utils import timezone

from labeling import bulk, services
from labeling.models import Item, ItemStatus
from tests.labeling.conftest import row

pytestmark = pytest.mark.django_db


def test_insert_rows_fills_defaults_and_select_in_reads_back_by_key(project):
    now = timezone.now()
    bulk.insert_rows(Item, ("project_id", "external_id", "data"), [
        (project.pk, "a", bulk.json_value({"text": "tab\there, \\ back\nslash é"})),
        (project.pk, "b", bulk.json_value({"n": [1, 2.5, None]})),
    ], now=now)
    a = Item.objects.get(external_id="a")
    assert a.data == {"text": "tab\there, \\ back\nslash é"}
    assert (a.status, a.metadata, a.final_label, a.created_at, a.updated_at) == (ItemStatus.NEW, {}, "", now, now)
    found = bulk.select_in(Item, ("external_id", "data"), key="external_id", values=["b", "zzz"],
                           where={"project_id": project.pk})
    assert found == [("b", {"n": [1, 2.5, None]})]
    assert bulk.select_in(Item, ("id",), key="external_id", values=[]) == []


def test_select_in_respects_where(project):
    other = services.project_create(name="Other", slug="other", classes=["x", "y"])
    services.items_ingest(project=project, rows=[row("same")])
    services.items_ingest(project=other, rows=[row("same", predictions=[])])
    ids = bulk.select_in(Item, ("id",), key="external_id", values=["same"], where={"project_id": other.pk})
    assert ids == [(Item.objects.get(project=other).pk,)]
