"""The labeling request path (every app but dashboards, the pilot and the demo) loads neither the pilot nor
plotly: each of its modules is imported in a process where those apps are not even installed."""

import subprocess
import sys

import pytest

REQUEST_PATH_APPS = ("core", "experts", "labeling", "routing", "work")

CODE = """
import importlib, os, pkgutil, sys
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "workbench.settings")
from django.conf import settings
settings.INSTALLED_APPS = [a for a in settings.INSTALLED_APPS if a not in ("pilot", "dashboards", "demo", "workbench")]
import django
django.setup()
for app in {apps!r}:
    package = importlib.import_module(app)
    for module in pkgutil.walk_packages(package.__path__, app + "."):
        if ".migrations" not in module.name:
            importlib.import_module(module.name)
print(sorted({{name.split(".")[0] for name in sys.modules}} & {{"plotly", "pilot", "dashboards", "demo"}}))
"""


@pytest.mark.parametrize("app", REQUEST_PATH_APPS)
def test_the_request_path_imports_neither_the_pilot_nor_plotly(app):
    out = subprocess.run([sys.executable, "-c", CODE.format(apps=(app,))], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_the_check_sees_an_import_of_the_pilot():
    # The same check on the pilot itself finds it: the test above could fail.
    code = CODE.replace('if a not in ("pilot", ', 'if a not in (').format(apps=("pilot",))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "pilot" in out.stdout


# Loading the whole application, as gunicorn's preload does in every web host's master (every app installed,
# the admin's modules and the URLs), imports none of these: scikit-learn (with scipy, pandas and pyarrow) is
# imported only by a calibration's fit, plotly only to draw a pilot chart (bench/memory.py measures why).
HEAVY = ("sklearn", "scipy", "pandas", "pyarrow", "plotly", "statsmodels")

APP_LOAD = """
import os, sys
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "workbench.settings")
import workbench.wsgi
from django.urls import get_resolver
get_resolver().url_patterns
{extra}
print(sorted({{name.split(".")[0] for name in sys.modules}} & set({heavy!r})))
"""


def _last_line(code: str) -> str:
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip().splitlines()[-1]


def _heavy_after_load(extra: str = "") -> str:
    return _last_line(APP_LOAD.format(extra=extra, heavy=HEAVY))


def test_loading_the_application_imports_no_heavy_package():
    assert _heavy_after_load() == "[]"


def test_the_load_check_sees_a_heavy_import():
    # The demo's data sets are built with scikit-learn at import: the check above could fail.
    assert "sklearn" in _heavy_after_load("import demo.datasets")


# Modules no request needs are not loaded with the application either: the pilot's calibration and the simulator
# it replays on (a background task's), and the test client drf-spectacular's plumbing imports, with django.test
# and unittest (workbench.lazy_imports). Each would sit in the master and be counted in every worker's RSS.
UNNEEDED = ("pilot.calibration", "pilot.simulation", "rest_framework.test", "django.test", "unittest")

LOADED = """
import os, sys
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "workbench.settings")
import workbench.wsgi
from django.urls import get_resolver
get_resolver().url_patterns
{extra}
# A stand-in (workbench.lazy_imports.DeferredModule) is not the module loaded.
print(sorted(name for name in {unneeded!r} if type(sys.modules.get(name)).__name__ == "module"))
"""


def _loaded_after_load(extra: str = "") -> str:
    return _last_line(LOADED.format(extra=extra, unneeded=UNNEEDED))


def test_loading_the_application_leaves_calibration_and_test_modules_out():
    assert _loaded_after_load() == "[]"


def test_the_unneeded_check_sees_them_once_used():
    # A calibration run imports the pilot's calibration; generating the API schema loads the test client.
    used = ("from pilot import feedback, calibration\n"
            "from drf_spectacular.generators import SchemaGenerator\n"
            "SchemaGenerator().get_schema(request=None, public=True)")
    assert _loaded_after_load(used) == str(sorted(UNNEEDED))
