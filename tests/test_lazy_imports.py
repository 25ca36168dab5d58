"""workbench.lazy_imports: rest_framework.test stays out of a web process until something uses it, and then the
real module is there, the same for every importer."""
import subprocess
import sys

from workbench.lazy_imports import defer_drf_test_module


def _run(code: str) -> list[str]:
    out = subprocess.run([sys.executable, "-c", "from workbench.lazy_imports import *\n" + code],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return out.stdout.split()


def test_a_loaded_module_is_left_as_it_is():
    import rest_framework.test

    # The test run has loaded it (APIClient): the real module stays.
    assert defer_drf_test_module() is False
    assert sys.modules["rest_framework.test"] is rest_framework.test


def test_the_stand_in_loads_nothing_until_used():
    printed = _run("import sys\n"
                   "print(defer_drf_test_module(), 'django.test' in sys.modules)\n"
                   "import rest_framework.test\n"
                   "print(type(rest_framework.test).__name__, 'django.test' in sys.modules)")
    assert printed == ["True", "False", "DeferredModule", "False"]


def test_reading_any_name_loads_the_real_module_for_every_importer():
    printed = _run("import sys\n"
                   "defer_drf_test_module()\n"
                   "from rest_framework.test import APIClient\n"
                   "import rest_framework, rest_framework.test as again\n"
                   "real = sys.modules['rest_framework.test']\n"
                   "print(type(real).__name__, again is real, rest_framework.test is real,\n"
                   "      APIClient is real.APIClient)")
    assert printed == ["module", "True", "True", "True"]


def test_the_factory_drf_spectacular_imports_makes_real_requests():
    # plumbing's `from rest_framework.test import APIRequestFactory` takes the stand-in's factory, before
    # anything is loaded; calling it (schema generation does) gives the real factory's request.
    printed = _run("import os, sys\n"
                   "os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'workbench.settings')\n"
                   "defer_drf_test_module()\n"
                   "from rest_framework.test import APIRequestFactory\n"
                   "print('django.test' in sys.modules)\n"
                   "import django; django.setup()\n"
                   "request = APIRequestFactory().get('/api/projects/')\n"
                   "print(type(APIRequestFactory()).__name__, request.path, request.method)")
    assert printed == ["False", "APIRequestFactory", "/api/projects/", "GET"]


SCHEMA = """
import hashlib, os
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "workbench.settings")
{first}
import workbench.wsgi
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.renderers import OpenApiJsonRenderer
print(hashlib.sha256(OpenApiJsonRenderer().render(SchemaGenerator().get_schema(request=None, public=True))).hexdigest())
"""


def test_the_api_schema_is_the_same_with_the_module_deferred():
    deferred = _run(SCHEMA.format(first=""))
    loaded_first = _run(SCHEMA.format(first="import rest_framework.test"))
    assert deferred == loaded_first


def test_a_second_thread_waits_for_the_real_module_another_thread_is_still_loading():
    # The real module's code held up for 0.5 s: a second thread that loads it meanwhile must get the whole
    # module, not the half-executed one already in sys.modules.
    printed = _run("import importlib.abc, sys, threading, time\n"
                   "class Slow(importlib.abc.MetaPathFinder):\n"
                   "    def find_spec(self, name, path, target=None):\n"
                   "        if name != DEFERRED: return None\n"
                   "        sys.meta_path.remove(self)\n"
                   "        spec = importlib.util.find_spec(name)\n"
                   "        run = spec.loader.exec_module\n"
                   "        spec.loader.exec_module = lambda module: (time.sleep(0.5), run(module))\n"
                   "        return spec\n"
                   "import importlib.util\n"
                   "defer_drf_test_module()\n"
                   "sys.meta_path.insert(0, Slow())\n"
                   "first = threading.Thread(target=load_deferred); first.start(); time.sleep(0.2)\n"
                   "print(hasattr(load_deferred(), 'APIRequestFactory')); first.join()")
    assert printed == ["True"]
