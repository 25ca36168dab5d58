"""Settings, read from the environment so one codebase runs the SQLite demo and PostgreSQL at scale.

Production is the default: DEBUG is off unless DEBUG=true, and then SECRET_KEY must be set, cookies are
secure, HTTP redirects to HTTPS and HSTS is on. Every variable is listed in README.md, "Configuration".
"""
import os
import tempfile
from datetime import timedelta
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = BASE_DIR / "var"


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_list(name: str, default: str = "") -> list[str]:
    """A comma-separated variable (spaces around entries ignored)."""
    return [v.strip() for v in (os.environ.get(name) or default).split(",") if v.strip()]


def env_rate(name: str, default: str) -> str | None:
    """A DRF throttle rate such as `1200/min`; `off` lifts the limit."""
    value = (os.environ.get(name) or default).strip()
    return None if value.lower() == "off" else value


DEBUG = env_bool("DEBUG", False)
SECRET_KEY = os.environ.get("SECRET_KEY", "")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "Set the SECRET_KEY environment variable (a long random string, e.g. from "
            "`python -c 'import secrets; print(secrets.token_urlsafe(50))'`). Only a local demo may go "
            "without it, and only with DEBUG=true."
        )
    # Signs sessions of a local demo only: DEBUG is on, so this never serves a deployment.
    SECRET_KEY = "django-insecure-local-demo-key-never-used-with-debug-off"

# With DEBUG on and no ALLOWED_HOSTS Django answers localhost, 127.0.0.1 and [::1] on any port (the demo);
# with DEBUG off and none set it answers no host at all (400) rather than any.
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS")
# Same-origin forms pass Django's Origin check on any host and port in ALLOWED_HOSTS; list here only other
# origins that post to the workbench (scheme and port included, e.g. https://labels.example.org).
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")

# HTTPS: the site is reached over TLS (directly or through a proxy). On by default with DEBUG off.
HTTPS = env_bool("HTTPS", not DEBUG)
SECURE_SSL_REDIRECT = HTTPS
SESSION_COOKIE_SECURE = HTTPS
CSRF_COOKIE_SECURE = HTTPS
SECURE_HSTS_SECONDS = int(os.environ.get("HSTS_SECONDS") or (365 * 24 * 3600 if HTTPS else 0))
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("HSTS_INCLUDE_SUBDOMAINS", False)
SECURE_HSTS_PRELOAD = env_bool("HSTS_PRELOAD", False)
# Behind a TLS-terminating proxy: the header (e.g. X-Forwarded-Proto) the proxy sets to "https". Only set it
# when the proxy always sets or strips that header, or a client could claim HTTPS over plain HTTP.
if PROXY_SSL_HEADER := os.environ.get("PROXY_SSL_HEADER", "").strip():
    SECURE_PROXY_SSL_HEADER = ("HTTP_" + PROXY_SSL_HEADER.upper().replace("-", "_"), "https")
SESSION_COOKIE_HTTPONLY = True

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_htmx",
    "django_q",
    "axes",
    "core",
    "experts",
    "labeling",
    "routing",
    "work",
    "pilot",
    "dashboards",
    "demo",
    "workbench",
]

MIDDLEWARE = [
    # First: load balancers probe /healthz and /readyz by address over plain HTTP (workbench.health).
    "workbench.health.HealthCheckMiddleware",
    "django.middleware.security.SecurityMiddleware",
    # Outside everything that may answer by itself (CSRF failures, redirects), so every page gets the header.
    "core.http.ContentSecurityPolicyMiddleware",
    # Before anything reads the body (sessions, CSRF): an oversized or unsized body is refused unread.
    "workbench.middleware.RequestBodyLimitMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    # Before sessions and auth touch the database: NUL in a path or query string is a 400, not a 500.
    "workbench.middleware.StorableRequestMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # request.principal (core.access), after the user is known.
    "workbench.middleware.AccessMiddleware",
    # A view's 403 and 404: the styled pages, DEBUG or not, logged as one line.
    "workbench.middleware.ExpectedRefusalMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    # Last, as django-axes asks: turns a locked-out login into the lockout page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "workbench.urls"
WSGI_APPLICATION = "workbench.wsgi.application"
# Refused CSRF checks get the workbench's own 403 page (or a JSON error under /api/).
CSRF_FAILURE_VIEW = "workbench.errors.csrf_failure"
ASGI_APPLICATION = "workbench.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "core.access.context",
            ],
        },
    },
]

# DATABASE_URL="" (set but empty) must still mean the default, hence `or`.
DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL") or f"sqlite:///{VAR_DIR / 'workbench.sqlite3'}",
        conn_max_age=int(os.environ.get("CONN_MAX_AGE", "60")),
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL lets the web process read while the qcluster worker writes; the busy timeout makes
    # concurrent writers wait for the lock instead of failing at once.
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 20,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    # Tests use a file too, one per test process, in RAM where there is /dev/shm: Django's default
    # in-memory test database is shared between threads through SQLite's shared cache, which answers
    # "database table is locked" at once (no timeout applies) when two threads write, so the
    # concurrent-claim tests could not run on it. Django deletes the file when the tests end.
    _test_dir = "/dev/shm" if os.path.isdir("/dev/shm") else tempfile.gettempdir()
    DATABASES["default"]["TEST"] = {"NAME": os.path.join(_test_dir, f"workbench-test-{os.getpid()}.sqlite3")}

# The claim's hand-written statements are prepared on PostgreSQL (planned once per connection, not per
# call: planning cost more than running them). Turn off behind a pooler in transaction mode that does
# not track prepared statements (PgBouncer before 1.21).
DB_PREPARED_STATEMENTS = env_bool("DB_PREPARED_STATEMENTS", True)
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql" and DB_PREPARED_STATEMENTS:
    # Django turns psycopg's prepared statements off (None); a threshold never reached turns them on for
    # statements that ask (core.bulk.prepared_cursor) and for no others.
    DATABASES["default"].setdefault("OPTIONS", {})["prepare_threshold"] = 2**31 - 1

# A read replica (a streaming standby of the primary) for the reads that may lag: dashboards and exports
# (core.replicas says which and why). PostgreSQL only; same connection options as the primary.
if DATABASE_REPLICA_URL := os.environ.get("DATABASE_REPLICA_URL", "").strip():
    _replica = dj_database_url.parse(DATABASE_REPLICA_URL, conn_max_age=DATABASES["default"]["CONN_MAX_AGE"])
    if _replica["ENGINE"] != "django.db.backends.postgresql" or DATABASES["default"]["ENGINE"] != _replica["ENGINE"]:
        raise ImproperlyConfigured("DATABASE_REPLICA_URL needs PostgreSQL, as DATABASE_URL then must be.")
    _replica["OPTIONS"] = {**DATABASES["default"].get("OPTIONS", {}), **_replica.get("OPTIONS", {})}
    # Tests never create it: a test that needs a replica makes its own (tests/core/test_replicas.py).
    _replica["TEST"] = {"MIRROR": "default"}
    DATABASES["replica"] = _replica
    DATABASE_ROUTERS = ["core.replicas.ReplicaRouter"]

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# django-axes first: it refuses a locked-out username before any password is checked.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
# Login throttling on /accounts/login/ and /admin/login/ alike: LOGIN_FAILURE_LIMIT failed logins lock for
# LOGIN_LOCKOUT_MINUTES both the username (from any address: a guesser who changes address gets no more
# tries) and the address (one host trying a common password on many usernames). A successful login clears
# the username's count. Admins unlock early with `manage.py axes_reset_username NAME` or `axes_reset_ip IP`.
AXES_FAILURE_LIMIT = int(os.environ.get("LOGIN_FAILURE_LIMIT", "5"))
AXES_COOLOFF_TIME = timedelta(minutes=float(os.environ.get("LOGIN_LOCKOUT_MINUTES", "15")))
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
# No start-up banner on every manage.py command; lockouts are still logged.
AXES_VERBOSE = False
if PROXY_SSL_HEADER:
    # Behind a proxy the client's address (logged with each attempt) is the last X-Forwarded-For hop.
    AXES_IPWARE_PROXY_COUNT = 1
    AXES_IPWARE_META_PRECEDENCE_ORDER = ("HTTP_X_FORWARDED_FOR", "REMOTE_ADDR")

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]

LANGUAGE_CODE = "en"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATICFILES_FINDERS = [
    "django.contrib.staticfiles.finders.FileSystemFinder",
    "django.contrib.staticfiles.finders.AppDirectoriesFinder",
    # static/vendor/plotly.min.js from the installed plotly package (collectstatic copies it).
    "workbench.staticfinders.PlotlyJsFinder",
]
# Uploaded files (imports) go through the default storage: every web process and worker must see the same
# files, so MEDIA_ROOT is a shared path (NFS, a mounted volume) on a multi-machine deployment, or, with
# FILE_STORAGE_BUCKET set, an S3-compatible bucket through django-storages (`pip install '.[s3]'`;
# credentials from the usual AWS_* variables). docs/deploy.md, "Shared file storage".
MEDIA_ROOT = os.environ.get("MEDIA_ROOT") or VAR_DIR / "media"
MEDIA_URL = "media/"
if FILE_STORAGE_BUCKET := os.environ.get("FILE_STORAGE_BUCKET", "").strip():
    DEFAULT_STORAGE = {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": FILE_STORAGE_BUCKET,
            "endpoint_url": os.environ.get("FILE_STORAGE_ENDPOINT_URL") or None,
            "location": os.environ.get("FILE_STORAGE_PREFIX", "workbench"),
            "default_acl": "private",
            "querystring_auth": True,
        },
    }
else:
    DEFAULT_STORAGE = {"BACKEND": "django.core.files.storage.FileSystemStorage"}
STORAGES = {
    "default": DEFAULT_STORAGE,
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}

# Item images may come from these hosts (https only), besides inline data: images; e.g.
# ITEM_IMAGE_HOSTS=images.example.org,*.cdn.example.com. The Content-Security-Policy allows no other.
ITEM_IMAGE_HOSTS = env_list("ITEM_IMAGE_HOSTS")
for _host in ITEM_IMAGE_HOSTS:
    if "://" in _host and not _host.startswith("https://"):
        raise ImproperlyConfigured(f"ITEM_IMAGE_HOSTS: {_host!r} is not https; images load over https only.")

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

EMAIL_BACKEND = os.environ.get("EMAIL_BACKEND") or "django.core.mail.backends.console.EmailBackend"
DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL") or "workbench@localhost"
# The SMTP backend's server (EMAIL_BACKEND=django.core.mail.backends.smtp.EmailBackend).
EMAIL_HOST = os.environ.get("EMAIL_HOST") or "localhost"
EMAIL_PORT = int(os.environ.get("EMAIL_PORT") or "25")
EMAIL_HOST_USER = os.environ.get("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = os.environ.get("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)

# Request bodies: REQUEST_MAX_BYTES for every view (a login form is a few hundred bytes), INGEST_MAX_BYTES
# for the views that take item files (core.http.accepts_large_body). Larger bodies get a 413 unread.
REQUEST_MAX_BYTES = int(os.environ.get("REQUEST_MAX_BYTES", str(1024 * 1024)))
DATA_UPLOAD_MAX_MEMORY_SIZE = REQUEST_MAX_BYTES
# Ingest limits: a request body or uploaded file over INGEST_MAX_BYTES, or a JSON batch over
# INGEST_MAX_ROWS rows, is refused before anything is written.
INGEST_MAX_BYTES = int(os.environ.get("INGEST_MAX_BYTES", str(50 * 1024 * 1024)))
INGEST_MAX_ROWS = int(os.environ.get("INGEST_MAX_ROWS", "10000"))

FILE_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024

# How long a claimed assignment stays with its claimer before the expiry job hands it to someone else.
ASSIGNMENT_LEASE_MINUTES = float(os.environ.get("ASSIGNMENT_LEASE_MINUTES", "30"))

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        # DRF's token check with the lookup prepared once per connection (measured in bench/claim.py).
        "core.authentication.PreparedTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.CursorPagination",
    "PAGE_SIZE": 100,
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    # JSON only, checked for what the databases cannot store (labeling.storable); ingest adds multipart.
    "DEFAULT_PARSER_CLASSES": ["labeling.parsers.StorableJSONParser"],
    "EXCEPTION_HANDLER": "labeling.api_support.exception_handler",
    "DEFAULT_SCHEMA_CLASS": "labeling.api_support.AutoSchema",
    # Per client, counted in each web process's memory (workbench.throttling): anonymous callers per
    # address, signed-in users and tokens per user; the work loop (claim, submit, decline, review) has its
    # own, higher rate, generous enough for bench/claim.py's HTTP loop.
    "DEFAULT_THROTTLE_CLASSES": [
        "workbench.throttling.AnonThrottle",
        "workbench.throttling.UserThrottle",
        "workbench.throttling.WorkLoopThrottle",
    ],
    "DEFAULT_THROTTLE_RATES": {
        "anon": env_rate("API_THROTTLE_ANON", "60/min"),
        "user": env_rate("API_THROTTLE_USER", "1200/min"),
        "work": env_rate("API_THROTTLE_WORK", "200/s"),
    },
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Adaptive labeling workbench API",
    "DESCRIPTION": "Push items with model predictions, claim and submit work, pull final labels.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # Served from the sidecar package: the docs page must work with no CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

Q_CLUSTER = {
    "name": "workbench",
    "orm": "default",
    "workers": int(os.environ.get("Q_WORKERS", "2")),
    # A task running longer is killed; one a worker took but never acknowledged (the worker died) is
    # handed out again after `retry` seconds, which must exceed `timeout`.
    "timeout": int(os.environ.get("Q_TIMEOUT", "600")),
    "retry": int(os.environ.get("Q_RETRY", "720")),
    "max_attempts": 3,
    "catch_up": False,
    "label": "Background jobs",
}

# /readyz answers 503 when the oldest background task no worker has taken is older than this (seconds);
# `off`: the queue does not count (workbench.health).
_lag = (os.environ.get("READYZ_MAX_QUEUE_LAG") or "300").strip()
READYZ_MAX_QUEUE_LAG_SECONDS = None if _lag.lower() == "off" else float(_lag)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
}
# Production serves collectstatic's copies and their .gz/.br siblings from STATIC_ROOT; with the finders on
# WhiteNoise would serve the source files over them, uncompressed (4.8 MB of plotly.js instead of 1.7 MB).
# Development (DEBUG, `make run`) and the tests serve straight from the sources, with no collectstatic.
WHITENOISE_USE_FINDERS = DEBUG

# The dashboard flags drift when the population stability index of model confidence or predicted
# classes (last 7 days against the 28 before) exceeds this.
DRIFT_PSI_ALERT = float(os.environ.get("DRIFT_PSI_ALERT", "0.2"))
