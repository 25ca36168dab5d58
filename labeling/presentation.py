"""How an item's untrusted payload is shown on a page: pure, no ORM, no HTML.

Everything here returns plain strings for templates to autoescape; nothing is marked safe. The only value
that reaches an attribute as-is is an image source, and only when `safe_image_src` accepts it (an inline
`data:image/...` URI or an http(s) URL with a host), so `javascript:` and other schemes never do.
"""
from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from core.access import FIELD_AUDIENCES

TEXT_KEY = "text"
CAPTION_KEY = "caption"
# Keys that hold an image on image projects, in order of preference.
IMAGE_KEYS = ("image", "image_url", "img", "url", "src")
_DATA_IMAGE = re.compile(r"^data:image/[a-z0-9.+-]+(;[a-z0-9.+=-]+)*,", re.IGNORECASE)
# A hidden-field path names a key of `data` or `metadata`, optionally nested: "metadata.patient.name".
HIDDEN_ROOTS = ("data", "metadata")


@dataclass(frozen=True)
class ShownField:
    key: str
    value: str


@dataclass(frozen=True)
class ItemView:
    text: str | None
    image_src: str | None
    caption: str
    data_fields: tuple[ShownField, ...]
    metadata_fields: tuple[ShownField, ...]
    hidden_count: int


def safe_image_src(value: Any) -> str | None:
    """`value` if a browser may load it as an <img> source without running anything, else None."""
    if not isinstance(value, str):
        return None
    value = value.strip()
    if _DATA_IMAGE.match(value):
        return value
    try:
        parts = urlsplit(value)
    except ValueError:
        return None
    if parts.scheme.lower() in {"http", "https"} and parts.netloc:
        return value
    return None


def shown_value(value: Any) -> str:
    """A field value as text: strings as they are, everything else as compact JSON."""
    if isinstance(value, str):
        return value
    if value is None:
        return "—"
    return json.dumps(value, ensure_ascii=False, sort_keys=False)


def _remove_path(target: dict[str, Any], keys: list[str]) -> bool:
    node: Any = target
    for key in keys[:-1]:
        node = node.get(key) if isinstance(node, dict) else None
        if node is None:
            return False
    if isinstance(node, dict) and keys[-1] in node:
        del node[keys[-1]]
        return True
    return False


def without_hidden(
    data: Mapping[str, Any], metadata: Mapping[str, Any], hidden_fields: Iterable[str]
) -> tuple[dict[str, Any], dict[str, Any], int]:
    """Copies of `data` and `metadata` without the hidden paths, and how many fields were removed."""
    roots = {"data": copy.deepcopy(dict(data)), "metadata": copy.deepcopy(dict(metadata))}
    removed = 0
    for path in hidden_fields:
        root, _, rest = str(path).strip().partition(".")
        if root in roots and rest:
            removed += _remove_path(roots[root], rest.split("."))
    return roots["data"], roots["metadata"], removed


def field_visibility_problems(value: Any) -> list[str]:
    """What is wrong with a project's field_visibility, one message per bad path or role; [] if nothing."""
    roles = ", ".join(FIELD_AUDIENCES)
    if not isinstance(value, dict):
        return ['expected an object of field paths to roles, e.g. {"metadata.scanner_tag": ["expert", "reviewer"]}']
    problems = []
    for path, audience in value.items():
        root, _, rest = str(path).strip().partition(".")
        if root not in HIDDEN_ROOTS or not rest or any(not part for part in rest.split(".")):
            problems.append(f"{path!r}: a field path is data.<key> or metadata.<key> (nested keys joined by '.')")
        if not isinstance(audience, list):
            problems.append(f"{path!r}: expected a list of roles among {roles}")
            continue
        bad = [r for r in audience if r not in FIELD_AUDIENCES]
        if bad:
            problems.append(f"{path!r}: {', '.join(map(repr, bad))} is not a role ({roles})")
    return problems


def field_visibility_normalised(value: Mapping[str, Iterable[str]]) -> dict[str, list[str]]:
    """Paths trimmed, roles once each in FIELD_AUDIENCES' order; a field every role sees is not stored,
    being the same as not listed."""
    normalised = {}
    for path, audience in value.items():
        roles = [str(r) for r in FIELD_AUDIENCES if r in set(audience)]
        if len(roles) < len(FIELD_AUDIENCES):
            normalised[str(path).strip()] = roles
    return normalised


def reasons_without_hidden(reasons: Iterable[Any], hidden_fields: Iterable[str]) -> list[Any]:
    """Routing reasons with the evidence of feature rules on hidden fields withheld: a rule's evidence
    starts with its field and quotes the field's value ("data.ssn '123' matches /.../")."""
    hidden = [str(path).strip() for path in hidden_fields if str(path).strip()]
    shown = []
    for reason in reasons:
        evidence = reason.get("evidence") if isinstance(reason, dict) else None
        field = evidence.split(" ", 1)[0] if isinstance(evidence, str) else ""
        if field and any(field == h or field.startswith(h + ".") for h in hidden):
            reason = {**reason, "evidence": f"{field} (a field hidden from you)"}
        shown.append(reason)
    return shown


def item_view(
    *, data: Mapping[str, Any], metadata: Mapping[str, Any], data_type: str, hidden_fields: Iterable[str] = ()
) -> ItemView:
    """What to show of an item: its main text or image, the other data fields, and its metadata."""
    data, metadata, hidden = without_hidden(data or {}, metadata or {}, hidden_fields)
    text = data.pop(TEXT_KEY, None) if isinstance(data.get(TEXT_KEY), str) else None
    image_src = None
    caption = ""
    if data_type == "image":
        candidates = [k for k in IMAGE_KEYS if k in data] + [k for k in data if k not in IMAGE_KEYS]
        for key in candidates:
            src = safe_image_src(data[key])
            if src is not None:
                image_src = src
                del data[key]
                break
        if image_src is not None and isinstance(data.get(CAPTION_KEY), str):
            caption = data.pop(CAPTION_KEY)
    return ItemView(
        text=text,
        image_src=image_src,
        caption=caption,
        data_fields=tuple(ShownField(key=str(k), value=shown_value(v)) for k, v in data.items()),
        metadata_fields=tuple(ShownField(key=str(k), value=shown_value(v)) for k, v in metadata.items()),
        hidden_count=hidden,
    )
