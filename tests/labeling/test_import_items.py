import csv
import io
import json

import pytest
from django.core.management import CommandError, call_command

from labeling.models import Item
from tests.labeling.conftest import row

pytestmark = pytest.mark.django_db


def run(path, *args):
    out, err = io.StringIO(), io.StringIO()
    call_command("import_items", str(path), *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_jsonl_in_batches_with_progress(tmp_path, project):
    path = tmp_path / "items.jsonl"
    path.write_text("".join(json.dumps(row(str(i))) + "\n" for i in range(25)))
    out, err = run(path, "--project", "pets", "--batch-size", "10")
    assert "25 rows: 25 created, 0 updated, 25 predictions added" in out
    assert "validating" in err and "importing" in err and "25/25" in err
    assert Item.objects.count() == 25
    out, _ = run(path, "--project", "pets", "--no-progress")
    assert "0 created, 0 updated, 0 predictions added" in out


def test_csv_and_json_array_files(tmp_path, project):
    csv_path = tmp_path / "items.csv"
    with csv_path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["external_id", "text", "gold"])
        writer.writerows([["c1", "meow", "cat"], ["c2", "woof", ""]])
    json_path = tmp_path / "tasks.json"
    json_path.write_text(json.dumps([{"id": 7, "data": {"text": "tweet"}}]))
    run(csv_path, "--project", "pets", "--no-progress")
    run(json_path, "--project", "pets", "--no-progress")
    assert sorted(Item.objects.values_list("external_id", flat=True)) == ["7", "c1", "c2"]


def test_errors_are_printed_with_row_numbers_and_nothing_is_written(tmp_path, project):
    path = tmp_path / "items.jsonl"
    rows = [row(str(i)) for i in range(30)]
    rows[3]["gold"] = "emu"
    rows[27]["predictions"][0]["probabilities"]["cat"] = 0.9
    lines = [json.dumps(r) for r in rows]
    lines[12] = '{"external_id": '
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(CommandError, match="3 error"):
        run(path, "--project", "pets", "--batch-size", "5")
    assert not Item.objects.exists()


def test_error_output_names_rows(tmp_path, project):
    path = tmp_path / "items.jsonl"
    path.write_text(json.dumps(row("a")) + "\n" + json.dumps(row("b", gold="emu")) + "\n")
    err = io.StringIO()
    with pytest.raises(CommandError):
        call_command("import_items", str(path), "--project", "pets", "--no-progress", stderr=err, stdout=io.StringIO())
    assert "row 1: gold: unknown class 'emu'" in err.getvalue()


@pytest.mark.parametrize("args, message", [
    (["--project", "nope"], "no project"),
    (["--project", "pets", "--batch-size", "0"], "batch-size"),
])
def test_bad_arguments(tmp_path, project, args, message):
    path = tmp_path / "items.jsonl"
    path.write_text(json.dumps(row("a")) + "\n")
    with pytest.raises(CommandError, match=message):
        run(path, *args)


def test_missing_file(tmp_path, project):
    with pytest.raises(CommandError, match="not a file"):
        run(tmp_path / "missing.jsonl", "--project", "pets")
