"""The `junk` scenario's pure parts: its request kinds, key patterns and report section.

The scenario itself (servers, Varnish, wrk, 100,000 requests) runs under `make bench`, not here.
"""

import random
from types import SimpleNamespace

from bench import report
from bench.context import Context
from bench.scenarios import junk
from bench.stack import Stack


def test_every_kind_of_the_lua_script_has_a_python_twin():
    lua = junk.LUA.read_text()
    rnd = random.Random(1)
    for kind in junk.SUB_KINDS:
        assert f'count("{kind}")' in lua
        path, headers = junk.junk_path(kind, rnd)
        assert path.startswith(("/articles/", "/api/"))
    assert junk.junk_path("accept_html", rnd)[1] == {"Accept": "text/html"}
    slug = junk.junk_path("slug", rnd)[0].removeprefix("/articles/").removesuffix("/")
    assert 20 <= len(slug) <= 200


def test_key_shape_folds_ids_and_user_input():
    assert junk.shape(b"nb:nc3:tk:article:18221:1995734") == "nb:nc#:tk:article:#:#"
    assert junk.shape("nb:nc3:v:resp.article:slug=" + "x" * 60) == "nb:nc#:v:resp.article:<65 chars>"


def _stage(memory, keys, objects):
    inv = {"ms": 12.5, "largest_script": "evalsha invalidate", "largest_script_us": 450, "script_calls": 2,
           "script_us_total": 600, "largest": "evalsha invalidate", "largest_us": 450,
           "script_names": {"invalidate": 1, "drain_set": 1}}
    return {"used_memory": memory, "keys": keys, "expired_keys": 0, "evicted_keys": 0, "n_object": objects,
            "varnish_bytes": 1_000_000, "invalidation": inv}


def test_report_has_the_before_after_table_and_flags_5xx_and_a_short_load(tmp_path):
    opts = SimpleNamespace(out_dir=str(tmp_path), scenario_name="junk", server="gunicorn-sync", workers=2,
                           threads=4, connections=16, warmup=1, zipf_warmup=2, duration=2, cold_start=True,
                           rounds=1, redis="private", redis_url="", argv_text="--scenario junk",
                           workloads=("hot",), modes=("floor",))
    ctx = Context(opts=opts, stack=Stack(workdir=tmp_path), env={}, wrk="wrk")
    run = {"requests": 800, "req_s": 400.0, "p50": 3000, "p99": 9000, "max": 20000, "errors": 0,
           "statuses": {"200": 500, "404": 298, "503": 2}, "mix": {"slug": 400, "search": 400}}
    ctx.data = {"junk": {
        "status": "ok", "idle_seconds": 35.0, "vcl_commit": "abc1234 2026-12-01",
        "stages": {"before": _stage(4_000_000, 250, 49), "after": {**_stage(4_100_000, 260, 900), "keys_after_invalidation": 255},
                   "idle": _stage(4_050_000, 252, 100)},
        "runs": [{"target": "Varnish -> app", **run, "planned": 1000, "stopped_by_budget": True},
                 {"target": "app directly", **run, "planned": 800, "stopped_by_budget": False}],
        "requests_planned": 1800, "load_budget_seconds": 240.0,
        "redis_commands": {"get": 1000}, "load_slowlog": {},
        "patterns": {"before": {"nb:tk:#": 2}, "after": {"nb:tk:#": 3}, "idle": {}},
        "probes": {"slug": {"edge": {"404": 6}, "app": {"404": 6}}},
        "new_keys_sample": ["nb:tk:9"],
    }}
    text = report.write(ctx, [])[0].read_text()
    assert "| figure | before | after 1,600 requests | after 35 s idle |" in text
    assert "| Redis keys (DBSIZE, cache db) | 250 | 260 | 252 |" in text
    assert "| Varnish objects (MAIN.n_object) | 49 | 900 | 100 |" in text
    assert "| 2 (invalidate 1, drain_set 1) / 600 |" in text
    assert "5xx responses: **4**" in text
    assert "time budget** (240 s, BENCH_JUNK_SECONDS) after 800 of 1,000 (Varnish -> app): 1,600 of 1,800" in text
    assert "| `slug` | 800 | 50.0% | 404: 6 | 404: 6 |" in text
