"""How the admin writes numbers: one rule for every measured or learned value it lists."""
from __future__ import annotations

from typing import Any

# Three significant digits tell 0.875 from 0.883 and never print 0.8333333333333334.
SIGNIFICANT_DIGITS = 3


def rounded(value: Any, digits: int = SIGNIFICANT_DIGITS) -> str:
    """`value` to `digits` significant digits ("0.875", "0.0004", "24"), whole numbers from 1000 up
    (where %g would switch to "1.23e+03"); "—" for none. Other values are shown as they are."""
    if value is None:
        return "—"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if abs(value) >= 10 ** digits:
        return f"{value:.0f}"
    return f"{value:.{digits}g}"
