import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from core import bulk
from labeling import services
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


def _fields(obj):
    return {f.attname: getattr(obj, f.attname) for f in type(obj)._meta.concrete_fields}


def test_model_from_row_gives_what_the_orm_gives(project):
    services.items_ingest(project=project, rows=[row("x", data={"text": "é", "n": [1, None]}, metadata={"k": "v"})])
    expected = Item.objects.get(external_id="x")
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {bulk.columns(Item, 'i')} FROM {Item._meta.db_table} i WHERE i.external_id = %s", ["x"])
        built = bulk.model_from_row(Item, cursor.fetchone())
    assert _fields(built) == _fields(expected)
    assert built.created_at.tzinfo is not None and built.data == {"text": "é", "n": [1, None]}
    assert not built._state.adding  # saved rows, as if the ORM had loaded them
    assert bulk.model_value(Item, "created_at", built.created_at) == expected.created_at


def test_prepared_cursor_runs_and_logs_statements_with_their_values(project):
    services.items_ingest(project=project, rows=[row("p")])
    with CaptureQueriesContext(connection) as queries:
        for _ in range(3):
            with bulk.prepared_cursor() as cursor:
                cursor.execute(f"SELECT external_id FROM {Item._meta.db_table} WHERE external_id = %s", ["p"])
                assert cursor.fetchone() == ("p",)
    assert len(queries.captured_queries) == 3
    assert all("'p'" in q["sql"] for q in queries.captured_queries)


@pytest.mark.skipif(connection.vendor != "postgresql", reason="prepared statements are PostgreSQL's")
def test_prepared_cursor_prepares_on_postgres(project, settings):
    if not settings.DB_PREPARED_STATEMENTS:
        pytest.skip("DB_PREPARED_STATEMENTS=false: this run checks that nothing needs them")
    sql = f"SELECT count(*) FROM {Item._meta.db_table} WHERE project_id = %s"
    with bulk.prepared_cursor() as cursor:
        cursor.execute(sql, [project.pk])
        cursor.execute("SELECT count(*) FROM pg_prepared_statements WHERE statement LIKE %s", ["%labeling_item%"])
        assert cursor.fetchone()[0] >= 1
    settings.DB_PREPARED_STATEMENTS = False
    with bulk.prepared_cursor() as cursor:  # Django's ordinary cursor: nothing prepared, same answer
        cursor.execute(sql, [project.pk])
        assert cursor.fetchone() == (0,)


@pytest.mark.parametrize("n", [3, bulk.FEW_ROWS + 5])  # one INSERT ... RETURNING; COPY on PostgreSQL
def test_insert_objects_stores_what_bulk_create_would(project, n):
    now = timezone.now()
    made = bulk.insert_objects([
        Item(project=project, external_id=f"f{i}", data={"text": "é\t\\n", "n": [i, None]}, metadata={"k": i},
             language="pt-BR", final_confidence=0.25 * i)
        for i in range(n)
    ])
    assert len({m.pk for m in made}) == n and all(m.pk for m in made)
    for i, m in enumerate(made):
        stored = Item.objects.get(pk=m.pk)
        assert (stored.external_id, stored.data, stored.metadata, stored.language) == (
            f"f{i}", {"text": "é\t\\n", "n": [i, None]}, {"k": i}, "pt-BR")
        assert stored.final_confidence == 0.25 * i and stored.status == ItemStatus.NEW
        assert stored.created_at >= now and not m._state.adding  # auto_now_add filled in, as the ORM would
    # The sequence moved past the keys drawn: the ORM's next insert does not collide.
    later = Item.objects.create(project=project, external_id="after", data={"text": "later"})
    assert later.pk not in {m.pk for m in made}
    assert bulk.insert_objects([]) == []
