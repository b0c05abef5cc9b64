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


def read_calls(face: FetchFace, missing: list[str]) -> list:
    """The one round trip of a bulk read (L2.execute's calls, or AsyncL2's): the envelopes of
    `missing`, and the namespace sequence (before the load: the fills are checked against it)."""
    return [("mget", [keys.value_key(face.namespace, k) for k in missing], []),
            ("mget", [face.engine.sequence_key], [])]


def read_replies(replies: list | None, missing: list[str]) -> tuple[list, int | None]:
    """(the envelopes of `missing`, the sequence) from read_calls' replies; None (Redis
    unusable): no envelopes, and no sequence (nothing will be filled)."""
    if replies is None:
        return [None] * len(missing), None
    raws, (seq,) = replies
    return raws, int(seq or 0)


def from_l1(l1, keys_to_args: dict, hits: list) -> tuple[dict, list]:
    """({key: Fetched} of the L1 `hits` (one per key, None: a miss), [the keys missed]), the
    misses counted (the hits were, as they were found)."""
    result: dict = {}
    missing = []
    for key, hit in zip(keys_to_args, hits, strict=True):
        if hit is not None:
            result[key] = hit
        else:
            if l1 is not None:
                metrics.stats_for(keys.key_prefix_of(key)).miss_l1()
            missing.append(key)
    return result, missing


def from_l2(face: FetchFace, missing: list, raws: list, start_seq: int | None, result: dict, guard, use_l1: bool,
            refresh_within: float) -> tuple[dict, dict]:
    """The L2 step: `result` completed with the fresh envelopes among `raws` (L1 backfilled);
    returns ({key: what to load}, {key: its stale envelope})."""
    now = time.time()
    to_load, stale = [], {}
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
        to_load.append(key)
    return to_load, stale


def load_and_fill(face: FetchFace, to_load: dict, stale: dict, start_seq: int | None, result: dict, bulk_loader,
                  kind, tags_for, use_l1: bool, guard) -> None:
    """The load step: ONE bulk_loader call for `to_load` ({key: args}), then one pipeline of
    fill.lua calls checked against `start_seq`; `result` completed (stale values served when
    the loader fails with LOADER_ERRORS and every key has one). Sync: the database's."""
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
        return
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


def _fetch_many(face: FetchFace, keys_to_args: dict, bulk_loader, kind, tags_for, use_l1: bool,
                refresh_within: float) -> dict:
    l1 = face.l1 if use_l1 else None
    hits = [l1_hit(l1, key) for key in keys_to_args] if l1 is not None else [None] * len(keys_to_args)
    result, missing = from_l1(l1, keys_to_args, hits)
    if missing:
        guard = face.fill_guard()
        try:
            replies = face.l2.execute(read_calls(face, missing))
        except L2Unavailable:
            replies = None
        raws, start_seq = read_replies(replies, missing)
        to_load, stale = from_l2(face, missing, raws, start_seq, result, guard, use_l1, refresh_within)
        if to_load:
            load_and_fill(face, {key: keys_to_args[key] for key in to_load}, stale, start_seq, result, bulk_loader,
                          kind, tags_for, use_l1, guard)
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
