import pytest

from labeling.presentation import item_view, safe_image_src, without_hidden


@pytest.mark.parametrize(
    ("value", "allowed"),
    [
        ("https://example.org/a.png", True),
        ("http://example.org/a.png", True),
        ("data:image/png;base64,iVBORw0KGgo=", True),
        ("data:image/svg+xml;base64,PHN2Zz48L3N2Zz4=", True),
        ("javascript:alert(1)", False),
        ("JaVaScRiPt:alert(1)", False),
        ("data:text/html;base64,PHNjcmlwdD4=", False),
        ("//example.org/a.png", False),
        ("/media/a.png", False),
        ("https://", False),
        ("x", False),
        (None, False),
        (42, False),
    ],
)
def test_safe_image_src_allows_only_data_images_and_web_urls(value, allowed):
    assert (safe_image_src(value) is not None) is allowed


def test_hidden_fields_are_removed_from_copies_only():
    data = {"text": "t", "notes": "secret", "nested": {"name": "x", "keep": 1}}
    metadata = {"patient_name": "Ann", "site": "north"}
    shown_data, shown_meta, removed = without_hidden(
        data, metadata, ["data.notes", "metadata.patient_name", "data.nested.name", "data.absent", "other.x"]
    )
    assert shown_data == {"text": "t", "nested": {"keep": 1}}
    assert shown_meta == {"site": "north"}
    assert removed == 3
    assert data["notes"] == "secret" and data["nested"]["name"] == "x" and metadata["patient_name"] == "Ann"


def test_text_item_shows_text_and_other_fields_as_strings():
    view = item_view(
        data={"text": "<script>x</script>", "score": 3, "tags": ["a", "b"]},
        metadata={"source": "crm", "n": None},
        data_type="text",
    )
    assert view.text == "<script>x</script>"
    assert view.image_src is None
    assert [(f.key, f.value) for f in view.data_fields] == [("score", "3"), ("tags", '["a", "b"]')]
    assert [(f.key, f.value) for f in view.metadata_fields] == [("source", "crm"), ("n", "—")]


def test_image_item_uses_only_a_safe_source():
    safe = item_view(data={"image": "https://e.org/x.png", "caption": "Scan 1"}, metadata={}, data_type="image")
    assert safe.image_src == "https://e.org/x.png" and safe.caption == "Scan 1" and safe.data_fields == ()

    unsafe = item_view(data={"image": "javascript:alert(1)"}, metadata={}, data_type="image")
    assert unsafe.image_src is None
    assert [(f.key, f.value) for f in unsafe.data_fields] == [("image", "javascript:alert(1)")]


def test_image_urls_on_text_projects_stay_text():
    view = item_view(data={"image": "https://e.org/x.png"}, metadata={}, data_type="text")
    assert view.image_src is None and view.data_fields[0].value == "https://e.org/x.png"
