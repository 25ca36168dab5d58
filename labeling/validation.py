"""Pure validation of ingest rows and project classes: plain data in, plain data out, no ORM.

`RowValidator` checks one row at a time and remembers the external ids it has seen, so the same code
validates a 10,000-row API batch and streams over a multi-million-row file (`import_items` validates the
whole file before writing anything). Every problem becomes a `RowError` naming the row (0-based index in
the submitted batch or file) and the field (a path such as `predictions[0].probabilities.cat`).

Accepted row shapes, which may be mixed in one batch:

* The workbench row: `{"external_id", "data", "metadata", "domain", "language", "predictions": [{"model_name",
  "model_version", "probabilities"}], "annotations": [...], "gold"}`; only `external_id` and `data` are required.
  Output-only keys of the export (`status`, `final_label`, `final_source`, `final_confidence`) and any other
  unknown keys are ignored: the importing project's routing decides status and final labels.
* Anything PostgreSQL cannot store (NUL, lone surrogates, JSON nested beyond `storable.MAX_JSON_DEPTH`) is
  an error naming the field, on every database.
* A Label Studio task: `{"id", "data", "meta", "predictions": [{"model_version", "score", "result"}],
  "annotations": [{"completed_by", "result", "created_at", "lead_time"}]}`. With no top-level `external_id`,
  the external id is `data.external_id` (that key is then removed from `data`: it is the item's identity,
  not payload, and the Label Studio export puts it back), else the task `id`. A prediction's single chosen
  class gets `score` and the rest of the mass, `1 - score`, is spread evenly over the other classes; a
  prediction that also carries `probabilities` (as the workbench's own Label Studio export writes) uses them.
"""
from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from labeling import label_studio as studio
from labeling.storable import json_problem

PROBABILITY_TOLERANCE = 1e-6
MAX_EXTERNAL_ID_LENGTH = 255
MAX_DOMAIN_PATH_LENGTH = 255
MAX_MODEL_FIELD_LENGTH = 200
MAX_LABEL_LENGTH = 200
MAX_USERNAME_LENGTH = 150
DEFAULT_HOTKEYS = "1234567890"
ROLES = ("crowd", "expert", "reviewer")
DEFAULT_ANNOTATION_ROLE = "crowd"
# "en", "pt-BR", "zh-Hant-TW": a primary subtag and optional subtags; a light check, not full BCP 47.
LANGUAGE_RE = re.compile(r"^[A-Za-z]{2,8}(-[A-Za-z0-9]{1,8})*$")
ROW_FIELD = "(row)"
_NUMBER_TYPES = frozenset({int, float})
_FLOAT_ONLY = {float}


@dataclass(frozen=True, slots=True)
class RowError:
    """One problem with the input. `row` is None for problems with the request as a whole."""

    row: int | None
    field: str
    message: str

    def to_dict(self) -> dict[str, Any]:
        return {"row": self.row, "field": self.field, "message": self.message}


class MalformedRow:
    """Stands in for a row a reader could not parse (bad JSONL line, bad CSV JSON cell)."""

    __slots__ = ("errors",)

    def __init__(self, errors: Sequence[tuple[str, str]]):
        # (field, message) pairs; the row index is assigned by the validator.
        self.errors = tuple(errors)


@dataclass(frozen=True, slots=True)
class PredictionRow:
    model_name: str
    model_version: str
    probabilities: dict[str, float]


@dataclass(frozen=True, slots=True)
class AnnotationRow:
    annotator: str
    label: str
    rationale: str
    factors: list[str]
    role: str
    time_spent_ms: int | None
    # None: not given; the service stamps the import time and matches re-sent copies without it.
    submitted_at: datetime | None
    confidence: int | None


@dataclass(frozen=True, slots=True)
class ItemRow:
    external_id: str
    data: dict[str, Any]
    # None for an optional field means "not given": an existing item keeps what it has.
    metadata: dict[str, Any] | None
    domain: str | None
    language: str | None
    predictions: tuple[PredictionRow, ...]
    annotations: tuple[AnnotationRow, ...]
    gold: str | None


@dataclass(frozen=True, slots=True)
class LabelClass:
    name: str
    hotkey: str

    def to_dict(self) -> dict[str, str]:
        return {"name": self.name, "hotkey": self.hotkey}


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def parse_timestamp(value: str) -> datetime:
    """ISO 8601 with an optional `Z`; a time without offset is taken as UTC."""
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed


def normalise_domain_path(value: str) -> str:
    return value.strip().strip("/").strip()


def domain_ancestors(path: str) -> list[str]:
    """`a/b/c` -> `["a", "a/b", "a/b/c"]`: every domain that must exist for `path` to exist."""
    parts = path.split("/")
    return ["/".join(parts[: i + 1]) for i in range(len(parts))]


def normalise_classes(raw: Any) -> tuple[list[LabelClass], list[RowError]]:
    """Project classes from names or {"name", "hotkey"} objects; unset hotkeys take the first free of 1..9, 0."""
    errors: list[RowError] = []
    if not isinstance(raw, list):
        return [], [RowError(None, "classes", f"expected an array of class names, got {_type_name(raw)}")]
    if len(raw) < 2:
        errors.append(RowError(None, "classes", "a project needs at least two classes"))
    names: list[str] = []
    hotkeys: list[str | None] = []
    for i, entry in enumerate(raw):
        field = f"classes[{i}]"
        unstorable = json_problem(entry, field)
        if unstorable is not None:
            errors.append(RowError(None, *unstorable))
            continue
        if isinstance(entry, str):
            name, hotkey = entry, None
        elif isinstance(entry, dict):
            name, hotkey = entry.get("name"), entry.get("hotkey")
            unknown = set(entry) - {"name", "hotkey"}
            if unknown:
                errors.append(RowError(None, field, f"unknown keys: {', '.join(sorted(unknown))}"))
            if hotkey == "":
                hotkey = None
            if hotkey is not None and (not isinstance(hotkey, str) or len(hotkey) != 1 or hotkey.isspace()):
                errors.append(RowError(None, f"{field}.hotkey", "a hotkey is a single visible character"))
                hotkey = None
        else:
            errors.append(RowError(None, field, f"expected a class name or an object, got {_type_name(entry)}"))
            continue
        if not isinstance(name, str) or not name.strip():
            errors.append(RowError(None, f"{field}.name" if isinstance(entry, dict) else field,
                "a class name is a non-empty string"))
            continue
        name = name.strip()
        if len(name) > MAX_LABEL_LENGTH:
            errors.append(RowError(None, field, f"a class name has at most {MAX_LABEL_LENGTH} characters"))
            continue
        if name in names:
            errors.append(RowError(None, field, f"duplicate class {name!r}"))
            continue
        if hotkey is not None and hotkey in hotkeys:
            errors.append(RowError(None, f"{field}.hotkey", f"hotkey {hotkey!r} is used by another class"))
            hotkey = None
        names.append(name)
        hotkeys.append(hotkey)
    free = [k for k in DEFAULT_HOTKEYS if k not in hotkeys]
    classes = []
    for name, hotkey in zip(names, hotkeys):
        if hotkey is None:
            hotkey = free.pop(0) if free else ""
        classes.append(LabelClass(name, hotkey))
    return classes, errors


class RowValidator:
    """Validates rows one by one against a project's classes; call `validate(index, row)` in input order."""

    def __init__(self, class_names: Sequence[str]):
        self.class_names = tuple(class_names)
        self._classes = frozenset(self.class_names)
        self._seen: dict[str, int] = {}
        # Valid domain paths and language tags, as given -> normalised: batches repeat a few values.
        self._valid_domains: dict[str, str] = {}
        self._valid_languages: dict[str, str] = {}

    def validate(self, index: int, row: Any) -> tuple[ItemRow | None, list[RowError]]:
        if type(row) is not dict and isinstance(row, MalformedRow):
            return None, [RowError(index, field, message) for field, message in row.errors]
        if type(row) is not dict and not isinstance(row, Mapping):
            return None, [RowError(index, ROW_FIELD, f"expected an object, got {_type_name(row)}")]
        unstorable = json_problem(row, root=ROW_FIELD)
        if unstorable is not None:
            return None, [RowError(index, *unstorable)]
        errors: list[RowError] = []

        data = row.get("data")
        if data is None:
            errors.append(RowError(index, "data", "required"))
        elif not isinstance(data, dict):
            errors.append(RowError(index, "data", f"expected an object, got {_type_name(data)}"))
            data = None

        external_id = self._external_id(index, row, data, errors)
        if external_id is not None and data is not None and "external_id" not in row and "external_id" in data:
            data = {k: v for k, v in data.items() if k != "external_id"}

        metadata = row.get("metadata")
        metadata_field = "metadata"
        if metadata is None and "meta" in row and "external_id" not in row:
            metadata, metadata_field = row.get("meta"), "meta"
        if metadata is not None and not isinstance(metadata, dict):
            errors.append(RowError(index, metadata_field, f"expected an object, got {_type_name(metadata)}"))
            metadata = None

        domain = self._domain(index, row.get("domain"), errors)
        language = self._language(index, row.get("language"), errors)
        predictions = self._predictions(index, row.get("predictions"), errors)
        annotations = self._annotations(index, row.get("annotations"), errors)

        gold = row.get("gold")
        if gold is not None:
            if isinstance(gold, dict):
                gold = gold.get("label")
            if not isinstance(gold, str):
                errors.append(RowError(index, "gold", f"expected a class name, got {_type_name(gold)}"))
                gold = None
            elif gold == "":
                gold = None
            elif gold not in self._classes:
                errors.append(RowError(index, "gold", f"unknown class {gold!r}; classes are {self._class_list()}"))

        if errors:
            return None, errors
        return ItemRow(external_id, data, metadata, domain, language, predictions, annotations, gold), []

    def _class_list(self) -> str:
        return ", ".join(self.class_names)

    def _external_id(self, index: int, row: Mapping, data: dict | None, errors: list[RowError]) -> str | None:
        if "external_id" in row:
            value, field = row["external_id"], "external_id"
        elif data is not None and "external_id" in data:
            value, field = data["external_id"], "data.external_id"
        elif "id" in row:
            value, field = row["id"], "id"
        else:
            errors.append(RowError(index, "external_id", "required"))
            return None
        if _is_number(value) and float(value).is_integer():
            value = str(int(value))
        if not isinstance(value, str):
            errors.append(RowError(index, field, f"expected a string, got {_type_name(value)}"))
            return None
        value = value.strip()
        if not value:
            errors.append(RowError(index, field, "must not be empty"))
            return None
        if len(value) > MAX_EXTERNAL_ID_LENGTH:
            errors.append(RowError(index, field, f"at most {MAX_EXTERNAL_ID_LENGTH} characters"))
            return None
        first = self._seen.setdefault(value, index)
        if first != index:
            errors.append(RowError(index, field, f"duplicate external_id {value!r}, first in row {first}"))
            return None
        return value

    def _domain(self, index: int, value: Any, errors: list[RowError]) -> str | None:
        if type(value) is str and value in self._valid_domains:
            return self._valid_domains[value]
        if value is None or value == "":
            return None
        if not isinstance(value, str):
            errors.append(RowError(index, "domain", f"expected a path string, got {_type_name(value)}"))
            return None
        path = normalise_domain_path(value)
        if len(path) > MAX_DOMAIN_PATH_LENGTH:
            errors.append(RowError(index, "domain", f"at most {MAX_DOMAIN_PATH_LENGTH} characters"))
            return None
        if not path or any(not part.strip() or part != part.strip() for part in path.split("/")):
            errors.append(RowError(index, "domain", f"{value!r} is not a path like 'medical/radiology'"))
            return None
        self._valid_domains[value] = path
        return path

    def _language(self, index: int, value: Any, errors: list[RowError]) -> str | None:
        if type(value) is str and value in self._valid_languages:
            return self._valid_languages[value]
        if value is None:
            return None
        if not isinstance(value, str):
            errors.append(RowError(index, "language", f"expected a BCP 47 tag, got {_type_name(value)}"))
            return None
        raw, value = value, value.strip()
        if value and (len(value) > 35 or not LANGUAGE_RE.match(value)):
            errors.append(RowError(index, "language", f"{value!r} is not a BCP 47 tag such as 'en' or 'pt-BR'"))
            return None
        self._valid_languages[raw] = value
        return value

    def _predictions(self, index: int, value: Any, errors: list[RowError]) -> tuple[PredictionRow, ...]:
        if value is None:
            return ()
        if not isinstance(value, list):
            errors.append(RowError(index, "predictions", f"expected an array, got {_type_name(value)}"))
            return ()
        out: list[PredictionRow] = []
        keys: set[tuple[str, str]] = set()
        for p, pred in enumerate(value):
            field = f"predictions[{p}]"
            if not isinstance(pred, dict):
                errors.append(RowError(index, field, f"expected an object, got {_type_name(pred)}"))
                continue
            n_errors = len(errors)
            model_name = self._model_field(index, field, "model_name", pred.get("model_name"), False, errors)
            model_version = self._model_field(index, field, "model_version", pred.get("model_version"), True, errors)
            if "probabilities" in pred or "result" not in pred:
                probabilities = self._probabilities(index, field, pred.get("probabilities"), errors)
            else:
                probabilities = self._probabilities_from_score(index, field, pred, errors)
            if len(errors) > n_errors:
                continue
            key = (model_name, model_version)
            if key in keys:
                errors.append(RowError(index, field,
                    f"duplicate prediction for model {model_name!r} version {model_version!r}"))
                continue
            keys.add(key)
            out.append(PredictionRow(model_name, model_version, probabilities))
        return tuple(out)

    @staticmethod
    def _model_field(index: int, prefix: str, key: str, value: Any, required: bool, errors: list[RowError]) -> str:
        if type(value) is str and 0 < len(value) <= MAX_MODEL_FIELD_LENGTH:
            return value
        field = f"{prefix}.{key}"
        if value is None or value == "":
            if required:
                errors.append(RowError(index, field, "required"))
            return ""
        if _is_number(value):
            value = str(value)
        if not isinstance(value, str):
            errors.append(RowError(index, field, f"expected a string, got {_type_name(value)}"))
            return ""
        if len(value) > MAX_MODEL_FIELD_LENGTH:
            errors.append(RowError(index, field, f"at most {MAX_MODEL_FIELD_LENGTH} characters"))
            return ""
        return value

    def _probabilities(self, index: int, prefix: str, value: Any, errors: list[RowError]) -> dict[str, float]:
        # Fast path for the common, valid case (set-based checks in C); anything unusual falls through to
        # the per-class checks below, which name each bad class.
        if type(value) is dict and value and value.keys() <= self._classes:
            values = value.values()
            types = set(map(type, values))
            if types <= _NUMBER_TYPES:
                total = sum(values)
                if abs(total - 1.0) <= PROBABILITY_TOLERANCE and min(values) >= 0 and max(values) <= 1:
                    if types == _FLOAT_ONLY and len(value) == len(self.class_names) and tuple(
                        value) == self.class_names:
                        return value
                    return {name: float(value.get(name, 0.0)) for name in self.class_names}
        field = f"{prefix}.probabilities"
        if value is None:
            errors.append(RowError(index, field, "required"))
            return {}
        if not isinstance(value, dict):
            errors.append(RowError(index, field,
                f"expected an object of class -> probability, got {_type_name(value)}"))
            return {}
        ok = True
        total = 0.0
        for name, p in value.items():
            if name not in self._classes:
                errors.append(RowError(index, f"{field}.{name}",
                    f"unknown class {name!r}; classes are {self._class_list()}"))
                ok = False
            elif not _is_number(p) or not math.isfinite(p):
                errors.append(RowError(index, f"{field}.{name}", f"expected a number, got {_type_name(p)}"))
                ok = False
            elif p < 0 or p > 1:
                errors.append(RowError(index, f"{field}.{name}", f"probability {p} is outside [0, 1]"))
                ok = False
            else:
                total += p
        if not ok:
            return {}
        if not value:
            errors.append(RowError(index, field, "must give a probability for at least one class"))
            return {}
        if abs(total - 1.0) > PROBABILITY_TOLERANCE:
            errors.append(RowError(index, field,
                f"probabilities sum to {total:.9g}, not 1 (tolerance {PROBABILITY_TOLERANCE:g})"))
            return {}
        # Every class present, in project order: downstream signals (entropy, margin) need the full vector.
        return {name: float(value.get(name, 0.0)) for name in self.class_names}

    def _probabilities_from_score(self, index: int, field: str, pred: dict, errors: list[RowError]) -> dict[str, float]:
        chosen = _choice_from_result(index, f"{field}.result", pred.get("result"), errors)
        if chosen is None:
            return {}
        if chosen not in self._classes:
            errors.append(RowError(index, f"{field}.result",
                f"unknown class {chosen!r}; classes are {self._class_list()}"))
            return {}
        score = pred.get("score")
        if score is None:
            errors.append(RowError(index, f"{field}.score",
                "required to turn a Label Studio prediction into probabilities"))
            return {}
        if not _is_number(score) or not math.isfinite(score):
            errors.append(RowError(index, f"{field}.score", f"expected a number, got {_type_name(score)}"))
            return {}
        if score < 0 or score > 1:
            errors.append(RowError(index, f"{field}.score", f"score {score} is outside [0, 1]"))
            return {}
        rest = (1.0 - score) / (len(self.class_names) - 1) if len(self.class_names) > 1 else 0.0
        return {name: float(score) if name == chosen else rest for name in self.class_names}

    def _annotations(self, index: int, value: Any, errors: list[RowError]) -> tuple[AnnotationRow, ...]:
        if value is None:
            return ()
        if not isinstance(value, list):
            errors.append(RowError(index, "annotations", f"expected an array, got {_type_name(value)}"))
            return ()
        out: list[AnnotationRow] = []
        for a, ann in enumerate(value):
            field = f"annotations[{a}]"
            if not isinstance(ann, dict):
                errors.append(RowError(index, field, f"expected an object, got {_type_name(ann)}"))
                continue
            if ann.get("was_cancelled"):
                continue  # a skipped Label Studio annotation carries no label
            parsed = self._annotation(index, field, ann, errors)
            if parsed is not None:
                out.append(parsed)
        return tuple(out)

    def _annotation(self, index: int, field: str, ann: dict, errors: list[RowError]) -> AnnotationRow | None:
        n_errors = len(errors)
        label_studio = "result" in ann and "label" not in ann

        annotator = ann.get("annotator")
        if annotator is None and label_studio:
            annotator = studio.annotator_name(ann.get("completed_by"))
        if annotator is None or annotator == "":
            errors.append(RowError(index, f"{field}.annotator", "required (a username)"))
        elif not isinstance(annotator, str):
            errors.append(RowError(index, f"{field}.annotator", f"expected a username, got {_type_name(annotator)}"))
        elif len(annotator) > MAX_USERNAME_LENGTH:
            errors.append(RowError(index, f"{field}.annotator", f"at most {MAX_USERNAME_LENGTH} characters"))

        if label_studio:
            label = _choice_from_result(index, f"{field}.result", ann.get("result"), errors)
            label_field = f"{field}.result"
        else:
            label, label_field = ann.get("label"), f"{field}.label"
            if label is None:
                errors.append(RowError(index, label_field, "required"))
        if label is not None:
            if not isinstance(label, str):
                errors.append(RowError(index, label_field, f"expected a class name, got {_type_name(label)}"))
            elif label not in self._classes:
                errors.append(RowError(index, label_field,
                    f"unknown class {label!r}; classes are {self._class_list()}"))

        rationale = ann.get("rationale")
        if rationale is None and label_studio:
            rationale = studio.text_answer(ann.get("result"))
        if rationale is None:
            rationale = ""
        elif not isinstance(rationale, str):
            errors.append(RowError(index, f"{field}.rationale", f"expected a string, got {_type_name(rationale)}"))

        factors = ann.get("factors")
        if factors is None:
            factors = []
        elif not isinstance(factors, list) or not all(isinstance(f, str) for f in factors):
            errors.append(RowError(index, f"{field}.factors", "expected an array of strings"))

        role = ann.get("role")
        if role is None or role == "":
            role = DEFAULT_ANNOTATION_ROLE
        elif role not in ROLES:
            errors.append(RowError(index, f"{field}.role", f"unknown role {role!r}; roles are {', '.join(ROLES)}"))

        time_spent_ms = ann.get("time_spent_ms")
        if time_spent_ms is None and label_studio and _is_number(ann.get("lead_time")):
            time_spent_ms = round(ann["lead_time"] * 1000)
        if time_spent_ms is not None and (
            not _is_number(time_spent_ms) or time_spent_ms < 0 or time_spent_ms != int(time_spent_ms)):
            errors.append(RowError(index, f"{field}.time_spent_ms",
                "expected a non-negative whole number of milliseconds"))
        elif time_spent_ms is not None:
            time_spent_ms = int(time_spent_ms)

        submitted_field = f"{field}.submitted_at"
        submitted = ann.get("submitted_at")
        if submitted is None and label_studio:
            submitted, submitted_field = ann.get("created_at"), f"{field}.created_at"
        submitted_at = None
        if submitted is not None:
            if not isinstance(submitted, str):
                errors.append(RowError(index, submitted_field,
                    f"expected an ISO 8601 timestamp, got {_type_name(submitted)}"))
            else:
                try:
                    submitted_at = parse_timestamp(submitted)
                except ValueError:
                    errors.append(RowError(index, submitted_field, f"{submitted!r} is not an ISO 8601 timestamp"))

        confidence = ann.get("confidence")
        if confidence is not None and (
            not _is_number(confidence) or confidence != int(confidence) or not 1 <= confidence <= 5):
            errors.append(RowError(index, f"{field}.confidence", "expected a whole number from 1 to 5"))
        elif confidence is not None:
            confidence = int(confidence)

        if len(errors) > n_errors:
            return None
        return AnnotationRow(annotator, label, rationale, list(factors), role, time_spent_ms, submitted_at, confidence)


def _choice_from_result(index: int, field: str, result: Any, errors: list[RowError]) -> str | None:
    if not isinstance(result, list):
        errors.append(RowError(index, field, f"expected a Label Studio result array, got {_type_name(result)}"))
        return None
    chosen = studio.chosen_class(result)
    if chosen is None:
        errors.append(RowError(index, field, "expected exactly one choices region with one chosen class"))
    return chosen


def validate_rows(rows: Iterable[Any], class_names: Sequence[str]) -> tuple[list[ItemRow], list[RowError]]:
    """Validate a whole batch: the normalised rows if there is no error, else every error found."""
    validator = RowValidator(class_names)
    normalised: list[ItemRow] = []
    errors: list[RowError] = []
    for index, row in enumerate(rows):
        item, row_errors = validator.validate(index, row)
        if row_errors:
            errors.extend(row_errors)
        elif not errors:
            normalised.append(item)
    return (normalised if not errors else []), errors
