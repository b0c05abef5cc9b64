"""newsite settings, read from the environment (django-environ).

Defaults are the embedded `make run` setup: SQLite, Redis at 127.0.0.1:6379 when it answers,
DEBUG on only when the environment says so. Production (`make up`, deploy/) sets DATABASE_URL to
PostgreSQL, a real SECRET_KEY and ALLOWED_HOSTS.
"""

from pathlib import Path

import environ

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

DEBUG = env.bool("DEBUG", default=False)
# The development key (`make run`, tests): newsite.settings_production refuses it.
DEV_SECRET_KEY = "dev-insecure-newsite-key-change-me-in-production-0123456789"
SECRET_KEY = env("SECRET_KEY", default=DEV_SECRET_KEY)
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "newsite.ops.admin_site.NewsiteAdminConfig",  # django.contrib.admin, its index linking the Cache page
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.postgres",
    "django.contrib.sitemaps",  # its sitemap.xml / sitemap_index.xml templates (articles/sitemaps.py)
    "django.contrib.syndication",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "caching",
    "articles",
    "cdn",
    "newsite.ops",
    "django_structlog",  # request ids on every log line, carried into Celery tasks (newsite/ops/logs.py)
    "simple_history",  # article revisions (articles.models.Article.history; admin History page)
]
# A revision is reverted through articles.services.article_revert (an ordinary edit: version + 1,
# invalidation and purge), from the admin's "Revert to this revision" page; simple-history's own
# revert form (which saves the old instance as it is) stays off.
SIMPLE_HISTORY_REVERT_DISABLED = True

MIDDLEWARE = [
    # First: times the whole request by endpoint (newsite/ops/middleware.py, docs/observability.md).
    "newsite.ops.middleware.RequestLatencyMiddleware",
    # One request id per request (X-Request-ID: the client's if sane, else new) on every log line,
    # on the response and on the Celery tasks the request enqueues (newsite/ops/logs.py).
    "django_structlog.middlewares.RequestMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last: serves public GET/HEAD from the tiers after URL resolution (caching/middleware.py),
    # with the 503s of newsite/middleware.py (the database breaker: newsite/db_breaker.py).
    "newsite.middleware.ResponseCacheMiddleware",
]

ROOT_URLCONF = "newsite.urls"
WSGI_APPLICATION = "newsite.wsgi.application"
# newsite/wsgi.py wraps the application in the WSGI front (newsite/front.py, caching/front.py):
# L1 hits of public views answered before the middleware. Off: every request goes through Django.
CACHE_WSGI_FRONT = env.bool("CACHE_WSGI_FRONT", default=True)
# newsite/wsgi.py: what a worker built by its first GC_FREEZE_AFTER_REQUESTS requests is frozen
# out of the garbage collector's full scans (gc.freeze(), once). 0: only the import is frozen.
GC_FREEZE_AFTER_REQUESTS = env.int("GC_FREEZE_AFTER_REQUESTS", default=1000)

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

# --- Database --------------------------------------------------------------------------------
DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # psycopg 3 connection pool (Django >= 5.1). CONN_MAX_AGE must stay 0 with a pool.
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
        "min_size": env.int("DB_POOL_MIN", default=1),
        "max_size": env.int("DB_POOL_MAX", default=8),
        "timeout": env.float("DB_POOL_TIMEOUT", default=2.0),
    }
    DATABASES["default"]["OPTIONS"].setdefault("connect_timeout", env.int("DB_CONNECT_TIMEOUT", default=2))
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Redis / L2 ------------------------------------------------------------------------------
# redis-py picks the hiredis parser by itself when hiredis is installed (requirements.txt).
REDIS_URL = env("REDIS_URL", default="redis://127.0.0.1:6379/0")
CACHES = {
    "default": {
        "BACKEND": "django_redis.cache.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": env("CACHE_KEY_PREFIX", default="newsite"),
        "OPTIONS": {
            "CLIENT_CLASS": "django_redis.client.DefaultClient",
            "SOCKET_CONNECT_TIMEOUT": env.float("REDIS_CONNECT_TIMEOUT", default=0.25),
            "SOCKET_TIMEOUT": env.float("REDIS_SOCKET_TIMEOUT", default=0.25),
            "CONNECTION_POOL_KWARGS": {"max_connections": 64, "health_check_interval": 30},
        },
    },
}

# --- The tiered cache (caching/) -------------------------------------------------------------
# The library's names for this project: its settings are NEWSITE_CACHE and NEWSITE_CACHE_KINDS,
# its metrics newsite_cache_* and newsite_breaker_open (SPEC section 7, the dashboards).
TIERED_CACHE_SETTING = "NEWSITE_CACHE"
TIERED_CACHE_METRICS_NAMESPACE = "newsite"
# One table per kind of cached data: L2 TTL (seconds) and the HTTP Cache-Control policy
# (max_age for browsers, s_maxage for the edge, stale-while-revalidate, stale-if-error).
NEWSITE_CACHE_KINDS = {
    "article": {"ttl": 3600, "max_age": 60, "s_maxage": 3600, "swr": 60, "sie": 86400},
    "homepage_feed": {"ttl": 60, "max_age": 30, "s_maxage": 60, "swr": 30, "sie": 3600},
    "category_feed": {"ttl": 120, "max_age": 30, "s_maxage": 120, "swr": 60, "sie": 3600},
    "breaking_news": {"ttl": 30, "max_age": 0, "s_maxage": 30, "swr": 10, "sie": 600},
    "trending": {"ttl": 60, "max_age": 30, "s_maxage": 60, "swr": 30, "sie": 3600},
    "author": {"ttl": 600, "max_age": 60, "s_maxage": 600, "swr": 60, "sie": 86400},
    # User input makes the keys: a query is stored in L2 on its second fill (caching/conf.py).
    "search_results": {"ttl": 300, "max_age": 60, "s_maxage": 300, "swr": 60, "sie": 3600,
                       "admission": "second_hit"},
    "user_profile": {"ttl": 300, "max_age": 0, "s_maxage": 0, "swr": 0, "sie": 0},
    # Feeds (RSS/Atom) are polled; sitemaps are read by crawlers; both are purged by tag on change.
    "feed": {"ttl": 300, "max_age": 60, "s_maxage": 300, "swr": 60, "sie": 86400},
    "sitemap": {"ttl": 3600, "max_age": 300, "s_maxage": 3600, "swr": 300, "sie": 86400},
    # The Google News sitemap (last 48 h) turns over quickly: crawlers should see new items soon.
    "news_sitemap": {"ttl": 300, "max_age": 60, "s_maxage": 300, "swr": 60, "sie": 86400},
    # robots.txt depends on no data (only on SITE_URL): a day everywhere.
    "robots": {"ttl": 86400, "max_age": 3600, "s_maxage": 86400, "swr": 3600, "sie": 604800},
    # The freshness canary (newsite/ops/canary.py): short, but longer than FRESHNESS_CANARY_MAX_AGE
    # so that a purge that never arrives shows as a stale edge instead of expiring unnoticed; no
    # stale serving, so what the canary reads is what the invalidations left.
    "canary": {"ttl": 300, "max_age": 0, "s_maxage": 300, "swr": 0, "sie": 0},
    # "negative" (cached 404s) has its default in caching/conf.py; add a row here to override it.
}
# The edge's VCL, whose generated block `manage.py edge_vcl --check/--write` keeps in step with
# the public views (caching/edge_vcl.py).
TIERED_CACHE_VCL_PATH = BASE_DIR / "deploy" / "varnish" / "default.vcl"
# Everything not set here keeps its default, declared once in caching/conf.py (ENGINE_DEFAULTS,
# FETCH_DEFAULTS) and documented in docs/caching.md. The environment overrides the options below
# (README's configuration table); an unset variable leaves the library's default.
_CACHE_FROM_ENV = {
    "L1_TTL": ("CACHE_L1_TTL", env.int),
    # A process that has not heard Redis for this long stops answering from L1 (docs/scaling.md).
    "L1_TRUST_SECONDS": ("CACHE_L1_TRUST_SECONDS", env.float),
    # How long a write waits for every process's L1 to acknowledge its invalidation.
    "BROADCAST_WAIT": ("CACHE_BROADCAST_WAIT", env.float),
    "L1_MAX_ENTRIES": ("CACHE_L1_MAX_ENTRIES", env.int),
    "L1_MAX_BYTES": ("CACHE_L1_MAX_BYTES", env.int),
    # Switches for the benchmark modes: ENABLED=False -> every call goes straight to the loader;
    # L1_ENABLED=False -> L2 only; L2_ENABLED=False -> L1 only, no Redis (the faults scenario's
    # "L2 disabled" baseline; no L1 broadcast, so not for production).
    "ENABLED": ("CACHE_ENABLED", env.bool),
    "L1_ENABLED": ("CACHE_L1_ENABLED", env.bool),
    "L2_ENABLED": ("CACHE_L2_ENABLED", env.bool),
}
NEWSITE_CACHE = {option: cast(name) for option, (name, cast) in _CACHE_FROM_ENV.items() if name in env}
# A public miss over the client's budget (newsite/throttle.py) is a loader error: a stale entry
# answers it when the tiers have one, else a 429.
NEWSITE_CACHE["LOADER_ERRORS"] = ["django.db.Error", "newsite.throttle.OverBudget"]

# --- Celery ----------------------------------------------------------------------------------
CELERY_BROKER_URL = env("CELERY_BROKER_URL", default="redis://127.0.0.1:6379/1")
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=False)
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_TIME_LIMIT = 120
CELERY_TASK_SOFT_TIME_LIMIT = 100
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BEAT_SCHEDULE = {
    "articles-flush-view-counts": {"task": "articles.flush_view_counts", "schedule": env.float("VIEW_FLUSH_SECONDS", default=5.0)},
}
# Scheduled go-lives, take-downs and window edges are fired (invalidated in every tier, purged at
# the edge) by a run every SCHEDULE_TICK_SECONDS; the capped lifetimes make every tier exact at
# the moment already (articles/schedule.py, docs/http.md "Time"). A late run is dropped: the next
# one fires everything since the last.
SCHEDULE_TICK_SECONDS = env.float("SCHEDULE_TICK_SECONDS", default=1.0)
CELERY_BEAT_SCHEDULE["articles-fire-scheduled-changes"] = {
    "task": "articles.fire_scheduled_changes",
    "schedule": SCHEDULE_TICK_SECONDS,
    "options": {"expires": max(SCHEDULE_TICK_SECONDS, 1.0)},
}
# The freshness canary (newsite/ops/canary.py, docs/observability.md): written and read back from
# every tier every FRESHNESS_CANARY_EVERY s; /health/cache/ is 503 when a tier's canary is older
# than FRESHNESS_CANARY_MAX_AGE s (0: never). The app's own port (L1 of every worker) and the
# edges (NEWSITE_EDGE_URL, comma-separated; none: the edge is not checked).
FRESHNESS_CANARY_EVERY = env.float("FRESHNESS_CANARY_EVERY", default=15.0)
FRESHNESS_CANARY_MAX_AGE = env.float("FRESHNESS_CANARY_MAX_AGE", default=120.0)
FRESHNESS_CANARY_TIMEOUT = env.float("FRESHNESS_CANARY_TIMEOUT", default=10.0)
_bind = env("WEB_BIND", default=env("GUNICORN_BIND", default="127.0.0.1:8000"))
FRESHNESS_CANARY_APP_URL = env(
    "NEWSITE_APP_URL", default="" if _bind.startswith("unix:") else "http://" + _bind.replace("0.0.0.0", "127.0.0.1")
)
FRESHNESS_CANARY_EDGE_URLS = env.list("NEWSITE_EDGE_URL", default=[])
if FRESHNESS_CANARY_EVERY > 0:
    CELERY_BEAT_SCHEDULE["ops-freshness-canary"] = {
        "task": "ops.freshness_canary",
        "schedule": FRESHNESS_CANARY_EVERY,
        "options": {"expires": FRESHNESS_CANARY_EVERY},  # a late run is dropped, never piled up
    }
# warm_cache fills this many of the most read articles (detail JSON + page).
WARM_CACHE_TOP_ARTICLES = env.int("WARM_CACHE_TOP_ARTICLES", default=200)
# warm_cache --all fills every published article's JSON detail in batches of this many: one query
# and one pipeline of fills per batch (articles/warm.py, docs/caching.md "Bulk fetch and warming").
WARM_CACHE_BATCH_SIZE = env.int("WARM_CACHE_BATCH_SIZE", default=500)
# warm_cache then requests every page it warmed through the edge at this base URL (the one readers
# use: its host is in the edge's cache key), this many at a time; "" (default): no edge warm.
# `make up` passes its Varnish (--edge); the periodic run below never warms the edge.
WARM_CACHE_EDGE_URL = env.str("WARM_CACHE_EDGE_URL", default="")
WARM_CACHE_EDGE_CONCURRENCY = env.int("WARM_CACHE_EDGE_CONCURRENCY", default=8)
# Every WARM_CACHE_ALL_EVERY s (0: never), beat runs warm_cache --all reloading what expires within
# 1.5 periods, so the long tail never falls out of L2 an article TTL after the deploy's warm
# (docs/caching.md, "Bulk fetch and warming"). Off by default: it costs a query per 500 articles
# per TTL, forever.
WARM_CACHE_ALL_EVERY = env.float("WARM_CACHE_ALL_EVERY", default=0.0)
if WARM_CACHE_ALL_EVERY > 0:
    CELERY_BEAT_SCHEDULE["articles-warm-cache-all"] = {
        "task": "articles.warm_cache",
        "schedule": WARM_CACHE_ALL_EVERY,
        "kwargs": {"all_articles": True, "refresh_within": 1.5 * WARM_CACHE_ALL_EVERY, "edge_url": ""},
        "options": {"expires": WARM_CACHE_ALL_EVERY},  # a late run is dropped, never piled up
    }

# --- CDN purges (cdn/, docs/cdn.md) ----------------------------------------------------------
# Wagtail-style: alias -> {"BACKEND": dotted path, ...params}. Set CDN_BACKENDS here, or use the
# env shortcuts below; with none configured, the dummy backend logs purges.
CDN_BACKENDS = {}
if env("VARNISH_PURGE_URL", default=""):
    CDN_BACKENDS["varnish"] = {
        "BACKEND": "cdn.backends.varnish.VarnishBackend",
        "LOCATION": env.list("VARNISH_PURGE_URL"),
        "SOFT": env.bool("VARNISH_SOFT_PURGE", default=False),
    }
if env("FASTLY_SERVICE_ID", default="") and env("FASTLY_API_TOKEN", default=""):
    CDN_BACKENDS["fastly"] = {
        "BACKEND": "cdn.backends.fastly.FastlyBackend",
        "SERVICE_ID": env("FASTLY_SERVICE_ID"),
        "API_TOKEN": env("FASTLY_API_TOKEN"),
        "SOFT": env.bool("FASTLY_SOFT_PURGE", default=False),
    }
if env("CLOUDFLARE_ZONE_ID", default="") and env("CLOUDFLARE_API_TOKEN", default=""):
    CDN_BACKENDS["cloudflare"] = {
        "BACKEND": "cdn.backends.cloudflare.CloudflareBackend",
        "ZONE_ID": env("CLOUDFLARE_ZONE_ID"),
        "API_TOKEN": env("CLOUDFLARE_API_TOKEN"),
    }
if not CDN_BACKENDS:
    CDN_BACKENDS = {"default": {"BACKEND": "cdn.backends.dummy.DummyBackend"}}
CDN_OUTBOX = {
    "BACKOFF_BASE": env.float("CDN_OUTBOX_BACKOFF_BASE", default=2.0),
    "MAX_ATTEMPTS": env.int("CDN_OUTBOX_MAX_ATTEMPTS", default=50),
    # A hot article's counts (likes, comments) are purged at most once a second: a like loop
    # cannot spend the CDN's purge quota (issue 28.1); the app tiers still change at once.
    "COALESCE": {"article-counts:": env.float("CDN_COUNTS_PURGE_WINDOW", default=1.0)},
    # A write returns once every Varnish node confirmed its purge, waiting this long at most in
    # all; then the drain delivers (cdn/edge_ack.py). 0: every purge through the drain.
    "EDGE_ACK_WAIT": env.float("CDN_EDGE_ACK_WAIT", default=0.15),
    # BATCH_SIZE, BACKOFF_MAX and RETAIN_DONE_DAYS have their defaults in cdn/outbox.py DEFAULTS,
    # documented in docs/cdn.md; set a key here to override it.
}
# Every second (one indexed SELECT when nothing waits): a write whose host lost Redis and the
# broker as it committed reaches the other hosts' tiers and the edge within ~2 s (issue 27,
# docs/scaling.md). A re-drive not started within its period is dropped (the next one runs).
CDN_OUTBOX_REDRIVE_SECONDS = env.float("CDN_OUTBOX_REDRIVE_SECONDS", default=1.0)
CELERY_BEAT_SCHEDULE["cdn-outbox-redrive"] = {
    "task": "cdn.purge_outbox_redrive", "schedule": CDN_OUTBOX_REDRIVE_SECONDS,
    "options": {"expires": CDN_OUTBOX_REDRIVE_SECONDS},
}
CELERY_BEAT_SCHEDULE["cdn-outbox-prune"] = {"task": "cdn.purge_outbox_prune", "schedule": 3600.0}

# --- DRF / OpenAPI ---------------------------------------------------------------------------
# --- Per-client budgets (newsite/throttle.py, issue 28) ------------------------------------------
# Our proxies (networks): Varnish, nginx, a load balancer. A request's client is the rightmost
# address of X-Forwarded-For + REMOTE_ADDR that is not in them (newsite/throttle.py). Default:
# loopback and the private ranges, where a deployment's own hosts live.
TRUSTED_PROXIES = env.list("TRUSTED_PROXIES", default=[
    "127.0.0.0/8", "::1/128", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7", "fe80::/10",
])
# "N/S": N per S-second window and client. public_miss: public reads that no tier held (the
# view runs: database work); views: POST /api/articles/{id}/views/. "off" disables one.
THROTTLE = {
    "public_miss": env("THROTTLE_PUBLIC_MISS", default="120/60"),
    "views": env("THROTTLE_VIEWS", default="60/60"),
}
# Networks never charged (CIDR list): your monitoring, warmers, office. The test suite and the
# benchmark exempt loopback (Makefile TEST_ENV, bench/settings.py).
THROTTLE_EXEMPT = [net for net in env.list("THROTTLE_EXEMPT", default=[]) if net]
# A client's read of an article counts once in this many seconds (0: every POST counts).
VIEW_DEDUPE_SECONDS = env.int("VIEW_DEDUPE_SECONDS", default=600)
# How long a preview share link works (articles/preview.py), unless the article's status changes.
PREVIEW_LINK_SECONDS = env.int("PREVIEW_LINK_SECONDS", default=3 * 24 * 3600)

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.AllowAny"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    # drf-spectacular's, plus each cached public view's query parameters from its cache policy.
    "DEFAULT_SCHEMA_CLASS": "articles.schema.AutoSchema",
    "EXCEPTION_HANDLER": "articles.errors.api_exception_handler",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}
if DEBUG:
    REST_FRAMEWORK["DEFAULT_RENDERER_CLASSES"].append("rest_framework.renderers.BrowsableAPIRenderer")
SPECTACULAR_SETTINGS = {
    "TITLE": "newsite API",
    "DESCRIPTION": "Public, personal and editorial endpoints of the newsite backend.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

# --- Auth, i18n, static ----------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]
LANGUAGE_CODE = "en-us"
# The site's time zone: pages show human dates in it (<time datetime> stays UTC ISO 8601).
TIME_ZONE = env("TIME_ZONE", default="UTC")
# The public origin of the site: feeds, sitemaps, canonical and OpenGraph URLs are absolute and
# built from it, never from the request's Host (a cached public response is the same for every
# reader, and the app's cache key does not carry the host).
SITE_URL = env("SITE_URL", default="http://127.0.0.1:8000").rstrip("/")
SITE_NAME = env("SITE_NAME", default="newsite")
USE_I18N = True
USE_TZ = True
# Static files (docs/http.md, "Static files and images"): `collectstatic` writes content-hashed
# copies (name.<12 hex>.css, gzip beside them) and a manifest; whitenoise serves them immutable
# for a year, anything unhashed for a minute (newsite/file_cache.py). Before any collectstatic
# (make run, tests) the storage answers the plain names (newsite/files.py).
STATIC_URL = "static/"
STATIC_ROOT = env.path("STATIC_ROOT", default=BASE_DIR / "staticfiles")
# Uploaded images (hero images and their renditions, articles/images.py): FileSystemStorage under
# MEDIA_ROOT (made on the first save), served at MEDIA_URL by newsite/files.py. An S3-compatible
# bucket is the "default" storage of django-storages instead (README, "Images").
MEDIA_URL = env("MEDIA_URL", default="/media/")
MEDIA_ROOT = env.path("MEDIA_ROOT", default=BASE_DIR / ".run" / "media")
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "newsite.files.ManifestStaticStorage"},
}
# A file whose name carries its content's hash never changes: a year, immutable, in the browser
# and at the edge (a deploy or a new image changes the name; nothing is purged). Anything else: a
# minute (newsite/file_cache.py).
from newsite import file_cache as _file_cache  # noqa: E402

WHITENOISE_ADD_HEADERS_FUNCTION = _file_cache.whitenoise_headers

# Logs: one logfmt line per event through structlog (newsite/ops/logs.py), stdlib records of
# Django, Celery and our modules included, each with the request_id (and task_id) in context.
from newsite.ops import logs as _logs  # noqa: E402

_logs.configure_structlog()
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"logfmt": {"()": "newsite.ops.logs.logfmt_formatter"}},
    "filters": {"skip_answered_503": {"()": "newsite.ops.logs.SkipAnswered503"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "logfmt"}},
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", default="WARNING")},
    "loggers": {
        "newsite": {"level": env("LOG_LEVEL", default="INFO"), "propagate": True},
        "caching": {"level": env("LOG_LEVEL", default="INFO"), "propagate": True},
        "cdn": {"level": env("LOG_LEVEL", default="INFO"), "propagate": True},
        # request_started / request_finished (an access log): REQUEST_LOG_LEVEL=INFO to see them.
        "django_structlog": {"level": env("REQUEST_LOG_LEVEL", default="WARNING"), "propagate": True},
        # One line per 503, the access log's: not django.request's too (newsite.ops.logs).
        "django.request": {"filters": ["skip_answered_503"], "propagate": True},
    },
}
# django-structlog: the request id rides on the tasks a request enqueues (a header of the task
# message), bound again in the worker (newsite/celery.py adds its boot step). No user id or IP
# binding: no query or lookup per request; 4xx are INFO (junk traffic would flood WARNING).
DJANGO_STRUCTLOG_CELERY_ENABLED = True
DJANGO_STRUCTLOG_USER_ID_FIELD = None
DJANGO_STRUCTLOG_IP_LOGGING_ENABLED = False
DJANGO_STRUCTLOG_STATUS_4XX_LOG_LEVEL = 20  # logging.INFO

# --- Past one machine: Redis Sentinel / TLS, read replicas (newsite/settings_scaling.py) -----
# All off unless their variables are set; docs/scaling.md.
from newsite import settings_scaling as _scaling  # noqa: E402

_REDIS_SENTINELS = _scaling.parse_host_ports(env.list("REDIS_SENTINELS", default=[]))
_REDIS_SENTINEL_MASTER = env("REDIS_SENTINEL_MASTER", default="newsite")
_REDIS_SENTINEL_PASSWORD = env("REDIS_SENTINEL_PASSWORD", default="")
_REDIS_TLS_CA_FILE = env("REDIS_TLS_CA_FILE", default="")
CACHES["default"] = _scaling.redis_cache(
    CACHES["default"], redis_url=REDIS_URL, sentinels=_REDIS_SENTINELS, master=_REDIS_SENTINEL_MASTER,
    sentinel_password=_REDIS_SENTINEL_PASSWORD, tls_ca_file=_REDIS_TLS_CA_FILE,
)
CELERY_BROKER_URL, CELERY_BROKER_TRANSPORT_OPTIONS, _BROKER_USE_SSL = _scaling.celery_broker(
    CELERY_BROKER_URL, sentinels=_REDIS_SENTINELS, master=_REDIS_SENTINEL_MASTER,
    sentinel_password=_REDIS_SENTINEL_PASSWORD, tls_ca_file=_REDIS_TLS_CA_FILE,
)
if _BROKER_USE_SSL:
    CELERY_BROKER_USE_SSL = _BROKER_USE_SSL

_REPLICA_URLS = env.list("DATABASE_REPLICA_URLS", default=[])
DATABASE_READ_REPLICAS = []
if _REPLICA_URLS:
    _replicas = _scaling.replica_databases(DATABASES["default"], [env.db_url_config(u) for u in _REPLICA_URLS])
    DATABASES.update(_replicas)
    DATABASE_READ_REPLICAS = list(_replicas)
    DATABASE_ROUTERS = ["newsite.db_routers.PrimaryReplicaRouter"]
    # Read-your-writes for the request that wrote and, for a few seconds, the same client.
    MIDDLEWARE.insert(1, "newsite.db_routers.ReadYourWritesMiddleware")
    DATABASE_REPLICA_PIN_SECONDS = env.int("DATABASE_REPLICA_PIN_SECONDS", default=5)
    # A replica whose replay position is below the newest write this process knew that many
    # seconds ago is skipped (its requests read the primary).
    DATABASE_REPLICA_MAX_LAG = env.float("DATABASE_REPLICA_MAX_LAG", default=30.0)
    # Cache fills fenced by the WAL position (caching/fence.py): asynchronous replicas are safe.
    NEWSITE_CACHE["REPLICA_FENCE"] = "newsite.db_routers.WalFence"
    NEWSITE_CACHE["REPLICA_BEHIND"] = env("CACHE_REPLICA_BEHIND", default="reread")
    # An option, no longer the freshness mechanism: e.g. "remote_apply" with the replicas named in
    # the primary's synchronous_standby_names makes a commit wait until they applied it (so the
    # fence never has to refuse a fill); empty (the default) leaves the server's setting.
    _sync = env("DATABASE_REPLICA_SYNC_COMMIT", default="")
    if _sync:
        DATABASES["default"].setdefault("OPTIONS", {})["options"] = f"-c synchronous_commit={_sync}"
