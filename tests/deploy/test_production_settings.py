"""newsite.settings_production: `manage.py check --deploy` is clean, required values are required,
and the Sentinel / TLS / replica settings builders produce what django-redis and kombu expect."""

from __future__ import annotations

import re
import secrets
import subprocess
import sys

import pytest

from newsite import settings_scaling
from tests.support import REPO, app_env


def production_env(**extra):
    env = app_env(
        DJANGO_SETTINGS_MODULE="newsite.settings_production",
        SECRET_KEY=secrets.token_urlsafe(64),
        ALLOWED_HOSTS="news.example.com,www.news.example.com",
        REDIS_URL="rediss://:redis-password@redis.internal:6380/0",
    )
    env.pop("DEBUG", None)
    env.update(extra)
    return env


def manage(*args, env):
    return subprocess.run([sys.executable, "manage.py", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=60)


@pytest.mark.slow
@pytest.mark.django_db
def test_check_deploy_passes_with_production_settings():
    from django.db import connection

    if connection.vendor != "postgresql":
        pytest.skip("production settings require PostgreSQL")
    result = manage("check", "--deploy", env=production_env())
    output = result.stdout + result.stderr
    print("\n" + output)
    assert result.returncode == 0, output
    # No warning at all from the deploy checks (security.*, the API schema, ...).
    assert re.findall(r"\(([\w.]+\.W\d+)\)", output) == [], output
    assert "System check identified no issues" in output, output


@pytest.mark.slow
def test_production_refuses_to_start_without_a_secret_key():
    env = production_env()
    del env["SECRET_KEY"]
    result = manage("check", env=env)
    assert result.returncode != 0
    assert "SECRET_KEY" in result.stderr


@pytest.mark.parametrize("key", [
    "compose-local-only-key-change-me-0123456789-abcdefghijklmnopqrstuvwxyz",  # docker-compose's, once
    "django-insecure-" + "x1y2z3" * 10,
    "replace-me-with-a-long-random-string-of-fifty-or-more-characters",
])
def test_production_refuses_a_placeholder_secret_key(key):
    result = manage("check", env=production_env(SECRET_KEY=key))
    assert result.returncode != 0 and "known development key" in result.stderr


def test_compose_ships_no_secret_key():
    compose = (REPO / "docker-compose.yml").read_text()
    assert "SECRET_KEY: ${SECRET_KEY:?" in compose


def test_production_security_values():
    result = subprocess.run(
        [sys.executable, "-c",
         "import django; django.setup(); from django.conf import settings as s; "
         "print(s.DEBUG, s.SECURE_SSL_REDIRECT, s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE, "
         "s.SECURE_HSTS_SECONDS, s.SECURE_PROXY_SSL_HEADER, s.CSRF_TRUSTED_ORIGINS, "
         "s.CACHES['default']['LOCATION'])"],
        cwd=REPO, env=production_env(DATABASE_URL="postgres://127.0.0.1:5432/newsite"),
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == (
        "False True True True 31536000 ('HTTP_X_FORWARDED_PROTO', 'https') "
        "['https://news.example.com', 'https://www.news.example.com'] "
        "rediss://:redis-password@redis.internal:6380/0"
    )


def test_sentinel_cache_and_broker_settings():
    sentinels = settings_scaling.parse_host_ports(["10.0.0.1:26379", "10.0.0.2:26380", "10.0.0.3"])
    assert sentinels == [("10.0.0.1", 26379), ("10.0.0.2", 26380), ("10.0.0.3", 26379)]
    cache = settings_scaling.redis_cache(
        {"BACKEND": "django_redis.cache.RedisCache", "LOCATION": "x", "OPTIONS": {"SOCKET_TIMEOUT": 0.25}},
        redis_url="redis://:p%40ss@ignored:6379/4", sentinels=sentinels, master="news",
        sentinel_password="sentinel-pw", tls_ca_file="",
    )
    assert cache["LOCATION"] == "redis://:p%40ss@news/4"
    assert cache["OPTIONS"]["CONNECTION_FACTORY"] == "django_redis.pool.SentinelConnectionFactory"
    assert cache["OPTIONS"]["SENTINELS"] == sentinels
    assert cache["OPTIONS"]["SENTINEL_KWARGS"]["password"] == "sentinel-pw"
    tls = settings_scaling.redis_cache(
        {"LOCATION": "x", "OPTIONS": {}}, redis_url="rediss://:pw@ignored:6380/0", sentinels=sentinels,
        master="news", sentinel_password="", tls_ca_file="/ca.pem",
    )
    assert tls["LOCATION"] == "redis://:pw@news/0"
    assert tls["OPTIONS"]["CONNECTION_POOL_KWARGS"] == {"ssl": True, "ssl_ca_certs": "/ca.pem"}
    url, options, use_ssl = settings_scaling.celery_broker(
        "redis://:pw@ignored:6379/3", sentinels=sentinels[:2], master="news", sentinel_password="", tls_ca_file="")
    assert url == "sentinel://:pw@10.0.0.1:26379/3;sentinel://:pw@10.0.0.2:26380/3"
    assert options == {"master_name": "news"} and use_ssl is None
    url, options, use_ssl = settings_scaling.celery_broker(
        "rediss://:pw@redis:6380/1", sentinels=[], master="news", sentinel_password="", tls_ca_file="/ca.pem")
    assert url == "rediss://:pw@redis:6380/1" and options == {}
    assert use_ssl["ssl_ca_certs"] == "/ca.pem"
