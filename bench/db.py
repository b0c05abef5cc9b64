"""The benchmark's PostgreSQL database: created once, migrated, seeded once, then reused."""

import subprocess
import sys
import time
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql

from bench.stack import ROOT, Unavailable


def _admin_url(url: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/postgres"))


def db_name(url: str) -> str:
    return urlsplit(url).path.lstrip("/")


def ensure_database(url: str) -> bool:
    """Create the database when missing; True when it was created."""
    try:
        with psycopg.connect(_admin_url(url), autocommit=True, connect_timeout=5) as conn:
            name = db_name(url)
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
            if exists:
                return False
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
            return True
    except psycopg.OperationalError as exc:
        raise Unavailable(f"PostgreSQL at {url} does not answer: {exc}") from exc


def manage(args: list[str], env: dict, timeout: float | None = None, quiet: bool = False) -> subprocess.CompletedProcess:
    cmd = [sys.executable, str(ROOT / "manage.py"), *args]
    return subprocess.run(cmd, env={**env, "BENCH_MODE": "nocache"}, cwd=ROOT, timeout=timeout,
                          capture_output=quiet, text=True)


def migrate(env: dict) -> None:
    result = manage(["migrate", "--noinput", "-v", "0"], env, quiet=True)
    if result.returncode != 0:
        raise Unavailable(f"migrate failed: {result.stderr.strip()[-500:]}")


def counts(url: str) -> dict:
    """Row counts of the seeded tables (0 for tables that do not exist)."""
    out = {}
    with psycopg.connect(url, autocommit=True, connect_timeout=5) as conn:
        for table in ("articles_article", "articles_comment", "articles_like"):
            try:
                row = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table))).fetchone()
                out[table] = row[0]
            except psycopg.errors.UndefinedTable:
                out[table] = 0
    return out


def seed_command_exists(env: dict) -> bool:
    result = manage(["help", "seed_demo"], env, quiet=True)
    return result.returncode == 0


def ensure_seeded(url: str, env: dict, articles: int, log) -> dict:
    """Seed with `manage.py seed_demo --articles N` unless the database already holds N articles.

    Returns the row counts and a note; raises Unavailable when there is no data and no seeder.
    """
    before = counts(url)
    if before["articles_article"] >= articles:
        return {**before, "seeded_now": False}
    if not seed_command_exists(env):
        raise Unavailable("manage.py seed_demo does not exist yet")
    log(f"seeding {articles} articles with manage.py seed_demo (once; reused by later runs)")
    started = time.monotonic()
    args = ["seed_demo", "--articles", str(articles)]
    if before["articles_article"]:
        args.append("--flush")  # a smaller earlier seed: replace it rather than add to it
    result = manage(args, env)
    if result.returncode != 0:
        raise Unavailable(f"seed_demo exited with code {result.returncode}")
    after = counts(url)
    log(f"seeded in {time.monotonic() - started:.0f}s: {after}")
    return {**after, "seeded_now": True}


def xact_total(url: str) -> int:
    """Committed + rolled-back transactions of this database (pg_stat_database)."""
    with psycopg.connect(url, autocommit=True, connect_timeout=5) as conn:
        row = conn.execute(
            "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = %s", [db_name(url)]
        ).fetchone()
    return int(row[0]) if row else 0
