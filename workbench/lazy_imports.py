"""A test module no request needs, kept out of the web processes until something uses it.

drf-spectacular's `plumbing`, which every API module loads (`extend_schema` builds on the schema class),
does `from rest_framework.test import APIRequestFactory` at import, for the one function that makes a fake
request while the OpenAPI schema is generated. rest_framework.test brings django.test, unittest, xml.dom and
http.server: 2.5 MiB in a gunicorn master, which each of its workers' RSS counts again (docs/deploy.md,
"Memory"). Django itself stopped loading django.test outside tests for this reason (ticket #20349).
"""
from __future__ import annotations

import importlib
import sys
import types
from typing import Any

DEFERRED = "rest_framework.test"


class DeferredModule(types.ModuleType):
    """Stands in sys.modules for a module not loaded yet: reading any name loads the real one, which then
    takes its place in sys.modules and on its package, so the next import finds the real module."""

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            # Tools that walk sys.modules (reloaders, inspect) probe for __file__ and the like: no load for them.
            raise AttributeError(name)
        return getattr(load_deferred(), name)


def defer_drf_test_module() -> bool:
    """Put the stand-in in place of rest_framework.test, whose `APIRequestFactory` (all that drf-spectacular
    imports from it) loads the real module when first called, as schema generation does. Returns False,
    changing nothing, when the module is already loaded (a test run)."""
    if DEFERRED in sys.modules:
        return False
    package_name, _, child = DEFERRED.rpartition(".")
    package = importlib.import_module(package_name)
    stand_in = DeferredModule(DEFERRED, "Not loaded yet (workbench.lazy_imports).")

    def APIRequestFactory(*args: Any, **kwargs: Any) -> Any:  # named as the class it stands in for
        return load_deferred().APIRequestFactory(*args, **kwargs)

    stand_in.APIRequestFactory = APIRequestFactory  # type: ignore[attr-defined]
    sys.modules[DEFERRED] = stand_in
    setattr(package, child, stand_in)
    return True


def load_deferred() -> types.ModuleType:
    """The real module, loaded now if the stand-in is still in its place."""
    current = sys.modules.get(DEFERRED)
    if current is not None and not isinstance(current, DeferredModule):
        # Maybe still executing in another thread (a module is in sys.modules before its code has run):
        # the import system waits for it to finish, where returning `current` would hand out a half module.
        return importlib.import_module(DEFERRED)
    # pop, not del: another thread may have taken the stand-in out already (its import lock then makes this
    # import wait for that one).
    sys.modules.pop(DEFERRED, None)
    try:
        return importlib.import_module(DEFERRED)  # also sets it on the package, over the stand-in
    except BaseException:
        if current is not None:
            sys.modules.setdefault(DEFERRED, current)
        raise
