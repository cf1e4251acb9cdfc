"""Django settings, read once from environment variables (see README, "Configuration")."""
from __future__ import annotations

from datetime import timedelta

import django_stubs_ext
from csp.constants import NONE, SELF
from kombu import Queue

from lucent_admin import config
from projections import keys
from projections.errors import ConfigurationError
from projections.eventstore import validate_uri
from projections.partitions import check_count
from projections.readmodels import PROJECTIONS

django_stubs_ext.monkeypatch()  # Django's generic classes (ModelAdmin[Job]) subscriptable at run time, as their stubs are

BASE_DIR = config.BASE_DIR

# The embedded stack (`make run`, `make test`, or every service left at its default) may
# generate its own secret; production (any service pointed elsewhere) may not.
LUCENT_EMBEDDED = config.env_bool("LUCENT_EMBEDDED", config.all_services_default())
DEBUG = config.env_bool("DEBUG", False)
SECRET_KEY = config.secret_key(DEBUG, LUCENT_EMBEDDED)
ALLOWED_HOSTS = config.env_list("ALLOWED_HOSTS", "127.0.0.1,localhost")
_PORT = config.env_int("PORT", 8000, 1)  # the web server's (make run's daphne): its origins are trusted by default
CSRF_TRUSTED_ORIGINS = config.env_list("CSRF_TRUSTED_ORIGINS", f"http://127.0.0.1:{_PORT},http://localhost:{_PORT}")

REDIS_URL = config.redis_url(f"redis://127.0.0.1:{config.env_int('LUCENT_REDIS_PORT', 6390, 1)}/0")
EVENTSTORE_URI = config.env_str("EVENTSTORE_URI", "esdb://127.0.0.1:2113?Tls=false")
validate_uri(EVENTSTORE_URI)

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "channels",
    "django_htmx",
    "axes",
    "csp",
    "lucent_admin.operations",
    "lucent_admin.console",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "lucent_admin.console.metrics.request_latency",  # after WhiteNoise: static files are not timed
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.auth.middleware.LoginRequiredMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "csp.middleware.CSPMiddleware",
    "axes.middleware.AxesMiddleware",  # last, as axes asks: turns a refused sign-in into the lockout page
]

ROOT_URLCONF = "lucent_admin.urls"
ASGI_APPLICATION = "lucent_admin.asgi.application"
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

DATABASES = {"default": config.database(config.data_dir() / "db.sqlite3")}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "console:overview"
LOGOUT_REDIRECT_URL = "login"
SESSION_COOKIE_HTTPONLY = True

# Production settings (README, "Production settings"): HTTPS-only cookies and HSTS unless DEBUG is on or this
# is the embedded dev stack, which serves plain http on 127.0.0.1; redirect to HTTPS and the trusted proxy's
# header are opt-in (a proxy in front usually redirects; only a proxy that sets the header may be trusted).
_HTTPS = not (DEBUG or LUCENT_EMBEDDED)
SESSION_COOKIE_SECURE = config.env_bool("SESSION_COOKIE_SECURE", _HTTPS)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SECURE_HSTS_SECONDS = config.env_int("LUCENT_HSTS_SECONDS", 365 * 24 * 3600 if _HTTPS else 0, 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = config.env_bool("LUCENT_HSTS_INCLUDE_SUBDOMAINS", True)
SECURE_HSTS_PRELOAD = config.env_bool("LUCENT_HSTS_PRELOAD", False)
SECURE_SSL_REDIRECT = config.env_bool("LUCENT_SSL_REDIRECT", False)
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$"]  # probes speak plain http to the pod
SECURE_PROXY_SSL_HEADER = config.proxy_ssl_header("LUCENT_TRUSTED_PROXY_HEADER")
LUCENT_TRUSTED_PROXY_COUNT = config.env_int("LUCENT_TRUSTED_PROXY_COUNT", 0, 0)  # proxies adding X-Forwarded-For
# The console runs no inline script or style and htmx evaluates nothing (templates/base.html's htmx-config).
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF], "script-src": [SELF], "style-src": [SELF], "img-src": [SELF],
        "connect-src": [SELF], "font-src": [SELF], "object-src": [NONE], "base-uri": [NONE],
        "form-action": [SELF], "frame-ancestors": [NONE],
    },
}

# Sign-in protection (django-axes; operations/signin.py, operations/signals.py): LUCENT_LOGIN_FAILURE_LIMIT
# failed sign-ins for an account, or from an address, refuse that account's and that address's sign-ins
# until LUCENT_LOGIN_COOLOFF_S seconds after the last failure; the console's login and the admin's alike.
AUTHENTICATION_BACKENDS = ["lucent_admin.operations.signin.ThrottleBackend", "django.contrib.auth.backends.ModelBackend"]
AXES_FAILURE_LIMIT = config.env_int("LUCENT_LOGIN_FAILURE_LIMIT", 10, 1)
AXES_COOLOFF_TIME = timedelta(seconds=config.env_int("LUCENT_LOGIN_COOLOFF_S", 900, 1))
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False  # refused attempts neither count nor extend the lockout
AXES_CLIENT_IP_CALLABLE = "lucent_admin.operations.signin.client_address"
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
AXES_DISABLE_ACCESS_LOG = True  # sign-ins are in the audit log already
AXES_VERBOSE = False

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = config.data_dir() / "staticfiles"
STATIC_ROOT.mkdir(exist_ok=True)
WHITENOISE_USE_FINDERS = True

# Channels and Celery use REDIS_URL's Redis unless LUCENT_CHANNELS_URL / LUCENT_BROKER_URL name another (required
# when REDIS_URL is a Redis Cluster: neither channels_redis nor kombu can use one). A Sentinel URL works for both.
CHANNELS_REDIS = config.service_url("LUCENT_CHANNELS_URL", REDIS_URL, "Channels (channels_redis)")
CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        "CONFIG": {"hosts": [config.channel_host(CHANNELS_REDIS)], "prefix": keys.CHANNELS_PREFIX, "capacity": 1000,
                   "expiry": 30},
    }
}

# Celery, configured from these settings with the CELERY_ namespace (lucent_admin/celery.py).
CELERY_BROKER_URL, _BROKER_OPTIONS = config.celery_url(config.service_url("LUCENT_BROKER_URL", REDIS_URL, "Celery (kombu)"))
CELERY_RESULT_BACKEND = CELERY_BROKER_URL
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_RESULT_EXPIRES = 24 * 3600
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Redis out of memory refuses the broker's bookkeeping of a received task (a ResponseError, a "channel error" to
# kombu); without this the worker stops with "Unrecoverable error" (a fault drill found it), with it the worker's
# consumer reconnects and goes on once Redis has room.
CELERY_BROKER_CHANNEL_ERROR_RETRY = True
# A full rebuild can run for hours: a message is redelivered only after this long unacknowledged.
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": config.env_int("LUCENT_TASK_VISIBILITY_TIMEOUT", 6 * 3600, 60),
    "global_keyprefix": keys.CELERY_PREFIX,
    **_BROKER_OPTIONS,
}
CELERY_RESULT_BACKEND_TRANSPORT_OPTIONS = {"global_keyprefix": keys.CELERY_PREFIX, **_BROKER_OPTIONS}
CELERY_TIMEZONE = "UTC"
# Two queues (decision, issue 22): the periodic ticks (recovery, canaries, samples, sweeps) on the default queue,
# the jobs (rebuilds, checks, drops: minutes to hours) on their own, each served by its own worker (Procfile
# `worker` and `jobs`), so two long jobs never hold up the recovery tick or a canary. A worker started without
# -Q consumes both (the tests' single worker).
CELERY_TASK_DEFAULT_QUEUE = TICKS_QUEUE = "celery"
JOBS_QUEUE = "lucent.jobs"
CELERY_TASK_QUEUES = (Queue(TICKS_QUEUE), Queue(JOBS_QUEUE))
CELERY_TASK_ROUTES = {"lucent.run_job": {"queue": JOBS_QUEUE}}

# Projection engine settings (plain values handed to projections/, never `settings` itself).
LUCENT_PROJECTIONS = {
    name: {"on_bad_event": config.env_str(f"LUCENT_{name.upper()}_ON_BAD_EVENT", "park")}
    for name in PROJECTIONS
}
for _name, _conf in LUCENT_PROJECTIONS.items():
    if _conf["on_bad_event"] not in {"park", "stop"}:
        raise ConfigurationError(f"LUCENT_{_name.upper()}_ON_BAD_EVENT", "must be 'park' or 'stop'")
LUCENT_BATCH_SIZE = config.env_int("LUCENT_BATCH_SIZE", 500, 1)
# Partitions (the platform document's ShardBy user): a user-keyed projection's next generation is split into this
# many (a power of two); a generation keeps the count it was built with (projections/layout.py).
LUCENT_PARTITIONS = check_count(config.env_int("LUCENT_PARTITIONS", 1, 1), "LUCENT_PARTITIONS")
# How many job workers fold one rebuild's partitions at once (the rebuild's job and fold jobs it queues; at most one
# per partition): the cap on the writers a rebuild puts on Redis besides the live projector.
LUCENT_REBUILD_WORKERS = config.env_int("LUCENT_REBUILD_WORKERS", 2, 1)
LUCENT_LIVE_FLUSH_MS = config.env_int("LUCENT_LIVE_FLUSH_MS", 2, 0)
LUCENT_READER_PROCESS_AFTER = config.env_int("LUCENT_READER_PROCESS_AFTER", 5000, -1)
LUCENT_STATE_CACHE_ENTRIES = config.env_int("LUCENT_STATE_CACHE_ENTRIES", 20000, 0)
# Published domain events (projections/published.py): the live projector appends RiskLevelChanged and
# PortfolioSignificantlyUpdated, the latter for a move of a user's value by at least LUCENT_PUBLISH_MOVE_USD
# dollars and by more than LUCENT_PUBLISH_MOVE_PCT percent of it in one event.
LUCENT_PUBLISH_EVENTS = config.env_bool("LUCENT_PUBLISH_EVENTS", True)
LUCENT_PUBLISH_MOVE_PCT = config.env_int("LUCENT_PUBLISH_MOVE_PCT", 10, 0)
LUCENT_PUBLISH_MOVE_USD = config.env_int("LUCENT_PUBLISH_MOVE_USD", 1000, 0)
LUCENT_STARTUP_WAIT = config.env_int("LUCENT_STARTUP_WAIT", 5, 0)
# Full rebuilds: slow down while the live projector is this many seconds behind; flip only if a sample
# of entities differs in at most this many fields (else the operator starts it again with "flip anyway").
LUCENT_REBUILD_MAX_LAG_S = config.env_int("LUCENT_REBUILD_MAX_LAG_S", 2, 0)
LUCENT_REBUILD_DIFF_BUDGET = config.env_int("LUCENT_REBUILD_DIFF_BUDGET", 0, 0)
LUCENT_GENERATION_RETENTION_HOURS = config.env_int("LUCENT_GENERATION_RETENTION_HOURS", 24, 0)
# Two-person approval: a full rebuild or a rollback waits until a second operator approves it.
LUCENT_REBUILD_APPROVAL = config.env_bool("LUCENT_REBUILD_APPROVAL", False)
# Consistency checks: beat checks the next LUCENT_CONSISTENCY_SAMPLE users of each projection (a rolling
# sample: every user in turn) every LUCENT_CONSISTENCY_EVERY_S seconds (a sample of 0: no scheduled checks);
# whether the inconsistent users it finds are repaired at once is a recovery rule of the Settings page.
LUCENT_CONSISTENCY_SAMPLE = config.env_int("LUCENT_CONSISTENCY_SAMPLE", 25, 0)
LUCENT_CONSISTENCY_EVERY_S = config.env_int("LUCENT_CONSISTENCY_EVERY_S", 300, 10)
# Automatic recovery: beat looks at every projection's health this often (the rules' thresholds are set on
# the console's Settings page).
LUCENT_RECOVERY_EVERY_S = config.env_int("LUCENT_RECOVERY_EVERY_S", 5, 1)
# Observability: /metrics is open to this bearer token (a scraper; empty: staff sessions only); beat samples
# the Infrastructure page's figures (Redis memory and latency, update and append rates) this often.
LUCENT_METRICS_TOKEN = config.env_token("LUCENT_METRICS_TOKEN")
LUCENT_INFRA_SAMPLE_SECONDS = config.env_int("LUCENT_INFRA_SAMPLE_SECONDS", 15, 1)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": config.env_str("LOG_LEVEL", "INFO")},
    "loggers": {"django.channels.server": {"level": "WARNING"}, "axes": {"level": "WARNING"}},
}

CELERY_BEAT_SCHEDULE = {
    "sample-lag": {"task": "lucent.sample_lag", "schedule": float(config.env_int("LUCENT_LAG_SAMPLE_SECONDS", 15, 1))},
    "drop-kept-generations": {"task": "lucent.drop_kept_generations", "schedule": 600.0},
    "requeue-orphaned-jobs": {"task": "lucent.requeue_orphaned_jobs", "schedule": 20.0},
    "recovery": {"task": "lucent.recovery_tick", "schedule": float(LUCENT_RECOVERY_EVERY_S)},
    "sample-infrastructure": {"task": "lucent.sample_infrastructure", "schedule": float(LUCENT_INFRA_SAMPLE_SECONDS)},
}
if LUCENT_CONSISTENCY_SAMPLE:
    CELERY_BEAT_SCHEDULE["consistency-sample"] = {"task": "lucent.scheduled_consistency_check",
                                                  "schedule": float(LUCENT_CONSISTENCY_EVERY_S)}
# The freshness canary: beat appends one every LUCENT_CANARY_EVERY_S seconds (0: none); a canary task not run
# within its period is dropped, not run late (a busy worker must not append a backlog of them at once).
LUCENT_CANARY_EVERY_S = config.env_int("LUCENT_CANARY_EVERY_S", 5, 0)
if LUCENT_CANARY_EVERY_S:
    CELERY_BEAT_SCHEDULE["append-canary"] = {"task": "lucent.append_canary", "schedule": float(LUCENT_CANARY_EVERY_S),
                                             "options": {"expires": float(LUCENT_CANARY_EVERY_S)}}
