"""Issue 17, part 1: CPU per request from two /proc snapshots, the slice schedule, the pooled
figures of a mode and its ratios computed from neighbouring slices. No timing is asserted."""

import subprocess
import sys
import textwrap
from types import SimpleNamespace

import pytest

from bench import cpu, measure, report
from bench.context import Context
from bench.probes import busy_connections
from bench.stack import Stack
from bench.stats import paired_ratio, per_cycle_ratios

TCK = cpu.CLK_TCK


def stat_line(pid, ppid, utime, stime, cutime=0, cstime=0, start=1000, comm="gunicorn: worker [x]"):
    # Fields 3..22: state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime
    # cutime cstime priority nice threads itrealvalue starttime (then more we do not read).
    fields = ["S", ppid, 1, 1, 0, -1, 0, 0, 0, 0, 0, utime, stime, cutime, cstime, 20, 0, 1, 0, start, 123, 456]
    return f"{pid} ({comm}) " + " ".join(str(f) for f in fields) + "\n"


def fake_proc(tmp_path, lines):
    for line in lines:
        d = tmp_path / line.split(" ", 1)[0]
        d.mkdir(parents=True)
        (d / "stat").write_text(line)
    (tmp_path / "self").mkdir()  # not a pid: skipped
    return tmp_path


def test_stat_is_parsed_from_the_last_parenthesis():
    p = cpu.parse_stat(stat_line(42, 7, 11, 3, 5, 2, start=999, comm="odd ) name ("))
    assert (p.pid, p.ppid, p.own, p.reaped, p.start) == (42, 7, 14, 7, 999)


def test_tree_holds_the_root_and_its_descendants_only(tmp_path):
    proc = fake_proc(tmp_path / "a", [stat_line(10, 1, 5, 5), stat_line(11, 10, 1, 0), stat_line(12, 11, 2, 0),
                                      stat_line(20, 1, 100, 100)])
    snap = cpu.CpuSnapshot.take({"app": 10, "other": 20, "gone": 99}, proc=proc)
    assert sorted(pid for pid, _ in snap.trees["app"]) == [10, 11, 12]
    assert sorted(pid for pid, _ in snap.trees["other"]) == [20]
    assert snap.trees["gone"] == {}


def test_a_worker_recycled_mid_window_keeps_its_cpu(tmp_path):
    """Worker 11 (30 ticks at the start) exits at 50 ticks and is reaped by the master (cutime);
    worker 13 replaces it and runs 20 ticks: the window saw 20 + 20 + master's 5."""
    before = cpu.CpuSnapshot.take({"app": 10}, proc=fake_proc(tmp_path / "b", [
        stat_line(10, 1, 100, 0), stat_line(11, 10, 30, 0), stat_line(12, 10, 40, 0)]))
    after = cpu.CpuSnapshot.take({"app": 10}, proc=fake_proc(tmp_path / "a", [
        stat_line(10, 1, 105, 0, cutime=50), stat_line(12, 10, 60, 0), stat_line(13, 10, 20, 0, start=2000)]))
    d = cpu.delta(before, after)["app"]
    assert d.seconds == pytest.approx((5 + 20 + 20 + 20) / TCK)
    assert (d.exited, d.started, d.lost_s) == (1, 1, 0)


def test_a_reused_pid_is_a_new_process_and_unreaped_time_is_reported(tmp_path):
    """Pid 11 exits unreaped (its time leaves the tree) and the pid comes back as a new process."""
    before = cpu.CpuSnapshot.take({"app": 10}, proc=fake_proc(tmp_path / "b", [
        stat_line(10, 1, 100, 0), stat_line(11, 10, 30, 0, start=1000)]))
    after = cpu.CpuSnapshot.take({"app": 10}, proc=fake_proc(tmp_path / "a", [
        stat_line(10, 1, 110, 0), stat_line(11, 10, 4, 0, start=5000)]))
    d = cpu.delta(before, after)["app"]
    assert (d.exited, d.started) == (1, 1)
    assert d.lost_s == pytest.approx(30 / TCK)
    assert d.seconds == pytest.approx((10 + 4) / TCK)  # what is known; the lost worker's window time is not


def test_a_live_process_is_measured_in_nanoseconds_when_its_threads_agree_with_the_ticks(tmp_path):
    proc = fake_proc(tmp_path / "p", [stat_line(10, 1, 100, 0)])
    for tid, ns in ((10, 5_000_000_000), (11, 1_000_000_000)):
        (proc / "10" / "task" / str(tid)).mkdir(parents=True)
        (proc / "10" / "task" / str(tid) / "schedstat").write_text(f"{ns} 0 0\n")
    snap = cpu.CpuSnapshot.take({"app": 10}, proc=proc)
    (p,) = snap.trees["app"].values()
    assert p.threads == ((10, 5_000_000_000), (11, 1_000_000_000))

    def at(ticks, threads):
        return cpu.ProcTimes(pid=10, ppid=1, start=1, own=ticks, reaped=0, threads=threads)

    before = at(600, ((10, 5_000_000_000), (11, 1_000_000_000)))
    precise = at(600 + 1 * TCK, ((10, 5_733_000_000), (11, 1_270_000_000)))  # 1.003 s, ticks say 1 s
    assert cpu.own_seconds(before, precise) == pytest.approx(1.003)
    other_threads = at(600 + 1 * TCK, ((10, 5_733_000_000), (12, 1_000)))  # thread 11 ended: ticks
    assert cpu.own_seconds(before, other_threads) == pytest.approx(1.0)
    disagree = at(600 + 2 * TCK, ((10, 5_733_000_000), (11, 1_270_000_000)))  # a thread came and went
    assert cpu.own_seconds(before, disagree) == pytest.approx(2.0)
    assert cpu.own_seconds(at(600, ()), at(600 + TCK, ())) == pytest.approx(1.0)


CHILD = textwrap.dedent("""
    import os, sys, time
    ready, go = sys.argv[1], sys.argv[2]
    open(ready, "w").close()
    while not os.path.exists(go):
        time.sleep(0.01)
    pid = os.fork()
    if pid == 0:  # a worker: burns CPU, reports how much, exits
        t = time.process_time()
        while time.process_time() - t < 0.3:
            pass
        print(time.process_time(), flush=True)
        os._exit(0)
    os.waitpid(pid, 0)  # the master reaps it, as gunicorn's does
    open(go + ".done", "w").close()
    time.sleep(30)
""")


def test_a_real_child_that_exits_mid_window_is_counted(tmp_path):
    """A real process tree: the window starts, a forked child burns CPU, exits and is reaped; the
    tree's delta holds the child's CPU (at least what it measured itself, minus a tick)."""
    ready, go = tmp_path / "ready", tmp_path / "go"
    proc = subprocess.Popen([sys.executable, "-c", CHILD, str(ready), str(go)], stdout=subprocess.PIPE, text=True)
    try:
        for _ in range(1000):
            if ready.exists():
                break
            subprocess.run(["sleep", "0.01"])
        before = cpu.CpuSnapshot.take({"app": proc.pid})
        go.touch()
        burned = float(proc.stdout.readline())
        for _ in range(1000):
            if (tmp_path / "go.done").exists():
                break
            subprocess.run(["sleep", "0.01"])
        after = cpu.CpuSnapshot.take({"app": proc.pid})
    finally:
        proc.kill()
        proc.wait()
    d = cpu.delta(before, after)["app"]
    assert d.started == 0 and d.exited == 0  # the child lived and died inside the window
    assert d.seconds >= burned - 2 / TCK


def test_slices_rotate_so_every_mode_leads_and_each_cycle_has_every_mode_once():
    sched = measure.slice_schedule(["floor", "l2", "l1l2"], 4)
    cycles = [[label for c, label in sched if c == n] for n in range(4)]
    assert cycles == [["floor", "l2", "l1l2"], ["l2", "l1l2", "floor"], ["l1l2", "floor", "l2"],
                      ["floor", "l2", "l1l2"]]
    assert measure.slice_schedule([], 3) == []


def sl(rnd, cycle, req_s, cpu_app, served=1000, **kw):
    return {"round": rnd, "cycle": cycle, "requests": served, "duration_s": served / req_s, "req_s": req_s,
            "served": served, "bytes": 100 * served, "p50_ms": kw.get("p50", 1.0), "p95_ms": 2.0,
            "p99_ms": kw.get("p99", 3.0), "non_2xx": 0, "errors": 0, "db_queries": kw.get("db", 0),
            "redis_commands": kw.get("redis", 0), "redis_by_command": kw.get("by_cmd", {}),
            "cache": kw.get("cache", {}), "loads": 0, "varnish": {},
            "cpu_s": {"app": cpu_app, **({"redis": kw["cpu_redis"]} if "cpu_redis" in kw else {})},
            "cpu_exited": kw.get("exited", 0), "cpu_lost_s": 0.0}


def test_ratios_pair_neighbouring_slices_not_whole_run_averages():
    """The machine slows down 3x in cycle 1: whole-run averages would blur it, per-cycle ratios
    do not (both sides slowed in that cycle)."""
    floor = [sl(0, 0, 1000, 0.5), sl(0, 1, 300, 0.5), sl(0, 2, 1000, 0.5), sl(1, 0, 1000, 0.5)]
    mode = [sl(0, 0, 900, 0.6), sl(0, 1, 270, 0.6), sl(0, 2, 900, 0.6), sl(1, 5, 10, 1.0)]  # (1, 5): no pair
    assert per_cycle_ratios(mode, floor) == pytest.approx([0.9, 0.9, 0.9])
    median, lo, hi, n = paired_ratio(mode, floor, "cpu")
    assert (median, lo, hi, n) == pytest.approx((0.5 / 0.6, 0.5 / 0.6, 0.5 / 0.6, 3))
    assert paired_ratio(mode, [sl(3, 0, 1, 1)]) is None


def test_a_mode_is_pooled_over_its_slices():
    slices = [sl(0, 0, 1000, 0.5, served=1000, p99=3, db=10, redis=2000, cpu_redis=0.1,
                 by_cmd={"get": 2000}, cache={"l2": {"hit": 900, "miss": 100}}),
              sl(0, 1, 500, 0.5, served=500, p99=9, db=0, redis=1000, cpu_redis=0.05,
                 by_cmd={"get": 1000}, cache={"l2": {"hit": 500}}, exited=1)]
    r = measure.aggregate("throughput", "hot", "l2", "l2", slices, failed=1)
    assert r.status == "ok"
    assert r.requests == 1500 and r.req_s == pytest.approx(1500 / 2.0)
    assert r.cpu_ms == pytest.approx({"app": 1000 * 1.0 / 1500, "redis": 1000 * 0.15 / 1500})
    assert r.db_per_req == pytest.approx(10 / 1500) and r.redis_per_req == pytest.approx(2.0)
    assert r.p99_ms == 6  # median over slices
    assert r.hit == "l2 0.93"
    assert r.extra["req_s_range"] == (500, 1000) and r.extra["failed_slices"] == 1
    assert r.extra["cpu_exited"] == 1
    # A tree read in only some slices gets no column rather than a partial sum.
    assert "redis" not in measure.aggregate("t", "hot", "l2", "l2", [slices[0], sl(0, 2, 100, 0.1)]).cpu_ms
    assert measure.aggregate("t", "hot", "l2", "l2", []).status.startswith("n/a")


class Recorder:
    def __init__(self):
        self.calls = []

    def flushdb(self):
        self.calls.append("flush")


def test_compare_empties_once_warms_every_mode_then_alternates(monkeypatch, tmp_path):
    """The sliced round's order of work, with the stack replaced by a recorder."""
    rec = Recorder()
    opts = SimpleNamespace(slice=2, duration=6, cold_start=True, zipf_warmup=10, warmup=3, connections=16)
    ctx = Context(opts=opts, stack=Stack(workdir=tmp_path), env={}, wrk="wrk", redis_client=rec)

    def prepare(ctx, workload, entry):
        if entry.label == "varnish":
            return "n/a: Varnish not started"
        return measure.Target(entry.label, entry.mode, None, "", "", None, None, {})

    monkeypatch.setattr(measure, "prepare", prepare)
    monkeypatch.setattr(measure, "warm", lambda ctx, t: rec.calls.append(("warm", t.label)))

    def window(ctx, t, seconds, rnd, cycle):
        rec.calls.append(("slice", t.label, seconds, cycle))
        if t.label == "l2" and cycle == 1:
            raise RuntimeError("wrk gave no summary")
        return {"label": t.label, "cycle": cycle}

    monkeypatch.setattr(measure, "window", window)
    entries = [measure.Entry(m, m) for m in ("floor", "l2", "varnish")]
    out = measure.compare(ctx, "hot", entries, 0)
    assert rec.calls == ["flush", ("warm", "floor"), ("warm", "l2"),
                         ("slice", "floor", 2, 0), ("slice", "l2", 2, 0),
                         ("slice", "l2", 2, 1), ("slice", "floor", 2, 1),
                         ("slice", "floor", 2, 2), ("slice", "l2", 2, 2)]
    assert [s["cycle"] for s in out["l2"]] == [0, 2]
    assert out["varnish"] == "n/a: Varnish not started"
    assert out["failed"] == {"l2": ["load generator failed: wrk gave no summary"]}

    rec.calls.clear()
    opts.slice = 0  # blocks: tiers emptied before each cached mode, one --duration window each
    measure.compare(ctx, "hot", entries[:2], 0)
    assert rec.calls == [("warm", "floor"), ("slice", "floor", 6, 0), "flush", ("warm", "l2"), ("slice", "l2", 6, 0)]


def test_report_has_cpu_columns_and_neighbour_ratios(tmp_path):
    opts = SimpleNamespace(out_dir=str(tmp_path), scenario_name="unit", server="gunicorn-sync", workers=2,
                           threads=4, connections=16, warmup=1, zipf_warmup=2, duration=4, slice=2, cold_start=True,
                           rounds=1, redis="private", redis_url="", argv_text="--scenario throughput",
                           cold_clients=256, workloads=("hot",), modes=("floor", "l1l2"))
    ctx = Context(opts=opts, stack=Stack(workdir=tmp_path), env={}, wrk="wrk")
    ctx.data = {"articles_article": 10, "published": 9}
    floor = [sl(0, 0, 1000, 0.5, cpu_redis=0.0), sl(0, 1, 400, 0.5, cpu_redis=0.0)]
    hot = [sl(0, 0, 1100, 0.4, cpu_redis=0.1), sl(0, 1, 480, 0.4, cpu_redis=0.1)]
    ctx.results = [measure.aggregate("throughput", "hot", "floor", "floor", floor),
                   measure.aggregate("throughput", "hot", "l1l2", "l1l2", hot)]
    text = report.write(ctx, ctx.results)[0].read_text()
    assert "app CPU ms/req | Varnish CPU ms/req | Redis CPU ms/req | CPU x floor" in text
    # Per-cycle 1.10x and 1.20x: median 1.15x; CPU 0.5 / 0.5 per 1000 requests = 1.00x.
    assert "| newsite L1+L2 | 668 | 1.15x (1.10–1.20) | 480–1,100 (2) | 0.400 | – | 0.100 | 1.00x |" in text
    assert "L1 hit (hot article, L1+L2) >= 0.95x floor | req/s 1.15x (1.10–1.20); CPU 1.00x | yes" in text
    assert "2 cycles of 2 s slices per mode and workload" in text
    assert "cutime + cstime" in text  # the note on how CPU is measured


def test_cli_slices_by_default_and_checks_the_value():
    from bench.__main__ import parse

    assert parse([]).slice == 2
    assert parse(["--smoke"]).slice == 1
    assert parse(["--slice", "0"]).slice == 0
    with pytest.raises(SystemExit):
        parse(["--slice", "-1"])


def test_busy_connections_reads_the_tcp_table():
    header = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
    rows = [
        "0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000 0 0 1",  # listening
        "1: 0100007F:1F90 0100007F:C350 08 00000000:00000000 00:00000000 00000000 0 0 2",  # CLOSE_WAIT
        "2: 0100007F:1F90 0100007F:C351 01 00000000:0000004E 00:00000000 00000000 0 0 3",  # unread request
        "3: 0100007F:1F90 0100007F:C352 01 00000000:00000000 00:00000000 00000000 0 0 4",  # idle keep-alive
        "4: 0100007F:1F90 0100007F:C353 06 00000000:00000000 00:00000000 00000000 0 0 5",  # TIME_WAIT
        "5: 0100007F:C354 0100007F:1F90 08 00000000:00000000 00:00000000 00000000 0 0 6",  # client side
    ]
    table = header + "\n".join(rows) + "\n"
    assert busy_connections({8080}, table) == 2
    assert busy_connections({8081}, table) == 0


def test_a_request_left_in_the_backlog_is_busy_until_the_server_closes_it():
    """A real socket: a client sends a request and goes away before the server accepted it (what
    wrk leaves behind when it stops); the connection is busy until the server has dealt with it."""
    import socket

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    port = server.getsockname()[1]
    try:
        client = socket.create_connection(("127.0.0.1", port))
        client.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        client.close()
        assert wait_until(lambda: busy_connections({port}) == 1)
        conn, _ = server.accept()
        conn.recv(1024)
        conn.close()
        assert wait_until(lambda: busy_connections({port}) == 0)
    finally:
        server.close()


def wait_until(predicate, tries=500):
    for _ in range(tries):
        if predicate():
            return True
        subprocess.run(["sleep", "0.01"])
    return predicate()
