"""Settings of BooM Console, driven by environment variables (see docs/configuration.md).

With no environment the console runs embedded: SQLite and the broker spool under
``CONSOLE_DATA_DIR``, an in-process channel layer. ``DATABASE_URL``, ``CELERY_BROKER_URL`` and
``REDIS_URL`` switch it to the production profile (PostgreSQL, Redis).
"""

import os
import socket
from datetime import timedelta
from pathlib import Path

from django.utils.translation import gettext_lazy as _

from console.core.env import (
    EnvError,
    allowed_hosts_for_bind,
    database_from_url,
    env_bool,
    env_int,
    env_list,
    env_str,
    private_data_dir,
    secret_from_env_or_file,
)
from console.core.ldap_config import BACKEND as LDAP_BACKEND
from console.core.ldap_config import ldap_settings
from console.core.oidc_config import BACKEND as OIDC_BACKEND
from console.core.oidc_config import oidc_settings
from console.core.outbound import parse_networks

BASE_DIR = Path(__file__).resolve().parent.parent
DATA_DIR = Path(env_str("CONSOLE_DATA_DIR", str(BASE_DIR / "var"))).resolve()
# The data folder holds the database, the secret and the broker spool: only the console's user reads it
# (docs/security.md). Files this process creates are 0600 and folders 0700; existing ones are fixed here.
private_data_dir(DATA_DIR)

# The console's own secret: signs sessions and derives the key that encrypts SSH private keys.
CONSOLE_SECRET_KEY = secret_from_env_or_file("CONSOLE_SECRET_KEY", "CONSOLE_SECRET_KEY_FILE", DATA_DIR / "secret_key")
SECRET_KEY = CONSOLE_SECRET_KEY
# Retired secrets that still decrypt stored SSH keys while they are re-encrypted (comma-separated).
CONSOLE_OLD_SECRET_KEYS = env_list("CONSOLE_OLD_SECRET_KEYS", [])
# Prefixes every engine process this console starts (its marker on the nodes), so that two consoles, or a test run
# beside a console, never touch each other's processes. Derived from this installation's secret and data dir.
# A restored console keeps its backup's prefix in DATA_DIR/instance_prefix (manage.py restore), to re-adopt engines.
CONSOLE_INSTANCE_PREFIX = env_str("CONSOLE_INSTANCE_PREFIX") or (
    (DATA_DIR / "instance_prefix").read_text().strip() if (DATA_DIR / "instance_prefix").is_file() else "") or (
    "b" + __import__("hashlib").sha256(f"{CONSOLE_SECRET_KEY}:{DATA_DIR}".encode()).hexdigest()[:8])
DEBUG = env_bool("CONSOLE_DEBUG", False)
# The address the web server binds (console/launcher.py): the default allowed host names follow it
# (docs/security.md): loopback names on loopback, the machine's name and addresses on 0.0.0.0.
BIND = env_str("BIND", "127.0.0.1")
ALLOWED_HOSTS = env_list("CONSOLE_ALLOWED_HOSTS", []) or allowed_hosts_for_bind(BIND)
CSRF_TRUSTED_ORIGINS = env_list("CONSOLE_CSRF_TRUSTED_ORIGINS", [])

# Behind a TLS-terminating proxy (docs/deployment.md): Secure cookies, the proxy's X-Forwarded-Proto
# header trusted, HSTS for CONSOLE_HSTS_SECONDS (0 sends none).
CONSOLE_TLS_PROXY = env_bool("CONSOLE_TLS_PROXY", False)
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = CONSOLE_TLS_PROXY
SESSION_COOKIE_HTTPONLY = True
if CONSOLE_TLS_PROXY:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_HSTS_SECONDS = env_int("CONSOLE_HSTS_SECONDS", 31536000 if CONSOLE_TLS_PROXY else 0, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("CONSOLE_HSTS_INCLUDE_SUBDOMAINS", False)
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
# Content-Security-Policy of every page (console.core.security); set to replace it, empty sends none.
CONSOLE_CSP = os.environ.get("CONSOLE_CSP")

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "channels",
    "axes",
    "console.apps.ConsoleConfig",
    "nodes.apps.NodesConfig",
    "models_registry.apps.ModelsRegistryConfig",
    "jobs.apps.JobsConfig",
    "console.alerting.apps.AlertingConfig",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # An outage of the database, Redis or the broker in a view: 503 naming the part, not 500.
    "console.core.outage.ServiceUnavailableMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "console.timezones.TimezoneMiddleware",
    "console.core.middleware.RoleRequiredMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "console.core.security.ContentSecurityPolicyMiddleware",
    # Last, as django-axes asks: it turns a locked-out login into the lockout page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "console.urls"
WSGI_APPLICATION = "console.wsgi.application"
ASGI_APPLICATION = "console.asgi.application"

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
                "django.template.context_processors.i18n",
                "console.context_processors.console",
            ],
            # {{ t|when }}, {{ t|ago }}: every timestamp in the user's zone (console.core.timefmt);
            # what the system wrote, in the reader's language (|sysmsg, {% describe_events %}...).
            "builtins": ["console.core.timefmt", "console.dashboards.system_text"],
        },
    },
]

DATABASE_URL = env_str("DATABASE_URL")
if DATABASE_URL:
    DATABASES = {"default": database_from_url(DATABASE_URL)}
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": DATA_DIR / "console.sqlite3",
            # WAL lets the web server, the worker and beat share the file without "database is locked".
            # Tests use a file, so that worker processes started by integration tests share it.
            "TEST": {"NAME": str(DATA_DIR / "test-console.sqlite3")},
            "OPTIONS": {
                "timeout": 30,
                "transaction_mode": "IMMEDIATE",
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            },
        }
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
# Sign-in (docs/security.md): django-axes first (it refuses locked-out credentials before any backend
# checks them), then the company directory when configured (console.core.directory), then local accounts.
AUTHENTICATION_BACKENDS = ["axes.backends.AxesStandaloneBackend", "django.contrib.auth.backends.ModelBackend"]
# The company directory: CONSOLE_LDAP_URL and the CONSOLE_LDAP_* variables (docs/security-auth.md).
_LDAP = ldap_settings(os.environ)
if _LDAP:
    globals().update(_LDAP)
    AUTHENTICATION_BACKENDS.insert(1, LDAP_BACKEND)
# An OpenID Connect provider: CONSOLE_OIDC_CLIENT_ID and the CONSOLE_OIDC_* variables (docs/security-auth.md).
_OIDC = oidc_settings(os.environ)
if _OIDC:
    globals().update(_OIDC)
    AUTHENTICATION_BACKENDS.append(OIDC_BACKEND)
# Login lockout: after AXES_FAILURE_LIMIT wrong passwords for one user name from one address, that pair
# is refused for CONSOLE_LOGIN_LOCKOUT_MINUTES (a right password included). Admin site: Axes > Access attempts.
AXES_FAILURE_LIMIT = env_int("CONSOLE_LOGIN_FAILURE_LIMIT", 10, minimum=1)
AXES_COOLOFF_TIME = timedelta(minutes=env_int("CONSOLE_LOGIN_LOCKOUT_MINUTES", 15, minimum=1))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
AXES_VERBOSE = False
# The client's address is REMOTE_ADDR only: behind a proxy, daphne's --proxy-headers sets it from the
# proxy's X-Forwarded-For (docs/deployment.md), so a client cannot choose it by sending that header.
AXES_IPWARE_META_PRECEDENCE_ORDER = ["REMOTE_ADDR"]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "dashboard"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en"
LANGUAGES = [("en", _("English")), ("zh-hans", _("Simplified Chinese"))]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = env_str("CONSOLE_TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = DATA_DIR / "static"
# The embedded server serves static files itself; behind a reverse proxy set this to false.
CONSOLE_SERVE_STATIC = env_bool("CONSOLE_SERVE_STATIC", True)

REDIS_URL = env_str("REDIS_URL")
if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {"BACKEND": "channels_redis.core.RedisChannelLayer", "CONFIG": {"hosts": [REDIS_URL]}}
    }
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}}
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# Celery: the embedded default is kombu's filesystem transport under CONSOLE_DATA_DIR.
BROKER_DIR = DATA_DIR / "broker"
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", REDIS_URL or "filesystem://")
if CELERY_BROKER_URL.startswith("filesystem://"):
    for sub in ("queue", "processed", "control"):
        (BROKER_DIR / sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(BROKER_DIR / "queue"),
        "data_folder_out": str(BROKER_DIR / "queue"),
        "processed_folder": str(BROKER_DIR / "processed"),
        "control_folder": str(BROKER_DIR / "control"),
        # kombu polls the spool once a second by default: every lifecycle task would wait up to that long.
        "polling_interval": 0.1,
        "store_processed": False,
    }
else:
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600}
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", False)
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# Broker lost: try again every 0.5 to 2 s, not Celery's 2 to 30 s (console.celery.ReconnectingConsumer).
CELERY_WORKER_CONSUMER = "console.celery:ReconnectingConsumer"
CELERY_TASK_DEFAULT_QUEUE = "lifecycle"
# Work is split by urgency (DESIGN.md): lifecycle, telemetry (probes, scrapes), long (verify, benchmarks).
CELERY_TASK_ROUTES = {
    "nodes.tasks.*": {"queue": "telemetry"},
    "jobs.tasks.*": {"queue": "lifecycle"},
    "models_registry.tasks.*": {"queue": "long"},
    "jobs.benchmarks.tasks.*": {"queue": "long"},
}
CELERY_BEAT_SCHEDULE_FILENAME = str(DATA_DIR / "celerybeat-schedule")

# Inventory.
CONSOLE_PROBE_INTERVAL_S = env_int("CONSOLE_PROBE_INTERVAL_S", 15, minimum=1)
CONSOLE_PROBE_CONCURRENCY = env_int("CONSOLE_PROBE_CONCURRENCY", 16, minimum=1, maximum=256)
CONSOLE_SSH_CONNECT_TIMEOUT_S = env_int("CONSOLE_SSH_CONNECT_TIMEOUT_S", 5, minimum=1)
CONSOLE_SSH_COMMAND_TIMEOUT_S = env_int("CONSOLE_SSH_COMMAND_TIMEOUT_S", 60, minimum=1)
CONSOLE_REGISTER_LOCAL_NODE = env_bool("CONSOLE_REGISTER_LOCAL_NODE", True)

# Model registry (docs/models.md): the context and concurrency a version's memory estimate assumes,
# and how long inspecting a directory and hashing its files may take on a node.
CONSOLE_MEMORY_ESTIMATE_CONTEXT = env_int("CONSOLE_MEMORY_ESTIMATE_CONTEXT", 4096, minimum=1)
CONSOLE_MEMORY_ESTIMATE_CONCURRENCY = env_int("CONSOLE_MEMORY_ESTIMATE_CONCURRENCY", 1, minimum=1)
CONSOLE_INSPECT_TIMEOUT_S = env_int("CONSOLE_INSPECT_TIMEOUT_S", 600, minimum=5)
CONSOLE_VERIFY_TIMEOUT_S = env_int("CONSOLE_VERIFY_TIMEOUT_S", 12 * 3600, minimum=10)
CONSOLE_VERIFY_STALE_S = env_int("CONSOLE_VERIFY_STALE_S", 900, minimum=10)
# auto: whichever of the node's sha256sum and Python's hashlib is faster there (measured per run).
CONSOLE_VERIFY_HASH_METHOD = env_str("CONSOLE_VERIFY_HASH_METHOD", "auto")
if CONSOLE_VERIFY_HASH_METHOD not in ("auto", "python", "sha256sum"):
    raise EnvError(f"CONSOLE_VERIFY_HASH_METHOD must be auto, python or sha256sum, got {CONSOLE_VERIFY_HASH_METHOD!r}")
# Copies of a version on other nodes (docs/models.md "Copies and transfers"): where a copy goes when the
# request names no path (per node: model/version under it), how many files stream at once, and after how
# long without a progress write a copy's worker counts as dead (an operator may then start it again).
CONSOLE_MODEL_ROOT = env_str("CONSOLE_MODEL_ROOT", "~/.boom-console/models")
CONSOLE_COPY_PARALLEL = env_int("CONSOLE_COPY_PARALLEL", 4, minimum=1, maximum=8)
CONSOLE_COPY_STALE_S = env_int("CONSOLE_COPY_STALE_S", 120, minimum=5)
CONSOLE_COPY_IDLE_TIMEOUT_S = env_int("CONSOLE_COPY_IDLE_TIMEOUT_S", 120, minimum=5)
# Which SSH client streams a copy's large files: auto (OpenSSH's ssh when installed, else paramiko), openssh or
# paramiko. OpenSSH runs the ciphers in C, outside the console's interpreter (nodes/transports/ssh/openssh.py);
# files under CONSOLE_COPY_OPENSSH_MIN_BYTES stay on the pooled paramiko connections (no new handshake each).
CONSOLE_COPY_SSH_CLIENT = env_str("CONSOLE_COPY_SSH_CLIENT", "auto")
if CONSOLE_COPY_SSH_CLIENT not in ("auto", "openssh", "paramiko"):
    raise EnvError(f"CONSOLE_COPY_SSH_CLIENT must be auto, openssh or paramiko, got {CONSOLE_COPY_SSH_CLIENT!r}")
CONSOLE_COPY_OPENSSH_MIN_BYTES = env_int("CONSOLE_COPY_OPENSSH_MIN_BYTES", 16 << 20, minimum=0)
# The ssh ``Ciphers`` of those pipes: auto (AES-GCM first when this machine's CPU has AES instructions, else
# OpenSSH's order), or a list passed to ssh as it is.
CONSOLE_COPY_SSH_CIPHERS = env_str("CONSOLE_COPY_SSH_CIPHERS", "auto")

# Serving jobs.
# Bound on each executor call to a node (start, status, tail; a stop gets its grace on top): a node that stops
# answering is noticed within this time, which starts its failover grace.
CONSOLE_EXECUTOR_TIMEOUT_S = env_int("CONSOLE_EXECUTOR_TIMEOUT_S", 8, minimum=1)
CONSOLE_REMOTE_INSTANCE_DIR = env_str("CONSOLE_REMOTE_INSTANCE_DIR", "~/.boom-console/instances")
CONSOLE_RECONCILE_INTERVAL_S = float(env_int("CONSOLE_RECONCILE_INTERVAL_MS", 1000, minimum=200)) / 1000
# Serving benchmarks (docs/benchmarks-serving.md): dataset files must lie in this directory (an
# operator must not be able to send any file of the console host to an endpoint of their choice).
CONSOLE_BENCHMARK_DATASET_DIR = Path(env_str("CONSOLE_BENCHMARK_DATASET_DIR", str(DATA_DIR / "datasets"))).resolve()
# Benchmarks target this console's own instances; other endpoint URLs only in these networks (CIDRs, comma-separated).
CONSOLE_BENCHMARK_ALLOWED_NETWORKS = env_list("CONSOLE_BENCHMARK_ALLOWED_NETWORKS", [])
try:
    parse_networks(CONSOLE_BENCHMARK_ALLOWED_NETWORKS)
except ValueError as exc:
    raise EnvError(f"CONSOLE_BENCHMARK_ALLOWED_NETWORKS: {exc}") from None
CONSOLE_NODE_LOSS_GRACE_S = env_int("CONSOLE_NODE_LOSS_GRACE_S", 20, minimum=0)
CONSOLE_RESTART_BACKOFF_FIRST_S = env_int("CONSOLE_RESTART_BACKOFF_FIRST_S", 10, minimum=0)
CONSOLE_RESTART_BACKOFF_MAX_S = env_int("CONSOLE_RESTART_BACKOFF_MAX_S", 300, minimum=1)
CONSOLE_RESTART_BACKOFF_RESET_S = env_int("CONSOLE_RESTART_BACKOFF_RESET_S", 600, minimum=1)
CONSOLE_HEALTH_FAILURES_BEFORE_RESTART = env_int("CONSOLE_HEALTH_FAILURES_BEFORE_RESTART", 3, minimum=1)
CONSOLE_START_TIMEOUT_S = env_int("CONSOLE_START_TIMEOUT_S", 900, minimum=5)
CELERY_BEAT_SCHEDULE = {
    "probe-due-nodes": {"task": "nodes.tasks.probe_due_nodes", "schedule": 5.0, "options": {"expires": 5}},
    # Each node is swept every 30 s (jobs.reconciler.ORPHAN_SWEEP_INTERVAL_S), and at once when it comes back.
    "reap-orphans": {"task": "jobs.tasks.reap_orphans", "schedule": 5.0, "options": {"expires": 5}},
    "reconcile-jobs": {"task": "jobs.tasks.reconcile_all", "schedule": CONSOLE_RECONCILE_INTERVAL_S,
                       "options": {"expires": max(CONSOLE_RECONCILE_INTERVAL_S * 2, 1.0)}},
}
# Telemetry and live streams (docs/telemetry.md).
# Default sampling interval of a node's telemetry (each node may set its own; 1 s is supported).
CONSOLE_TELEMETRY_INTERVAL_S = env_int("CONSOLE_TELEMETRY_INTERVAL_S", 5, minimum=1, maximum=300)
# How often the collector scrapes every running instance's engine /metrics.
CONSOLE_TELEMETRY_SCRAPE_INTERVAL_S = env_int("CONSOLE_TELEMETRY_SCRAPE_INTERVAL_S", 5, minimum=1, maximum=300)
# The collector writes what it gathered, and publishes it to the streams, this often (batched writes).
CONSOLE_TELEMETRY_FLUSH_MS = env_int("CONSOLE_TELEMETRY_FLUSH_MS", 100, minimum=20, maximum=10_000)
CONSOLE_TELEMETRY_RAW_RETENTION_S = env_int("CONSOLE_TELEMETRY_RAW_RETENTION_S", 24 * 3600, minimum=600)
CONSOLE_TELEMETRY_ROLLUP_RETENTION_S = env_int("CONSOLE_TELEMETRY_ROLLUP_RETENTION_S", 30 * 86400, minimum=86400)
# Longer ranges read the one-minute rollups even when raw samples exist.
CONSOLE_TELEMETRY_RAW_QUERY_MAX_S = env_int("CONSOLE_TELEMETRY_RAW_QUERY_MAX_S", 6 * 3600, minimum=600)
# `make run` starts one collector process; set false where collectors run elsewhere (manage.py collect).
CONSOLE_COLLECTOR = env_bool("CONSOLE_COLLECTOR", True)
# Stream entries are kept this long: a browser that reconnects within it misses nothing.
CONSOLE_STREAM_RETENTION_S = env_int("CONSOLE_STREAM_RETENTION_S", 900, minimum=60)
# "poll": each web process reads new stream entries from the database (works with no Redis);
# "push": the publisher also sends them through the channel layer (Redis) for lower latency.
CONSOLE_STREAM_TRANSPORT = env_str("CONSOLE_STREAM_TRANSPORT", "push" if REDIS_URL else "poll")
# The collector publishes a node's samples on its live topic only while a connection watches it (a node
# page, a script subscribed to node:<id>); false: every node's, every second (1000 entries a second at
# 1000 nodes, read by nobody).
CONSOLE_STREAM_WATCHED_ONLY = env_bool("CONSOLE_STREAM_WATCHED_ONLY", True)
if CONSOLE_STREAM_TRANSPORT not in ("poll", "push"):
    raise ValueError("CONSOLE_STREAM_TRANSPORT must be 'poll' or 'push'")
# GET /metrics needs a viewer's token unless this is true (a Prometheus on a trusted network).
CONSOLE_METRICS_PUBLIC = env_bool("CONSOLE_METRICS_PUBLIC", False)
CONSOLE_STREAM_POLL_MS = env_int("CONSOLE_STREAM_POLL_MS", 100, minimum=20, maximum=5000)
CELERY_BEAT_SCHEDULE["telemetry-rollup-and-retention"] = {
    "task": "console.telemetry.tasks.rollup_and_prune", "schedule": 60.0, "options": {"expires": 60}}
CELERY_TASK_ROUTES["console.telemetry.tasks.*"] = {"queue": "telemetry"}

# Alerting (docs/alerting.md).
CONSOLE_ALERT_EVAL_INTERVAL_S = env_int("CONSOLE_ALERT_EVAL_INTERVAL_S", 15, minimum=1, maximum=3600)
# Grouping, as Alertmanager's defaults; a rule may set its own.
CONSOLE_ALERT_GROUP_WAIT_S = env_int("CONSOLE_ALERT_GROUP_WAIT_S", 30, minimum=0, maximum=3600)
CONSOLE_ALERT_GROUP_INTERVAL_S = env_int("CONSOLE_ALERT_GROUP_INTERVAL_S", 300, minimum=1, maximum=86400)
CONSOLE_ALERT_REPEAT_INTERVAL_S = env_int("CONSOLE_ALERT_REPEAT_INTERVAL_S", 4 * 3600, minimum=60)
# A series value older than this is no value (the condition is not true on stale data).
CONSOLE_ALERT_LOOKBACK_S = env_int("CONSOLE_ALERT_LOOKBACK_S", 120, minimum=5)
# The database aborts a rule's queries after this long; the evaluator records the error and goes on.
CONSOLE_ALERT_RULE_TIMEOUT_S = env_int("CONSOLE_ALERT_RULE_TIMEOUT_S", 5, minimum=1, maximum=300)
# An alert that fired this many times within the window is shown (and notified) as flapping.
CONSOLE_ALERT_FLAP_WINDOW_S = env_int("CONSOLE_ALERT_FLAP_WINDOW_S", 3600, minimum=60)
CONSOLE_ALERT_FLAP_THRESHOLD = env_int("CONSOLE_ALERT_FLAP_THRESHOLD", 3, minimum=2)
CONSOLE_ALERT_RETENTION_DAYS = env_int("CONSOLE_ALERT_RETENTION_DAYS", 30, minimum=1)
# How often the dispatcher groups, queues and delivers (it also runs right after a changing evaluation).
CONSOLE_ALERT_DISPATCH_INTERVAL_S = env_int("CONSOLE_ALERT_DISPATCH_INTERVAL_S", 5, minimum=1, maximum=300)
# Delivery: per-attempt time limit, back-off between attempts, and how long a notification is retried.
CONSOLE_NOTIFY_TIMEOUT_S = env_int("CONSOLE_NOTIFY_TIMEOUT_S", 10, minimum=1, maximum=120)
CONSOLE_NOTIFY_RETRY_FIRST_S = env_int("CONSOLE_NOTIFY_RETRY_FIRST_S", 10, minimum=1)
CONSOLE_NOTIFY_RETRY_MAX_S = env_int("CONSOLE_NOTIFY_RETRY_MAX_S", 600, minimum=1)
CONSOLE_NOTIFY_MAX_AGE_S = env_int("CONSOLE_NOTIFY_MAX_AGE_S", 24 * 3600, minimum=60)
CONSOLE_NOTIFY_CONCURRENCY = env_int("CONSOLE_NOTIFY_CONCURRENCY", 8, minimum=1, maximum=64)
# Notification channels may post to loopback and private addresses (receivers are often internal). False refuses
# them; link-local addresses (169.254.169.254, the cloud metadata service) are always refused (docs/security.md).
CONSOLE_NOTIFY_ALLOW_PRIVATE = env_bool("CONSOLE_NOTIFY_ALLOW_PRIVATE", True)
# Links in notifications (Alertmanager's externalURL) point here.
CONSOLE_EXTERNAL_URL = env_str("CONSOLE_EXTERNAL_URL", f"http://127.0.0.1:{env_str('PORT', '8000')}")
# This installation's name: the `console` label of the alerts it posts to Alertmanagers (alertmanager-api channels),
# so that their routes can match console="...". Stable by default: the host name.
CONSOLE_NAME = env_str("CONSOLE_NAME", "") or socket.gethostname() or "boom-console"
# alertmanager-api channels re-post still-firing alerts this often, with endsAt = now + 4 intervals (Prometheus'
# --rules.alert.resend-delay, 1m); an alert no longer re-posted resolves in Alertmanager when endsAt passes.
CONSOLE_ALERTMANAGER_RESEND_S = env_int("CONSOLE_ALERTMANAGER_RESEND_S", 60, minimum=10, maximum=3600)
CELERY_BEAT_SCHEDULE["alerting-evaluate"] = {
    "task": "console.alerting.tasks.evaluate", "schedule": float(CONSOLE_ALERT_EVAL_INTERVAL_S),
    "options": {"expires": float(CONSOLE_ALERT_EVAL_INTERVAL_S)}}
CELERY_BEAT_SCHEDULE["alerting-dispatch"] = {
    "task": "console.alerting.tasks.dispatch", "schedule": float(CONSOLE_ALERT_DISPATCH_INTERVAL_S),
    "options": {"expires": float(CONSOLE_ALERT_DISPATCH_INTERVAL_S)}}
CELERY_BEAT_SCHEDULE["alerting-cleanup"] = {
    "task": "console.alerting.tasks.cleanup", "schedule": 3600.0, "options": {"expires": 3600}}
# Evaluation is short periodic reads (telemetry); delivery talks to receivers (lifecycle).
CELERY_TASK_ROUTES["console.alerting.tasks.evaluate"] = {"queue": "telemetry"}
CELERY_TASK_ROUTES["console.alerting.tasks.*"] = {"queue": "lifecycle"}
# Email notifications go through Django's email backend.
EMAIL_HOST = env_str("CONSOLE_EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("CONSOLE_EMAIL_PORT", 25, minimum=1, maximum=65535)
EMAIL_HOST_USER = env_str("CONSOLE_EMAIL_USER", "")
EMAIL_HOST_PASSWORD = env_str("CONSOLE_EMAIL_PASSWORD") or (
    Path(env_str("CONSOLE_EMAIL_PASSWORD_FILE")).read_text().strip() if env_str("CONSOLE_EMAIL_PASSWORD_FILE") else "")
EMAIL_USE_TLS = env_bool("CONSOLE_EMAIL_USE_TLS", False)
EMAIL_USE_SSL = env_bool("CONSOLE_EMAIL_USE_SSL", False)
EMAIL_TIMEOUT = CONSOLE_NOTIFY_TIMEOUT_S
DEFAULT_FROM_EMAIL = env_str("CONSOLE_EMAIL_FROM", "boom-console@localhost")
SERVER_EMAIL = DEFAULT_FROM_EMAIL

CONSOLE_INSTANCE_PORT_RANGE = (env_int("CONSOLE_INSTANCE_PORT_MIN", 18000, minimum=1024, maximum=65000),
                               env_int("CONSOLE_INSTANCE_PORT_MAX", 18999, minimum=1024, maximum=65535))

# The inference gateway (jobs/gateway, issue 11): its own asyncio process beside the web server.
CONSOLE_GATEWAY_PORT = env_int("CONSOLE_GATEWAY_PORT", 8001, minimum=1, maximum=65535)
# The address applications use (shown in snippets and the playground); behind a proxy, its public URL.
CONSOLE_GATEWAY_URL = env_str("CONSOLE_GATEWAY_URL", f"http://127.0.0.1:{CONSOLE_GATEWAY_PORT}").rstrip("/")
# Largest request body the gateway accepts (413 above it); 8 MiB holds long prompts and small images.
CONSOLE_GATEWAY_MAX_BODY_BYTES = env_int("CONSOLE_GATEWAY_MAX_BODY_BYTES", 8 << 20, minimum=1024, maximum=1 << 30)
# A request's deadline (seconds, streams included): retries happen within it.
CONSOLE_GATEWAY_TIMEOUT_S = env_int("CONSOLE_GATEWAY_TIMEOUT_S", 600, minimum=1, maximum=86400)

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "console.core.tokens.HashedTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["console.core.permissions.RolePermission"],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.LimitOffsetPagination",
    "PAGE_SIZE": 100,
    "DEFAULT_FILTER_BACKENDS": [
        "console.core.inputs.SafeFilterBackend",
        "rest_framework.filters.OrderingFilter",
    ],
    # The input policy (console/core/inputs.py, docs/security.md): no NUL or lone surrogate, bounded nesting.
    "DEFAULT_PARSER_CLASSES": [
        "console.core.inputs.SafeJSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "console.core.api.exception_handler",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
    # Rates are read from CONSOLE_API_THROTTLE_* on each request (console.core.security); empty: no limit.
    "DEFAULT_THROTTLE_CLASSES": ["console.core.security.AnonThrottle", "console.core.security.UserThrottle"],
}
CONSOLE_API_THROTTLE_ANON = env_str("CONSOLE_API_THROTTLE_ANON", "120/minute")
CONSOLE_API_THROTTLE_USER = env_str("CONSOLE_API_THROTTLE_USER", "3000/minute")
SPECTACULAR_SETTINGS = {
    "TITLE": "BooM Console API",
    "DESCRIPTION": "Operations console for on-premise LLM inference clusters.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    # The schema and the docs page need a viewer, as every read of the API (issue 13, finding 8).
    "SERVE_PERMISSIONS": ["console.core.permissions.RolePermission"],
    "SCHEMA_PATH_PREFIX": "/api/v1",
    "COMPONENT_SPLIT_REQUEST": True,
    # Served from our own static files: clusters are often air-gapped, so no CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "ENUM_NAME_OVERRIDES": {"NodeStatusEnum": "nodes.choices.NodeStatus",
                            "ModelVersionStatusEnum": "models_registry.choices.VersionStatus"},
}
SPECTACULAR_SETTINGS["ENUM_NAME_OVERRIDES"].update({
    "AlertStateEnum": "console.alerting.choices.AlertState",
    "AlertSeverityEnum": "console.alerting.choices.Severity",
    "AlertRuleKindEnum": "console.alerting.choices.RuleKind",
    "NotificationChannelKindEnum": "console.alerting.choices.ChannelKind",
    "NotificationStatusEnum": "console.alerting.choices.NotificationStatus",
    "NotificationKindEnum": "console.alerting.choices.NotificationKind",
    "ModelCopyStatusEnum": "models_registry.choices.CopyStatus",
})

CONSOLE_LOG_LEVEL = env_str("CONSOLE_LOG_LEVEL", "INFO").upper()
# Set by `make run` (console/launcher.py) unless --verbose: warnings and errors only, no noise.
CONSOLE_QUIET = env_bool("CONSOLE_QUIET", False)
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "filters": {"quiet": {"()": "console.core.logfilters.QuietFilter"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain", "filters": ["quiet"]}},
    "root": {"handlers": ["console"], "level": CONSOLE_LOG_LEVEL},
    "loggers": {
        # paramiko logs every failed handshake with a traceback: an unreachable node is data, not an error.
        "paramiko": {"level": "WARNING"},
        "paramiko.transport": {"level": "CRITICAL"},
        "daphne": {"level": "WARNING"},
        # One line per HTTP request: every engine scrape, every few seconds. Shown at DEBUG only.
        "httpx": {"level": "DEBUG" if CONSOLE_LOG_LEVEL == "DEBUG" else "WARNING"},
        "httpcore": {"level": "DEBUG" if CONSOLE_LOG_LEVEL == "DEBUG" else "WARNING"},
    },
}
