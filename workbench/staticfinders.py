"""plotly.js as a static file of our own (`static/vendor/plotly.min.js`), found in the installed plotly
package: `collectstatic` copies it with the rest and the dashboards never load it from a CDN. Its version
follows the plotly package the server renders figures with, so the two always match."""
from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from django.contrib.staticfiles.finders import BaseFinder
from django.core.checks import Error
from django.core.files.storage import FileSystemStorage

PREFIX = "vendor"
FILENAME = "plotly.min.js"
STATIC_PATH = f"{PREFIX}/{FILENAME}"


def _package_data() -> Path:
    # find_spec locates the package without importing it: the web processes that never draw a chart do
    # not pay for plotly's import.
    spec = importlib.util.find_spec("plotly")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("the plotly package is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "package_data"


class PlotlyJsFinder(BaseFinder):
    """Finds `vendor/plotly.min.js` and nothing else (plotly's package_data also holds data sets)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.storage = FileSystemStorage(location=_package_data())
        # collectstatic and whitenoise put a storage's files under its `prefix`.
        self.storage.prefix = PREFIX

    def check(self, **kwargs: Any) -> list[Error]:
        if not self.storage.exists(FILENAME):
            return [Error(f"{self.storage.path(FILENAME)} is missing: the dashboards' charts need plotly.js",
                          hint="Reinstall the plotly package.", id="workbench.E001")]
        return []

    def find(self, path: str, find_all: bool = False, **kwargs: Any) -> str | list[str]:
        find_all = find_all or kwargs.get("all", False)  # Django < 6.1 may still pass `all`
        match = self.storage.path(FILENAME) if path == STATIC_PATH and self.storage.exists(FILENAME) else None
        if find_all:
            return [match] if match else []
        return match or []

    def list(self, ignore_patterns: Any) -> Iterator[tuple[str, FileSystemStorage]]:
        if self.storage.exists(FILENAME):
            yield FILENAME, self.storage
