"""Settings, read from the environment so one codebase runs the SQLite demo and PostgreSQL at scale.

Environment: DATABASE_URL, SECRET_KEY, DEBUG, ALLOWED_HOSTS, EMAIL_BACKEND, INGEST_MAX_BYTES,
INGEST_MAX_ROWS, Q_WORKERS, ASSIGNMENT_LEASE_MINUTES.
"""
import os
import tempfile
from pathlib import Path

import dj_database_url

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = BASE_DIR / "var"


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


DEBUG = env_bool("DEBUG", True)
# The fallback key is only acceptable for local demos; production must set SECRET_KEY.
SECRET_KEY = os.environ.get("SECRET_KEY") or "dev-insecure-key-change-me-for-any-real-deployment"
ALLOWED_HOSTS = [h.strip() for h in (os.environ.get("ALLOWED_HOSTS") or "127.0.0.1,localhost,testserver").split(",")
    if h.strip()]
CSRF_TRUSTED_ORIGINS = [f"http://{h}:8000" for h in ALLOWED_HOSTS if h not in {"testserver", "*"}]

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
    "experts",
    "labeling",
    "routing",
    "dashboards",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Outside everything that may answer by itself (CSRF failures, redirects), so every page gets the header.
    "labeling.http.ContentSecurityPolicyMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
]

ROOT_URLCONF = "workbench.urls"
WSGI_APPLICATION = "workbench.wsgi.application"
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
    # statements that ask (labeling.bulk.prepared_cursor) and for no others.
    DATABASES["default"].setdefault("OPTIONS", {})["prepare_threshold"] = 2**31 - 1

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

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
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
MEDIA_ROOT = VAR_DIR / "media"
MEDIA_URL = "media/"

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

EMAIL_BACKEND = os.environ.get("EMAIL_BACKEND") or "django.core.mail.backends.console.EmailBackend"
DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL") or "workbench@localhost"

# Ingest limits: a request body or uploaded file over INGEST_MAX_BYTES, or a JSON batch over
# INGEST_MAX_ROWS rows, is refused with a 400 before anything is written.
INGEST_MAX_BYTES = int(os.environ.get("INGEST_MAX_BYTES", str(50 * 1024 * 1024)))
INGEST_MAX_ROWS = int(os.environ.get("INGEST_MAX_ROWS", "10000"))
DATA_UPLOAD_MAX_MEMORY_SIZE = INGEST_MAX_BYTES

FILE_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024

# How long a claimed assignment stays with its claimer before the expiry job hands it to someone else.
ASSIGNMENT_LEASE_MINUTES = float(os.environ.get("ASSIGNMENT_LEASE_MINUTES", "30"))

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.CursorPagination",
    "PAGE_SIZE": 100,
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
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
    "timeout": 600,
    "retry": 720,
    "max_attempts": 3,
    "catch_up": False,
    "label": "Background jobs",
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
}
WHITENOISE_USE_FINDERS = True

# The dashboard flags drift when the population stability index of model confidence or predicted
# classes (last 7 days against the 28 before) exceeds this.
DRIFT_PSI_ALERT = float(os.environ.get("DRIFT_PSI_ALERT", "0.2"))
