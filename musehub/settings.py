"""MuseHub settings: every value comes from the environment, with working defaults.

With nothing set the hub runs on the embedded default: SQLite and filesystem
mpack storage under ``var/`` (or ``MUSEHUB_DATA_DIR``). ``DATABASE_URL`` selects
PostgreSQL; ``MUSEHUB_S3_BUCKET`` (with the other ``MUSEHUB_S3_*`` variables)
selects S3 or MinIO for mpacks. The README lists every variable.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import dj_database_url

BASE_DIR = Path(__file__).resolve().parent.parent


def env_str(name: str, default: str = "") -> str:
    return os.environ.get(name, default)


def env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    return int(raw) if raw not in (None, "") else default


def env_bool(name: str, default: bool = False) -> bool:
    raw = os.environ.get(name)
    if raw in (None, ""):
        return default
    return raw.strip().lower() in {"1", "true", "yes", "on"}


def env_list(name: str, default: list[str]) -> list[str]:
    raw = os.environ.get(name)
    if raw in (None, ""):
        return default
    return [item.strip() for item in raw.split(",") if item.strip()]


DATA_DIR = Path(env_str("MUSEHUB_DATA_DIR", str(BASE_DIR / "var")))
DATA_DIR.mkdir(parents=True, exist_ok=True)


def _embedded_secret_key() -> str:
    """Return a secret key kept in the data dir, made once (embedded default only)."""
    path = DATA_DIR / "secret_key"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(50))
        path.chmod(0o600)
    return path.read_text().strip()


DEBUG = env_bool("MUSEHUB_DEBUG", False)
SECRET_KEY = env_str("DJANGO_SECRET_KEY") or _embedded_secret_key()
ALLOWED_HOSTS = env_list("MUSEHUB_ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env_list("MUSEHUB_CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "repos",
    "wire",
]

MIDDLEWARE = [
    "musehub.middleware.RequestSizeLimitMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "musehub.urls"
WSGI_APPLICATION = "musehub.wsgi.application"
ASGI_APPLICATION = "musehub.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
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

# --- database ---------------------------------------------------------------
DATABASES = {
    "default": dj_database_url.parse(
        env_str("DATABASE_URL", f"sqlite:///{DATA_DIR / 'musehub.sqlite3'}"),
        conn_max_age=env_int("MUSEHUB_DB_CONN_MAX_AGE", 60),
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # IMMEDIATE transactions serialise writers, so the branch compare-and-swap
    # is as safe on SQLite as under PostgreSQL's row lock.
    DATABASES["default"]["OPTIONS"] = {"transaction_mode": "IMMEDIATE", "timeout": 30}
    DATABASES["default"]["CONN_MAX_AGE"] = 0

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- storage ----------------------------------------------------------------
MUSEHUB_S3_BUCKET = env_str("MUSEHUB_S3_BUCKET")
if MUSEHUB_S3_BUCKET:
    _mpack_storage = {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": MUSEHUB_S3_BUCKET,
            "endpoint_url": env_str("MUSEHUB_S3_ENDPOINT_URL") or None,
            "access_key": env_str("MUSEHUB_S3_ACCESS_KEY") or None,
            "secret_key": env_str("MUSEHUB_S3_SECRET_KEY") or None,
            "region_name": env_str("MUSEHUB_S3_REGION", "us-east-1"),
            "location": env_str("MUSEHUB_S3_PREFIX", ""),
            "addressing_style": env_str("MUSEHUB_S3_ADDRESSING_STYLE", "path"),
            "signature_version": "s3v4",
            "file_overwrite": True,
            "default_acl": None,
            "querystring_auth": True,
        },
    }
else:
    _mpack_storage = {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": str(DATA_DIR / "storage"), "allow_overwrite": True},
    }

STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    "mpacks": _mpack_storage,
}
STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"

# --- hub limits and behaviour (documented in the README) ---------------------
MUSEHUB_CONTENT_CACHE_MAX_BYTES = env_int("MUSEHUB_CONTENT_CACHE_MAX_BYTES", 4096)
MUSEHUB_MAX_PACK_BYTES = env_int("MUSEHUB_MAX_PACK_BYTES", 2 * 1024**3)
MUSEHUB_MAX_BLOB_BYTES = env_int("MUSEHUB_MAX_BLOB_BYTES", 512 * 1024**2)
MUSEHUB_MAX_PACK_COMMITS = env_int("MUSEHUB_MAX_PACK_COMMITS", 100_000)
MUSEHUB_MAX_PACK_SNAPSHOTS = env_int("MUSEHUB_MAX_PACK_SNAPSHOTS", 100_000)
MUSEHUB_MAX_PACK_BLOBS = env_int("MUSEHUB_MAX_PACK_BLOBS", 1_000_000)
MUSEHUB_MAX_MANIFEST_ENTRIES = env_int("MUSEHUB_MAX_MANIFEST_ENTRIES", 1_000_000)
MUSEHUB_MAX_REQUEST_BYTES = env_int("MUSEHUB_MAX_REQUEST_BYTES", 64 * 1024**2)
MUSEHUB_MAX_PUSH_REQUEST_BYTES = env_int("MUSEHUB_MAX_PUSH_REQUEST_BYTES", 512 * 1024**2)
MUSEHUB_MWP_PRESIGN = env_bool("MUSEHUB_MWP_PRESIGN", True)
MUSEHUB_MWP_MAX_REPLY_BYTES = env_int("MUSEHUB_MWP_MAX_REPLY_BYTES", 64 * 1024**2)
MUSEHUB_URL_TTL_SECONDS = env_int("MUSEHUB_URL_TTL_SECONDS", 3600)
MUSEHUB_PUBLIC_URL = env_str("MUSEHUB_PUBLIC_URL", "")

DATA_UPLOAD_MAX_MEMORY_SIZE = MUSEHUB_MAX_REQUEST_BYTES
APPEND_SLASH = False  # the muse CLI refuses redirects

# --- REST framework ---------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "wire.authentication.BearerTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.AllowAny"],
    "DEFAULT_PARSER_CLASSES": [
        "wire.codecs.MsgpackParser",
        "rest_framework.parsers.JSONParser",
    ],
    "DEFAULT_RENDERER_CLASSES": [
        "wire.codecs.MsgpackRenderer",
        "rest_framework.renderers.JSONRenderer",
        "rest_framework.renderers.BrowsableAPIRenderer",
    ],
    "EXCEPTION_HANDLER": "wire.exceptions.exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "MuseHub API",
    "DESCRIPTION": "Push, fetch and browse Muse repositories.",
    "VERSION": "1.0.0",
}

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"musehub": {"handlers": ["console"], "level": env_str("MUSEHUB_LOG_LEVEL", "INFO")}},
}
