"""Settings of BooM Console, driven by environment variables (see docs/configuration.md).

With no environment the console runs embedded: SQLite and the broker spool under
``CONSOLE_DATA_DIR``, an in-process channel layer. ``DATABASE_URL``, ``CELERY_BROKER_URL`` and
``REDIS_URL`` switch it to the production profile (PostgreSQL, Redis).
"""

from pathlib import Path

from django.utils.translation import gettext_lazy as _

from console.env import database_from_url, env_bool, env_int, env_list, env_str, secret_from_env_or_file

BASE_DIR = Path(__file__).resolve().parent.parent
DATA_DIR = Path(env_str("CONSOLE_DATA_DIR", str(BASE_DIR / "var"))).resolve()
DATA_DIR.mkdir(parents=True, exist_ok=True)

# The console's own secret: signs sessions and derives the key that encrypts SSH private keys.
CONSOLE_SECRET_KEY = secret_from_env_or_file("CONSOLE_SECRET_KEY", "CONSOLE_SECRET_KEY_FILE", DATA_DIR / "secret_key")
SECRET_KEY = CONSOLE_SECRET_KEY
DEBUG = env_bool("CONSOLE_DEBUG", False)
ALLOWED_HOSTS = env_list("CONSOLE_ALLOWED_HOSTS", ["*"])
CSRF_TRUSTED_ORIGINS = env_list("CONSOLE_CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "channels",
    "console.apps.ConsoleConfig",
    "nodes.apps.NodesConfig",
    "models_registry.apps.ModelsRegistryConfig",
    "jobs.apps.JobsConfig",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
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
        "store_processed": False,
    }
else:
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600}
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", False)
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_DEFAULT_QUEUE = "lifecycle"
# Work is split by urgency (DESIGN.md): lifecycle, telemetry (probes, scrapes), long (verify, benchmarks).
CELERY_TASK_ROUTES = {
    "nodes.tasks.*": {"queue": "telemetry"},
    "jobs.tasks.*": {"queue": "lifecycle"},
    "models_registry.tasks.*": {"queue": "long"},
}
CELERY_BEAT_SCHEDULE_FILENAME = str(DATA_DIR / "celerybeat-schedule")

# Inventory.
CONSOLE_PROBE_INTERVAL_S = env_int("CONSOLE_PROBE_INTERVAL_S", 15, minimum=1)
CONSOLE_PROBE_CONCURRENCY = env_int("CONSOLE_PROBE_CONCURRENCY", 16, minimum=1, maximum=256)
CONSOLE_SSH_CONNECT_TIMEOUT_S = env_int("CONSOLE_SSH_CONNECT_TIMEOUT_S", 10, minimum=1)
CONSOLE_SSH_COMMAND_TIMEOUT_S = env_int("CONSOLE_SSH_COMMAND_TIMEOUT_S", 60, minimum=1)
CONSOLE_REGISTER_LOCAL_NODE = env_bool("CONSOLE_REGISTER_LOCAL_NODE", True)

# Serving jobs.
CONSOLE_REMOTE_INSTANCE_DIR = env_str("CONSOLE_REMOTE_INSTANCE_DIR", "~/.boom-console/instances")
CONSOLE_RECONCILE_INTERVAL_S = float(env_int("CONSOLE_RECONCILE_INTERVAL_MS", 1000, minimum=200)) / 1000
CONSOLE_NODE_LOSS_GRACE_S = env_int("CONSOLE_NODE_LOSS_GRACE_S", 20, minimum=0)
CONSOLE_RESTART_BACKOFF_FIRST_S = env_int("CONSOLE_RESTART_BACKOFF_FIRST_S", 10, minimum=0)
CONSOLE_RESTART_BACKOFF_MAX_S = env_int("CONSOLE_RESTART_BACKOFF_MAX_S", 300, minimum=1)
CONSOLE_RESTART_BACKOFF_RESET_S = env_int("CONSOLE_RESTART_BACKOFF_RESET_S", 600, minimum=1)
CONSOLE_HEALTH_FAILURES_BEFORE_RESTART = env_int("CONSOLE_HEALTH_FAILURES_BEFORE_RESTART", 3, minimum=1)
CONSOLE_START_TIMEOUT_S = env_int("CONSOLE_START_TIMEOUT_S", 900, minimum=5)
CELERY_BEAT_SCHEDULE = {
    "probe-due-nodes": {"task": "nodes.tasks.probe_due_nodes", "schedule": 5.0, "options": {"expires": 5}},
    "reconcile-jobs": {"task": "jobs.tasks.reconcile_all", "schedule": CONSOLE_RECONCILE_INTERVAL_S,
                       "options": {"expires": max(CONSOLE_RECONCILE_INTERVAL_S * 2, 1.0)}},
}
CONSOLE_INSTANCE_PORT_RANGE = (env_int("CONSOLE_INSTANCE_PORT_MIN", 18000, minimum=1024, maximum=65000),
                               env_int("CONSOLE_INSTANCE_PORT_MAX", 18999, minimum=1024, maximum=65535))

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["console.permissions.RolePermission"],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.LimitOffsetPagination",
    "PAGE_SIZE": 100,
    "DEFAULT_FILTER_BACKENDS": [
        "django_filters.rest_framework.DjangoFilterBackend",
        "rest_framework.filters.OrderingFilter",
    ],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "console.api.exception_handler",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "BooM Console API",
    "DESCRIPTION": "Operations console for on-premise LLM inference clusters.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SCHEMA_PATH_PREFIX": "/api/v1",
    "COMPONENT_SPLIT_REQUEST": True,
    # Served from our own static files: clusters are often air-gapped, so no CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "ENUM_NAME_OVERRIDES": {"NodeStatusEnum": "nodes.choices.NodeStatus"},
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("CONSOLE_LOG_LEVEL", "INFO")},
    "loggers": {
        # paramiko logs every failed handshake with a traceback: an unreachable node is data, not an error.
        "paramiko": {"level": "WARNING"},
        "paramiko.transport": {"level": "CRITICAL"},
        "daphne": {"level": "WARNING"},
    },
}
