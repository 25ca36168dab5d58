# The bulk helpers are exercised on labeling's tables, with labeling's fixtures.
from tests.labeling.conftest import project, staff  # noqa: F401
