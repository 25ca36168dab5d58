"""workbench.settings fails closed: production is the default, a missing SECRET_KEY stops the process, the
documented production environment passes `manage.py check --deploy`. Each case loads the settings in a fresh
interpreter, since they are read once, at import."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Everything the settings (and Django's deploy checks) read from the environment that the test process may
# have set (settings_test sets SECRET_KEY and HTTPS, tests/conftest.py DJANGO_ALLOW_ASYNC_UNSAFE; a
# developer's shell may set the rest).
SETTINGS_VARIABLES = {
    "DJANGO_ALLOW_ASYNC_UNSAFE", "DEBUG", "SECRET_KEY", "ALLOWED_HOSTS", "CSRF_TRUSTED_ORIGINS", "HTTPS",
    "HSTS_SECONDS",
    "HSTS_INCLUDE_SUBDOMAINS", "HSTS_PRELOAD", "PROXY_SSL_HEADER", "ITEM_IMAGE_HOSTS", "REQUEST_MAX_BYTES",
    "DJANGO_SETTINGS_MODULE",
}

# README.md, "Configuration": the production environment it documents, with a made-up key and host.
PRODUCTION = {
    "SECRET_KEY": "k3Jv9-Qx7mZr2Lp8Tn4Wb6Yc1Hd5Fg0Ks7Ua3Ve9Xi2Oj6Rq8Mt4Nz1Pw5Ly",
    "ALLOWED_HOSTS": "labels.example.org",
    "CSRF_TRUSTED_ORIGINS": "https://labels.example.org",
    "PROXY_SSL_HEADER": "X-Forwarded-Proto",
    "HSTS_INCLUDE_SUBDOMAINS": "true",
    "HSTS_PRELOAD": "true",
}

SHOW_SETTINGS = """
import json, django
django.setup()
from django.conf import settings as s
print(json.dumps({name: getattr(s, name, None) for name in (
    "DEBUG", "ALLOWED_HOSTS", "CSRF_TRUSTED_ORIGINS", "SECURE_SSL_REDIRECT", "SESSION_COOKIE_SECURE",
    "CSRF_COOKIE_SECURE", "SECURE_HSTS_SECONDS", "SECURE_PROXY_SSL_HEADER", "DATA_UPLOAD_MAX_MEMORY_SIZE")}))
"""


def run(args: list[str], **env: str) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if k not in SETTINGS_VARIABLES}
    return subprocess.run(
        [sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=120,
        env={**base, "DJANGO_SETTINGS_MODULE": "workbench.settings", **env},
    )


def settings_under(**env: str) -> dict:
    result = run(["-c", SHOW_SETTINGS], **env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_without_an_environment_debug_is_off_and_a_missing_secret_key_stops_the_process():
    result = run(["manage.py", "check"])
    assert result.returncode != 0
    assert "ImproperlyConfigured: Set the SECRET_KEY environment variable" in result.stderr


def test_the_documented_production_environment_passes_check_deploy():
    result = run(["manage.py", "check", "--deploy", "--fail-level", "WARNING"], **PRODUCTION)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues (0 silenced)." in result.stdout


def test_production_settings_come_from_the_environment():
    values = settings_under(**PRODUCTION)
    assert values["DEBUG"] is False
    assert values["ALLOWED_HOSTS"] == ["labels.example.org"]
    assert values["CSRF_TRUSTED_ORIGINS"] == ["https://labels.example.org"]
    assert values["SECURE_SSL_REDIRECT"] and values["SESSION_COOKIE_SECURE"] and values["CSRF_COOKIE_SECURE"]
    assert values["SECURE_HSTS_SECONDS"] >= 365 * 24 * 3600
    assert values["SECURE_PROXY_SSL_HEADER"] == ["HTTP_X_FORWARDED_PROTO", "https"]
    # The login page's limit, not the item files' 50 MiB.
    assert values["DATA_UPLOAD_MAX_MEMORY_SIZE"] <= 1024 * 1024


def test_no_host_and_no_origin_is_trusted_unless_listed():
    values = settings_under(SECRET_KEY=PRODUCTION["SECRET_KEY"])
    assert values["ALLOWED_HOSTS"] == [] and values["CSRF_TRUSTED_ORIGINS"] == []
    assert values["SECURE_PROXY_SSL_HEADER"] is None


def test_the_local_demo_runs_with_debug_and_no_key_over_plain_http():
    values = settings_under(DEBUG="true")
    assert values["DEBUG"] is True
    assert not values["SECURE_SSL_REDIRECT"] and not values["SESSION_COOKIE_SECURE"]
    assert values["SECURE_HSTS_SECONDS"] == 0


def test_an_image_host_over_plain_http_is_refused():
    result = run(["manage.py", "check"], DEBUG="true", ITEM_IMAGE_HOSTS="https://ok.example.org,http://cdn.example.org")
    assert result.returncode != 0
    assert "ITEM_IMAGE_HOSTS: 'http://cdn.example.org' is not https" in result.stderr
