"""Scenario `coherence`: the stale-read sampler (bench/sampler.py, issue 14) through every tier.

A stack of its own on the run's database, on free ports:

  redis     a private redis-server (db 0 cache, db 1 Celery broker), its own key prefix
  l1l2      one gunicorn, --coherence-workers worker processes (3), L1+L2: each worker has its own
            L1; which one answered is the `X-Bench-Worker` header (its pid, bench/middleware.py)
  l2        one gunicorn, 1 worker, L1 off (CACHE_L1_ENABLED=false; BENCH_MODE=l2 says the same)
  edge      varnishd with deploy/varnish/default.vcl in front of `l1l2`
  editor    one gunicorn, 1 worker, L1+L2, VARNISH_PURGE_URL set: every write goes through it, so
            its outbox rows name the edge (it is started after Varnish, whose port it needs)
  celery    `celery -A newsite worker` draining the outbox into the edge

Reader processes (spawn, no shared GIL) GET the hot articles' details through each tier for
--coherence-duration seconds while a writer thread of the harness edits them, alternating the
editorial API (PATCH with a staff user's DRF token) and the Django admin (session login, POST
of the change form). Every read and write is recorded; sampler.classify counts the reads that
began after a write had returned yet show an older version, per tier and per L1+L2 worker.
"""

import html.parser
import os
import secrets
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime, timedelta
from multiprocessing import get_context

import psycopg
import requests

from bench import sampler
from bench.context import Context, log
from bench.probes import prom_samples
from bench.stack import AppServer, Unavailable
from bench.stats import percentile
from bench.writer import django_setup

SHARED_SERVERS = None  # starts its own stack (above)
IN_ALL = False  # minutes long: run it by name (--scenario coherence)

TIERS = ("l1l2", "l2", "edge")
HTTP_TIMEOUT = 30
STALE_LISTED = 20  # stale reads listed per tier in the results


def run(ctx: Context) -> None:
    opts = ctx.opts
    if ctx.data.get("reason") or not ctx.data.get("published"):
        ctx.coherence = {"status": f"n/a: no demo data ({ctx.data.get('reason', 'no published articles')})"}
        return
    own = []  # the processes this scenario started, stopped at the end
    try:
        stack = _start_stack(ctx, own)
    except Unavailable as exc:
        ctx.coherence = {"status": f"n/a: {exc}"}
        log(ctx.coherence["status"])
        _stop(ctx, own)
        return
    editor = None
    try:
        editor = Editor.create(ctx, stack["editor"].base_url)
        articles = [editor.create_article(n) for n in range(opts.coherence_articles)]
        edge_ok = _check_purge_delivery(editor, articles[0], stack["tiers"]["edge"])
        ctx.coherence = _sample(ctx, stack, editor, articles)
        ctx.coherence["purge_check"] = edge_ok
    except (Unavailable, requests.RequestException, RuntimeError) as exc:
        ctx.coherence = {"status": f"n/a: {exc}"}
        log(ctx.coherence["status"])
    finally:
        if editor is not None:
            editor.clean_up()
        _stop(ctx, own)


# --- The stack --------------------------------------------------------------------------------


def _start_stack(ctx: Context, own: list) -> dict:
    opts = ctx.opts
    port = ctx.stack.start_redis()
    own.append(ctx.stack.procs[-1])
    env = {**ctx.env, "REDIS_URL": f"redis://127.0.0.1:{port}/0", "CELERY_BROKER_URL": f"redis://127.0.0.1:{port}/1",
           "CACHE_KEY_PREFIX": f"{opts.key_prefix}-coh"}
    env.pop("VARNISH_PURGE_URL", None)
    log(f"coherence: private redis-server on :{port}")
    l1l2 = ctx.stack.start_app("l1l2", env, opts.server, opts.coherence_workers, opts.threads)
    own.append(l1l2)
    l2 = ctx.stack.start_app("l2", {**env, "CACHE_L1_ENABLED": "false"}, opts.server, 1, opts.threads)
    own.append(l2)
    edge_port, _ = ctx.stack.start_varnish(l1l2.port)
    own.append(ctx.stack.procs[-1])
    env["VARNISH_PURGE_URL"] = f"http://127.0.0.1:{edge_port}/"
    editor = ctx.stack.start_app("l1l2", env, "gunicorn-sync", 1)
    own.append(editor)
    own.append(ctx.stack.start_celery(env))
    log(f"coherence: {opts.server} x{opts.coherence_workers} L1+L2 on :{l1l2.port}, x1 L2-only on :{l2.port}, "
        f"varnishd on :{edge_port}, editor on :{editor.port}, a Celery worker")
    return {"env": env, "editor": editor, "servers": {"l1l2": l1l2, "l2": l2},
            "tiers": {"l1l2": l1l2.base_url, "l2": l2.base_url, "edge": f"http://127.0.0.1:{edge_port}"}}


def _stop(ctx: Context, own: list) -> None:
    for item in reversed(own):
        if isinstance(item, AppServer):
            ctx.stack.stop_app(item)
        else:
            item.stop()
            if item in ctx.stack.procs:
                ctx.stack.procs.remove(item)


# --- The editor: a staff user, its DRF token, an admin session --------------------------------


class _FormFields(html.parser.HTMLParser):
    """The values a browser would submit from the form with id `form_id` of an admin page."""

    def __init__(self, form_id: str = "article_form"):
        super().__init__()
        self.form_id = form_id
        self.fields: dict[str, str] = {}
        self._in_form = False
        self._textarea: str | None = None
        self._select: str | None = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "form" and a.get("id") == self.form_id:
            self._in_form = True
        if not self._in_form:
            return
        name = a.get("name")
        if tag == "input" and name:
            kind = (a.get("type") or "text").lower()
            if kind in ("submit", "button", "file", "image"):
                return
            if kind in ("checkbox", "radio"):
                if "checked" in a:
                    self.fields[name] = a.get("value") or "on"
                return
            self.fields[name] = a.get("value") or ""
        elif tag == "textarea" and name:
            self._textarea = name
            self.fields[name] = ""
        elif tag == "select" and name:
            self._select = name
        elif tag == "option" and self._select and "selected" in a:
            self.fields[self._select] = a.get("value") or ""

    def handle_endtag(self, tag):
        if tag == "form":
            self._in_form = False
        elif tag == "textarea":
            self._textarea = None
        elif tag == "select":
            self._select = None

    def handle_data(self, data):
        if self._textarea:
            self.fields[self._textarea] += data


class Editor:
    """Writes through the editor server: PATCH /api/articles/{id}/ with a DRF token, or a POST of
    the admin change form with a logged-in session, alternately (`patch`)."""

    def __init__(self, database_url: str, base_url: str, user_id: int, username: str, password: str, token: str):
        """`base_url` may be changed between edits (the hosts scenario rotates it)."""
        self.base_url = base_url
        self.user_id = user_id
        self.api = requests.Session()
        self.api.headers["Authorization"] = f"Token {token}"
        self.admin = requests.Session()
        self.forms: dict[int, dict] = {}
        self.created: list[int] = []
        self.calls = 0
        self.db = psycopg.connect(database_url, autocommit=True)
        self._login(username, password)

    @classmethod
    def create(cls, ctx: Context, base_url: str) -> "Editor":
        """A staff user with the article permissions (not a superuser) and its DRF token."""
        django_setup(ctx)
        from django.contrib.auth import get_user_model
        from django.contrib.auth.models import Permission
        from rest_framework.authtoken.models import Token

        username = f"bench-coherence-{secrets.token_hex(4)}"
        password = secrets.token_urlsafe(16)
        user = get_user_model().objects.create_user(username, password=password, is_staff=True)
        user.user_permissions.set(Permission.objects.filter(
            content_type__app_label="articles", codename__in=("view_article", "change_article", "add_article",
                                                              "delete_article")))
        token = Token.objects.create(user=user)
        try:
            return cls(ctx.opts.database_url, base_url, user.pk, username, password, token.key)
        except BaseException:
            user.delete()
            raise

    def _login(self, username: str, password: str) -> None:
        page = self.admin.get(f"{self.base_url}/admin/login/", timeout=HTTP_TIMEOUT)
        fields = _FormFields("login-form")
        fields.feed(page.text)
        reply = self.admin.post(f"{self.base_url}/admin/login/?next=/admin/", timeout=HTTP_TIMEOUT,
                                data={"csrfmiddlewaretoken": fields.fields.get("csrfmiddlewaretoken", ""),
                                      "username": username, "password": password, "next": "/admin/"},
                                allow_redirects=False)
        if reply.status_code != 302 or "login" in reply.headers.get("Location", ""):
            raise Unavailable(f"admin login failed: HTTP {reply.status_code}")

    def create_article(self, n: int) -> int:
        with self.db.cursor() as cur:
            author_id, category_id = cur.execute(
                "SELECT author_id, category_id FROM articles_article WHERE status = 'published' ORDER BY id LIMIT 1"
            ).fetchone()
        published = (datetime.now(UTC) - timedelta(days=400)).replace(microsecond=0)
        reply = self.api.post(f"{self.base_url}/api/articles/", timeout=HTTP_TIMEOUT, json={
            "title": f"bench coherence {n} v1", "slug": f"bench-coherence-{secrets.token_hex(4)}-{n}",
            "excerpt": "An article edited by the coherence benchmark.", "body": "Body. " * 200,
            "category_id": category_id, "author_id": author_id, "status": "published",
            "published_at": published.isoformat()})
        if reply.status_code != 201:
            raise Unavailable(f"POST /api/articles/ answered {reply.status_code}: {reply.text[:300]}")
        pk = reply.json()["id"]
        self.created.append(pk)
        page = self.admin.get(f"{self.base_url}/admin/articles/article/{pk}/change/", timeout=HTTP_TIMEOUT)
        form = _FormFields()
        form.feed(page.text)
        if page.status_code != 200 or "title" not in form.fields:
            raise Unavailable(f"admin change form of article {pk}: HTTP {page.status_code}, fields {sorted(form.fields)}")
        self.forms[pk] = form.fields
        return pk

    def patch(self, article_id: int, title: str) -> sampler.Edit:
        """One edit: the API and the admin alternately (what the sampler's Writer calls)."""
        self.calls += 1
        if self.calls % 2:
            reply = self.api.patch(f"{self.base_url}/api/articles/{article_id}/", json={"title": title},
                                   timeout=HTTP_TIMEOUT)
            returned = time.monotonic()
            if reply.status_code != 200:
                raise RuntimeError(f"PATCH {article_id}: {reply.status_code} {reply.text[:300]}")
            return sampler.Edit(int(reply.json()["version"]), returned, "api")
        # The form as the editor would open it now: at the article's current version (the admin
        # refuses a form opened before another save: issue 28.4); its other fields are unchanged.
        opened_at = self.db.execute("SELECT version FROM articles_article WHERE id = %s", [article_id]).fetchone()[0]
        data = {**self.forms[article_id], "loaded_version": str(opened_at), "title": title, "_save": "Save"}
        reply = self.admin.post(f"{self.base_url}/admin/articles/article/{article_id}/change/", data=data,
                                timeout=HTTP_TIMEOUT, allow_redirects=False)
        returned = time.monotonic()
        if reply.status_code != 302:
            raise RuntimeError(f"admin change of {article_id}: {reply.status_code} {reply.text[-500:]}")
        # The admin answers with a redirect, not the version: read it back (one writer, so it is
        # this edit's), after `returned` was taken.
        version = self.db.execute("SELECT version FROM articles_article WHERE id = %s", [article_id]).fetchone()[0]
        return sampler.Edit(int(version), returned, "admin")

    def clean_up(self) -> None:
        """Delete the articles and the user (Django set up in this process: bench/writer.py)."""
        for pk in self.created:
            try:
                self.api.delete(f"{self.base_url}/api/articles/{pk}/", timeout=HTTP_TIMEOUT)
            except requests.RequestException:
                pass
        from django.contrib.auth import get_user_model

        get_user_model().objects.filter(pk=self.user_id).delete()
        self.db.close()


def _check_purge_delivery(editor: Editor, article_id: int, edge_url: str) -> str:
    """One untimed edit before the run: the edge must show it within 10 s (outbox -> Celery ->
    Varnish works), else the edge figures would measure a broken setup. Returns a note."""
    path = f"/api/articles/{article_id}/"
    requests.get(edge_url + path, timeout=HTTP_TIMEOUT)
    requests.get(edge_url + path, timeout=HTTP_TIMEOUT)
    edit = editor.patch(article_id, "bench coherence warm-up edit")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        reply = requests.get(edge_url + path, timeout=HTTP_TIMEOUT)
        if reply.status_code == 200 and reply.json().get("version") == edit.version:
            return f"the edge showed a warm-up edit after {(time.monotonic() - edit.returned) * 1000:.0f} ms"
        time.sleep(0.01)
    return "**the edge still showed the old version 10 s after a warm-up edit: purges are not delivered**"


# --- Sampling and accounting ------------------------------------------------------------------


def _sample(ctx: Context, stack: dict, editor: Editor, articles: list[int]) -> dict:
    opts = ctx.opts
    tiers = stack["tiers"]
    per_tier = {"l1l2": opts.coherence_readers * opts.coherence_workers, "l2": opts.coherence_readers,
                "edge": opts.coherence_readers if opts.coherence_edge_readers is None else opts.coherence_edge_readers}
    total = sum(per_tier.values())
    outbox_from = editor.db.execute("SELECT coalesce(max(id), 0) FROM cdn_purgeoutbox").fetchone()[0]
    log(f"coherence: {total} reader processes ({per_tier}) on {len(articles)} articles for "
        f"{opts.coherence_duration:g} s, an edit every {opts.coherence_edit_interval:g} s")
    stop = threading.Event()
    writer = sampler.Writer(articles, editor.patch, stop, interval=opts.coherence_edit_interval,
                            title="bench coherence edit {n}")
    with ProcessPoolExecutor(max_workers=total, mp_context=get_context("spawn")) as pool:
        start_at = time.monotonic() + 5.0  # time for every process to start (spawn imports)
        stop_at = start_at + opts.coherence_duration
        futures = [pool.submit(sampler.sample_reads, tier, tiers[tier], articles, start_at=start_at,
                               stop_at=stop_at, offset=i)
                   for tier, n in per_tier.items() for i in range(n)]
        time.sleep(max(0.0, start_at - time.monotonic()))
        writer.start()
        time.sleep(max(0.0, stop_at - time.monotonic()))
        stop.set()
        loadavg = os.getloadavg()  # this machine is shared: how busy it was
        writer.join(60)
        logs = [f.result(timeout=opts.coherence_duration + 120) for f in futures]
    if writer.error is not None:
        raise Unavailable(f"the writer failed: {writer.error}")
    writes = writer.writes
    log(f"coherence: {sum(len(x) for x in logs):,} reads and {len(writes)} writes sampled; classifying")
    tiers_out = {}
    for tier in TIERS:
        tier_logs = [x for x in logs if x.tier == tier]
        tiers_out[tier] = tier_figures(tier, tier_logs, writes, opts.coherence_duration)
        if tier == "l1l2":
            pids = sorted({pid for x in tier_logs for pid in x.workers() if pid})
            tiers_out[tier]["workers"] = {
                pid: tier_figures(f"l1l2 worker {pid}", tier_logs, writes, opts.coherence_duration, pid=pid)
                for pid in pids}
    kinds = {}
    for w in writes:
        kinds.setdefault(w.kind, []).append((w.returned - w.started) * 1000)
    # Rows of these articles only: the database may be shared with other runs.
    mine = [f"article:{pk}" for pk in articles]
    outbox = dict(editor.db.execute(
        "SELECT status, count(*) FROM cdn_purgeoutbox WHERE id > %s AND tags ?| %s GROUP BY status",
        [outbox_from, mine]).fetchall())
    delivery = [r[0] * 1000 for r in editor.db.execute(
        "SELECT extract(epoch FROM delivered_at - created_at)::float8 FROM cdn_purgeoutbox "
        "WHERE id > %s AND tags ?| %s AND delivered_at IS NOT NULL", [outbox_from, mine]).fetchall()]
    for tier, t in tiers_out.items():
        log(f"coherence {tier}: {t['reads']:,} reads, {t['stale']} stale, lag p99 {_ms(t['lag_p99'])} ms, "
            f"window p99 {_ms(t['window_p99'])} ms, edits stale > 1 s: {t['stale_after_1s']}")
    replica = None
    if stack["env"].get("DATABASE_REPLICA_URLS"):
        replica = _replica_figures(stack, opts.coherence_duration)
    if replica:
        log(f"coherence: replica fallbacks {replica['fallbacks']}, loads {replica['loads']:,}")
    return {
        "replica": replica,
        "status": "ok", "duration": opts.coherence_duration, "articles": articles, "readers": per_tier,
        "workers": opts.coherence_workers, "server": opts.server, "edit_interval": opts.coherence_edit_interval,
        "writes": {kind: {"count": len(ms), "p50": percentile(ms, 50), "p99": percentile(ms, 99), "max": max(ms)}
                   for kind, ms in kinds.items()},
        "tiers": tiers_out, "outbox": outbox, "loadavg": loadavg,
        "delivery": {"p50": percentile(delivery, 50), "p99": percentile(delivery, 99), "max": max(delivery)}
        if delivery else None,
    }


def _replica_figures(stack: dict, duration: float) -> dict:
    """With DATABASE_REPLICA_URLS (reads on a replica, issue 26): the readers' servers' loads and
    their primary fallbacks by reason (each `fence` one is one extra primary load)."""
    fallbacks: dict[str, float] = {}
    loads = 0.0
    for server in stack["servers"].values():
        for (name, labels), value in prom_samples(server.metrics_dir).items():
            if name == "newsite_cache_replica_fallbacks_total":
                reason = dict(labels)["reason"]
                fallbacks[reason] = fallbacks.get(reason, 0) + value
            elif name == "newsite_cache_loads_total":
                loads += value
    return {"urls": stack["env"]["DATABASE_REPLICA_URLS"].count(",") + 1, "fallbacks": fallbacks,
            "loads": loads, "fence_per_s": fallbacks.get("fence", 0) / duration if duration else None}


def tier_figures(tier: str, logs, writes, duration: float, pid: int | None = None) -> dict:
    def reads():
        for x in logs:
            for r in x.reads():
                if pid is None or r.worker == str(pid):
                    yield r

    result = sampler.classify(tier, reads(), writes)
    x_cache = {}  # the app's X-Cache; at the edge, X-Cache-Edge
    for x in logs:
        for code, worker in zip(x.edge if tier == "edge" else x.x_cache, x.worker, strict=True):
            if pid is None or worker == pid:
                label = x.labels[code] if code >= 0 else "-"
                x_cache[label] = x_cache.get(label, 0) + 1
    worst = sorted(result.stale_reads, key=lambda s: s.lag, reverse=True)[:STALE_LISTED]
    return {
        "reads": result.reads, "errors": result.errors, "reads_per_s": result.reads / duration if duration else None,
        "processes": (1 if pid is not None else len({p for x in logs for p in x.workers() if p}))
        if tier != "edge" else None,
        "x_cache": x_cache, "stale": result.stale, "lag_p50": result.lag_percentile(50),
        "lag_p99": result.lag_percentile(99), "window_p50": result.window_percentile(50),
        "window_p99": result.window_percentile(99), "stale_after_1s": result.writes_stale_after(1.0),
        "stale_edits": sum(1 for w in result.write_windows if w > 0),
        "stale_reads": [_stale_record(s) for s in worst],
    }


def _stale_record(s: sampler.StaleRead) -> dict:
    r = s.read
    return {"tier": r.tier, "article": r.article_id, "version": r.version, "expected": s.expected,
            "lag_ms": s.lag * 1000, "x_cache": r.x_cache, "edge": r.edge, "age": r.age, "worker": r.worker,
            "status": r.status}


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.1f}"
