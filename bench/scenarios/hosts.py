"""Scenario `hosts` (issue 27): the stale-read sampler across hosts on real network stacks, with
faults (`make bench BENCH_ARGS="--scenario hosts"`).

The stack is bench/hosts.py's Cluster (namespaces of bench/netns.py, a private PostgreSQL pair
seeded with --hosts-articles, never the run's database). Reader processes of bench/sampler.py read the
hot articles' details through every app host (--hosts-readers each) and both edges; a writer
thread (sampler.Writer) edits them through the app hosts in turn, the editorial API and the
Django admin alternately (coherence.Editor), skipping a host while it is cut off from Redis.

The plan, each phase `fault` seconds of fault then `recovery` seconds:
  baseline   no fault (`baseline` seconds)
  partition  app1 cut off from Redis (a blackhole route in its namespace) while writes go
             through app2 and app3
  edge       edge1 stopped and started again (empty)
  replica    the standby stopped (immediate), started after `fault` s
  celery     the Celery host killed (SIGKILL of everything in it), a new one after `fault` s

The accounting is sampler.classify's, per tier: a read is stale when it began after a write of
its article had returned and shows an older version. The partitioned host's reads from the cut
to HEAL_GRACE after the heal are counted apart (its L1 cannot hear invalidations: issue 27's
bound), against the bound too (classify with window=PARTITION_BOUND). Per phase: reads, stale
reads and the edge's lags, answers without a version by status (0: no answer), the writes'
latency and stale windows (the lag of the last stale read each caused, over every tier), the
app hosts' counters (invalidations by kind, Redis errors, replica fallbacks) and the purges'
created -> delivered. At the end: every outbox row of the run delivered (none pending after
`drain_timeout`, none dead), and every tier read again against the primary.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context

import requests

from bench import hosts_report, sampler
from bench.context import log
from bench.hosts import APPS, EDGES, Cluster
from bench.netns import NetnsUnavailable
from bench.probes import prom_samples
from bench.scenarios.coherence import HTTP_TIMEOUT, Editor
from bench.stack import ROOT, Unavailable
from bench.stats import percentile

SHARED_SERVERS = None
IN_ALL = False  # a stack of its own in namespaces, minutes long: run it by name
STANDALONE = True  # needs none of the run's shared stack (bench/run.py)

FAULTS = ("partition", "edge", "replica", "celery")
PARTITIONED = "app1"
RESTARTED_EDGE = "edge1"
PARTITION_BOUND = 1.0  # issue 27: no read from a copy more than 1 s older (see the module docstring)
HEAL_GRACE = 2.0  # after the heal, the partitioned host's reads are counted apart this long
STALE_AFTER = 2.0  # "edits left stale anywhere 2 s after the write"
EDGE_LAG = 0.1  # the edge's stated bound (SPEC 5: within 100 ms, p99)
STALE_LISTED = 10
# The app hosts' counters read at each phase's end (their names' last word: kind or reason).
EVENT_METRICS = {"newsite_cache_invalidations_total": "invalidations", "newsite_cache_redis_errors_total": "redis_errors",
                 "newsite_cache_replica_fallbacks_total": "replica_fallbacks"}


@dataclass(frozen=True)
class Plan:
    baseline: float = 60.0
    fault: float = 10.0
    recovery: float = 10.0
    faults: tuple[str, ...] = FAULTS
    articles: int = 4  # hot articles edited and read
    readers_per_app: int = 3
    readers_per_edge: int = 2
    edit_interval: float = 0.2
    drain_timeout: float = 45.0  # the outbox's re-drive runs every 30 s

    @property
    def duration(self) -> float:
        return self.baseline + len(self.faults) * (self.fault + self.recovery)


# --- The writer: rotating hosts ---------------------------------------------------------------


class RotatingEditor:
    """`patch` for sampler.Writer: each edit through the next app host not `excluded`; an edit
    a host refuses is counted and tried on the next host (at most one try per host)."""

    def __init__(self, cluster: Cluster, editor: Editor):
        self.cluster, self.editor = cluster, editor
        self.excluded: set[str] = set()
        self.n = 0
        self.current: str | None = None  # the host an edit is in flight on
        self._idle = threading.Condition()
        self.failures: list[tuple[float, str, str]] = []  # (monotonic, host, what)
        # The admin session (and its CSRF cookie) is the site's, whichever host answers: a
        # browser behind one name would send it to every host.
        jar = editor.admin.cookies
        for cookie in list(jar):
            for host in APPS:
                jar.set(cookie.name, cookie.value, domain=cluster.address(host), path=cookie.path)

    def wait_off(self, host: str, timeout: float) -> None:
        """Until no edit is in flight on `host` (at most `timeout`)."""
        deadline = time.monotonic() + timeout
        with self._idle:
            while self.current == host and time.monotonic() < deadline:
                self._idle.wait(max(0.0, deadline - time.monotonic()))

    def patch(self, article_id: int, title: str) -> sampler.Edit:
        for _ in APPS:
            hosts = [h for h in APPS if h not in self.excluded]
            host = hosts[self.n % len(hosts)]
            self.n += 1
            self.editor.base_url = self.cluster.url(host)
            with self._idle:
                self.current = host
            try:
                edit = self.editor.patch(article_id, title)
            except (RuntimeError, requests.RequestException) as exc:
                self.failures.append((time.monotonic(), host, str(exc)[:300]))
                continue
            finally:
                with self._idle:
                    self.current = None
                    self._idle.notify_all()
            return sampler.Edit(edit.version, edit.returned, f"{edit.kind}@{host}")
        raise RuntimeError(f"every app host refused the edit of {article_id}: {self.failures[-3:]}")


def make_editor(cluster: Cluster) -> Editor:
    """A staff user with the article permissions and its DRF token, made in the cluster's
    database by a manage.py process (this process may have Django set up on another database)."""
    script = (
        "import json, secrets, django\n"
        "django.setup()\n"
        "from django.contrib.auth import get_user_model\n"
        "from django.contrib.auth.models import Permission\n"
        "from rest_framework.authtoken.models import Token\n"
        "name, password = f'hosts-editor-{secrets.token_hex(4)}', secrets.token_urlsafe(16)\n"
        "user = get_user_model().objects.create_user(name, password=password, is_staff=True)\n"
        "user.user_permissions.set(Permission.objects.filter(content_type__app_label='articles',"
        " codename__in=('view_article', 'change_article', 'add_article', 'delete_article')))\n"
        "print(json.dumps({'id': user.pk, 'name': name, 'password': password,"
        " 'token': Token.objects.create(user=user).key}))\n"
    )
    made = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env={**cluster.env, "BENCH_MODE": "nocache"},
                          capture_output=True, text=True, timeout=120)
    if made.returncode != 0:
        raise Unavailable(f"making the editor failed: {made.stderr.strip()[-500:]}")
    user = json.loads(made.stdout.strip().splitlines()[-1])
    return Editor(cluster.database_url, cluster.url(APPS[0]), user["id"], user["name"], user["password"],
                  user["token"])


# --- The run ----------------------------------------------------------------------------------


def sample(cluster: Cluster, plan: Plan, say=log) -> dict:
    """Readers on every tier, the writer, the faults of `plan` in order; returns the figures
    (see figures())."""
    editor = make_editor(cluster)
    articles = [editor.create_article(n) for n in range(plan.articles)]
    rotating = RotatingEditor(cluster, editor)
    tiers = {h: cluster.url(h) for h in (*APPS, *EDGES)}
    for url in tiers.values():  # every tier holds the articles before the clock starts
        for article in articles:
            requests.get(f"{url}/api/articles/{article}/", timeout=HTTP_TIMEOUT)
    outbox_from = editor.db.execute("SELECT coalesce(max(id), 0) FROM cdn_purgeoutbox").fetchone()[0]
    per_tier = {h: plan.readers_per_app if h in APPS else plan.readers_per_edge for h in tiers}
    say(f"hosts: {sum(per_tier.values())} reader processes on {len(articles)} articles for {plan.duration:g} s, "
        f"faults {', '.join(plan.faults)} ({plan.fault:g} s + {plan.recovery:g} s recovery each)")
    stop = threading.Event()
    writer = sampler.Writer(articles, rotating.patch, stop, interval=plan.edit_interval, title="hosts edit {n}")
    phases: list[dict] = []
    # A reader's count bound: far more than a reader can do in the time (~2,000 reads/s).
    max_reads = int(5_000 * (plan.duration + 60))
    stop_file = cluster.stack.workdir / "readers-stop"  # the plan's end (faults take their own time)
    with ProcessPoolExecutor(max_workers=sum(per_tier.values()), mp_context=get_context("spawn")) as pool:
        start_at = time.monotonic() + 6.0  # every process started (spawn imports, two cores)
        stop_at = start_at + plan.duration + 120.0  # a bound: the stop file ends them at the plan's end
        futures = [pool.submit(sampler.sample_reads, tier, url, articles, start_at=start_at, stop_at=stop_at,
                               offset=i, max_reads=max_reads, error_pause=0.01, stop_file=str(stop_file))
                   for tier, url in tiers.items() for i in range(per_tier[tier])]
        try:
            time.sleep(max(0.0, start_at - time.monotonic()))
            writer.start()
            counted = events(cluster)
            phases.append(_phase("baseline", plan.baseline, 0.0, _nothing, _nothing, say))
            for name in plan.faults:
                phases[-1]["events"], counted = _delta(events(cluster), counted)
                begin, end = _FAULT_ACTIONS[name](cluster, rotating)
                if name == "edge":  # a restart: no hold, the phase keeps its length
                    phases.append(_phase(name, 0.0, plan.fault + plan.recovery, begin, end, say))
                else:
                    phases.append(_phase(name, plan.fault, plan.recovery, begin, end, say))
            phases[-1]["events"], counted = _delta(events(cluster), counted)
        finally:
            stop.set()
            ended = time.monotonic()
            stop_file.touch()
            writer.join(60)
        logs = [f.result(timeout=max(0.0, stop_at - time.monotonic()) + 60) for f in futures]
    if writer.error is not None:
        raise Unavailable(f"the writer failed: {writer.error}")
    say(f"hosts: {sum(len(x) for x in logs):,} reads, {len(writer.writes)} writes; draining the outbox")
    outbox = _outbox(editor, outbox_from, plan.drain_timeout, phases)
    final = _final_check(cluster, editor, articles)
    out = figures(logs, writer.writes, phases, ended, plan)
    out.update(outbox=outbox, final=final, write_failures=[
        {"at": round(t - phases[0]["start"], 2), "host": h, "what": w} for t, h, w in rotating.failures],
        articles=articles, readers=per_tier, plan=plan.__dict__ | {"faults": list(plan.faults)},
        loadavg=os.getloadavg())
    editor.db.close()
    return out


def _phase(name: str, hold_s: float, recovery_s: float, begin, end, say) -> dict:
    """One phase: begin() (the fault), held `hold_s` s, end() (the repair), `recovery_s` s."""
    start, wall = time.monotonic(), time.time()
    begin()
    began = time.monotonic()
    time.sleep(max(0.0, hold_s - (began - start)))
    end()
    repaired = time.monotonic()
    time.sleep(recovery_s)
    if name != "baseline":
        say(f"hosts: {name}: fault begun in {began - start:.1f} s, held {repaired - began:.1f} s, recovered")
    return {"name": name, "start": start, "fault_end": repaired, "end": time.monotonic(),
            "wall_start": wall, "wall_end": time.time()}


def events(cluster: Cluster) -> Counter:
    """The app hosts' invalidation, Redis-error and replica-fallback counters now, as
    "<host>:<metric>:<kind or reason>" -> count."""
    out: Counter = Counter()
    for host in APPS:
        for (name, labels), value in prom_samples(cluster.metrics_dir(host)).items():
            if name in EVENT_METRICS and value:
                label = dict(labels)
                out[f"{host}:{EVENT_METRICS[name]}:{label.get('kind') or label.get('reason')}"] += value
    return out


def _delta(now: Counter, before: Counter) -> tuple[dict, Counter]:
    return {k: int(v - before.get(k, 0)) for k, v in now.items() if v - before.get(k, 0)}, now


def _partition(cluster: Cluster, rotating: RotatingEditor):
    def begin():
        # Writes go through the other hosts from now; an edit already in flight on this one
        # finishes first. (One that commits there as the link drops returns before its
        # invalidation reached Redis: the other hosts serve the old version until the outbox's
        # re-drive or this host's replay - docs/scaling.md. Not this fault's subject.)
        rotating.excluded.add(PARTITIONED)
        rotating.wait_off(PARTITIONED, timeout=10.0)
        cluster.partition(PARTITIONED)

    def end():
        cluster.heal(PARTITIONED)
        rotating.excluded.discard(PARTITIONED)

    return begin, end


def _nothing() -> None:
    pass


def _edge(cluster: Cluster, rotating: RotatingEditor):
    """Stopped and started again at once (empty: malloc storage)."""
    def restart():
        cluster.stop_edge(RESTARTED_EDGE)
        cluster.start_edge(RESTARTED_EDGE)

    return restart, _nothing


def _replica(cluster: Cluster, rotating: RotatingEditor):
    return cluster.stop_replica, cluster.start_replica


def _celery(cluster: Cluster, rotating: RotatingEditor):
    return cluster.kill_celery, cluster.start_celery


_FAULT_ACTIONS = {"partition": _partition, "edge": _edge, "replica": _replica, "celery": _celery}


def _outbox(editor: Editor, outbox_from: int, timeout: float, phases: list[dict]) -> dict:
    """The run's outbox rows by status once none is pending, or after `timeout` s; created ->
    delivered per phase (by the rows' created_at, this machine's clock)."""
    deadline = time.monotonic() + timeout
    began = time.monotonic()
    while True:
        counts = dict(editor.db.execute("SELECT status, count(*) FROM cdn_purgeoutbox WHERE id > %s GROUP BY status",
                                        [outbox_from]).fetchall())
        if not counts.get("pending") or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    rows = editor.db.execute(
        "SELECT extract(epoch FROM created_at)::float8, extract(epoch FROM delivered_at - created_at)::float8 "
        "FROM cdn_purgeoutbox WHERE id > %s AND delivered_at IS NOT NULL", [outbox_from]).fetchall()

    def summary(ms):
        return {"rows": len(ms), "p50": percentile(ms, 50), "p99": percentile(ms, 99), "max": max(ms, default=None)}

    by_phase = {p["name"]: summary([d * 1000 for created, d in rows if p["wall_start"] <= created < p["wall_end"]])
                for p in phases}
    return {"rows": sum(counts.values()), "by_status": counts, "waited_s": round(time.monotonic() - began, 1),
            "lost": counts.get("pending", 0) + counts.get("dead", 0),
            "delivery_ms": summary([d * 1000 for _, d in rows]), "delivery_by_phase": by_phase}


def _final_check(cluster: Cluster, editor: Editor, articles: list[int]) -> dict:
    """Writes stopped: each article read through every tier (app hosts: 8 new connections, so
    both workers answer) against the primary's version, 2 s after the last write."""
    time.sleep(STALE_AFTER)
    versions = dict(editor.db.execute("SELECT id, version FROM articles_article WHERE id = ANY(%s)",
                                      [articles]).fetchall())
    stale, reads = [], 0
    for host in (*APPS, *EDGES):
        for article in articles:
            for _ in range(8 if host in APPS else 2):
                reply = requests.get(cluster.url(host, f"/api/articles/{article}/"), timeout=HTTP_TIMEOUT)
                reads += 1
                seen = reply.json().get("version") if reply.status_code == 200 else None
                if seen != versions[article]:
                    stale.append({"host": host, "article": article, "saw": seen, "expected": versions[article],
                                  "status": reply.status_code, "x_cache": reply.headers.get("X-Cache")})
    return {"reads": reads, "stale": stale}


# --- Accounting -------------------------------------------------------------------------------


def _phase_of(phases: list[dict], t: float) -> str | None:
    for p in phases:
        if p["start"] <= t < p["end"]:
            return p["name"]
    return None


def figures(logs: list[sampler.ReadLog], writes: list[sampler.Write], phases: list[dict], ended: float,
            plan: Plan) -> dict:
    """The run's figures from the reads and writes (pure but for the phases' times)."""
    cut = next((p for p in phases if p["name"] == "partition"), None)
    apart = (cut["start"], cut["fault_end"] + HEAL_GRACE) if cut else None

    def partitioned(r: sampler.Read) -> bool:
        return apart is not None and r.tier == PARTITIONED and apart[0] <= r.started < apart[1]

    def reads_of(tier, keep=lambda r: True):
        for x in logs:
            if x.tier == tier:
                for r in x.reads():
                    if r.started < ended and keep(r):
                        yield r

    made_by = {(w.article_id, w.version): w.kind for w in writes}  # e.g. "api@app2"
    tiers: dict[str, dict] = {}
    results: dict[str, sampler.TierResult] = {}
    statuses: dict[str, Counter] = {}  # phase -> Counter of "<tier>:<status>" for reads without a version
    reads_per_phase: Counter = Counter()
    for tier in (*APPS, *EDGES):
        result = sampler.classify(tier, reads_of(tier, lambda r: not partitioned(r)), writes)
        results[tier] = result
        by_phase = Counter(_phase_of(phases, s.read.started) or "-" for s in result.stale_reads)
        tiers[tier] = {
            "reads": result.reads, "errors": result.errors, "stale": result.stale,
            "stale_by_phase": dict(by_phase),
            "stale_past_edge_lag": sum(1 for s in result.stale_reads if s.lag > EDGE_LAG),
            "lag_p99": result.lag_percentile(99), "lag_max": result.worst.lag if result.worst else None,
            "worst": [_stale_record(s, made_by) for s in sorted(result.stale_reads, key=lambda s: -s.lag)[:STALE_LISTED]],
        }
    for x in logs:
        for started, version, status in zip(x.started, x.version, x.status, strict=True):
            if started >= ended:
                continue
            phase = _phase_of(phases, started) or "-"
            reads_per_phase[phase] += 1
            if version < 0:
                statuses.setdefault(phase, Counter())[f"{x.tier}:{status}"] += 1
    partition = None
    if apart is not None:
        mine = list(reads_of(PARTITIONED, partitioned))
        exact = sampler.classify(PARTITIONED, mine, writes)
        bounded = sampler.classify(PARTITIONED, mine, writes, window=PARTITION_BOUND)
        results["partitioned"] = exact
        partition = {"host": PARTITIONED, "from_s": round(apart[0] - phases[0]["start"], 2),
                     "to_s": round(apart[1] - phases[0]["start"], 2), "reads": exact.reads, "errors": exact.errors,
                     "stale": exact.stale, "older_than_bound": bounded.stale, "bound_s": PARTITION_BOUND,
                     "lag_max": exact.worst.lag if exact.worst else None,
                     "x_cache": dict(Counter(r.x_cache or "-" for r in mine)),
                     "worst": [_stale_record(s, made_by) for s in sorted(bounded.stale_reads, key=lambda s: -s.lag)[:STALE_LISTED]]}
    # Per write, its stale window over every tier (and over every tier but the partitioned host's
    # reads counted apart): "how long this edit stayed invisible somewhere".
    anywhere: dict[sampler.Write, float] = {}
    outside: dict[sampler.Write, float] = {}
    for name, result in results.items():
        for w, window in result.window_of.items():
            anywhere[w] = max(anywhere.get(w, 0.0), window)
            if name != "partitioned":
                outside[w] = max(outside.get(w, 0.0), window)
    # Fresh everywhere 2 s after the write, or after the repair of the fault it was written in
    # (a dead worker host delivers no purge until a new one runs): the writes that were not.
    late = []
    for p in phases:
        for w in writes:
            if p["start"] <= w.returned < p["end"]:
                due = max(w.returned, p["fault_end"]) + STALE_AFTER
                if w.returned + outside.get(w, 0.0) > due:
                    late.append({"phase": p["name"], "article": w.article_id, "version": w.version,
                                 "window_ms": round(outside[w] * 1000, 1), "via": w.kind})
    per_phase = {}
    for p in phases:
        ws = [w for w in writes if p["start"] <= w.returned < p["end"]]
        ms = [(w.returned - w.started) * 1000 for w in ws]
        per_phase[p["name"]] = {
            "events": p.get("events", {}),
            "seconds": round(p["end"] - p["start"], 1), "fault_s": round(p["fault_end"] - p["start"], 1),
            "reads": reads_per_phase.get(p["name"], 0),
            "no_version": dict(statuses.get(p["name"], {})),
            "writes": len(ws), "write_p50_ms": percentile(ms, 50), "write_p99_ms": percentile(ms, 99),
            "write_max_ms_by_host": {h: round(max((w.returned - w.started) * 1000 for w in ws if w.kind.endswith("@" + h)), 1)
                                     for h in sorted({w.kind.split("@")[-1] for w in ws})},
            "stale_after_2s": sum(1 for w in ws if anywhere.get(w, 0.0) > STALE_AFTER),
            "stale_after_2s_outside_partition": sum(1 for w in ws if outside.get(w, 0.0) > STALE_AFTER),
            "stale_edge": sum(tiers[e]["stale_by_phase"].get(p["name"], 0) for e in EDGES),
            "edge_lag_ms": _lags([s for e in EDGES for s in results[e].stale_reads
                                  if p["start"] <= s.read.started < p["end"]]),
            "stale_app": sum(tiers[a]["stale_by_phase"].get(p["name"], 0) for a in APPS),
        }
    write_ms = [(w.returned - w.started) * 1000 for w in writes]
    by_kind: dict[str, list[float]] = {}
    for w in writes:
        by_kind.setdefault(w.kind.split("@")[0], []).append((w.returned - w.started) * 1000)
    return {
        "bounds": {"edge_lag": EDGE_LAG, "heal_grace": HEAL_GRACE, "stale_after": STALE_AFTER,
                   "partition_bound": PARTITION_BOUND, "partitioned": PARTITIONED, "restarted_edge": RESTARTED_EDGE},
        "tiers": tiers, "partition": partition, "phases": per_phase,
        "writes": {"count": len(writes), "p50_ms": percentile(write_ms, 50), "p99_ms": percentile(write_ms, 99),
                   "by_kind": {k: {"count": len(v), "p50_ms": percentile(v, 50), "p99_ms": percentile(v, 99)}
                               for k, v in by_kind.items()},
                   "by_host": dict(Counter(w.kind.split("@")[-1] for w in writes))},
        "stale_2s_after_write_or_repair": late,
        "stale_after_2s": sum(1 for v in anywhere.values() if v > STALE_AFTER),
        "stale_after_2s_outside_partition": sum(1 for v in outside.values() if v > STALE_AFTER),
        "app_reads": sum(tiers[a]["reads"] for a in APPS), "app_stale": sum(tiers[a]["stale"] for a in APPS),
        "edge_reads": sum(tiers[e]["reads"] for e in EDGES), "edge_stale": sum(tiers[e]["stale"] for e in EDGES),
    }


def _lags(stale: list[sampler.StaleRead]) -> dict:
    ms = [s.lag * 1000 for s in stale]
    return {"p50": percentile(ms, 50), "p99": percentile(ms, 99), "max": max(ms, default=None),
            "past_edge_lag": sum(1 for v in ms if v > EDGE_LAG * 1000)}


def _stale_record(s: sampler.StaleRead, made_by: dict) -> dict:
    """A stale read as the report lists it; `via`: how and where the write it missed was made."""
    r = s.read
    return {"tier": r.tier, "article": r.article_id, "version": r.version, "expected": s.expected,
            "via": made_by.get((r.article_id, s.expected)),
            "lag_ms": round(s.lag * 1000, 1), "x_cache": r.x_cache, "edge": r.edge, "worker": r.worker}


# --- `make bench --scenario hosts` ------------------------------------------------------------


def plan_from(opts) -> Plan:
    if opts.smoke:
        return Plan(baseline=5.0, fault=3.0, recovery=4.0, faults=opts.host_faults, drain_timeout=40.0)
    return Plan(baseline=opts.hosts_baseline, fault=opts.hosts_fault_seconds, recovery=opts.hosts_recovery,
                faults=opts.host_faults, articles=opts.coherence_articles, readers_per_app=opts.hosts_readers,
                readers_per_edge=opts.hosts_edge_readers, edit_interval=opts.coherence_edit_interval)


def run_standalone(opts) -> int:
    """The whole scenario: cluster up, sample, cluster down, bench/results/<date>-hosts.md."""
    plan = plan_from(opts)

    def terminated(signum, frame):  # SIGTERM tears down like ^C (a background job ignores SIGINT)
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, terminated)
    try:
        cluster = Cluster.start(articles=min(opts.articles, opts.hosts_articles), server=opts.server,
                                replica_delay=opts.hosts_replica_delay, log=log)
    except (Unavailable, NetnsUnavailable) as exc:
        log(f"cannot run: {exc}")
        return 2
    except KeyboardInterrupt:
        return 130
    try:
        result = sample(cluster, plan)
    except KeyboardInterrupt:
        log("interrupted: stopping the cluster")
        return 130
    finally:
        cluster.close()
    for path in hosts_report.write(result, opts):
        log(f"wrote {path}")
    return 0


def run(ctx) -> None:  # the run's shared stack is not used (STANDALONE)
    raise RuntimeError("the hosts scenario runs standalone (bench/run.py)")

