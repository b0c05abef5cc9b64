"""Issue 25: scheduled publishing against the clock, raced by readers through every tier.

SPEC section 5, "Freshness against time": at a scheduled go-live, take-down or window edge, every
tier (each L1, L2, the edge, the browser's max-age) changes within 1 s, never before. Each test
sets a moment a few seconds ahead (a scheduled `published_at`, an `expires_at`, a breaking
article's published_at + 6 h and a news-sitemap article's + 48 h), then READERS threads read
every public surface that shows the article through the app (the readers host: 2 gunicorn
workers, L1+L2) and through the edge (Varnish in front of it) until RACE_AFTER seconds past the
moment. For every read the local time it was SENT and the time its response was RECEIVED are
recorded (all processes run on this machine: one clock), and whether it shows the change. The
rule, per surface and tier:

  never early   no read RECEIVED before the moment shows the change;
  within 1 s    every read SENT at or after moment + WITHIN (1.0 s) shows it;
  browser       a response without the change, received before the moment (and after the write
                that set the moment reached every tier), may not be kept by a browser past
                moment + WITHIN: received + max-age - Age <= moment + WITHIN.

Surfaces: the detail (JSON and page), the home feed (JSON and page, and page 2, where the oldest
of a full page of older articles is pushed while the article is on page 1), the category feed
(JSON, page, RSS, Atom), the site's RSS and Atom, search for a word only its title has, breaking
news (JSON and the home page's breaking box), the news sitemap and the full sitemap, the author
(article_count) and the author's feed, and the view counter (POST /api/articles/{id}/views/: 204
or 404, through the app only: the edge passes POSTs).

The stack (tests/freshness/conftest.py, running_stack(beat=True)) runs `celery beat` beside the
worker, so `articles.fire_scheduled_changes` fires every SCHEDULE_TICK_SECONDS; the last test
kills both with SIGKILL shortly before the moment and starts them again after it: the capped
lifetimes must keep the rule on their own, and the scheduler fires what it missed once back.

Figures (per surface x tier: reads before/after, how many were served from a cache, the first
read that showed the change and the last that did not, relative to the moment; the scheduler's
outbox rows) are printed with a `[schedule]` prefix (pytest -s), written to
<stack workdir>/schedule-<test>.txt (every read in schedule-<test>-reads.jsonl beside it) and
repeated in a failing assertion.

Run: make test PYTEST_ARGS="tests/freshness/test_schedule.py -q -s" (about a minute).
"""

from __future__ import annotations

import itertools
import json
import random
import re
import string
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta

import pytest
import requests

from tests.factories import make_author, make_category
from tests.freshness.conftest import last_outbox_id, outbox_ids_after
from tests.support import wait_until

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

SCHEDULE_TICK = 1.0
FRESHNESS_STACK = {
    "l2only": False,  # not a surface of this issue: one process less on a 2-core machine
    "beat": True,
    # The canary's app URL is not this stack's (it would hold the solo worker for its timeout).
    "worker_env": {"SCHEDULE_TICK_SECONDS": str(SCHEDULE_TICK), "FRESHNESS_CANARY_EVERY": "0"},
}

MOMENT_LEAD = 4.0  # the moment is this far after the write that sets it
RACE_AFTER = 3.0  # readers race until the moment + this
WITHIN = 1.0  # SPEC 5: every tier shows the change within 1 s of the moment
READERS = 8
# Each reader's pause between reads: none near the moment (from NEAR_BEFORE before it to NEAR_AFTER
# after it: as dense as the servers answer), READ_PAUSE elsewhere (the 2 shared cores keep room).
READ_PAUSE = 0.03
NEAR_BEFORE, NEAR_AFTER = 1.0, 1.5
MAX_READS_PER_READER = 4000
HTTP_TIMEOUT = 10
MIN_READS = 3  # reads each surface x tier needs before the moment and past WITHIN to judge it
POSTPONE_BY = 3.0  # postponement test: the go-live moved this much later, 1 s before it was due
KILL_BEFORE = 1.0  # outage test: worker + beat killed this long before the moment
RESTART_AFTER = 2.0  # ... and started again this long after it
CATCH_UP_WAIT = 30.0  # how long the restarted scheduler has to write the missed purge

APPEAR, DISAPPEAR = "appear", "disappear"


# --- surfaces -------------------------------------------------------------------------------------


_BREAKING_BOX = re.compile(r'<section class="breaking".*?</section>', re.S)


@dataclass(frozen=True)
class Surface:
    name: str
    path: str
    # "detail": 200 shows it, 404 not; "list": its slug in the body; "page": as "list", a 404 (a
    # page past the last) shows nothing; "box": in the home page's breaking box; "count": the
    # author's article_count (the article is their only one) is 1; "counter": POST, 204 counts
    # a view of it, 404 does not
    kind: str
    slug: str  # the article whose presence is judged
    tiers: tuple[str, ...] = ("app", "edge")

    @property
    def method(self) -> str:
        return "POST" if self.kind == "counter" else "GET"

    def shows(self, status: int, text: str) -> bool | None:
        """Whether this response shows the article; None when the status says nothing (an error)."""
        slug = self.slug
        if self.kind == "detail":
            return {200: True, 404: False}.get(status)
        if self.kind == "counter":
            return {204: True, 404: False}.get(status)
        if self.kind == "page" and status == 404:
            return False
        if status != 200:
            return None
        if self.kind == "count":
            try:
                return json.loads(text)["article_count"] >= 1
            except (ValueError, KeyError, TypeError):
                return None
        if self.kind == "box":
            box = _BREAKING_BOX.search(text)
            return bool(box) and f"/articles/{slug}/" in box.group(0)
        return slug in text


def every_surface(subject: Subject, pushed_slug: str) -> list[Surface]:
    """The brief's surfaces, then what else shows the article: its author (count and feed), its
    category's feeds, the full sitemap; and page 2 of the home feed, where `pushed_slug` (the
    oldest of FILLERS older articles) is when the article is on page 1."""
    article, category, slug = subject.article, subject.category_slug, subject.slug
    author = article["author_id"]
    return [
        Surface("detail-json", f"/api/articles/{article['id']}/", "detail", slug),
        Surface("detail-page", f"/articles/{slug}/", "detail", slug),
        Surface("home-json", "/api/articles/", "list", slug),
        Surface("home-page", "/", "list", slug),
        Surface("category-json", f"/api/categories/{category}/articles/", "list", slug),
        Surface("category-page", f"/category/{category}/", "list", slug),
        Surface("rss", "/feed/", "list", slug),
        Surface("atom", "/feed/atom/", "list", slug),
        Surface("search", f"/api/search/?q={subject.word}", "list", slug),
        Surface("breaking-json", "/api/breaking-news/", "list", slug),
        Surface("news-sitemap", "/sitemap-news.xml", "list", slug),
        Surface("author-json", f"/api/authors/{author}/", "count", slug),
        Surface("author-feed-json", f"/api/authors/{author}/articles/", "list", slug),
        Surface("category-rss", f"/category/{category}/feed/", "list", slug),
        Surface("category-atom", f"/category/{category}/feed/atom/", "list", slug),
        Surface("sitemap-articles", "/sitemap-articles.xml", "list", slug),
        Surface("home-json-p2(pushed)", "/api/articles/?page=2", "page", pushed_slug),
        Surface("home-page-p2(pushed)", "/?page=2", "page", pushed_slug),
        # the view counter's existence check (a cached negative entry before the go-live); a POST,
        # which the edge passes to the app: read through the app only
        Surface("views-counter", f"/api/articles/{article['id']}/views/", "counter", slug, ("app",)),
    ]


def tiers_of(stack) -> dict[str, str]:
    return {"app": stack.readers.url, "edge": stack.edge.url}


# --- one read -----------------------------------------------------------------------------------


@dataclass
class Read:
    surface: str
    tier: str
    sent: float  # time.time() when the request was sent
    received: float  # ... and when its response was in
    status: int  # 0: no response (the error is in `error`)
    shows: bool | None
    x_cache: str | None = None
    edge: str | None = None
    age: int = 0
    max_age: int | None = None
    cache_control: str | None = None
    error: str | None = None


def _max_age(cache_control: str | None) -> int | None:
    match = re.search(r"(?:^|[,\s])max-age=(\d+)", cache_control or "")
    return int(match.group(1)) if match else None


def read(session: requests.Session, base: str, surface: Surface, tier: str) -> Read:
    sent = time.time()
    try:
        response = session.request(surface.method, base + surface.path, timeout=HTTP_TIMEOUT)
        text = response.text
    except requests.RequestException as exc:
        return Read(surface.name, tier, sent, time.time(), 0, None, error=repr(exc)[:200])
    received = time.time()
    headers = response.headers
    try:
        age = int(headers.get("Age") or 0)
    except ValueError:
        age = 0
    cache_control = headers.get("Cache-Control")
    return Read(surface.name, tier, sent, received, response.status_code,
                surface.shows(response.status_code, text), headers.get("X-Cache"),
                headers.get("X-Cache-Edge"), age, _max_age(cache_control), cache_control)


# --- the race ---------------------------------------------------------------------------------------


def warm(stack, surfaces: list[Surface], rounds: int = 2) -> None:
    """Fill every surface in every tier: bursts through the app (both workers' L1, L2), reads
    through the edge, twice, 1.1 s apart (the edge keeps the first sight of a 404 or a search as
    a 1 s hit-for-miss)."""
    jobs = [(base, surface, tier) for surface in surfaces for tier, base in tiers_of(stack).items()
            if tier in surface.tiers for _ in range(4 if tier == "app" else 2)]
    for n in range(rounds):
        with ThreadPoolExecutor(max_workers=READERS) as pool:
            list(pool.map(lambda job: read(requests.Session(), *job), jobs))
        if n < rounds - 1:
            time.sleep(1.1)


def race(stack, surfaces: list[Surface], moment: float, during=None, also_near=()) -> tuple[list[Read], object]:
    """READERS threads read every surface x tier in turn (one shared round-robin: each takes the
    next probe, so every probe is read once per len(probes) reads whatever each read costs) until
    RACE_AFTER past the moment (bounded in count too), without pausing near the moment (or near
    one of `also_near`); meanwhile this thread runs during() (None: nothing). Returns the reads by
    time sent and what during() returned."""
    until = moment + RACE_AFTER
    probes = [(surface, tier, base) for surface in surfaces for tier, base in tiers_of(stack).items()
              if tier in surface.tiers]
    turn = itertools.count()
    turn_lock = threading.Lock()

    def reader(i: int) -> list[Read]:
        session = requests.Session()
        seen: list[Read] = []
        while len(seen) < MAX_READS_PER_READER and time.time() < until:
            with turn_lock:
                k = next(turn)
            surface, tier, base = probes[k % len(probes)]
            seen.append(read(session, base, surface, tier))
            now = time.time()
            if not any(t - NEAR_BEFORE <= now <= t + NEAR_AFTER for t in (moment, *also_near)):
                time.sleep(READ_PAUSE)
        return seen

    with ThreadPoolExecutor(max_workers=READERS) as pool:
        futures = [pool.submit(reader, i) for i in range(READERS)]
        outcome = during() if during is not None else None
        reads = [r for f in futures for r in f.result(timeout=max(0.0, until - time.time()) + HTTP_TIMEOUT + 30)]
    return sorted(reads, key=lambda r: r.sent), outcome


def write_settled(since_outbox_id: int, deadline: float, article_ids=None):
    """Wait (until `deadline` at most) for the writes' purges to be delivered: every outbox row
    after `since_outbox_id` (naming one of `article_ids`, when given) done. Returns the time it
    saw that, or None."""
    from cdn.models import PurgeOutbox

    names = {f"article:{i}" for i in article_ids or ()}

    def delivered():
        rows = PurgeOutbox.objects.filter(pk__gt=since_outbox_id).values_list("tags", "status")
        rows = [status for tags, status in rows if not names or names & set(tags or [])]
        return rows and all(status == "done" for status in rows)

    done = wait_until(delivered, max(0.0, deadline - time.time()), 0.02)
    return time.time() if done else None


# --- judging and figures ------------------------------------------------------------------------


@dataclass
class Figures:
    surface: str
    tier: str
    reads: int = 0
    before: int = 0  # received before the moment
    after: int = 0  # sent at or after moment + WITHIN
    cached_before: int = 0  # of `before`, served from a cache of the tier
    cached_after: int = 0  # of `after`, served from a cache of the tier (caching resumed after the moment)
    errors: list[Read] = field(default_factory=list)
    early: list[Read] = field(default_factory=list)  # received before the moment, showing the change
    late: list[Read] = field(default_factory=list)  # sent past moment + WITHIN, not showing it
    overstay: list[tuple[Read, float]] = field(default_factory=list)  # browser would keep it past WITHIN
    first_new: Read | None = None  # the first read (by sent) showing the change
    last_old: Read | None = None  # the last read (by sent) not showing it


def judge(reads: list[Read], moment: float, direction: str, settled: float | None) -> dict[tuple[str, str], Figures]:
    """The figures of every surface x tier. The browser rule is judged on reads sent after
    `settled` (the write that set the moment has reached every tier: a copy the edge filled
    before it, when no moment was known, is the write's freshness, not the schedule's); None:
    not judged."""
    figures: dict[tuple[str, str], Figures] = {}
    for r in reads:
        f = figures.setdefault((r.surface, r.tier), Figures(r.surface, r.tier))
        f.reads += 1
        if r.shows is None:
            f.errors.append(r)
            continue
        new = r.shows if direction == APPEAR else not r.shows
        cached = (r.edge == "HIT") if r.tier == "edge" else (r.x_cache or "").startswith(("HIT", "STALE"))
        if r.received < moment:
            f.before += 1
            f.cached_before += cached
            if new:
                f.early.append(r)
            elif r.max_age is not None and settled is not None and r.sent >= settled:
                kept_until = r.received + max(0, r.max_age - r.age)
                if kept_until > moment + WITHIN:
                    f.overstay.append((r, kept_until - moment))
        if r.sent >= moment + WITHIN:
            f.after += 1
            f.cached_after += cached
            if not new:
                f.late.append(r)
        if new and (f.first_new is None or r.sent < f.first_new.sent):
            f.first_new = r
        if not new and (f.last_old is None or r.sent > f.last_old.sent):
            f.last_old = r
    return figures


def _rel(t: float, moment: float) -> str:
    return f"{t - moment:+.3f}"


def _brief(r: Read, moment: float) -> str:
    return (f"sent {_rel(r.sent, moment)} recv {_rel(r.received, moment)} status={r.status} shows={r.shows} "
            f"X-Cache={r.x_cache} X-Cache-Edge={r.edge} Age={r.age} Cache-Control={r.cache_control!r}"
            + (f" error={r.error}" if r.error else ""))


def report(name: str, stack, reads: list[Read], moment: float, direction: str, settled: float | None,
           extra: list[str] = ()) -> tuple[str, list[str]]:
    """Print and store the figures; return (the figures as text, the problems found)."""
    figures = judge(reads, moment, direction, settled)
    change = "shown" if direction == APPEAR else "gone"
    lines = [f"[schedule] {name}: moment {datetime.fromtimestamp(moment, UTC).isoformat()}, {len(reads)} reads, "
             f"change = article {change}; times in s relative to the moment (sent/recv); browser rule judged on "
             f"reads sent from {_rel(settled, moment) if settled is not None else 'never (the write never settled)'}"]
    problems: list[str] = []
    for (surface, tier), f in sorted(figures.items()):
        first = f"sent {_rel(f.first_new.sent, moment)} recv {_rel(f.first_new.received, moment)}" if f.first_new else "never"
        last = f"sent {_rel(f.last_old.sent, moment)} recv {_rel(f.last_old.received, moment)}" if f.last_old else "never"
        lines.append(
            f"[schedule] {name} {surface:<18} {tier:<4}: reads {f.reads:4d} (before {f.before:3d}, cached {f.cached_before:3d}; "
            f"after+{WITHIN:g}s {f.after:3d}, cached {f.cached_after:3d}; errors {len(f.errors)}) first {change} {first}; last not {change} {last}; "
            f"early {len(f.early)} late {len(f.late)} browser-overstay {len(f.overstay)}")
        label = f"{surface} via {tier}"
        if f.early:
            problems.append(f"{label}: {len(f.early)} reads received BEFORE the moment already show it {change}, "
                            f"first: {_brief(f.early[0], moment)}")
        if f.late:
            problems.append(f"{label}: {len(f.late)} reads sent {WITHIN:g}s or more after the moment do not show it "
                            f"{change}, last: {_brief(f.late[-1], moment)}")
        if f.overstay:
            worst = max(f.overstay, key=lambda o: o[1])
            problems.append(f"{label}: {len(f.overstay)} responses received before the moment may be kept by a browser "
                            f"past moment + {WITHIN:g}s (until +{worst[1]:.3f}s): {_brief(worst[0], moment)}")
        if f.errors:
            problems.append(f"{label}: {len(f.errors)} reads with an unexpected status, first: {_brief(f.errors[0], moment)}")
        if f.before < MIN_READS or f.after < MIN_READS:
            problems.append(f"{label}: too few reads to judge (before {f.before}, after {f.after}; need {MIN_READS})")
    lines.extend(f"[schedule] {name} {line}" for line in extra)
    text = "\n".join(lines)
    print("\n" + text, flush=True)
    out = stack.workdir / f"schedule-{name}.txt"
    out.write_text(text + "\n\nproblems:\n" + "\n".join(problems or ["none"]) + "\n")
    with (stack.workdir / f"schedule-{name}-reads.jsonl").open("w") as f:
        for r in reads:
            f.write(json.dumps({**asdict(r), "sent_rel": r.sent - moment, "received_rel": r.received - moment}) + "\n")
    print(f"[schedule] {name}: figures in {out}, every read in {out.with_name(f'schedule-{name}-reads.jsonl')}",
          flush=True)
    return text, problems


def verdict(text: str, problems: list[str]) -> None:
    assert not problems, "\n".join(["the schedule rule does not hold:", *problems, "", text])


# --- the editorial API ---------------------------------------------------------------------------------


def iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="microseconds")


class Writer:
    """POST/PATCH /api/articles/ through the editor host with the `editor` fixture's token."""

    def __init__(self, editor):
        self.base_url = editor.base_url
        self.headers = {"Authorization": f"Token {editor.token}"}

    def _call(self, method: str, path: str, body: dict, expect: int) -> dict:
        response = requests.request(method, self.base_url + path, json=body, headers=self.headers, timeout=30)
        assert response.status_code == expect, f"{method} {path} {body}: {response.status_code} {response.text[:800]}"
        return response.json()

    def create(self, **body) -> dict:
        return self._call("POST", "/api/articles/", body, 201)

    def patch(self, article_id: int, **body) -> dict:
        return self._call("PATCH", f"/api/articles/{article_id}/", body, 200)


def token(n: int = 10) -> str:
    return "".join(random.choices(string.ascii_lowercase, k=n))


@dataclass
class Subject:
    article: dict
    category_slug: str
    word: str
    outbox_before_post: int  # the last outbox row before the POST (after the ORM's own rows)

    @property
    def slug(self) -> str:
        return self.article["slug"]


def new_article(writer: Writer, scenario: str, **fields) -> Subject:
    """An article of a category of its own, its title carrying a word nothing else has."""
    word = "zq" + token()
    # Through the ORM of this process: their outbox rows wait for the stack worker's re-drive (this
    # process's broker is not the stack's), so the writes judged below are the API's, after them.
    category = make_category(name=f"Sched {scenario} {token(6)}")
    author = make_author()
    before = last_outbox_id()
    article = writer.create(title=f"Scheduled {word} {scenario}", slug=f"sched-{scenario}-{word}",
                            excerpt=f"The {scenario} of {word}.", body=f"Body of {word}.",
                            category_id=category.id, author_id=author.id, **fields)
    return Subject(article, category.slug, word, before)


FILLERS = 20  # a page of the home feed (selectors.PAGE_SIZE)


def fillers(writer: Writer, scenario: str) -> str:
    """FILLERS live articles published 2 h ago and before (older than the subject), of another
    category and author: page 1 of the home feed is full without the subject, and its oldest is
    pushed to page 2 while the subject is live. Returns that oldest one's slug."""
    category, author = make_category(name=f"Filler {scenario} {token(6)}"), make_author()
    now = time.time()
    slugs = []
    for n in range(FILLERS):
        slug = f"filler-{scenario}-{n}-{token(6)}"
        writer.create(title=f"Filler {n} of {scenario}", slug=slug, category_id=category.id, author_id=author.id,
                      status="published", published_at=iso(now - 7200 - 60 * n))
        slugs.append(slug)
    return slugs[-1]


def expect_state(problems: list[str], response: dict, state: str, when: str) -> None:
    if response.get("state") != state:
        problems.append(f"editorial response {when}: state={response.get('state')!r}, expected {state!r}")


def outbox_row(pk: int) -> tuple[str | None, datetime | None]:
    from cdn.models import PurgeOutbox

    row = PurgeOutbox.objects.filter(pk=pk).values_list("status", "delivered_at").first()
    return row or (None, None)


def scheduler_rows(moment: float, *tags: str, since: float | None = None) -> list[str]:
    """The outbox rows naming one of `tags` written from `since` (default: a second before the
    moment) on, as figures: when the scheduler's invalidation of the moment was written and
    delivered (times relative to the moment)."""
    from cdn.models import PurgeOutbox

    since = moment - 1.0 if since is None else since
    rows = (PurgeOutbox.objects.filter(created_at__gte=datetime.fromtimestamp(since, UTC)).order_by("pk")
            .values_list("pk", "tags", "status", "created_at", "delivered_at"))
    found = [f"outbox row {pk} written at {_rel(created.timestamp(), moment)}, {status}"
             + (f" at {_rel(delivered.timestamp(), moment)}" if delivered else "") + f" (tags {row_tags})"
             for pk, row_tags, status, created, delivered in rows if set(tags) & set(row_tags or [])]
    return found or [f"no outbox row naming {' or '.join(tags)} written since {_rel(since, moment)}"]


def sleep_until(t: float) -> None:
    time.sleep(max(0.0, t - time.time()))


# --- 1. go-live -----------------------------------------------------------------------------------------


def go_live(stack, editor, name: str, *, outage: bool = False) -> None:
    writer = Writer(editor)
    pushed = fillers(writer, name)
    subject = new_article(writer, name, status="draft", is_breaking=True)
    surfaces = every_surface(subject, pushed)
    warm(stack, surfaces)  # cached 404s and lists without it, in every tier
    problems: list[str] = []
    extra: list[str] = []
    before_write = last_outbox_id()
    moment = time.time() + MOMENT_LEAD
    written = writer.patch(subject.article["id"], status="published", published_at=iso(moment), is_breaking=True)
    expect_state(problems, written, "scheduled", "of the PATCH scheduling it")

    outage_log: dict = {}
    killer = None
    if outage:
        # The write's own purge is not what this test is about: let it be delivered first.
        settled = write_settled(before_write, moment - KILL_BEFORE - 0.5)
        extra.append(f"the PATCH's outbox rows {outbox_ids_after(before_write)} delivered before the kill: "
                     f"{settled is not None}")

        def outage_then_restart():  # no database here: the main thread reads the outbox
            sleep_until(moment - KILL_BEFORE)
            outage_log["killed"] = time.time()
            stack.celery.kill()
            sleep_until(moment + RESTART_AFTER)
            outage_log["restarting"] = time.time()
            stack.celery.start(timeout=60)
            outage_log["ready"] = time.time()

        killer = threading.Thread(target=outage_then_restart, name="celery-outage", daemon=True)
        killer.start()
        reads, _ = race(stack, surfaces, moment)
    else:
        reads, settled = race(stack, surfaces, moment,
                              during=lambda: write_settled(before_write, moment))

    if outage:
        killer.join(90)
        assert not killer.is_alive(), "the Celery worker and beat were not ready 60 s after their restart"
        assert "ready" in outage_log, f"the restart failed: {outage_log}"
        tag = f"article:{subject.article['id']}"
        restarted = datetime.fromtimestamp(outage_log["restarting"], UTC)

        def written_since_restart():
            from cdn.models import PurgeOutbox

            return list(PurgeOutbox.objects.filter(created_at__gte=restarted).order_by("pk")
                        .values_list("pk", "tags", "status", "created_at"))

        rows = wait_until(lambda: [r for r in written_since_restart() if tag in (r[1] or [])], CATCH_UP_WAIT, 0.2)
        extra.append(f"celery worker + beat killed at {_rel(outage_log['killed'], moment)}, restarted at "
                     f"{_rel(outage_log['restarting'], moment)}, ready at {_rel(outage_log['ready'], moment)}")
        if rows:
            first = rows[0]
            extra.append(f"after the restart outbox row {first[0]} with {tag} was written at "
                         f"{_rel(first[3].timestamp(), moment)} (tags {first[1]})")
            delivered = wait_until(lambda: outbox_row(first[0])[0] == "done", CATCH_UP_WAIT, 0.1)
            status, delivered_at = outbox_row(first[0])
            if delivered:
                extra.append(f"... and delivered at {_rel(delivered_at.timestamp(), moment)}")
            else:
                problems.append(f"the catch-up purge (outbox row {first[0]}) was not delivered within "
                                f"{CATCH_UP_WAIT:g}s: status {status}")
        else:
            problems.append(f"no outbox row with {tag} was written within {CATCH_UP_WAIT:g}s of the restart "
                            f"(the missed go-live was never fired); rows written since: {written_since_restart()[:10]}")

    if not outage:
        extra.extend(scheduler_rows(moment, f"article:{subject.article['id']}"))
    after = writer.patch(subject.article["id"])  # a no-op edit, after the race: what state it is in now
    expect_state(problems, after, "live", "after the moment")
    text, found = report(name, stack, reads, moment, APPEAR, settled, extra)
    verdict(text, problems + found)


def test_go_live_is_never_early_and_everywhere_within_a_second(stack, editor):
    """A draft, every surface warm without it; PATCH published with published_at = now + 4 s
    (is_breaking, so the breaking list and box show it). Readers race the moment through the app
    and the edge on every public surface."""
    go_live(stack, editor, "go-live")


# --- 2. take-down ---------------------------------------------------------------------------------------


def test_take_down_is_never_early_and_everywhere_within_a_second(stack, editor):
    """A live article (an hour old, breaking), every surface warm with it; PATCH expires_at = now
    + 4 s. Never gone early, gone from every surface within 1 s."""
    writer = Writer(editor)
    pushed = fillers(writer, "take-down")
    subject = new_article(writer, "take-down", status="published", is_breaking=True,
                          published_at=iso(time.time() - 3600))
    surfaces = every_surface(subject, pushed)
    warm(stack, surfaces)
    problems: list[str] = []
    before_write = last_outbox_id()
    moment = time.time() + MOMENT_LEAD
    written = writer.patch(subject.article["id"], expires_at=iso(moment))
    expect_state(problems, written, "live", "of the PATCH setting expires_at")
    reads, settled = race(stack, surfaces, moment, during=lambda: write_settled(before_write, moment))
    extra = scheduler_rows(moment, f"article:{subject.article['id']}")
    after = writer.patch(subject.article["id"])
    expect_state(problems, after, "expired", "after the moment")
    text, found = report("take-down", stack, reads, moment, DISAPPEAR, settled, extra)
    verdict(text, problems + found)


# --- 3. the windows' edges --------------------------------------------------------------------------------


def test_window_edges_are_never_early_and_everywhere_within_a_second(stack, editor):
    """A breaking article published 6 h - 8 s ago and another published 48 h - 8 s ago: at the
    same moment the first leaves /api/breaking-news/ and the home page's breaking box, the
    second the news sitemap (its window is 48 h)."""
    writer = Writer(editor)
    problems: list[str] = []
    moment = time.time() + MOMENT_LEAD + 4.0  # + the POSTs' purges and the warm-up
    news = new_article(writer, "news-window", status="published", is_breaking=False,
                       published_at=iso(moment - timedelta(hours=48).total_seconds()))
    breaking = new_article(writer, "breaking", status="published", is_breaking=True,
                           published_at=iso(moment - timedelta(hours=6).total_seconds()))
    for subject in (news, breaking):
        expect_state(problems, subject.article, "live", f"of the POST of {subject.slug}")
    surfaces = [
        Surface("breaking-json", "/api/breaking-news/", "list", breaking.slug),
        Surface("home-breaking-box", "/", "box", breaking.slug),
        Surface("news-sitemap(48h)", "/sitemap-news.xml", "list", news.slug),
    ]
    settled = write_settled(news.outbox_before_post, moment - MOMENT_LEAD - 1.0,  # before the warm-up
                            [news.article["id"], breaking.article["id"]])
    warm(stack, surfaces)
    assert time.time() < moment - 1.0, "the warm-up took too long: the moment is (nearly) past already"
    reads, _ = race(stack, surfaces, moment)
    text, found = report("window-edges", stack, reads, moment, DISAPPEAR, settled,
                         scheduler_rows(moment, "breaking", "news-sitemap", f"article:{news.article['id']}"))
    verdict(text, problems + found)


# --- 4. go-live through a Celery outage -------------------------------------------------------------------


def test_go_live_holds_through_a_worker_and_beat_crash(stack, editor):
    """As test 1, with the Celery worker and beat killed (SIGKILL) 1 s before the moment and
    started again 2 s after it: the capped lifetimes alone keep every tier within the rule, and
    once back the scheduler fires the go-live it missed (an outbox row with the article's tag)."""
    go_live(stack, editor, "go-live-outage", outage=True)


# --- 5. (beyond the brief) a go-live postponed just before it was due -------------------------------------


def test_postponed_go_live_is_never_early(stack, editor):
    """Scheduled for now + 4 s; 1 s before that, PATCH published_at 3 s later. What the tiers
    kept until the first moment must not turn into the article at it (caps and the scheduler
    follow the new moment): never shown before the new moment, everywhere within 1 s after it."""
    writer = Writer(editor)
    pushed = fillers(writer, "postpone")
    subject = new_article(writer, "postpone", status="draft", is_breaking=True)
    surfaces = every_surface(subject, pushed)
    warm(stack, surfaces)
    problems: list[str] = []
    extra: list[str] = []
    before_write = last_outbox_id()
    first = time.time() + MOMENT_LEAD
    moment = first + POSTPONE_BY
    written = writer.patch(subject.article["id"], status="published", published_at=iso(first), is_breaking=True)
    expect_state(problems, written, "scheduled", "of the PATCH scheduling it")

    def postpone():
        settled = write_settled(before_write, first - 1.5)
        sleep_until(first - 1.0)
        sent = time.time()
        response = writer.patch(subject.article["id"], published_at=iso(moment))
        extra.append(f"first scheduled for {_rel(first, moment)}; postponing PATCH sent at {_rel(sent, moment)}, "
                     f"returned at {_rel(time.time(), moment)}")
        expect_state(problems, response, "scheduled", "of the PATCH postponing it")
        return settled

    reads, settled = race(stack, surfaces, moment, during=postpone, also_near=(first,))
    extra.extend(scheduler_rows(moment, f"article:{subject.article['id']}", since=first - 1.5))
    text, found = report("postponed", stack, reads, moment, APPEAR, settled, extra)
    verdict(text, problems + found)
