import pytest

from core.formatting import rounded


@pytest.mark.parametrize(
    "value, shown",
    [
        (0.875182990433, "0.875"),
        (0.8333333333333334, "0.833"),
        (0.00041234, "0.000412"),
        (1.0, "1"),
        (24.0, "24"),
        (123.456, "123"),
        (1234.5, "1234"),
        (-0.5, "-0.5"),
        (3, "3"),
        (None, "—"),
        (True, "True"),
        ("n/a", "n/a"),
    ],
)
def test_numbers_are_shown_to_three_significant_digits(value, shown):
    assert rounded(value) == shown
