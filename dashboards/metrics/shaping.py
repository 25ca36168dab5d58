"""Input validation and shaping: SQL rows keyed by label turned into count arrays with a fixed class order.

Every metric module validates its inputs here, so malformed input (wrong shape, negative or fractional
counts, NaN) raises the same ``ValueError`` naming the argument and the first offending position.
"""
from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping, Sequence

import numpy as np
import numpy.typing as npt


def as_counts(values: npt.ArrayLike, *, name: str, ndim: int) -> np.ndarray:
    """Return `values` as an int64 array of non-negative whole counts, or raise naming the first bad cell."""
    arr = np.asarray(values, dtype=float)
    if arr.size == 0 and ndim == 2 and arr.ndim == 1:
        # `[]` from an empty query: zero items, so callers return None rather than fail on the shape.
        arr = arr.reshape(0, 0)
    if arr.ndim != ndim:
        raise ValueError(f"{name}: expected a {ndim}-D array of counts, got shape {arr.shape}")
    bad = ~np.isfinite(arr) | (arr < 0) | (arr != np.floor(arr))
    if bad.any():
        pos = tuple(int(i) for i in np.argwhere(bad)[0])
        raise ValueError(f"{name}{list(pos)}: counts must be finite non-negative whole numbers, got {arr[pos]!r}")
    return arr.astype(np.int64)


def class_index(classes: Sequence[str], *, name: str) -> dict[str, int]:
    index = {label: i for i, label in enumerate(classes)}
    if len(index) != len(classes):
        raise ValueError(f"{name}: class names must be unique, got {list(classes)!r}")
    return index


def lookup(index: Mapping[str, int], label: str, *, where: str) -> int:
    try:
        return index[label]
    except KeyError:
        raise ValueError(f"{where}: unknown class {label!r} (known: {list(index)!r})") from None


def label_count_matrix(rows: Iterable[tuple[Hashable, str, int]], classes: Sequence[str]) -> np.ndarray:
    """Build the items x classes matrix of label counts from ``(item_key, label, count)`` rows.

    This is the shape of ``SELECT item_id, label, COUNT(*) ... GROUP BY item_id, label``. Rows for the
    same (item, label) are summed. Items appear in first-seen order; items without rows are absent.
    """
    index = class_index(classes, name="classes")
    item_rows: dict[Hashable, int] = {}
    cells: list[tuple[int, int, int]] = []
    for n, (item_key, label, count) in enumerate(rows):
        where = f"rows[{n}]"
        col = lookup(index, label, where=where)
        if isinstance(count, bool) or not isinstance(count, (int, np.integer)) or count < 0:
            raise ValueError(f"{where}: count must be a non-negative integer, got {count!r}")
        row = item_rows.setdefault(item_key, len(item_rows))
        cells.append((row, col, int(count)))
    matrix = np.zeros((len(item_rows), len(classes)), dtype=np.int64)
    for row, col, count in cells:
        matrix[row, col] += count
    return matrix


def contingency_table(rows: Iterable[tuple[str, str, int]], classes: Sequence[str]) -> np.ndarray:
    """Build a K x K table from ``(row_label, column_label, count)`` rows, in ``classes`` order.

    For Cohen's kappa the rows are annotator A's labels and columns annotator B's; for a confusion
    matrix rows are the true (gold) labels and columns the predicted ones.
    """
    index = class_index(classes, name="classes")
    table = np.zeros((len(classes), len(classes)), dtype=np.int64)
    for n, (row_label, col_label, count) in enumerate(rows):
        where = f"rows[{n}]"
        i = lookup(index, row_label, where=where)
        j = lookup(index, col_label, where=where)
        if isinstance(count, bool) or not isinstance(count, (int, np.integer)) or count < 0:
            raise ValueError(f"{where}: count must be a non-negative integer, got {count!r}")
        table[i, j] += int(count)
    return table


def class_counts(counts: Mapping[str, int], classes: Sequence[str]) -> np.ndarray:
    """Counts per class as a vector in ``classes`` order (missing classes count 0), e.g. for PSI."""
    index = class_index(classes, name="classes")
    vector = np.zeros(len(classes), dtype=np.int64)
    for label, count in counts.items():
        i = lookup(index, label, where=f"counts[{label!r}]")
        if isinstance(count, bool) or not isinstance(count, (int, np.integer)) or count < 0:
            raise ValueError(f"counts[{label!r}]: count must be a non-negative integer, got {count!r}")
        vector[i] = int(count)
    return vector
