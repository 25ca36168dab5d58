"""What a deployment needs happens in the standard commands, with nothing only the Makefile knows:
`migrate` creates the job schedules, `collectstatic` gathers plotly.js; deploy/gunicorn.conf.py serves
the app behind a TLS proxy (docs/deploy.md)."""
import http.client
import json
import os
import pathlib
import platform
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import plotly
import pytest
from django.core.management import call_command
from django_q.models import Schedule

from tests.test_production_settings import PRODUCTION, ROOT, SETTINGS_VARIABLES, run
from workbench.schedules import SCHEDULES

PLOTLY_JS = pathlib.Path(plotly.__file__).parent / "package_data" / "plotly.min.js"


@pytest.mark.django_db
def test_migrate_creates_the_job_schedules():
    Schedule.objects.filter(func__in=list(SCHEDULES)).delete()
    call_command("migrate", verbosity=0)
    assert set(Schedule.objects.filter(func__in=list(SCHEDULES)).values_list("func", flat=True)) == set(SCHEDULES)


def test_collectstatic_gathers_plotly_js_from_the_plotly_package(settings, tmp_path):
    settings.STATIC_ROOT = tmp_path
    call_command("collectstatic", interactive=False, verbosity=0)
    assert (tmp_path / "vendor" / "plotly.min.js").read_bytes() == PLOTLY_JS.read_bytes()
    # plotly's other package data (data sets, templates) is not ours to serve.
    assert sorted(p.name for p in (tmp_path / "vendor").iterdir()) == ["plotly.min.js", "plotly.min.js.gz"]


def test_plotly_js_is_served_from_our_static_files(client):
    response = client.get("/static/vendor/plotly.min.js")
    assert response.status_code == 200
    assert b"".join(response.streaming_content) == PLOTLY_JS.read_bytes()


def test_production_serves_collectstatics_compressed_copy(settings, tmp_path):
    """Without DEBUG the web processes serve STATIC_ROOT, so a client that accepts gzip gets the .gz copy."""
    from django.test import RequestFactory
    from whitenoise.middleware import WhiteNoiseMiddleware

    settings.STATIC_ROOT = tmp_path
    call_command("collectstatic", interactive=False, verbosity=0)
    production = run(["-c", "import django; django.setup(); from django.conf import settings as s; "
                            "print(s.WHITENOISE_USE_FINDERS)"], **PRODUCTION)
    assert production.stdout.strip().splitlines()[-1] == "False", production.stderr
    settings.WHITENOISE_USE_FINDERS = False
    middleware = WhiteNoiseMiddleware(lambda request: None)
    request = RequestFactory().get("/static/vendor/plotly.min.js", HTTP_ACCEPT_ENCODING="gzip")
    response = middleware(request)
    assert response.status_code == 200 and response["Content-Encoding"] == "gzip"
    assert int(response["Content-Length"]) == (tmp_path / "vendor" / "plotly.min.js.gz").stat().st_size


def storage_settings(**env: str) -> dict:
    show = ("import json, django; django.setup(); from django.conf import settings as s; "
            "print(json.dumps({'STORAGES': s.STORAGES, 'MEDIA_ROOT': str(s.MEDIA_ROOT)}))")
    result = run(["-c", show], **PRODUCTION, **env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_the_s3_storage_is_configured_from_the_environment():
    bucket = storage_settings(FILE_STORAGE_BUCKET="uploads", FILE_STORAGE_ENDPOINT_URL="https://s3.example.org")
    assert bucket["STORAGES"]["default"]["BACKEND"] == "storages.backends.s3.S3Storage"
    assert bucket["STORAGES"]["default"]["OPTIONS"]["bucket_name"] == "uploads"
    assert bucket["STORAGES"]["default"]["OPTIONS"]["endpoint_url"] == "https://s3.example.org"
    shared = storage_settings(MEDIA_ROOT="/mnt/workbench-media")
    assert shared["STORAGES"]["default"]["BACKEND"] == "django.core.files.storage.FileSystemStorage"
    assert shared["MEDIA_ROOT"] == "/mnt/workbench-media"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str, **headers: str) -> tuple[int, dict, bytes]:
    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):
            return None

    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.build_opener(NoRedirect).open(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def test_gunicorn_config_serves_behind_the_tls_proxy(tmp_path):
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k not in SETTINGS_VARIABLES}
    env.update(PRODUCTION, DJANGO_SETTINGS_MODULE="workbench.settings", GUNICORN_BIND=f"127.0.0.1:{port}",
               WEB_CONCURRENCY="1", GUNICORN_THREADS="2", GUNICORN_ACCESS_LOG=str(tmp_path / "access.log"),
               DATABASE_URL=f"sqlite:///{tmp_path / 'unused.sqlite3'}")
    server = subprocess.Popen(
        [str(pathlib.Path(sys.executable).parent / "gunicorn"), "-c", "deploy/gunicorn.conf.py", "workbench.wsgi"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        for _ in range(150):
            try:
                status, _, body = _get(f"{base}/healthz")
                break
            except OSError:
                if server.poll() is not None:
                    pytest.fail(server.stdout.read().decode())
                time.sleep(0.2)
        else:
            pytest.fail("gunicorn did not answer /healthz")
        assert (status, body) == (200, b'{"status": "ok"}')
        host = {"Host": "labels.example.org"}
        # What the proxy forwards from an https request is served; plain HTTP is sent to https.
        status, headers, _ = _get(f"{base}/accounts/login/", **host, **{"X-Forwarded-Proto": "https"})
        assert status == 200 and "Strict-Transport-Security" in headers
        status, headers, _ = _get(f"{base}/accounts/login/", **host)
        assert status == 301 and headers["Location"] == "https://labels.example.org/accounts/login/"
    finally:
        os.killpg(server.pid, 15)
        server.wait(timeout=30)
    log = (tmp_path / "access.log").read_text()
    assert "GET /accounts/login/ HTTP/1.0\" 200" in log or "GET /accounts/login/ HTTP/1.1\" 200" in log


def test_gunicorn_freezes_the_preloaded_objects_before_forking_a_worker():
    import gc
    import runpy

    config = runpy.run_path(str(ROOT / "deploy" / "gunicorn.conf.py"))
    assert config["preload_app"] is True
    gc.unfreeze()
    try:
        config["pre_fork"](None, None)
        # What the master holds is out of the collector's reach: a worker's collections leave its pages shared.
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()


def test_gunicorn_frees_the_masters_garbage_before_freezing_it():
    import gc
    import runpy
    import weakref

    class Node:
        pass

    config = runpy.run_path(str(ROOT / "deploy" / "gunicorn.conf.py"))
    cycle = Node()
    cycle.self = cycle
    alive = weakref.ref(cycle)
    del cycle
    gc.unfreeze()
    try:
        config["pre_fork"](None, None)
        # A cycle frozen with the rest would stay in the master's memory, and so in every worker's, for good.
        assert alive() is None
    finally:
        gc.unfreeze()


BUILD_IN_MASTER = """
import os, runpy, sys
import django
from django.urls import get_resolver
django.setup()  # what preload_app has done in the master when pre_fork runs
before = get_resolver()._populated, "work.api" in sys.modules
runpy.run_path("deploy/gunicorn.conf.py")["pre_fork"](None, None)
print(before, (get_resolver()._populated, "work.api" in sys.modules))
"""


def test_gunicorn_builds_the_url_resolver_in_the_master_before_forking():
    # Its own process: this one's resolver was filled long ago by other tests.
    env = {k: v for k, v in os.environ.items() if k not in SETTINGS_VARIABLES}
    env.update(PRODUCTION, DJANGO_SETTINGS_MODULE="workbench.settings", DATABASE_URL="sqlite:///:memory:")
    out = subprocess.run([sys.executable, "-c", BUILD_IN_MASTER], cwd=ROOT, env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    # The URLconf's modules are imported and its tables filled before the fork, so workers share them.
    assert out.stdout.split("\n")[0] == "(False, False) (True, True)"


FIRST_USE_IN_MASTER = """
import runpy, sys
import django
from django.urls import reverse
from django.urls.resolvers import get_ns_resolver
django.setup()
def state():
    return (get_ns_resolver.cache_info().currsize > 0, "django.contrib.admin.templatetags.admin_list" in sys.modules,
            "whitenoise.storage" in sys.modules)
before = state()
runpy.run_path("deploy/gunicorn.conf.py")["pre_fork"](None, None)
after = state()
misses = get_ns_resolver.cache_info().misses
reverse("admin:index"), reverse("admin:labeling_item_changelist")
print(before, after, get_ns_resolver.cache_info().misses - misses)
"""


def test_gunicorn_builds_what_django_builds_on_first_use_in_the_master():
    env = {k: v for k, v in os.environ.items() if k not in SETTINGS_VARIABLES}
    env.update(PRODUCTION, DJANGO_SETTINGS_MODULE="workbench.settings", DATABASE_URL="sqlite:///:memory:")
    out = subprocess.run([sys.executable, "-c", FIRST_USE_IN_MASTER], cwd=ROOT, env=env, capture_output=True,
                         text=True)
    assert out.returncode == 0, out.stderr
    # The admin namespace's resolver, the template engine with its tag libraries and the static files storage
    # exist before the fork; a worker's first admin link reverses through the master's resolver (no new one).
    assert out.stdout.split("\n")[0] == "(False, False, False) (True, True, True) 0"


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="malloc_trim is glibc's")
def test_gunicorn_hands_the_masters_free_heap_back_on_glibc():
    import runpy

    # Web hosts run Debian (docs/deploy.md), so glibc: the lookup must find malloc_trim there, not skip it.
    assert runpy.run_path(str(ROOT / "deploy" / "gunicorn.conf.py"))["release_free_heap"]() is True


SLOW_STREAM_APP = '''
import time

def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    def chunks():
        for i in range(8):  # 4 s of steady output, twice the timeout the test sets
            time.sleep(0.5)
            yield b"chunk %d\\n" % i
    return chunks()
'''


def test_the_deploy_config_lets_a_long_export_stream_past_the_worker_timeout(tmp_path):
    """An export of a big project streams for minutes. gunicorn's sync worker (one thread) reports to its
    arbiter only between requests, so it was killed GUNICORN_TIMEOUT seconds into any stream (a 1M-item
    export broke after 38,000 items); the configured default must keep a worker alive while it streams."""
    (tmp_path / "slowstream.py").write_text(SLOW_STREAM_APP)
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k not in SETTINGS_VARIABLES and not k.startswith("GUNICORN_")}
    env.update(GUNICORN_BIND=f"127.0.0.1:{port}", WEB_CONCURRENCY="1", GUNICORN_TIMEOUT="2",
               GUNICORN_PRELOAD="false", GUNICORN_ACCESS_LOG=str(tmp_path / "access.log"),
               PYTHONPATH=str(tmp_path))
    server = subprocess.Popen(
        [str(pathlib.Path(sys.executable).parent / "gunicorn"), "-c", str(ROOT / "deploy" / "gunicorn.conf.py"),
         "slowstream:app"],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
    )
    try:
        for _ in range(150):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=20) as response:
                    body = response.read()
                break
            except (ConnectionError, urllib.error.URLError):
                if server.poll() is not None:
                    pytest.fail(server.stdout.read().decode())
                time.sleep(0.2)
        else:
            pytest.fail("gunicorn did not answer")
    except http.client.IncompleteRead as exc:
        pytest.fail(f"the stream was cut after {exc.partial!r}")
    finally:
        os.killpg(server.pid, 15)
        server.wait(timeout=30)
    assert body == b"".join(b"chunk %d\n" % i for i in range(8))
