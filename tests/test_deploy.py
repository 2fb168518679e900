"""The production deployment: production-mode settings, deploy/compose.yaml, .env.example, gunicorn and proxy.

No container engine runs here, so the compose file is checked for its shape:
the services, and that every variable it or ``.env.example`` hands the hub is
one the hub actually reads (and docs/configuration.md documents).
"""

from __future__ import annotations

import json
import os
import re
import runpy
import shutil

import pytest
import yaml
from django.conf import settings as django_settings

from repos.storage.backend import S3MPackStore
from tests.deploykit import PRODUCTION_ENV, REPO, django_process

DEPLOY = REPO / "deploy"
# Everything that reads the hub's environment: settings, the metrics exporter, the gunicorn config.
HUB_SOURCES = (REPO / "musehub" / "settings.py", REPO / "musehub" / "metrics.py", DEPLOY / "gunicorn.conf.py")
# Variables of the other services (PostgreSQL, MinIO, the proxy, replica count): compose reads them, the hub does not.
COMPOSE_ONLY = {"POSTGRES_PASSWORD", "MINIO_ROOT_USER", "MINIO_ROOT_PASSWORD", "HUB_REPLICAS", "PROXY_HTTP_PORT",
                "PROXY_S3_PORT"}  # fmt: skip
_READS = re.compile(
    r"""(?:env_(?:str|int|bool|list|required)|_int|os\.environ\.get|os\.getenv)\(\s*["']([A-Z][A-Z0-9_]*)["']"""
    r"""|os\.environ\[["']([A-Z][A-Z0-9_]*)["']\]"""
)
_INTERPOLATED = re.compile(r"\$\{([A-Z][A-Z0-9_]*)")


def hub_variables() -> set[str]:
    """Return every environment variable the hub reads."""
    names: set[str] = set()
    for source in HUB_SOURCES:
        for match in _READS.finditer(source.read_text()):
            names.add(match.group(1) or match.group(2))
    return names


def env_example_variables() -> set[str]:
    """Return the variables .env.example sets or lists commented out with their default."""
    pattern = re.compile(r"^#?\s?([A-Z][A-Z0-9_]*)=", re.MULTILINE)
    return set(pattern.findall((REPO / ".env.example").read_text()))


def compose() -> dict:
    return yaml.safe_load((DEPLOY / "compose.yaml").read_text())


SHOW_SETTINGS = (
    "import json; from django.conf import settings as s; print(json.dumps({"
    "'debug': s.DEBUG, 'secret': s.SECRET_KEY, 'hosts': s.ALLOWED_HOSTS, 'middleware': s.MIDDLEWARE, "
    "'static': s.STORAGES['staticfiles']['BACKEND'], 'mpacks': s.STORAGES['mpacks'], "
    "'log_format': s.LOGGING['handlers']['console']['formatter'], 'db': s.DATABASES['default']['ENGINE'], "
    "'proxy_ssl': getattr(s, 'SECURE_PROXY_SSL_HEADER', None), 'finders': s.WHITENOISE_USE_FINDERS}, default=repr))"
)


# --- settings ---------------------------------------------------------------------------------------


def test_production_refuses_to_start_without_a_secret_key(tmp_path):
    result = django_process(tmp_path, MUSEHUB_ENV="production", MUSEHUB_ALLOWED_HOSTS="hub.example.com")
    assert result.returncode != 0
    assert "ImproperlyConfigured: Set the environment variable DJANGO_SECRET_KEY" in result.stderr


def test_production_refuses_to_start_without_allowed_hosts(tmp_path):
    result = django_process(tmp_path, MUSEHUB_ENV="production", DJANGO_SECRET_KEY="k" * 50)
    assert result.returncode != 0
    assert "Set the environment variable MUSEHUB_ALLOWED_HOSTS" in result.stderr


def test_s3_storage_wants_a_shared_secret_key_even_outside_production(tmp_path):
    result = django_process(tmp_path, MUSEHUB_S3_BUCKET="musehub")
    assert result.returncode != 0 and "Set the environment variable DJANGO_SECRET_KEY" in result.stderr


def test_an_unknown_mode_is_refused_with_the_choices(tmp_path):
    result = django_process(tmp_path, MUSEHUB_ENV="prod")
    assert result.returncode != 0 and "'development' or 'production'" in result.stderr


def test_production_mode_settings(tmp_path):
    result = django_process(tmp_path, SHOW_SETTINGS, **PRODUCTION_ENV)
    assert result.returncode == 0, result.stderr
    shown = json.loads(result.stdout)
    assert shown["debug"] is False and shown["secret"] == PRODUCTION_ENV["DJANGO_SECRET_KEY"]
    assert shown["hosts"] == ["hub.example.com"]
    security = shown["middleware"].index("django.middleware.security.SecurityMiddleware")
    assert shown["middleware"][security + 1] == "whitenoise.middleware.WhiteNoiseMiddleware"
    assert shown["static"] == "whitenoise.storage.CompressedManifestStaticFilesStorage"
    assert shown["finders"] is False, "production serves its own collectstatic only"
    assert shown["log_format"] == "json"
    assert shown["proxy_ssl"] == ["HTTP_X_FORWARDED_PROTO", "https"]
    assert not (tmp_path / "data" / "secret_key").exists(), "no per-server secret is made in production"


def test_the_embedded_default_needs_no_environment_at_all(tmp_path):
    result = django_process(tmp_path, SHOW_SETTINGS)
    assert result.returncode == 0, result.stderr
    shown = json.loads(result.stdout)
    assert shown["debug"] is False, "DEBUG is off unless MUSEHUB_DEBUG=1 (make run too)"
    assert shown["secret"] == (tmp_path / "data" / "secret_key").read_text().strip()
    assert "localhost" in shown["hosts"] and "127.0.0.1" in shown["hosts"]
    security = shown["middleware"].index("django.middleware.security.SecurityMiddleware")
    assert shown["middleware"][security + 1] == "whitenoise.middleware.WhiteNoiseMiddleware", "static files, DEBUG off"
    assert shown["finders"] is True, "straight from the apps' static folders: no collectstatic"
    assert shown["static"] == "django.contrib.staticfiles.storage.StaticFilesStorage"
    assert shown["log_format"] == "text"
    assert shown["db"] == "django.db.backends.sqlite3"
    assert shown["mpacks"]["BACKEND"] == "django.core.files.storage.FileSystemStorage"


def test_s3_settings_come_from_the_environment(tmp_path):
    script = (
        "import json, sys; from django.conf import settings as s; from django.core.files.storage import storages; "
        "o = s.STORAGES['mpacks']['OPTIONS']; assert 'botocore' not in sys.modules, 'botocore is loaded on first use'; "
        "c = storages['mpacks'].client_config; "
        "print(json.dumps([o['bucket_name'], o['endpoint_url'], o['location'], c.connect_timeout, c.read_timeout, "
        "c.retries, s.MUSEHUB_S3_PUBLIC_ENDPOINT_URL]))"
    )
    result = django_process(
        tmp_path, script, DJANGO_SECRET_KEY="k" * 50, MUSEHUB_S3_BUCKET="packs", MUSEHUB_S3_ENDPOINT_URL="http://minio:9000",
        MUSEHUB_S3_PREFIX="hub1", MUSEHUB_S3_CONNECT_TIMEOUT="2", MUSEHUB_S3_READ_TIMEOUT="30", MUSEHUB_S3_MAX_ATTEMPTS="4",
        MUSEHUB_S3_PUBLIC_ENDPOINT_URL="https://s3.example.com",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == [
        "packs", "http://minio:9000", "hub1", 2, 30, {"total_max_attempts": 4, "mode": "standard"}, "https://s3.example.com"
    ]  # fmt: skip


def test_presigned_urls_are_signed_for_the_public_endpoint(s3_backend, settings):
    assert isinstance(s3_backend, S3MPackStore)
    internal = s3_backend.presign_mpack_get("sha256:" + "ab" * 32)
    assert internal.startswith(s3_backend.storage.endpoint_url)
    settings.MUSEHUB_S3_PUBLIC_ENDPOINT_URL = "https://s3.hub.example.com"
    public = s3_backend.presign_upload_put("an-upload")
    assert public.startswith("https://s3.hub.example.com/musehub-test/") and "X-Amz-Signature=" in public


# --- compose and .env.example --------------------------------------------------------------------


def test_compose_describes_the_production_shape():
    services = compose()["services"]
    assert {"postgres", "minio", "minio-init", "migrate", "hub", "proxy"} <= set(services)
    hub = services["hub"]
    assert hub["environment"]["MUSEHUB_ENV"] == "production"
    assert "deploy/gunicorn.conf.py" in hub["command"]
    replicas = str(hub["deploy"]["replicas"])
    assert int(re.sub(r"\$\{\w+:-(\d+)\}", r"\1", replicas)) >= 2, "several app servers by default"
    assert hub["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert hub["depends_on"]["minio-init"]["condition"] == "service_completed_successfully"
    assert "/health/ready" in " ".join(hub["healthcheck"]["test"])
    assert services["migrate"]["command"][-2:] == ["migrate", "--noinput"]
    assert "postgres:5432" in hub["environment"]["DATABASE_URL"]
    assert hub["environment"]["MUSEHUB_S3_ENDPOINT_URL"] == "http://minio:9000"
    init = services["minio-init"]
    assert init["depends_on"]["minio"]["condition"] == "service_healthy"
    assert "mc mb --ignore-existing" in "".join(init["command"])
    assert any("nginx.conf" in volume for volume in services["proxy"]["volumes"])
    assert (DEPLOY / "nginx.conf").exists() and (DEPLOY / "Dockerfile").exists()


def test_every_variable_compose_gives_the_hub_is_one_the_hub_reads():
    read = hub_variables()
    services = compose()["services"]
    for name in ("hub", "migrate"):
        unknown = set(services[name]["environment"]) - read
        assert not unknown, f"{name} sets variables the hub never reads: {unknown}"
    interpolated = set(_INTERPOLATED.findall((DEPLOY / "compose.yaml").read_text()))
    assert interpolated <= read | COMPOSE_ONLY, interpolated - read - COMPOSE_ONLY


def test_env_example_lists_every_variable_and_nothing_else():
    listed, read = env_example_variables(), hub_variables()
    assert read <= listed, f".env.example misses {read - listed}"
    assert listed <= read | COMPOSE_ONLY, f".env.example lists variables nobody reads: {listed - read - COMPOSE_ONLY}"
    compose_text = (DEPLOY / "compose.yaml").read_text()
    assert all(name in compose_text for name in COMPOSE_ONLY)
    assert not COMPOSE_ONLY & read


def test_configuration_doc_documents_every_variable():
    doc = (REPO / "docs" / "configuration.md").read_text()
    missing = sorted(name for name in hub_variables() if not re.search(rf"(?<![A-Z0-9_]){name}(?![A-Z0-9_])", doc))
    assert not missing, f"docs/configuration.md does not mention {missing}"


# --- gunicorn, proxy, image -------------------------------------------------------------------------


def gunicorn_config(monkeypatch, tmp_path, **env: str) -> dict:
    for name in ("MUSEHUB_BIND", "HOST", "PORT", "MUSEHUB_WORKERS", "MUSEHUB_THREADS", "MUSEHUB_TIMEOUT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path / "metrics"))
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return runpy.run_path(str(DEPLOY / "gunicorn.conf.py"))


def test_gunicorn_config_reads_workers_threads_timeout_and_bind(monkeypatch, tmp_path):
    conf = gunicorn_config(
        monkeypatch,
        tmp_path,
        MUSEHUB_WORKERS="3",
        MUSEHUB_THREADS="5",
        MUSEHUB_TIMEOUT="900",
        HOST="0.0.0.0",
        PORT="9999",
    )
    assert (conf["workers"], conf["threads"], conf["timeout"]) == (3, 5, 900)
    assert conf["worker_class"] == "gthread" and conf["bind"] == "0.0.0.0:9999"
    assert conf["limit_request_line"] >= 4094
    assert gunicorn_config(monkeypatch, tmp_path, MUSEHUB_BIND="unix:/run/hub.sock")["bind"] == "unix:/run/hub.sock"
    defaults = gunicorn_config(monkeypatch, tmp_path)
    assert defaults["bind"] == "127.0.0.1:8000" and defaults["workers"] >= 2 and defaults["timeout"] >= 600


def test_gunicorn_gives_the_workers_a_shared_metrics_directory(monkeypatch):
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    runpy.run_path(str(DEPLOY / "gunicorn.conf.py"))
    directory = os.environ["PROMETHEUS_MULTIPROC_DIR"]
    try:
        assert os.path.isdir(directory)
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def _bytes(size: str) -> int:
    number, unit = re.fullmatch(r"(\d+)([kmg]?)", size.lower()).groups()
    return int(number) * {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}[unit]


def test_the_proxy_limits_match_the_hub_limits(monkeypatch, tmp_path):
    nginx = (DEPLOY / "nginx.conf").read_text()
    bodies = [_bytes(size) for size in re.findall(r"client_max_body_size\s+(\w+);", nginx)]
    largest = max(django_settings.MUSEHUB_MAX_PACK_BYTES, django_settings.MUSEHUB_MAX_PUSH_REQUEST_BYTES)
    assert bodies and all(body >= largest for body in bodies), "the proxy must not refuse what the hub accepts"
    timeout = gunicorn_config(monkeypatch, tmp_path)["timeout"]
    reads = [int(seconds) for seconds in re.findall(r"proxy_read_timeout\s+(\d+)s;", nginx)]
    assert reads and all(read >= timeout for read in reads), "the proxy waits as long as a push may take"
    assert "X-Forwarded-Proto" in nginx and "$http_host" in nginx


def test_the_image_and_make_serve_run_gunicorn_with_the_config():
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    assert "collectstatic" in dockerfile and "deploy/gunicorn.conf.py" in dockerfile
    assert ".venv" in (REPO / ".dockerignore").read_text().split()
    makefile = (REPO / "Makefile").read_text()
    serve = makefile.split("\nserve:", 1)[1].split("\n\n", 1)[0]
    assert "gunicorn -c deploy/gunicorn.conf.py musehub.wsgi" in serve and "collectstatic" in serve
    assert "\nmigrate:" in makefile


@pytest.mark.parametrize("path", ["deploy/compose.yaml", ".env.example", "deploy/nginx.conf"])
def test_deploy_files_hold_no_real_looking_secrets(path):
    text = (REPO / path).read_text()
    assert "mh_" not in text and "AKIA" not in text
