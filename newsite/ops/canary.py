"""The freshness canary: "how stale can a reader be right now?", measured end to end.

Every FRESHNESS_CANARY_EVERY seconds Celery beat runs `ops.freshness_canary` (newsite/ops/tasks.py),
which calls run():

1. write_canary(): the canary row's value + 1 in a transaction, with
   caching.invalidate_tags_on_commit(["canary"]) - the path of an article edit: a CDN outbox row
   per backend in the transaction; after commit L2, every process's L1 (the broadcast, acked) and
   the CDN drain.
2. Then, at the same time, each tier is read back until it no longer shows an older value (or
   FRESHNESS_CANARY_TIMEOUT passes):
   - "l2": the public canary response's L2 entry, read raw (no fill): absent or new is fresh;
   - "l1": GET /health/canary/ on the app's own port (FRESHNESS_CANARY_APP_URL) in concurrent
     bursts, each answer naming the worker pid that served it (X-Served-By, asked for with
     X-Canary-Probe): fresh once every pid seen in this run answers the new value;
   - "edge" (one per FRESHNESS_CANARY_EDGE_URLS, "edge:<host:port>" when several): GET
     /health/canary/ through the edge until it answers the new value. No edge configured: skipped.
3. The result is stored in the row (what /health/cache/ and the admin page read, from any
   process) and exported: newsite_freshness_canary_seconds{tier} (commit -> the tier showed the
   new value; the time waited when it never did) and newsite_freshness_canary_age_seconds{tier}
   (now - the commit of the newest value the tier was seen serving; /metrics refreshes it from
   the row at each scrape, so it keeps growing when the canary stops).

/health/cache/ answers 503 naming the failing tiers when a tier's age exceeds
FRESHNESS_CANARY_MAX_AGE (or "writer" when no canary was written for that long: is beat running?),
200 with "canary": "never ran" before the first run. docs/observability.md.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import requests
from django.conf import settings
from django.db import transaction
from django.http import JsonResponse
from django.utils import timezone
from django.views.decorators.http import require_safe

import caching
from caching import L2Unavailable
from caching.app_data import peek
from caching.http import BODY, cache_public, set_cache_tags
from caching.keys import response_key
from newsite.ops.metrics import CANARY_AGE, CANARY_SECONDS
from newsite.ops.models import FreshnessCanary

logger = logging.getLogger("newsite.ops")

CANARY_TAG = "canary"  # a tag of its own: invalidating it touches nothing else
CANARY_KIND = "canary"  # settings.NEWSITE_CACHE_KINDS: TTL longer than MAX_AGE (a lost purge shows)
URL_NAME = "health-canary"
PATH = "/health/canary/"
PROBE_HEADER = "X-Canary-Probe"  # asks the app to say which pid answered ...
PROBE_META = "HTTP_X_CANARY_PROBE"
SERVED_BY_HEADER = "X-Served-By"  # ... in this response header (newsite.ops.middleware)
ROW_PK = 1
MIN_BURSTS = 3  # L1 bursts per run at least: enough for a few sync workers to each answer
# ... and the run goes on until this many bursts in a row showed no pid not seen before: the
# canary cannot know how many workers there are, and one busy for a burst or two still answers.
STABLE_BURSTS = 3

DEFAULTS = {
    "FRESHNESS_CANARY_MAX_AGE": 120.0,
    "FRESHNESS_CANARY_TIMEOUT": 10.0,
    "FRESHNESS_CANARY_APP_URL": "",
    "FRESHNESS_CANARY_EDGE_URLS": [],
    "FRESHNESS_CANARY_BURST": 8,
}


def setting(name: str):
    return getattr(settings, name, DEFAULTS[name])


# --- the public canary endpoint ------------------------------------------------------------------


def _not_found(request):
    return JsonResponse({"error": "not_found", "detail": "No canary was written yet."}, status=404)


@cache_public(kind=CANARY_KIND, negative_tags=lambda kwargs: [CANARY_TAG], not_found=_not_found)
@require_safe
def canary_view(request):
    """GET /health/canary/: {"value": n, "written_at": iso} of the latest canary write, cached
    like any public read (L1, L2, the edge), tagged `canary`. 404 (cached, same tag) before the
    first write."""
    row = FreshnessCanary.objects.filter(pk=ROW_PK).values("value", "written_at").first()
    if row is None or row["written_at"] is None:
        return _not_found(request)
    response = JsonResponse({"value": row["value"], "written_at": row["written_at"].isoformat()})
    return set_cache_tags(response, [CANARY_TAG], last_modified=row["written_at"])


# --- writing -------------------------------------------------------------------------------------


def write_canary() -> tuple[int, float]:
    """Bump the canary in a transaction and invalidate its tag on commit (every tier, the CDN
    outbox too). Returns (value, commit time in epoch seconds). Costs 2-3 queries + the
    invalidation."""
    committed: list[float] = []
    with transaction.atomic():
        # Registered first, so it runs before the app tiers' callback: the commit time.
        transaction.on_commit(lambda: committed.append(time.time()))
        row, _ = FreshnessCanary.objects.select_for_update().get_or_create(pk=ROW_PK)
        row.value += 1
        row.written_at = timezone.now()
        row.save(update_fields=["value", "written_at"])
        caching.invalidate_tags_on_commit([CANARY_TAG])
    return row.value, committed[0] if committed else time.time()


# --- reading back, per tier ----------------------------------------------------------------------


@dataclass
class TierResult:
    fresh: bool = False
    seconds: float | None = None  # commit -> the tier showed the new value
    value: int | None = None  # the last value the tier showed (None: nothing / unreachable)
    error: str | None = None
    pids: list[int] = field(default_factory=list)  # l1: the workers that answered

    def as_dict(self) -> dict:
        out = {"fresh": self.fresh, "seconds": self.seconds, "value": self.value, "error": self.error}
        if self.pids:
            out["pids"] = self.pids
        return out


def _body_value(body: bytes) -> int | None:
    try:
        return int(json.loads(body)["value"])
    except (ValueError, KeyError, TypeError):
        return None


def read_l2() -> tuple[bool, int | None]:
    """(fresh?, value) of the canary response in L2, read raw (nothing is filled): an absent
    entry is fresh (the next read loads the new value). Raises L2Unavailable."""
    stored = peek(response_key(URL_NAME, {}, {}))
    if stored is None:  # absent, or being loaded
        return True, None
    entry = stored.value
    if entry is None:  # a cached 404 (before the first write)
        return False, None
    return True, _body_value(entry[BODY])


def _until(deadline: float, attempt: Callable[[], bool], pause: float = 0.005) -> bool:
    while True:
        if attempt():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(pause)
        pause = min(pause * 2, 0.02)  # the edge's seconds are as precise as this


def probe_l2(target: int, committed_at: float, deadline: float) -> TierResult:
    result = TierResult()

    def attempt() -> bool:
        try:
            fresh, value = read_l2()
        except L2Unavailable as exc:
            result.error = f"L2 unavailable: {exc}"[:300]
            return False
        result.value, result.error = value, None
        if fresh and (value is None or value >= target):
            result.fresh, result.seconds = True, max(0.0, time.time() - committed_at)
            return True
        return False

    _until(deadline, attempt)
    return result


def _get(session: requests.Session, url: str, headers: dict, timeout: float) -> tuple[int | None, int | None]:
    """(value, pid) of one GET of the canary; (None, None) when unreachable or not a canary."""
    try:
        response = session.get(url, headers=headers, timeout=timeout)
    except requests.RequestException:
        return None, None
    pid = response.headers.get(SERVED_BY_HEADER)
    value = _body_value(response.content) if response.status_code == 200 else None
    return value, int(pid) if pid and pid.isdigit() else None


def probe_l1(app_url: str, target: int, committed_at: float, deadline: float) -> TierResult:
    """Bursts of concurrent GETs on the app's port until every worker pid seen in this run has
    answered the new value (and the last burst showed nothing older), at least MIN_BURSTS, and
    the last STABLE_BURSTS showed no new pid."""
    result = TierResult()
    burst = max(1, int(setting("FRESHNESS_CANARY_BURST")))
    url = app_url.rstrip("/") + PATH
    headers = {PROBE_HEADER: "1"}
    fresh_at: dict[int, float] = {}
    seen: set[int] = set()
    bursts = last_new_pid = 0
    with ThreadPoolExecutor(max_workers=burst, thread_name_prefix="canary-l1") as pool:
        sessions = [requests.Session() for _ in range(burst)]
        try:
            while True:
                timeout = max(0.2, min(2.0, deadline - time.monotonic()))
                answers = list(pool.map(lambda s, t=timeout: _get(s, url, headers, t), sessions))
                bursts += 1
                now = time.time()
                old = False
                for value, pid in answers:
                    if value is None:
                        old = True
                        result.error = f"{url}: no canary answer"
                        continue
                    result.value = value
                    key = pid if pid is not None else -1
                    if key not in seen:
                        seen.add(key)
                        last_new_pid = bursts
                    if value >= target:
                        fresh_at.setdefault(key, now)
                    else:
                        old = True
                        fresh_at.pop(key, None)  # answered old after new: not fresh yet
                stable = bursts - last_new_pid >= STABLE_BURSTS
                if not old and seen and seen <= set(fresh_at) and bursts >= MIN_BURSTS and stable:
                    result.fresh, result.error = True, None
                    result.seconds = max(0.0, max(fresh_at.values()) - committed_at)
                    break
                if time.monotonic() >= deadline:
                    break
                time.sleep(0.005 if old else 0.02)  # a clean burst: give a busy worker a moment
        finally:
            for session in sessions:
                session.close()
    result.pids = sorted(p for p in seen if p >= 0)
    return result


def probe_edge(edge_url: str, target: int, committed_at: float, deadline: float) -> TierResult:
    result = TierResult()
    url = edge_url.rstrip("/") + PATH
    with requests.Session() as session:

        def attempt() -> bool:
            timeout = max(0.2, min(2.0, deadline - time.monotonic()))
            try:
                response = session.get(url, timeout=timeout)
            except requests.RequestException as exc:
                result.error = f"{url}: {type(exc).__name__}"[:300]
                return False
            value = _body_value(response.content) if response.status_code == 200 else None
            if value is None:
                result.error = f"{url}: status {response.status_code}"
                return False
            result.value, result.error = value, None
            if value >= target:
                result.fresh, result.seconds = True, max(0.0, time.time() - committed_at)
                return True
            return False

        _until(deadline, attempt)
    return result


def edge_tiers() -> dict[str, str]:
    """{tier name: edge base URL}: "edge" for one, "edge:<host:port>" for each of several."""
    urls = [u for u in setting("FRESHNESS_CANARY_EDGE_URLS") if u]
    if len(urls) == 1:
        return {"edge": urls[0]}
    return {f"edge:{urlsplit(u).netloc}": u for u in urls}


def app_url() -> str:
    return setting("FRESHNESS_CANARY_APP_URL")


# --- one run -------------------------------------------------------------------------------------


def run() -> dict:
    """Write the canary, read it back from every tier, store and export the result. Returns
    {"value", "committed_at", "tiers": {tier: TierResult.as_dict()}}. Bounded by
    FRESHNESS_CANARY_TIMEOUT (+ one request timeout)."""
    target, committed_at = write_canary()
    deadline = time.monotonic() + float(setting("FRESHNESS_CANARY_TIMEOUT"))
    jobs: dict[str, Callable[[], TierResult]] = {"l2": lambda: probe_l2(target, committed_at, deadline)}
    if app_url():
        jobs["l1"] = lambda: probe_l1(app_url(), target, committed_at, deadline)
    for name, url in edge_tiers().items():
        jobs[name] = lambda url=url: probe_edge(url, target, committed_at, deadline)
    with ThreadPoolExecutor(max_workers=len(jobs), thread_name_prefix="canary") as pool:
        futures = {name: pool.submit(job) for name, job in jobs.items()}
        results = {name: future.result() for name, future in futures.items()}
    waited = max(0.0, time.time() - committed_at)
    record(target, committed_at, results)
    for name, result in results.items():
        CANARY_SECONDS.labels(name).set(result.seconds if result.fresh else waited)
    update_age_gauges()
    stale = sorted(name for name, result in results.items() if not result.fresh)
    level = logging.WARNING if stale else logging.INFO
    from newsite.ops.logs import log_event

    log_event("freshness_canary", level=level, value=target, stale=stale or "-",
              **{f"{name}_ms": "-" if r.seconds is None else round(r.seconds * 1000, 1) for name, r in results.items()})
    return {"value": target, "committed_at": committed_at, "tiers": {n: r.as_dict() for n, r in results.items()}}


def record(target: int, committed_at: float, results: dict[str, TierResult]) -> None:
    """Store the run in the row: per tier its result and `confirmed_at` (this write's commit
    when fresh, else what it was). One locked read and one UPDATE."""
    now = time.time()
    with transaction.atomic():
        row = FreshnessCanary.objects.select_for_update().get(pk=ROW_PK)
        tiers = dict(row.tiers or {})
        for name, result in results.items():
            previous = tiers.get(name) or {}
            confirmed = committed_at if result.fresh else previous.get("confirmed_at")
            tiers[name] = {**result.as_dict(), "confirmed_at": confirmed, "checked_at": now,
                           "since": previous.get("since") or committed_at}
        for name in set(tiers) - set(results):  # a tier no longer configured
            tiers.pop(name)
        row.tiers = tiers
        row.committed_at = committed_at
        row.runs += 1
        row.last_run_at = now
        row.save(update_fields=["tiers", "committed_at", "runs", "last_run_at"])


# --- what it says --------------------------------------------------------------------------------


def tier_age(tier: dict, now: float) -> float:
    """now - the commit of the newest value the tier confirmed (never confirmed: since the
    tier was first probed)."""
    confirmed = tier.get("confirmed_at") or tier.get("since") or now
    return max(0.0, now - float(confirmed))


def status(now: float | None = None) -> dict | str:
    """The canary section of /health/cache/: "never ran", or {"status": "ok" | "fail",
    "failed": [tiers], "max_age_seconds", "value", "last_write_age_seconds", "runs",
    "tiers": {tier: {"age_seconds", "seconds", "fresh", "value", "error", ...}}}. One query."""
    now = time.time() if now is None else now
    row = FreshnessCanary.objects.filter(pk=ROW_PK).first()
    if row is None or not row.runs or row.committed_at is None:
        return "never ran"
    max_age = float(setting("FRESHNESS_CANARY_MAX_AGE"))
    tiers = {}
    for name, tier in sorted((row.tiers or {}).items()):
        tiers[name] = {"age_seconds": round(tier_age(tier, now), 3),
                       **{k: tier.get(k) for k in ("seconds", "fresh", "value", "error", "pids") if k in tier}}
    write_age = max(0.0, now - row.committed_at)
    failed: list[str] = []
    if max_age > 0:
        if write_age > max_age:
            failed = ["writer"]  # nothing written for that long: beat or the worker is not running
        else:
            failed = [name for name, tier in tiers.items() if tier["age_seconds"] > max_age]
    return {
        "status": "fail" if failed else "ok",
        "failed": failed,
        "max_age_seconds": max_age,
        "value": row.value,
        "runs": row.runs,
        "last_write_age_seconds": round(write_age, 3),
        "tiers": tiers,
    }


def update_age_gauges(now: float | None = None) -> None:
    """Set newsite_freshness_canary_age_seconds{tier} from the row (one query; /metrics calls it)."""
    now = time.time() if now is None else now
    row = FreshnessCanary.objects.filter(pk=ROW_PK).values_list("tiers", flat=True).first()
    for name, tier in (row or {}).items():
        CANARY_AGE.labels(name).set(tier_age(tier, now))
