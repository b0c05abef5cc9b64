"""Settings builders for running past one machine (docs/scaling.md). Pure functions of the
environment, called from the end of newsite/settings.py; with none of their variables set they
change nothing.

- REDIS_SENTINELS="host:port,host:port,..." (+ REDIS_SENTINEL_MASTER, REDIS_SENTINEL_PASSWORD):
  the cache (django-redis's SentinelConnectionFactory), hence the caching library's raw client and
  its pub/sub subscriber, and the Celery broker (kombu's sentinel:// transport) follow the master
  that the sentinels elect.
- rediss:// URLs with a password: TLS for the cache and the broker (REDIS_TLS_CA_FILE to verify
  the server with a private CA).
- DATABASE_REPLICA_URLS="postgres://...,postgres://...": read replicas as database aliases
  replica_0..n, routed by newsite.db_routers (reads to replicas, read-your-writes).
"""

from __future__ import annotations

import ssl
from urllib.parse import quote, unquote, urlsplit

SENTINEL_FACTORY = "django_redis.pool.SentinelConnectionFactory"


def parse_host_ports(value: list[str]) -> list[tuple[str, int]]:
    """["h1:26379", "h2"] -> [("h1", 26379), ("h2", 26379)]."""
    pairs = []
    for item in value:
        item = item.strip()
        if not item:
            continue
        host, _, port = item.rpartition(":") if ":" in item else (item, "", "26379")
        pairs.append((host.strip("[]"), int(port)))
    return pairs


def _auth_and_db(url: str) -> tuple[str, str, str]:
    """(scheme, "user:password@" or "", db) of a redis:// or rediss:// URL."""
    parts = urlsplit(url)
    auth = ""
    if parts.password:
        # urlsplit keeps the %-escapes: unquote then quote, so they are not escaped twice.
        user = quote(unquote(parts.username or ""), safe="")
        auth = f"{user}:{quote(unquote(parts.password), safe='')}@"
    db = parts.path.lstrip("/") or "0"
    return parts.scheme, auth, db


def redis_cache(cache: dict, *, redis_url: str, sentinels: list[tuple[str, int]], master: str,
                sentinel_password: str, tls_ca_file: str) -> dict:
    """The django-redis CACHES entry for REDIS_URL, through Sentinel when `sentinels` is set.

    With Sentinel, LOCATION names the master group instead of a host
    (redis://:password@<master>/<db>). The client stays django-redis's DefaultClient with one
    master pool: its SentinelClient would also read from replicas, and a replica that has not yet
    replayed an invalidation would serve entries the invalidation removed.
    """
    cache = {**cache, "OPTIONS": {**cache.get("OPTIONS", {})}}
    options = cache["OPTIONS"]
    pool_kwargs = dict(options.get("CONNECTION_POOL_KWARGS", {}))
    scheme, auth, db = _auth_and_db(redis_url)
    if scheme == "rediss" and tls_ca_file:
        pool_kwargs["ssl_ca_certs"] = tls_ca_file
    if sentinels:
        if scheme == "rediss":
            # redis-py's from_url would pin a plain SSLConnection for rediss:// and bypass the
            # sentinels; ssl=True makes SentinelConnectionPool use its Sentinel-managed SSL class.
            scheme = "redis"
            pool_kwargs["ssl"] = True
        cache["LOCATION"] = f"{scheme}://{auth}{master}/{db}"
        options["CONNECTION_FACTORY"] = SENTINEL_FACTORY
        options["SENTINELS"] = sentinels
        sentinel_kwargs = {
            "socket_timeout": options.get("SOCKET_TIMEOUT", 0.25),
            "socket_connect_timeout": options.get("SOCKET_CONNECT_TIMEOUT", 0.25),
        }
        if sentinel_password:
            sentinel_kwargs["password"] = sentinel_password
        options["SENTINEL_KWARGS"] = sentinel_kwargs
    options["CONNECTION_POOL_KWARGS"] = pool_kwargs
    return cache


def celery_broker(broker_url: str, *, sentinels: list[tuple[str, int]], master: str,
                  sentinel_password: str, tls_ca_file: str) -> tuple[str, dict, dict | None]:
    """(broker URL, broker_transport_options, broker_use_ssl) for CELERY_BROKER_URL.

    With REDIS_SENTINELS set, a redis:// broker URL is rewritten to kombu's
    sentinel://[:pw@]h1:p1;sentinel://[:pw@]h2:p2/<db> with the same password and db, and
    master_name in the transport options. An explicit sentinel:// URL is kept as it is.
    """
    options: dict = {}
    use_ssl = None
    scheme = urlsplit(broker_url).scheme
    if sentinels and scheme in ("redis", "rediss"):
        _, auth, db = _auth_and_db(broker_url)
        broker_url = ";".join(f"sentinel://{auth}{host}:{port}/{db}" for host, port in sentinels)
        scheme = "sentinel"
    if scheme == "sentinel":
        options["master_name"] = master
        if sentinel_password:
            options["sentinel_kwargs"] = {"password": sentinel_password}
    if scheme == "rediss":
        # kombu refuses rediss:// without an explicit certificate policy.
        use_ssl = {"ssl_cert_reqs": ssl.CERT_REQUIRED}
        if tls_ca_file:
            use_ssl["ssl_ca_certs"] = tls_ca_file
    return broker_url, options, use_ssl


def replica_databases(primary: dict, replica_configs: list[dict]) -> dict[str, dict]:
    """Aliases replica_0..n, each with the primary's engine options (pool, timeouts) and, under
    tests, TEST MIRROR of default (Django then points them at the test database)."""
    aliases = {}
    for index, config in enumerate(replica_configs):
        entry = {**config}
        entry["CONN_MAX_AGE"] = primary.get("CONN_MAX_AGE", 0)
        options = {**primary.get("OPTIONS", {}), **config.get("OPTIONS", {})}
        options.pop("options", None)  # the primary's synchronous_commit option is for writes
        entry["OPTIONS"] = options
        entry["TEST"] = {"MIRROR": "default"}
        aliases[f"replica_{index}"] = entry
    return aliases
