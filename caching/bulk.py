"""The fetch face in bulk (Zulip's generic_bulk_cached_fetch): L1, then one Redis round trip for
all the rest, then ONE bulk load for the misses, then one pipelined backfill.

Bulk misses take no lease (a stampede on a whole page of keys costs one bulk query per process
at worst); stale-set protection still applies: each fill is refused if a tag of it was
invalidated after the round trip that read the sequence.
"""

from __future__ import annotations

import logging
import time

import redis

from caching import conf as conf_module
from caching import keys, metrics
from caching.envelope import Envelope, is_lease
from caching.fetcher import FetchFace, Filled, current, resolve_tags
from caching.l1 import FillGuard
from caching.l2 import L2Unavailable

logger = logging.getLogger(__name__)


def _read(face: FetchFace, missing: list[str]) -> tuple[list, int | None]:
    """The envelopes of `missing` and the namespace sequence, in one round trip (None: no Redis)."""
    ns = face.namespace
    vkeys = [keys.value_key(ns, k) for k in missing]
    client = face.l2.client

    def run():
        pipe = client.pipeline(transaction=False)
        pipe.mget(vkeys)
        pipe.get(face.engine.sequence_key)
        return pipe.execute()

    try:
        raws, seq = face.l2.call(run)
    except L2Unavailable:
        return [None] * len(missing), None
    return raws, int(seq or 0)


def fetch_many(face: FetchFace, keys_to_args: dict, bulk_loader, kind, tags_for) -> dict:
    result = {}
    missing = []
    l1 = face.l1
    for key in keys_to_args:
        entry = l1.get(key) if l1 is not None else None
        if entry is not None:
            entry.stats.hit_l1()
            result[key] = entry.value
        else:
            if l1 is not None:
                metrics.stats_for(keys.key_prefix_of(key)).miss_l1()
            missing.append(key)
    if not missing:
        return result
    guard = face.guard()
    raws, start_seq = _read(face, missing)
    now = time.time()
    to_load = {}
    stale = {}
    for key, raw in zip(missing, raws, strict=True):
        stats = metrics.stats_for(keys.key_prefix_of(key))
        if raw is not None and not is_lease(raw):  # a lease: another process loads it, we load too
            env = Envelope(raw)
            if now < env.soft_expiry:
                stats.hit_l2()
                result[key] = env.value
                face.put_envelope(key, env, stats, guard)
                continue
            stale[key] = env
        elif start_seq is not None:
            stats.miss_l2()
        to_load[key] = keys_to_args[key]
    if not to_load:
        return result
    stats = metrics.stats_for(keys.key_prefix_of(next(iter(to_load))))
    try:
        loaded, cost = face.run_loader(lambda: bulk_loader(to_load), stats)
    except face.conf.loader_errors as exc:
        if len(stale) < len(to_load):
            raise
        logger.warning("bulk loader failed (%s): serving %d stale values", exc, len(stale))
        for key, env in stale.items():
            result[key] = env.value
        return result
    cost = cost / len(to_load)
    entries = {}
    for key in to_load:
        value = loaded.get(key)
        result[key] = value
        tags = resolve_tags(lambda v, k=key: tags_for(k, v), value) if tags_for else ()
        entries[key] = face.entry_for(value, kind, tags, cost)
    stored = dict.fromkeys(entries)
    # Cached 404s (None) stay in L1 unless NEGATIVES_IN_L2 (see fetcher).
    to_fill = [k for k, e in entries.items() if e.value is not None or face.conf.negatives_in_l2]
    if start_seq is not None and to_fill:
        calls = [("fill", *face.fill_call(key, entries[key], lease="", start=start_seq)) for key in to_fill]
        try:
            stored.update(zip(to_fill, face.l2.execute(calls), strict=True))
        except (L2Unavailable, redis.RedisError) as exc:
            logger.warning("bulk fill of %d keys failed (%s): L1 only", len(calls), exc)
    for key, entry in entries.items():
        reply = stored[key]  # fill.lua's [status, sequence the tags were checked up to]
        if reply is not None and int(reply[0]) == Filled.REFUSED:
            metrics.count_invalidation("rejected_fill")
            continue
        fill_guard = FillGuard(int(reply[1]), guard.epoch) if reply is not None and int(reply[1]) else guard
        face.put_entry(key, entry, metrics.stats_for(keys.key_prefix_of(key)), fill_guard)
    return {key: result[key] for key in keys_to_args}


def get_many_or_load(keys_to_args: dict, bulk_loader, *, kind: str, tags_for=None) -> dict:
    """Bulk fetch: L1, then one Redis round trip for all the rest, then ONE
    `bulk_loader({key: args})` call for the misses, then one pipelined backfill.

    `bulk_loader` returns {key: value}; a key it leaves out is cached as None (negative).
    `tags_for(key, value)` gives each entry's tags. Returns {key: value} in the input order.
    """
    if not conf_module.get().enabled:
        loaded = bulk_loader(dict(keys_to_args))
        return {key: loaded.get(key) for key in keys_to_args}
    return fetch_many(current(), dict(keys_to_args), bulk_loader, kind, tags_for)
