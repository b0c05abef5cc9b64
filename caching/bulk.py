"""The fetch face in bulk (Zulip's generic_bulk_cached_fetch): L1, then one Redis round trip for
all the rest, then ONE bulk load for the misses, then one pipeline of fills.

Bulk misses take no lease (a stampede on a whole page of keys costs one bulk query per process
at worst; a key whose lease another process holds is left to that process's fill). The stale-set
rule of single fills holds for every key: the round trip that reads the values also reads the
invalidation sequence, before the load starts, and fill.lua refuses a value whose tags were
invalidated after it. With replicas fenced (caching/fence.py) the bulk loader reads the primary.
Users: list pages that know their keys, and `warm_cache --all`
(articles/warm.py), which loads every article in batches.
"""

from __future__ import annotations

import logging
import time

import redis

from caching import conf as conf_module
from caching import keys, lifetime, metrics
from caching.envelope import Envelope, is_lease
from caching.fetcher import FetchFace, current, l1_hit
from caching.fill import Filled, resolve_tags
from caching.l1 import HIT_L2, MISS, STALE, Fetched
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


def _fetch_many(face: FetchFace, keys_to_args: dict, bulk_loader, kind, tags_for, use_l1: bool,
                refresh_within: float) -> dict:
    result: dict = {}
    missing = []
    l1 = face.l1 if use_l1 else None
    for key in keys_to_args:
        hit = l1_hit(l1, key) if l1 is not None else None
        if hit is not None:
            result[key] = hit
        else:
            if l1 is not None:
                metrics.stats_for(keys.key_prefix_of(key)).miss_l1()
            missing.append(key)
    if not missing:
        return result
    guard = face.fill_guard()
    raws, start_seq = _read(face, missing)
    now = time.time()
    to_load = {}
    stale = {}
    for key, raw in zip(missing, raws, strict=True):
        stats = metrics.stats_for(keys.key_prefix_of(key))
        if raw is not None and not is_lease(raw):  # a lease: another process loads it, we load too
            env = Envelope(raw)
            if now + refresh_within < env.soft_expiry:
                stats.hit_l2()
                superseded = face.fills.put_envelope(key, env, stats, guard) if use_l1 else False
                result[key] = Fetched(env.value, HIT_L2, env.filled_at, superseded)
                continue
            stale[key] = env
        elif start_seq is not None:
            stats.miss_l2()
        to_load[key] = keys_to_args[key]
    if not to_load:
        return result
    stats = metrics.stats_for(keys.key_prefix_of(next(iter(to_load))))
    try:
        # Bulk loads read the primary (a replica's read is not fenced here: its users are the
        # warm-up, which runs in tasks and commands, reading the primary anyway).
        run = face.fills.run_fenced_loader(lambda: bulk_loader(to_load), stats, primary=True)
    except face.conf.loader_errors as exc:
        if len(stale) < len(to_load):
            raise
        logger.warning("bulk loader failed (%s): serving %d stale values", exc, len(stale))
        for key, env in stale.items():
            stats_for = metrics.stats_for(keys.key_prefix_of(key))
            stats_for.stale_l2(time.time() - env.filled_at)
            result[key] = face.fills.served_stale(env, STALE)
        return result
    cost = run.cost / len(to_load)
    entries = {}
    for key in to_load:
        value = run.value.get(key)
        tags = resolve_tags(lambda v, k=key: tags_for(k, v), value) if tags_for else ()
        entries[key] = face.fills.entry_for(value, kind, tags, cost, run.until)  # a batch shares its loader's cap
    stored = dict.fromkeys(entries)
    to_fill = list(entries)
    if start_seq is not None and to_fill:
        # One pipeline of fill.lua calls, each checked against the sequence read before the load.
        calls = [("fill", *face.fills.fill_call(key, entries[key], lease="", start=start_seq)) for key in to_fill]
        try:
            stored.update(zip(to_fill, face.l2.execute(calls), strict=True))
        except (L2Unavailable, redis.RedisError) as exc:
            logger.warning("bulk fill of %d keys failed (%s): L1 only", len(calls), exc)
    for key, entry in entries.items():
        reply = stored[key]  # fill.lua's [status, sequence the tags were checked up to, ...]
        if reply is not None and int(reply[0]) == Filled.REFUSED:
            # A tag was invalidated after the batch's start: the value may predate the write.
            metrics.count_invalidation("rejected_fill")
            result[key] = Fetched(entry.value, MISS, entry.filled_at, superseded=True)
            continue
        superseded = False
        if use_l1:
            fill_guard = guard._replace(seq=int(reply[1])) if reply is not None and int(reply[1]) else guard
            superseded = face.fills.put_entry(key, entry, metrics.stats_for(keys.key_prefix_of(key)), fill_guard)
        shared = reply is None or int(reply[0]) != Filled.NOT_ADMITTED
        result[key] = Fetched(entry.value, MISS, entry.filled_at, superseded, shared=shared)
    return {key: result[key] for key in keys_to_args}


def fetch_many(keys_to_args: dict, bulk_loader, *, kind: str, tags_for=None, use_l1: bool = True,
               refresh_within: float = 0.0) -> dict:
    """Bulk fetch: L1, then one Redis round trip for all the rest (values and the invalidation
    sequence), then ONE `bulk_loader({key: args})` call for the misses and stale values, then
    one pipeline of fill.lua calls. Returns {key: Fetched} in the input order (as fetch(): the
    value, the tier that answered, superseded when a fill was refused).

    `bulk_loader` returns {key: value}; a key it leaves out is cached as None (negative).
    `tags_for(key, value)` gives each entry's tags. `use_l1=False`: neither read nor backfill
    this process's L1 (a warm-up in a process nobody reads from). `refresh_within` (s): an L2
    value whose soft expiry is that close is reloaded too (refresh-ahead). Cost: one MGET pipeline, the
    loader, one pipeline of EVALSHAs; no lease.
    """
    if not conf_module.get().enabled:
        with lifetime.measure():  # nothing is stored, but built responses are still capped
            loaded = bulk_loader(dict(keys_to_args))
        now = time.time()
        return {key: Fetched(loaded.get(key), MISS, now) for key in keys_to_args}
    return _fetch_many(current(), dict(keys_to_args), bulk_loader, kind, tags_for, use_l1, refresh_within)
