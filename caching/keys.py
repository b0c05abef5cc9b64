"""The key scheme: how keys are shaped, prefixed and hashed. The library builds its own keys
here; an app builds its keys with these helpers in a module of its own (articles/keys.py).

Not every key string is built here: TieredCache (Django's cache API) takes its keys from its
callers through Django's make_key and only namespaces them here (value_key, index_key), and
invalidate.lua names the tag-index buckets it renames aside by appending "<sequence>:<n>" to
invalidated_set_prefix().

Three layers:

- *logical* keys, what callers pass to `fetch()`: "<prefix>:<parts>". The part before the first
  colon is the key prefix used as the `prefix` label of the metrics, so keep it a fixed word.
  User input (search queries, slugs) is hashed so keys stay short and safe (`client_part`,
  `response_key`).
- *app* keys (`app_key`): an app's own Redis data beside the cache (counters, locks, reports),
  under the CACHES KEY_PREFIX.
- *physical* Redis keys, built from an engine's namespace (caching/conf.py) and a logical key: the
  raw client does not apply Django's prefix, so the namespace carries the CACHES KEY_PREFIX and
  test runs and sites sharing one Redis never collide. Pub/sub ignores db indexes, so the channel
  carries the namespace and the db.
"""

from __future__ import annotations

import hashlib
import re

from caching import conf


def _digest(text: str) -> str:
    return hashlib.blake2b(text.encode(), digest_size=12).hexdigest()


def key_prefix_of(key: str) -> str:
    """The metrics label of a logical key: its first colon-separated word."""
    head, _, _ = key.partition(":")
    return head


def app_key(*parts) -> str:
    """A key of an app's own Redis data (counters, locks, reports; caching.app_data):
    "<KEY_PREFIX>:<part>:<part>...", so test runs and sites sharing one Redis never collide."""
    return ":".join((conf.get().key_prefix, *map(str, parts)))


def client_part(client: str) -> str:
    """A client address as a key part: an address as it is, anything else (a header's junk) hashed."""
    return client if _PLAIN_CLIENT.fullmatch(client) else _digest(client)


_PLAIN_CLIENT = re.compile(r"[0-9A-Fa-f.:]{1,45}")


# --- Response keys (HTTP response caching, caching/http.py) -------------------------------------


_PLAIN_TAIL = re.compile(r"[A-Za-z0-9_=&.-]{0,120}")


def response_key(route: str, url_kwargs: dict, params: dict) -> str:
    """The key of a public response: its route name, URL kwargs and the view's own validated
    query parameters, sorted. Prefix "resp.<route>" (the metrics label). A tail that is not
    short plain ASCII (search queries, long slugs) is hashed."""
    items = sorted(url_kwargs.items()) + sorted(params.items()) if params else sorted(url_kwargs.items())
    tail = "&".join(f"{k}={v}" for k, v in items)
    if not _PLAIN_TAIL.fullmatch(tail):
        tail = _digest(tail)
    return f"resp.{route}:{tail}"


# --- Physical Redis keys of an engine (caching/engine.py) -----------------------------------------
# `namespace` is the engine's: "<KEY_PREFIX>:nc<ENVELOPE_VERSION>" for the fetch face, "djtc:<KEY_PREFIX>"
# (or OPTIONS["NAMESPACE"]) for TieredCache. Everything one engine stores starts with it.


def value_key(namespace: str, key: str) -> str:
    """The Redis string holding one value (the fetch face's envelope of a logical key, or a
    TieredCache value of a Django-made key); also its L1 key."""
    return f"{namespace}:v:{key}"


def lease_key(namespace: str, key: str) -> str:
    """The Redis string holding the lease token of the process loading a key."""
    return f"{namespace}:l:{key}"


def sequence_key(namespace: str) -> str:
    """The namespace's invalidation sequence (an integer that only grows; orders L1 updates)."""
    return f"{namespace}:seq"


def rewind_key(namespace: str) -> str:
    """Set while a process re-applies the invalidations an older snapshot of Redis lost (its
    token; expires by itself if that process dies): subscribers keep L1 off until it is gone."""
    return f"{namespace}:rewind"


def epoch_key(namespace: str) -> str:
    """The run_id of the Redis server whose lifetime the namespace's data belongs to: set when
    a subscriber first meets an empty namespace; another server's id there on a resubscription
    means the data came from elsewhere (restored from a snapshot, a replica promoted)."""
    return f"{namespace}:epoch"


def tag_invalidated_key(namespace: str, tag: str) -> str:
    """Sequence number of the latest invalidation of a tag (expires after TAG_INVALIDATION_TTL)."""
    return f"{namespace}:ti:{tag}"


def tag_position_key(namespace: str, tag: str) -> str:
    """The highest database write position an invalidation of a tag followed (caching/fence.py;
    expires after TAG_INVALIDATION_TTL): a fill read below it may predate that write."""
    return f"{namespace}:tp:{tag}"


def write_position_key(namespace: str) -> str:
    """The highest database write position of any invalidation (same expiry)."""
    return f"{namespace}:wpos"


def write_floor_key(namespace: str) -> str:
    """The namespace's write-position floor (caching/fence.py; no expiry): no replica read below
    it fills. Absent (a Redis that restarted empty, FLUSHDB, eviction) means unknown: replica
    fills are refused until the fetch face seeds it with the primary's position of then."""
    return f"{namespace}:wfloor"


def write_log_key(namespace: str) -> str:
    """The namespace's write-position log (caching/fence.py; no expiry): a short list, newest
    first, of "<created unix s>:<highest write position recorded up to then>"."""
    return f"{namespace}:wlog"


def tag_bucket_key(namespace: str, tag: str, bucket: int) -> str:
    """Set of value keys carrying `tag` whose hard expiry falls in time bucket `bucket`."""
    return f"{namespace}:tk:{tag}:{bucket}"


def invalidated_set_prefix(namespace: str) -> str:
    """Prefix of the tag index buckets invalidate.lua renames aside to delete them in chunks."""
    return f"{namespace}:gone:"


def doorkeeper_key(namespace: str, period: int) -> str:
    """Bitmap of the keys whose fill was seen in doorkeeper period `period` (second-hit
    admission of kinds fed by user input, e.g. search results; fixed size, expires)."""
    return f"{namespace}:door:{int(period)}"


def index_key(namespace: str) -> str:
    """Sorted set of TieredCache's value keys scored by expiry (ms; +inf: none), for clear()."""
    return f"{namespace}:index"


def channel(namespace: str, db: int) -> str:
    """Pub/sub channel of the namespace's L1 invalidations (pub/sub ignores db: the db is in it)."""
    return f"{namespace}:db{int(db)}:inval"


def ack_key(namespace: str, seq: int) -> str:
    """List each process's subscriber pushes to once it applied invalidation `seq` (the writer
    waits for as many as received it; expires after 10 s)."""
    return f"{namespace}:ack:{int(seq)}"


def subscriber_client_name(namespace: str, pid: int) -> str:
    """CLIENT SETNAME of a process's subscription connection (ops and tests find it by name)."""
    return f"{namespace}-l1sub-{pid}"
