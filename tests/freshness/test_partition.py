"""Issue 27: a host cut off from Redis by a partition that drops packets silently stops trusting
its L1 within L1_TRUST_SECONDS, keeps answering (from the database behind the breakers), and
trusts L1 again once it hears Redis.

Real network stacks (bench/netns.py): the partitioned host is a gunicorn in a network namespace
of its own ("app"), a private redis-server is in another ("redis"), both on the harness's bridge;
this test reads the host over the bridge, the host reaches PostgreSQL through its Unix socket. The
writer is a gunicorn in the root namespace on the same Redis (over the bridge) and database. The
partition is Network.cut("app", "redis"): what either sends the other is dropped, both ways, with
no error on either side (no RST, no ICMP): the host's subscriber connection stays open and hears
nothing, new connections time out; the writer's and this test's traffic goes on.

Readers (threads) race the writes through the whole run. The bound checked: a read sent more
than L1_TRUST_SECONDS after a write returned never shows an older version (whatever answered
it: L1, L2 or the database); 503s are allowed, no other 5xx."""

from __future__ import annotations

import functools
import re
import shutil
import threading
import time
from dataclasses import dataclass

import pytest
import requests
from django.db import connection
from rest_framework.authtoken.models import Token

from bench import netns
from tests.factories import make_article, make_editor
from tests.support import Gunicorn, RedisServer, app_env, free_port, require_postgresql, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

TRUST = 1.0  # L1_TRUST_SECONDS of the partitioned host (the default)
READERS = 4
PARTITION_SECONDS = 4.0  # long enough for two writes, each followed by TRUST of reads
READ_TIMEOUT = 10.0
MAX_READS = 50_000  # per reader: a bound on the loop besides its stop event


class NamespacedGunicorn(Gunicorn):
    """Gunicorn inside the namespace of `net`'s host `node`, bound to that host's address."""

    def __init__(self, *, net: netns.Network, node: str, **kwargs):
        self.net = net
        self.node = node
        self.host = net.address(node)
        super().__init__(**kwargs)

    def command(self, port: int, workers: int) -> list[str]:
        args = super().command(port, workers)
        args[args.index("--bind") + 1] = f"{self.host}:{port}"
        return self.net.wrap(self.node, args)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


@dataclass
class Read:
    sent: float  # time.monotonic() before the request left
    status: int
    source: str  # X-Cache
    title: str | None


@pytest.fixture
def partition_stack(tmp_path):
    """(host in its namespace "app", the Network (Redis is its host "redis"), writer in the root
    namespace)."""
    require_postgresql()
    why = netns.available()
    if why:
        pytest.skip(f"no network namespace here ({why})")
    if not shutil.which("redis-server"):
        pytest.skip("redis-server binary not installed")
    net = netns.Network.create(["app", "redis"])
    redis_server = host = writer = None
    try:
        redis_server = RedisServer(tmp_path, host=net.address("redis"), wrap=functools.partial(net.wrap, "redis"))
        net.check_url(redis_server.url)  # before start() pings it
        redis_server.start()
        with connection.cursor() as cursor:
            cursor.execute("SHOW unix_socket_directories")
            socket_dir = cursor.fetchone()[0].split(",")[0].strip()
        db = connection.settings_dict
        user = f"{db['USER']}@" if db.get("USER") else ""
        shared = {"CACHE_KEY_PREFIX": "newsite-partition", "CELERY_TASK_ALWAYS_EAGER": "true",
                  "DB_POOL_MIN": "1", "DB_POOL_MAX": "4", "CACHE_L1_TRUST_SECONDS": str(TRUST)}
        broker_url = redis_server.url.removesuffix("/0") + "/1"
        host = NamespacedGunicorn(
            net=net, node="app", port=free_port(), workdir=tmp_path, threads=READERS,
            env=app_env(**shared, REDIS_URL=redis_server.url, CELERY_BROKER_URL=broker_url,
                        DATABASE_URL=f"postgres://{user}/{db['NAME']}?host={socket_dir}",
                        ALLOWED_HOSTS=net.address("app")),
            ready_path="/api/categories/",
        )
        net.check_url(host.url)  # before wait_ready() and the readers send anything
        writer = Gunicorn(port=free_port(), workdir=tmp_path,
                          env=app_env(**shared, REDIS_URL=redis_server.url, CELERY_BROKER_URL=broker_url),
                          ready_path="/api/categories/")
        host.wait_ready()
        writer.wait_ready()
        yield host, net, writer
    finally:
        for server in (host, writer):
            if server is not None:
                server.stop()
        if redis_server is not None:
            redis_server.stop()
        net.close()


class Readers:
    """READERS threads reading `url` until stopped (or MAX_READS each), every read recorded."""

    def __init__(self, url: str):
        self.url = url
        self.reads: list[Read] = []
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(READERS)]

    def _run(self) -> None:
        session = requests.Session()
        for _ in range(MAX_READS):
            if self._stop.is_set():
                return
            sent = time.monotonic()
            try:
                response = session.get(self.url, timeout=READ_TIMEOUT)
            except requests.RequestException as exc:
                with self._lock:
                    self.errors.append(f"{sent:.3f}: {exc}")
                continue
            title = response.json().get("title") if response.status_code == 200 else None
            with self._lock:
                self.reads.append(Read(sent, response.status_code, response.headers.get("X-Cache", ""), title))

    def __enter__(self) -> Readers:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(READ_TIMEOUT + 5)


def metric(url: str, name: str, labels: str) -> float:
    text = requests.get(url + "/metrics", timeout=READ_TIMEOUT).text
    pattern = re.compile(rf"^{re.escape(name)}\{{[^}}]*{re.escape(labels)}[^}}]*\}} ([0-9.e+-]+)$", re.M)
    return sum(float(value) for value in pattern.findall(text))


def test_a_partitioned_host_stops_trusting_l1_within_the_bound_and_recovers(partition_stack):
    host, net, writer = partition_stack
    article = make_article(title="v1")
    token = Token.objects.create(user=make_editor(username="partition-editor")).key
    path = f"/api/articles/{article.id}/"

    def write(title: str) -> float:
        response = requests.patch(writer.url + path, json={"title": title},
                                  headers={"Authorization": f"Token {token}"}, timeout=READ_TIMEOUT)
        assert response.status_code == 200, response.text
        return time.monotonic()

    def source_of_read() -> str:
        return requests.get(host.url + path, timeout=READ_TIMEOUT).headers.get("X-Cache", "")

    def health() -> dict:
        return requests.get(host.url + "/health/cache/", timeout=READ_TIMEOUT).json()

    def trusts_l1() -> bool:
        doc = health()
        return doc["l1"]["trusted"] and doc["subscription"]["state"] == "ok"

    assert wait_until(trusts_l1, 10, 0.05), {k: health()[k] for k in ("l1", "subscription", "breaker")}
    assert wait_until(lambda: source_of_read() == "HIT-L1", 10, 0.05), "the host's L1 never filled"
    loads_before = health()["loads"]
    written = {}  # title -> when its write returned
    with Readers(host.url + path) as readers:
        time.sleep(0.5)
        partitioned_at = time.monotonic()
        net.cut("app", "redis")
        try:
            written["v2"] = write("v2")
            time.sleep(PARTITION_SECONDS / 2)
            written["v3"] = write("v3")  # a copy the host loaded during the partition is superseded
            time.sleep(PARTITION_SECONDS / 2)
        finally:
            healed_at = time.monotonic()
            net.mend("app", "redis")
        loads_during = health()["loads"] - loads_before
        # Back: the host hears Redis again and trusts its L1 again (a bounded wait).
        trusted_again = wait_until(trusts_l1, 15, 0.05)
        written["v4"] = write("v4")  # heard through the healed subscription
        time.sleep(TRUST + 0.5)
    reads = readers.reads

    problems = []
    if readers.errors:
        problems.append(f"{len(readers.errors)} reads failed, e.g. {readers.errors[:3]}")
    bad = [r for r in reads if r.status >= 500 and r.status != 503]
    if bad:
        problems.append(f"{len(bad)} answers 5xx other than 503, e.g. {bad[:3]}")
    order = ["v1", "v2", "v3", "v4"]
    for title, returned in written.items():
        stale = [r for r in reads if r.sent > returned + TRUST and r.title is not None
                 and order.index(r.title) < order.index(title)]
        if stale:
            problems.append(
                f"{len(stale)} reads sent more than {TRUST} s after {title} returned showed an older version, "
                f"e.g. {[(round(r.sent - partitioned_at, 3), r.source, r.title) for r in stale[:5]]}")
    during = [r for r in reads if partitioned_at + TRUST < r.sent < healed_at]
    if not during or not all(r.status in (200, 503) for r in during):
        problems.append(f"during the partition: {len(during)} reads, statuses {sorted({r.status for r in during})}")
    if not trusted_again:
        problems.append("after the heal the host never answered from L1 again")
    lapses = metric(host.url, "newsite_cache_invalidations_total", 'kind="l1_distrusted"')
    if lapses < 1:
        problems.append("newsite_cache_invalidations_total{kind=\"l1_distrusted\"} was not counted")
    l1_during = sum(r.source == "HIT-L1" for r in during)
    hits_after = sum(r.source == "HIT-L1" for r in reads if r.sent > written["v4"])
    if not hits_after:
        problems.append("after the heal no read was answered from L1")
    print(f"\n[partition] {len(reads)} reads, {len(during)} during the partition past the bound "
          f"({l1_during} HIT-L1, from copies loaded during it), {sum(r.status == 503 for r in reads)} 503s; "
          f"{loads_during} loads from the start of the partition to its end; l1_distrusted={lapses:.0f}; "
          f"after the heal: trusted again {trusted_again}, {hits_after} HIT-L1 after v4")
    assert not problems, "\n".join(problems)
