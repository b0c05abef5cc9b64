"""Scenario `junk` (issue 16): what 100,000 hostile requests leave behind in Redis and Varnish.

One L1+L2 server (--server, --workers) on the bench database, the run's private Redis and a
varnishd with deploy/varnish/default.vcl in front. The figures (Redis `used_memory`, `DBSIZE`
of the cache db, varnishstat MAIN.n_object, and the slowest invalidation) are read before the
load, right after it and after an idle 35 s (the negative TTL of 30 s, plus 5 s).

The slowest invalidation: the harness (Django with the servers' settings, same Redis) times one
`caching.invalidate_tags(["articles", "search"])`, with SLOWLOG recording every Redis command
(`slowlog-log-slower-than 0`, set on the private Redis only) to find its largest script call.

The load: bench/lua/junk.lua (random slugs, random ids, unique search queries, cache busters,
content negotiation and random pages, about a fifth each), 80% through Varnish and 20% straight
to the app, each wrk run stopped after its share of responses or at its time budget (the load gets
BENCH_JUNK_SECONDS, 240 s by default: a loaded machine then sends fewer requests, which the report
says). With --smoke: 5,000 requests, 60 s at most and a 3 s idle. Then bench/hostile.py: the
database CPU one hostile client causes per second (a second server that exempts no address). It needs --redis private (CONFIG SET and SLOWLOG are never sent to a shared Redis).
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import random
import re
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path

from bench import hostile
from bench.context import log
from bench.probes import redis_commandstats
from bench.stack import AppServer, Unavailable, pinned

SHARED_SERVERS = None  # starts its own server and Varnish
IN_ALL = False  # minutes long: run it by name (--scenario junk)
LUA = Path(__file__).resolve().parent.parent / "lua" / "junk.lua"
ARTICLES_LUA = Path(__file__).resolve().parent.parent.parent / "articles" / "lua"
REQUESTS, SMOKE_REQUESTS = 100_000, 5_000
EDGE_SHARE = 0.8  # the rest goes straight to the app server
LOAD_SECONDS, SMOKE_LOAD_SECONDS = float(os.environ.get("BENCH_JUNK_SECONDS", "240")), 60.0
IDLE_SECONDS, SMOKE_IDLE_SECONDS = 35.0, 3.0  # the negative kind's TTL (30 s) + 5 s
INVALIDATED = ("articles", "search")
LOAD_SLOWLOG_US = 1000  # during the load SLOWLOG keeps commands slower than 1 ms
SLOWLOG_LEN = 4096
OWN_COMMANDS = {"slowlog", "config", "info", "dbsize", "scan", "client"}  # the harness's probes
SUB_KINDS = ("slug", "id", "search", "cb", "utm_source", "format=xml", "accept_html", "page")


def run(ctx) -> None:
    opts = ctx.opts
    if ctx.data.get("reason"):
        ctx.data["junk"] = {"status": f"n/a: {ctx.data['reason']}"}
        return
    if opts.redis != "private" or ctx.redis_client is None:
        ctx.data["junk"] = {"status": "n/a: needs --redis private (CONFIG SET / SLOWLOG on the run's own Redis only)"}
        return
    client = ctx.redis_client
    client.flushdb()
    server = varnish_proc = hostile_server = None
    try:
        server = ctx.stack.start_app("l1l2", ctx.env, opts.server, opts.workers, opts.threads)
        varnish_port, varnish_dir = ctx.stack.start_varnish(server.port)
        varnish_proc = next(p for p in reversed(ctx.stack.procs) if p.name == "varnish")
        log(f"junk: {opts.server} x{opts.workers} on :{server.port}, varnishd on :{varnish_port}")
        ctx.data["junk"] = _measure(ctx, client, server, f"http://127.0.0.1:{varnish_port}", varnish_dir)
        # The last phase: one hostile client's database CPU, on a server that charges loopback.
        hostile_server = ctx.stack.start_app("l1l2", {**ctx.env, "THROTTLE_EXEMPT": ""}, opts.server,
                                             opts.workers, opts.threads)
        ctx.data["junk"]["hostile"] = hostile.measure(hostile_server.base_url, opts.database_url, smoke=opts.smoke)
    except Unavailable as exc:
        ctx.data["junk"] = {"status": f"n/a: {exc}"}
    finally:
        for proc in (varnish_proc, server.proc if isinstance(server, AppServer) else None,
                     hostile_server.proc if isinstance(hostile_server, AppServer) else None):
            if proc is not None:
                proc.stop()
                if proc in ctx.stack.procs:
                    ctx.stack.procs.remove(proc)


def _measure(ctx, client, server: AppServer, edge_url: str, varnish_dir: Path) -> dict:
    from bench.writer import django_setup

    opts = ctx.opts
    total = SMOKE_REQUESTS if opts.smoke else REQUESTS
    idle = SMOKE_IDLE_SECONDS if opts.smoke else IDLE_SECONDS
    django_setup(ctx)
    import caching
    from cdn.models import PurgeOutbox

    outbox_mark = PurgeOutbox.objects.order_by("-pk").values_list("pk", flat=True).first() or 0
    caching.invalidate_tags(["bench-junk-warmup"])  # connections and scripts loaded before timing
    shas = _script_shas()
    legit = _legit_paths(ctx.opts.database_url)
    log(f"junk: ordinary reads ({len(legit)} paths, twice, through Varnish and directly)")
    _visit(legit, (edge_url, server.base_url))
    out = {"status": "ok", "requests_planned": total, "idle_seconds": idle, "vcl_commit": _vcl_commit(),
           "stages": {}, "patterns": {}}
    out["stages"]["before"] = _figures(client, varnish_dir)
    out["patterns"]["before"], before_keys = _census(client)
    out["stages"]["before"]["invalidation"] = _timed_invalidation(client, shas, caching)
    _visit(legit, (edge_url, server.base_url))  # the same state again before the load

    client.config_set("slowlog-max-len", SLOWLOG_LEN)
    client.config_set("slowlog-log-slower-than", LOAD_SLOWLOG_US)
    client.slowlog_reset()
    commands_before = redis_commandstats(client)
    edge_n = int(total * EDGE_SHARE)
    budget = SMOKE_LOAD_SECONDS if opts.smoke else LOAD_SECONDS
    out["load_budget_seconds"] = budget
    started = time.monotonic()
    out["runs"] = [{"target": "Varnish -> app", **_wrk(ctx, edge_url, edge_n, 16, budget * EDGE_SHARE)}]
    left = max(10.0, budget - (time.monotonic() - started))
    out["runs"].append({"target": "app directly", **_wrk(ctx, server.base_url, total - edge_n, 61, left)})
    commands = Counter(redis_commandstats(client))
    commands.subtract(commands_before)
    out["redis_commands"] = {k: v for k, v in commands.most_common() if v > 0 and k not in OWN_COMMANDS}
    out["load_slowlog"] = _slowest(client.slowlog_get(SLOWLOG_LEN), shas)

    out["stages"]["after"] = _figures(client, varnish_dir)
    out["patterns"]["after"], after_keys = _census(client)
    out["new_keys_sample"] = sorted(after_keys - before_keys)[:10]
    out["stages"]["after"]["invalidation"] = _timed_invalidation(client, shas, caching)
    out["stages"]["after"]["keys_after_invalidation"] = client.dbsize()
    log(f"junk: idle {idle:g} s")
    time.sleep(idle)
    out["stages"]["idle"] = _figures(client, varnish_dir)
    out["patterns"]["idle"], _ = _census(client)
    out["stages"]["idle"]["invalidation"] = _timed_invalidation(client, shas, caching)
    out["probes"] = _probe_families(edge_url, server.base_url)
    if any(int(code) >= 500 for r in out["runs"] for code in r.get("statuses", {})):
        out["server_log"] = server.proc.tail(8)
    client.config_set("slowlog-log-slower-than", 10000)  # Redis's default again
    # The timed invalidations' CDN outbox rows (no Celery worker here): leave the database as it was.
    PurgeOutbox.objects.filter(pk__gt=outbox_mark).delete()
    for name, stage in out["stages"].items():
        log(f"junk {name}: used_memory {stage['used_memory']:,} B, keys {stage['keys']:,}, "
            f"n_object {stage.get('n_object')}, invalidation {stage['invalidation']['ms']:.1f} ms")
    return out


# --- figures -----------------------------------------------------------------------------------


def _figures(client, varnish_dir: Path) -> dict:
    memory, stats = client.info("memory"), client.info("stats")
    return {"used_memory": int(memory["used_memory"]), "keys": int(client.dbsize()),
            "expired_keys": int(stats.get("expired_keys", 0)), "evicted_keys": int(stats.get("evicted_keys", 0)),
            **_varnish(varnish_dir)}


def _varnish(name_dir: Path) -> dict:
    fields = {"MAIN.n_object": "n_object", "SMA.s0.g_bytes": "varnish_bytes", "MAIN.client_req": "client_req"}
    cmd = ["varnishstat", "-n", str(name_dir), "-1", "-j"] + [a for f in fields for a in ("-f", f)]
    try:
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
        data = json.loads(result.stdout)
    except (OSError, subprocess.SubprocessError, ValueError):
        return {}
    counters = data.get("counters", data)
    return {short: counters[name]["value"] for name, short in fields.items()
            if isinstance(counters.get(name), dict)}


_RUN = re.compile(r"[0-9a-f]{12,}|[0-9]+")


def shape(key: bytes | str) -> str:
    """A key's pattern: digit and long hex runs as #, segments over 48 characters as <N chars>."""
    text = key.decode(errors="replace") if isinstance(key, bytes) else key
    parts = []
    for part in text.split(":"):
        part = _RUN.sub("#", part)
        parts.append(f"<{len(part)} chars>" if len(part) > 48 else part)
    return ":".join(parts)


def _census(client, limit: int = 300_000) -> tuple[dict, set]:
    """{pattern: count} over every key of the cache db (SCAN), and the key names."""
    patterns, names = Counter(), set()
    for i, key in enumerate(client.scan_iter(count=1000)):
        if i >= limit:
            break
        patterns[shape(key)] += 1
        names.add(key.decode(errors="replace") if isinstance(key, bytes) else key)
    return dict(patterns), names


def _script_shas() -> dict:
    """{sha1: name} of the cache library's scripts and of the view counters' (articles/lua/)."""
    from caching.l2 import SCRIPT_TEXT

    texts = {**SCRIPT_TEXT, **{path.stem: path.read_text() for path in ARTICLES_LUA.glob("*.lua")}}
    return {hashlib.sha1(text.encode()).hexdigest(): name for name, text in texts.items()}


def _command_name(entry: dict, shas: dict) -> str:
    command = entry.get("command", b"")
    words = (command.decode(errors="replace") if isinstance(command, bytes) else str(command)).split(" ")
    name = words[0].lower()
    if name in ("evalsha", "evalsha_ro") and len(words) > 1:
        return f"{name} {shas.get(words[1], words[1][:8])}"
    return name


def _slowest(entries: list, shas: dict) -> dict:
    """The largest entry of a SLOWLOG (the harness's own probes left out) and script totals."""
    named = [(_command_name(e, shas), int(e["duration"])) for e in entries]
    named = [(n, us) for n, us in named if n.split(" ")[0] not in OWN_COMMANDS]
    scripts = [(n, us) for n, us in named if n.startswith(("evalsha", "eval", "fcall"))]
    top = max(named, key=lambda x: x[1], default=(None, 0))
    top_script = max(scripts, key=lambda x: x[1], default=(None, 0))
    return {"entries": len(named), "largest": top[0], "largest_us": top[1], "largest_script": top_script[0],
            "largest_script_us": top_script[1], "script_calls": len(scripts),
            "script_us_total": sum(us for _, us in scripts), "full": len(entries) >= SLOWLOG_LEN,
            "script_names": dict(Counter(n.split(" ", 1)[-1] for n, _ in scripts).most_common())}


def _timed_invalidation(client, shas: dict, caching) -> dict:
    """One invalidate_tags(["articles", "search"]) timed in the harness; every Redis command of it
    recorded by SLOWLOG (the servers are idle meanwhile, bar their acknowledgements)."""
    client.config_set("slowlog-max-len", SLOWLOG_LEN)
    client.config_set("slowlog-log-slower-than", 0)
    client.slowlog_reset()
    start = time.perf_counter()
    caching.invalidate_tags(list(INVALIDATED))
    ms = (time.perf_counter() - start) * 1000
    entries = client.slowlog_get(SLOWLOG_LEN)
    client.config_set("slowlog-log-slower-than", LOAD_SLOWLOG_US)
    return {"ms": ms, **_slowest(entries, shas)}


def _vcl_commit() -> str:
    from bench.stack import ROOT

    result = subprocess.run(["git", "log", "-1", "--format=%h %cs", "--", "deploy/varnish/default.vcl"],
                            cwd=ROOT, capture_output=True, text=True)
    return result.stdout.strip() or "?"


# --- traffic -----------------------------------------------------------------------------------


def _legit_paths(database_url: str) -> list[str]:
    """What ordinary readers ask for: pages 1..5, 20 articles (API and page), 3 searches."""
    import psycopg

    with psycopg.connect(database_url, autocommit=True) as conn:
        rows = conn.execute("SELECT id, slug, title FROM articles_article WHERE status = 'published' "
                            "ORDER BY id LIMIT 20").fetchall()  # the seeded ones, not a scenario's extra rows
    words = list(dict.fromkeys(w.lower() for _, _, title in rows for w in title.split() if w.isalpha() and len(w) > 4))[:3]
    return ([f"/api/articles/?page={p}" for p in range(1, 6)] + ["/api/categories/", "/"]
            + [f"/api/articles/{pk}/" for pk, _, _ in rows] + [f"/articles/{slug}/" for _, slug, _ in rows]
            + [f"/api/search/?q={w}" for w in words])


def _get(base_url: str, path: str, headers: dict | None = None) -> int | str:
    host, port = base_url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=15)
    try:
        conn.request("GET", path, headers={"Connection": "close", **(headers or {})})
        resp = conn.getresponse()
        resp.read()
        return resp.status
    except (OSError, http.client.HTTPException) as exc:
        return type(exc).__name__
    finally:
        conn.close()


def _visit(paths: list[str], base_urls) -> None:
    for _ in range(2):  # twice: second-hit admission lets a search into L2 on its second fill
        for base in base_urls:
            for path in paths:
                _get(base, path)


def _wrk(ctx, base_url: str, limit: int, seed: int, seconds: float) -> dict:
    """One wrk run of junk.lua, interrupted (SIGINT: summary and done() still run) once the
    script printed JUNKSTOP after `limit` responses; wrk itself stops after `seconds`."""
    cmd = pinned([ctx.wrk, "-t1", "-c", str(ctx.opts.connections), "-d", f"{max(1, int(seconds))}s", "--timeout", "10s",
                  "-s", str(LUA), base_url, "--", str(limit), str(seed)], 1)
    log(f"junk: {limit:,} requests to {base_url} ({seconds:.0f} s at most)")
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    data = None
    try:
        for line in proc.stdout:
            if line.startswith("JUNKSTOP"):
                proc.send_signal(signal.SIGINT)
            elif line.startswith("JUNKJSON "):
                data = json.loads(line.removeprefix("JUNKJSON "))
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    if data is None:
        raise Unavailable(f"wrk gave no summary (code {proc.returncode})")
    data["req_s"] = data["requests"] / (data["duration_us"] / 1e6) if data["duration_us"] else 0.0
    data["errors"] = data["connect"] + data["read"] + data["write"] + data["timeout"]
    data["planned"], data["stopped_by_budget"] = limit, data["requests"] < limit
    log(f"junk: {data['requests']:,} requests, {data['req_s']:,.0f} req/s, statuses {data['statuses']}")
    return data


def junk_path(kind: str, rnd: random.Random) -> tuple[str, dict]:
    """One request of a sub-kind, like junk.lua makes it (for the per-family probe)."""
    slug_chars, word_chars = "abcdefghijklmnopqrstuvwxyz0123456789-", "abcdefghijklmnopqrstuvwxyz"
    if kind == "slug":
        return "/articles/" + "".join(rnd.choices(slug_chars, k=rnd.randint(20, 200))) + "/", {}
    if kind == "id":
        big = rnd.random() < 0.25
        return f"/api/articles/{rnd.randint(10**18, 10**30) if big else rnd.randint(100000, 2**31 - 1)}/", {}
    if kind == "search":
        return "/api/search/?q=" + "".join(rnd.choices(word_chars, k=rnd.randint(3, 12))), {}
    if kind in ("cb", "utm_source"):
        return f"/api/articles/?page=1&{kind}={rnd.randint(1, 2**31 - 1)}", {}
    if kind == "format=xml":
        return "/api/articles/?page=1&format=xml", {}
    if kind == "accept_html":
        return "/api/articles/?page=1", {"Accept": "text/html"}
    page = rnd.choice(["0", "-1", "abc", "1e9", "99999999999999999999", "", "1.5", "%00"]) \
        if rnd.random() < 0.25 else str(rnd.randint(1, 100000))
    return f"/api/articles/?page={page}", {}


def _probe_families(edge_url: str, app_url: str, per_kind: int = 6) -> dict:
    """Status codes per sub-kind, a few requests each through Varnish and directly."""
    rnd = random.Random(1616)
    out = {}
    for kind in SUB_KINDS:
        for label, base in (("edge", edge_url), ("app", app_url)):
            codes = Counter(str(_get(base, *junk_path(kind, rnd))) for _ in range(per_kind))
            out.setdefault(kind, {})[label] = dict(codes)
    return out
