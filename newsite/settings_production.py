"""Production settings: newsite.settings hardened for serving behind TLS (nginx -> Varnish ->
gunicorn, deploy/). `DJANGO_SETTINGS_MODULE=newsite.settings_production`.

Required environment: SECRET_KEY (>= 50 characters), ALLOWED_HOSTS, DATABASE_URL (PostgreSQL).
Optional: CSRF_TRUSTED_ORIGINS (default https://<each allowed host>), SECURE_HSTS_SECONDS,
SECURE_HSTS_PRELOAD, SECURE_SSL_REDIRECT, REDIS_URL (rediss://:password@host:port/db for TLS),
REDIS_SENTINELS, DATABASE_REPLICA_URLS (docs/scaling.md).

TLS ends at nginx, which sets X-Forwarded-Proto on every request it forwards (overwriting what a
client sent); Django trusts that header (SECURE_PROXY_SSL_HEADER), so the app port must only be
reachable through nginx and Varnish.
"""

from django.core.exceptions import ImproperlyConfigured

from newsite.settings import *  # noqa: F403
from newsite.settings import DATABASES, DEV_SECRET_KEY, MIDDLEWARE, env

DEBUG = False

# Keys that are public (in this repository, in Django's startproject template, in examples):
# signing with one lets anyone forge sessions and password-reset links.
KNOWN_SECRET_KEYS = frozenset({DEV_SECRET_KEY, "change-me", "changeme", "secret"})

SECRET_KEY = env("SECRET_KEY")  # no default: ImproperlyConfigured when missing
# ... and the placeholders examples ship (docker-compose's once passed this guard: issue 28.8).
PLACEHOLDER_MARKERS = ("change-me", "changeme", "insecure", "local-only", "replace-me", "example")
if SECRET_KEY in KNOWN_SECRET_KEYS or any(marker in SECRET_KEY.lower() for marker in PLACEHOLDER_MARKERS):
    raise ImproperlyConfigured("SECRET_KEY is a known development key: set a random one (>= 50 characters).")
if len(SECRET_KEY) < 50 or len(set(SECRET_KEY)) < 5:
    raise ImproperlyConfigured("SECRET_KEY must be a random string of at least 50 characters.")

ALLOWED_HOSTS = env.list("ALLOWED_HOSTS")
if not ALLOWED_HOSTS:
    raise ImproperlyConfigured("ALLOWED_HOSTS must name the site's host names.")
CSRF_TRUSTED_ORIGINS = env.list(
    "CSRF_TRUSTED_ORIGINS",
    default=[f"https://{host.lstrip('.')}" for host in ALLOWED_HOSTS if host != "*"],
)

if DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql":
    raise ImproperlyConfigured("Production runs on PostgreSQL: set DATABASE_URL=postgres://...")

# --- TLS (terminated by nginx) ---------------------------------------------------------------
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=True)
# Varnish health probes and Prometheus scrapes come over plain HTTP on the private network.
SECURE_REDIRECT_EXEMPT = [r"^health/", r"^metrics$"]
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31_536_000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=True)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=True)
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SESSION_COOKIE_SECURE = True
SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_SECURE = True
X_FRAME_OPTIONS = "DENY"

# --- Static files: collected once per deploy, served by nginx (or whitenoise behind it) -----
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}

MIDDLEWARE = list(MIDDLEWARE)
