"""MuseHub settings: every value comes from the environment, with working defaults.

With nothing set the hub runs on the embedded default: SQLite and filesystem
mpack storage under ``var/`` (or ``MUSEHUB_DATA_DIR``). ``DATABASE_URL`` selects
PostgreSQL; ``MUSEHUB_S3_BUCKET`` (with the other ``MUSEHUB_S3_*`` variables)
selects S3 or MinIO for mpacks. ``MUSEHUB_ENV=production`` (``make serve``,
``deploy/``) wants ``DJANGO_SECRET_KEY`` and ``MUSEHUB_ALLOWED_HOSTS`` from the
environment, logs JSON and serves the admin's static files through WhiteNoise.
docs/configuration.md lists every variable.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import secrets
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def env_str(name: str, default: str = "") -> str:
    """Return the variable *name*, or *default* when it is unset or empty."""
    return os.environ.get(name) or default


def env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    return int(raw) if raw else default


def env_bool(name: str, default: bool = False) -> bool:
    raw = os.environ.get(name)
    if not raw:
        return default
    return raw.strip().lower() in {"1", "true", "yes", "on"}


def env_list(name: str, default: list[str]) -> list[str]:
    raw = os.environ.get(name)
    if not raw:
        return default
    return [item.strip() for item in raw.split(",") if item.strip()]


def _private_dir(path: Path) -> None:
    """Make directory *path* if missing, and readable by this user only (0700): it holds the hub's own data."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    if path.stat().st_mode & 0o077:
        try:
            path.chmod(0o700)  # made before this rule (0755), or by an image's mkdir
        except PermissionError:  # another user's directory: left as its owner set it
            pass


def _private_file(path: Path, content: str = "") -> None:
    """Create file *path* with mode 0600 and *content* if missing (never readable by others, not even briefly), or tighten it.

    Only the process that creates the file writes it: two starting at once keep the one content written first.
    """
    try:
        descriptor = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    except FileExistsError:
        if path.stat().st_mode & 0o077:
            path.chmod(0o600)
    except FileNotFoundError:  # no such directory: whoever opens the file reports it
        pass
    else:
        with os.fdopen(descriptor, "w") as created:
            created.write(content)


# SQLite database (password hashes, tokens), filesystem storage (private repositories), secret key: 0700.
DATA_DIR = Path(env_str("MUSEHUB_DATA_DIR", str(BASE_DIR / "var")))
_private_dir(DATA_DIR)


def _embedded_secret_key() -> str:
    """Return a secret key kept in the data dir, made once (embedded default only)."""
    path = DATA_DIR / "secret_key"
    _private_file(path, secrets.token_urlsafe(50))
    for _ in range(100):  # another process may have created the file and not yet written it
        if key := path.read_text().strip():
            return key
        time.sleep(0.01)
    raise ImproperlyConfigured(f"{path} is empty: delete it, or set DJANGO_SECRET_KEY.")


def env_required(name: str, why: str) -> str:
    """Return variable *name*; raise ImproperlyConfigured saying to set it (and *why*) when it is empty."""
    value = env_str(name).strip()
    if not value:
        raise ImproperlyConfigured(f"Set the environment variable {name}: {why}")
    return value


# --- mode: "development" (the default, `make run`) or "production" (`make serve`, deploy/) ----------
MUSEHUB_ENV = env_str("MUSEHUB_ENV", "development").strip().lower()
if MUSEHUB_ENV not in ("development", "production"):
    raise ImproperlyConfigured(f"MUSEHUB_ENV is {MUSEHUB_ENV!r}; set it to 'development' or 'production'.")
PRODUCTION = MUSEHUB_ENV == "production"

DEBUG = env_bool("MUSEHUB_DEBUG", False)
if PRODUCTION or env_str("MUSEHUB_S3_BUCKET"):
    # Several app servers must sign and verify with one key (sessions, hub-signed URLs):
    # the key the embedded default keeps in MUSEHUB_DATA_DIR exists on one server only.
    SECRET_KEY = env_required(
        "DJANGO_SECRET_KEY",
        "production mode and S3 storage need one secret key shared by every app server, e.g. the output of "
        "python -c 'import secrets; print(secrets.token_urlsafe(50))'.",
    )
else:
    SECRET_KEY = env_str("DJANGO_SECRET_KEY") or _embedded_secret_key()
if PRODUCTION:
    ALLOWED_HOSTS = env_list("MUSEHUB_ALLOWED_HOSTS", [])
    if not ALLOWED_HOSTS:
        env_required(
            "MUSEHUB_ALLOWED_HOSTS",
            "production mode answers only the host names listed there (comma-separated, e.g. hub.example.com).",
        )
    # The reverse proxy terminates TLS and says so; app servers are reachable through it only.
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
else:
    ALLOWED_HOSTS = env_list("MUSEHUB_ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]", "testserver"])
# The hub's public address: the base of hub-signed URLs, and whether browsers reach it over HTTPS. An
# https:// address makes the session and CSRF cookies Secure, sends Strict-Transport-Security (a year, this
# host only, no preload) on HTTPS answers and trusts that origin for CSRF; MUSEHUB_SECURE_COOKIES overrides.
MUSEHUB_PUBLIC_URL = env_str("MUSEHUB_PUBLIC_URL", "")
_public = urlsplit(MUSEHUB_PUBLIC_URL)
if MUSEHUB_PUBLIC_URL and (_public.scheme not in ("http", "https") or not _public.netloc):
    raise ImproperlyConfigured(
        f"MUSEHUB_PUBLIC_URL is {MUSEHUB_PUBLIC_URL!r}; set it to the hub's address, e.g. https://hub.example.com."
    )
MUSEHUB_SECURE_COOKIES = env_bool("MUSEHUB_SECURE_COOKIES", _public.scheme == "https")
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = MUSEHUB_SECURE_COOKIES
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = CSRF_COOKIE_SAMESITE = "Lax"
SECURE_HSTS_SECONDS = env_int("MUSEHUB_HSTS_SECONDS", 365 * 24 * 3600 if MUSEHUB_SECURE_COOKIES else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = SECURE_HSTS_PRELOAD = False
CSRF_TRUSTED_ORIGINS = env_list(
    "MUSEHUB_CSRF_TRUSTED_ORIGINS", [f"https://{_public.netloc}"] if _public.scheme == "https" else []
)

INSTALLED_APPS = [
    # The admin's modules are discovered when the URLs load (musehub/urls.py), not at every start: a
    # manage.py command that serves no page does not import them (about 0.1 s).
    "django.contrib.admin.apps.SimpleAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "axes",
    "hubhttp",
    "repos",
    "api",
    "wire",
    "web",
]

MIDDLEWARE = [
    "musehub.logs.RequestLogMiddleware",
    "musehub.metrics.RequestMetricsMiddleware",
    "musehub.middleware.RequestSizeLimitMiddleware",
    "musehub.csp.ContentSecurityPolicyMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # django-axes: turns a refused sign-in (request.axes_locked_out) into the 429 page.
    "axes.middleware.AxesMiddleware",
    "musehub.middleware.RefuseNulMiddleware",  # last: its 400 page gets every header and the signed-in user
]
# Static files (the pages' stylesheet, the admin's and the API docs' CSS and JS) come through WhiteNoise, DEBUG
# or not: in production from each app server's own collectstatic (hashed, compressed), in development straight
# from the apps' static folders (no collectstatic; an edited file is served at once).
MIDDLEWARE.insert(
    MIDDLEWARE.index("django.middleware.security.SecurityMiddleware") + 1,
    "whitenoise.middleware.WhiteNoiseMiddleware",
)
WHITENOISE_USE_FINDERS = WHITENOISE_AUTOREFRESH = not PRODUCTION
if env_str("MUSEHUB_BENCH_STATS"):  # benchmark only (bench/server_stats.py): per-request stats to that file
    MIDDLEWARE.insert(0, "bench.server_stats.BenchStatsMiddleware")

ROOT_URLCONF = "musehub.urls"
SESSION_ENGINE = "musehub.sessions"  # database sessions that take only keys Django makes (musehub/sessions.py)
# The web pages (web/): Django's session sign-in.
LOGIN_URL = "web-login"
LOGIN_REDIRECT_URL = "web-explore"
LOGOUT_REDIRECT_URL = "web-explore"
# django-axes' backend first: a locked-out account or address is refused before any password is hashed.
AUTHENTICATION_BACKENDS = [
    "hubhttp.throttle.SignInThrottleBackend",
    "django.contrib.auth.backends.ModelBackend",
]
CSRF_FAILURE_VIEW = "hubhttp.errors.csrf_failure"
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
        conn_health_checks=True,  # a kept connection is checked before reuse (a restarted PostgreSQL)
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # IMMEDIATE transactions serialise writers, so the branch compare-and-swap
    # is as safe on SQLite as under PostgreSQL's row lock.
    DATABASES["default"]["OPTIONS"] = {"transaction_mode": "IMMEDIATE", "timeout": 30}
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    if DATABASES["default"]["NAME"] not in ("", ":memory:") and not DATABASES["default"]["NAME"].startswith("file:"):
        _private_file(Path(DATABASES["default"]["NAME"]))  # its journal and WAL files take the same mode

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- storage ----------------------------------------------------------------
MUSEHUB_S3_BUCKET = env_str("MUSEHUB_S3_BUCKET")
# Presigned URLs are signed for this endpoint when clients reach storage at another
# address than the app servers do (e.g. MinIO behind the proxy); empty = MUSEHUB_S3_ENDPOINT_URL.
MUSEHUB_S3_PUBLIC_ENDPOINT_URL = env_str("MUSEHUB_S3_PUBLIC_ENDPOINT_URL")
# How long a request waits on storage before it answers 503 (StorageUnavailable, Retry-After).
# Each storage request makes at most MUSEHUB_S3_MAX_ATTEMPTS attempts, the first one included
# (botocore "standard" retries); each attempt waits at most MUSEHUB_S3_CONNECT_TIMEOUT seconds
# to connect and MUSEHUB_S3_READ_TIMEOUT seconds for each read of the answer (a transfer that
# keeps moving is never cut; one that stalls that long fails). Between attempts botocore sleeps
# a jittered back-off: under 0.05 * 2**i s, or when storage says SlowDown up to min(2**i, 20) s,
# plus up to 5 s more if it asks for it (x-amz-retry-after). So one storage request that gets no
# answer gives up after at most MUSEHUB_S3_MAX_WAIT_SECONDS (118 s with the defaults: 3 x (5 + 30)
# + 6 + 7); an unreachable endpoint (connection refused) fails at once.
MUSEHUB_S3_CONNECT_TIMEOUT = env_int("MUSEHUB_S3_CONNECT_TIMEOUT", 5)
MUSEHUB_S3_READ_TIMEOUT = env_int("MUSEHUB_S3_READ_TIMEOUT", 30)
MUSEHUB_S3_MAX_ATTEMPTS = env_int("MUSEHUB_S3_MAX_ATTEMPTS", 3)
for _name, _value in (
    ("MUSEHUB_S3_CONNECT_TIMEOUT", MUSEHUB_S3_CONNECT_TIMEOUT),
    ("MUSEHUB_S3_READ_TIMEOUT", MUSEHUB_S3_READ_TIMEOUT),
    ("MUSEHUB_S3_MAX_ATTEMPTS", MUSEHUB_S3_MAX_ATTEMPTS),
):
    if _value < 1:
        raise ImproperlyConfigured(f"{_name} is {_value}; set it to 1 or more.")
del _name, _value
MUSEHUB_S3_MAX_WAIT_SECONDS = MUSEHUB_S3_MAX_ATTEMPTS * (MUSEHUB_S3_CONNECT_TIMEOUT + MUSEHUB_S3_READ_TIMEOUT) + sum(
    min(2**attempt, 20) + 5 for attempt in range(MUSEHUB_S3_MAX_ATTEMPTS - 1)
)
if MUSEHUB_S3_BUCKET:
    _mpack_storage = {
        # S3Storage building botocore's Config only when storage is first used (its import costs 0.1 s).
        "BACKEND": "repos.storage.s3.HubS3Storage",
        "OPTIONS": {
            "bucket_name": MUSEHUB_S3_BUCKET,
            "endpoint_url": env_str("MUSEHUB_S3_ENDPOINT_URL") or None,
            "access_key": env_str("MUSEHUB_S3_ACCESS_KEY") or None,
            "secret_key": env_str("MUSEHUB_S3_SECRET_KEY") or None,
            "region_name": env_str("MUSEHUB_S3_REGION", "us-east-1"),
            "location": env_str("MUSEHUB_S3_PREFIX", ""),
            "addressing_style": env_str("MUSEHUB_S3_ADDRESSING_STYLE", "path"),
            "signature_version": "s3v4",
            # Short timeouts and few attempts: an unreachable or hung MinIO fails requests
            # (503) and readiness checks in bounded time instead of hanging workers.
            "connect_timeout": MUSEHUB_S3_CONNECT_TIMEOUT,
            "read_timeout": MUSEHUB_S3_READ_TIMEOUT,
            "max_attempts": MUSEHUB_S3_MAX_ATTEMPTS,
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
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if PRODUCTION
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
    "mpacks": _mpack_storage,
}
STATIC_URL = "static/"
STATIC_ROOT = Path(env_str("MUSEHUB_STATIC_ROOT", str(BASE_DIR / "staticfiles")))
# Every MPackStore reports its storage requests to these callables (metrics).
MUSEHUB_STORAGE_OBSERVERS = ["hubhttp.instruments.observe_storage"]
# /metrics (musehub.metrics): with a token set, every scrape must send it; without one, only direct
# connections (no proxy's X-Forwarded-For) from these networks are answered, loopback by default.
MUSEHUB_METRICS_TOKEN = env_str("MUSEHUB_METRICS_TOKEN")
MUSEHUB_METRICS_ALLOW = env_list("MUSEHUB_METRICS_ALLOW", ["127.0.0.0/8", "::1/128"])
for _network in MUSEHUB_METRICS_ALLOW:
    try:
        ipaddress.ip_network(_network, strict=False)
    except ValueError:
        raise ImproperlyConfigured(
            f"MUSEHUB_METRICS_ALLOW holds {_network!r}; list addresses or networks, e.g. 10.0.0.0/8,::1."
        ) from None

# --- hub limits and behaviour (documented in docs/configuration.md) ----------
# Blobs up to this size are also copied into the database (Object.content_cache). Off by default: a fetch
# reads each covering pack once anyway, and the copy doubled the objects table (issue 16's measurement).
MUSEHUB_CONTENT_CACHE_MAX_BYTES = env_int("MUSEHUB_CONTENT_CACHE_MAX_BYTES", 0)
# A push that leaves a repository with more live packs than this runs a geometric repack (0: never).
# Lower than git's gc.autoPackLimit (50): a clone reads each pack with a storage GET, so 30 small packs
# made a small clone 3x slower than at 8 (bench --quick), while 200 small pushes were only ~5% faster.
MUSEHUB_AUTO_REPACK_PACKS = env_int("MUSEHUB_AUTO_REPACK_PACKS", 8)
# An app server hands freed memory back to the system after a request that left it this much bigger (0: never).
MUSEHUB_TRIM_AFTER_MB = env_int("MUSEHUB_TRIM_AFTER_MB", 64)
# The most a push's automatic repack rewrites (smallest packs first); bigger ones are left to musehub_repack.
MUSEHUB_AUTO_REPACK_MAX_BYTES = env_int("MUSEHUB_AUTO_REPACK_MAX_BYTES", 256 * 1024 * 1024)
# Deltas allowed between a stored snapshot and its full checkpoint (0 stores every manifest whole).
MUSEHUB_SNAPSHOT_CHAIN_MAX = env_int("MUSEHUB_SNAPSHOT_CHAIN_MAX", 64)
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
# A separate origin for raw files (another host name routed to these app servers, e.g.
# https://raw.hub-usercontent.example; docs/security.md "Downloads"): only requests to its host serve HTML,
# SVG and other active types as themselves. Empty: they are text/plain or attachments everywhere.
MUSEHUB_RAW_URL = env_str("MUSEHUB_RAW_URL", "")
_raw_scheme, _, _raw_rest = MUSEHUB_RAW_URL.partition("://")
if MUSEHUB_RAW_URL and (_raw_scheme not in ("http", "https") or not _raw_rest.split("/", 1)[0]):
    raise ImproperlyConfigured(
        f"MUSEHUB_RAW_URL is {MUSEHUB_RAW_URL!r}; set it to the raw origin, e.g. https://raw.hub-usercontent.example."
    )

# --- sign-in and token throttling (hubhttp.throttle; docs/security.md) -----------------------------
# Reverse proxies in front of the hub that append the client's address to X-Forwarded-For (the shipped
# nginx: 1). 0 = use the connection's address (REMOTE_ADDR) and ignore the header, which a client can forge.
MUSEHUB_TRUSTED_PROXIES = env_int("MUSEHUB_TRUSTED_PROXIES", 0)
# Failed sign-ins (web and admin forms) within MUSEHUB_SIGNIN_COOLOFF_SECONDS that lock one account, and one
# client address, for the rest of that time: even the right password answers 429 then. 0 = no such limit.
MUSEHUB_SIGNIN_ACCOUNT_LIMIT = env_int("MUSEHUB_SIGNIN_ACCOUNT_LIMIT", 10)
MUSEHUB_SIGNIN_ADDRESS_LIMIT = env_int("MUSEHUB_SIGNIN_ADDRESS_LIMIT", 50)
MUSEHUB_SIGNIN_COOLOFF_SECONDS = env_int("MUSEHUB_SIGNIN_COOLOFF_SECONDS", 15 * 60)
# Failed Bearer-token authentications from one client address within the window before its token requests
# answer 429 until the window (which starts at its first failure) ends. 0 = no limit.
MUSEHUB_TOKEN_FAILURE_LIMIT = env_int("MUSEHUB_TOKEN_FAILURE_LIMIT", 100)
MUSEHUB_TOKEN_FAILURE_WINDOW_SECONDS = env_int("MUSEHUB_TOKEN_FAILURE_WINDOW_SECONDS", 5 * 60)
# Creating a token in the browser asks for the password again when it was last given longer ago than this.
MUSEHUB_SUDO_SECONDS = env_int("MUSEHUB_SUDO_SECONDS", 10 * 60)
for _name, _value, _least in (
    ("MUSEHUB_TRUSTED_PROXIES", MUSEHUB_TRUSTED_PROXIES, 0),
    ("MUSEHUB_SIGNIN_ACCOUNT_LIMIT", MUSEHUB_SIGNIN_ACCOUNT_LIMIT, 0),
    ("MUSEHUB_SIGNIN_ADDRESS_LIMIT", MUSEHUB_SIGNIN_ADDRESS_LIMIT, 0),
    ("MUSEHUB_SIGNIN_COOLOFF_SECONDS", MUSEHUB_SIGNIN_COOLOFF_SECONDS, 1),
    ("MUSEHUB_TOKEN_FAILURE_LIMIT", MUSEHUB_TOKEN_FAILURE_LIMIT, 0),
    ("MUSEHUB_TOKEN_FAILURE_WINDOW_SECONDS", MUSEHUB_TOKEN_FAILURE_WINDOW_SECONDS, 1),
):
    if _value < _least:
        raise ImproperlyConfigured(f"{_name} is {_value}; set it to {_least} or more.")
del _name, _value, _least
# django-axes keeps failed sign-ins in the database (shared by every app server; no cache needed). It counts
# failures per account and per address; hubhttp.throttle.SignInThrottle holds each to its own limit above.
AXES_ENABLED = bool(MUSEHUB_SIGNIN_ACCOUNT_LIMIT or MUSEHUB_SIGNIN_ADDRESS_LIMIT)
AXES_HANDLER = "hubhttp.throttle.SignInThrottle"
AXES_LOCKOUT_PARAMETERS = [
    *([["username"]] if MUSEHUB_SIGNIN_ACCOUNT_LIMIT else []),
    *([["ip_address"]] if MUSEHUB_SIGNIN_ADDRESS_LIMIT else []),
] or [["ip_address"]]
AXES_FAILURE_LIMIT = max(MUSEHUB_SIGNIN_ACCOUNT_LIMIT, MUSEHUB_SIGNIN_ADDRESS_LIMIT, 1)
AXES_COOLOFF_TIME = dt.timedelta(seconds=MUSEHUB_SIGNIN_COOLOFF_SECONDS)
# Failures while locked out are not recorded: the lock ends on time, and nobody can keep an account locked
# (or grow its row) by trying on.
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False
AXES_CLIENT_IP_CALLABLE = "hubhttp.throttle.client_address"
AXES_LOCKOUT_CALLABLE = "web.views.accounts.locked_out"
AXES_DISABLE_ACCESS_LOG = True  # no row per successful sign-in (a table nothing reads and nothing prunes)

DATA_UPLOAD_MAX_MEMORY_SIZE = MUSEHUB_MAX_REQUEST_BYTES
APPEND_SLASH = False  # the muse CLI refuses redirects

# --- REST framework ---------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "hubhttp.authentication.BearerTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.AllowAny"],
    "DEFAULT_PARSER_CLASSES": [
        "hubhttp.codecs.MsgpackParser",
        "hubhttp.codecs.JSONBodyParser",
    ],
    "DEFAULT_RENDERER_CLASSES": [
        "hubhttp.codecs.MsgpackRenderer",
        "rest_framework.renderers.JSONRenderer",
        "rest_framework.renderers.BrowsableAPIRenderer",
    ],
    "EXCEPTION_HANDLER": "hubhttp.errors.exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "MuseHub API",
    "VERSION": "1.0.0",
    # The docs page's JavaScript ships with the hub (drf-spectacular-sidecar): no CDN needed.
    "REDOC_DIST": "SIDECAR",
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    # api/schema.py: Bearer tokens as the documented scheme, groups by purpose, every error reply documented;
    # descriptions come from extend_schema only (class docstrings are for developers, not API users).
    "DESCRIPTION": (
        "Push, fetch and browse Muse repositories.\n\n"
        "Authenticate with `Authorization: Bearer <token>` (`python manage.py musehub_token create USER`). "
        "Public repositories need no token; a private one answers 404 to anyone who may not read it.\n\n"
        "Every error is JSON `{error, detail}`; its status says whether to retry (503 with Retry-After). "
        "Every list is `{count, next, previous, results}` with `page` and `page_size` (at most 100)."
    ),
    "AUTHENTICATION_WHITELIST": ["hubhttp.authentication.BearerTokenAuthentication"],
    "DISABLE_DOCSTRING_DESCRIPTIONS": True,
    "SERVE_INCLUDE_SCHEMA": False,
    "PREPROCESSING_HOOKS": ["api.schema.keep_public_endpoints"],
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "api.schema.tag_and_document_errors",
    ],
}

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# JSON lines in production (musehub.logs.JsonFormatter), "LEVEL logger: message key=value" otherwise.
MUSEHUB_LOG_FORMAT = env_str("MUSEHUB_LOG_FORMAT", "json" if PRODUCTION else "text")
if MUSEHUB_LOG_FORMAT not in ("json", "text"):
    raise ImproperlyConfigured(f"MUSEHUB_LOG_FORMAT is {MUSEHUB_LOG_FORMAT!r}; set it to 'json' or 'text'.")
_log_level = env_str("MUSEHUB_LOG_LEVEL", "INFO")
LOGGING: dict[str, Any] = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "json": {"()": "musehub.logs.JsonFormatter"},
        "text": {"()": "musehub.logs.TextFormatter"},
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": MUSEHUB_LOG_FORMAT}},
    "loggers": {
        "musehub": {"handlers": ["console"], "level": _log_level},
        # django-axes: a warning per failed sign-in and per lock-out (usernames and addresses masked).
        "axes": {"handlers": ["console"], "level": "WARNING", "propagate": False},
    },
}
if PRODUCTION:
    # Django's own errors (500 tracebacks) in the same format; 4xx are in the request lines already.
    LOGGING["loggers"]["django"] = {"handlers": ["console"], "level": _log_level, "propagate": False}
    LOGGING["loggers"]["django.request"] = {"level": "ERROR"}
else:
    # runserver prints every request itself; keep the request lines for errors.
    LOGGING["loggers"]["musehub.request"] = {"level": "WARNING"}
