"""A private PostgreSQL cluster on a free port (initdb in a temporary directory), for the runs that
stop PostgreSQL: the machine's own PostgreSQL is shared and never stopped. Used by the faults
scenario's PostgreSQL row and by the tests that stop, fail over or replicate a database
(tests/faults/test_database_down.py, tests/deploy/test_replica.py).

PostgreSQL refuses to run as root: as root, every server binary runs as the `postgres` user.
A server may listen on another address than 127.0.0.1 and run inside a network namespace
(`host`, `wrap`: the multi-host harness, bench/netns.py).
"""

from __future__ import annotations

import glob
import ipaddress
import os
import shutil
import subprocess
import tempfile
from contextlib import contextmanager
from pathlib import Path

# Debian's server binaries (postgresql-NN); the newest version wins.
PG_BINS = sorted(glob.glob("/usr/lib/postgresql/*/bin"))
# What a throwaway cluster needs no durability for.
FAST = ("-c fsync=off", "-c full_page_writes=off", "-c shared_buffers=32MB")


def _postgres_user(command: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


def as_postgres(*args: str, wrap=None, **kwargs) -> subprocess.CompletedProcess:
    """Run a server binary as the postgres user (PostgreSQL refuses to run as root); `wrap`
    (list -> list) puts the command somewhere else, e.g. in a network namespace."""
    command = _postgres_user(list(args))
    if wrap is not None:
        command = wrap(command)
    return subprocess.run(command, check=True, capture_output=True, text=True, timeout=60, **kwargs)


class PgServer:
    def __init__(self, bin_dir: Path, data: Path, port: int, log: Path, *, host: str = "127.0.0.1", wrap=None):
        """`host`: the address it listens on; `wrap`: see as_postgres (pg_ctl runs wrapped, so
        the postmaster lives where the wrapper puts it)."""
        self.bin, self.data, self.port, self.log = bin_dir, data, port, log
        self.host, self.wrap = host, wrap

    def initdb(self) -> None:
        as_postgres(str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust",
                    "--no-sync", "-E", "UTF8", "--locale=C.UTF-8")
        if self.host != "127.0.0.1":  # trust connections from the host's own /24 too
            net = ipaddress.ip_network(f"{self.host}/24", strict=False)
            with open(self.data / "pg_hba.conf", "a") as hba:
                hba.write(f"host all all {net} trust\nhost replication all {net} trust\n")

    def start(self, *settings: str) -> None:
        options = " ".join([f"-c listen_addresses={self.host}", f"-p {self.port}",
                            f"-c unix_socket_directories={self.data}", *settings])
        as_postgres(str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-w",
                    "-t", "30", "-o", options, "start", wrap=self.wrap)

    def stop(self) -> None:
        """Immediate shutdown: every connection is cut, as when the server dies."""
        if (self.data / "postmaster.pid").exists():
            command = _postgres_user([str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop"])
            subprocess.run(command if self.wrap is None else self.wrap(command), capture_output=True, timeout=30)

    def url(self, db: str = "newsite") -> str:
        return f"postgres://postgres@{self.host}:{self.port}/{db}"

    def query(self, sql: str, db: str = "newsite", params=None):
        import psycopg

        with psycopg.connect(self.url(db).replace("postgres://", "postgresql://"), autocommit=True,
                             connect_timeout=3) as conn:
            cursor = conn.execute(sql, params)
            return cursor.fetchall() if cursor.description else None


def temporary_root(prefix: str) -> Path:
    """A temporary directory the postgres user may write in."""
    root = Path(tempfile.mkdtemp(prefix=prefix))
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
    return root


@contextmanager
def private_cluster(port: int, prefix: str = "newsite-pg-", database: str = "newsite"):
    """A started cluster with `database` created; stopped and removed on exit."""
    if not PG_BINS:
        raise RuntimeError("PostgreSQL server binaries not installed (/usr/lib/postgresql/*/bin)")
    root = temporary_root(prefix)
    server = PgServer(Path(PG_BINS[-1]), root / "data", port, root / "pg.log")
    try:
        server.initdb()
        server.start(*FAST)
        server.query(f'create database "{database}"', db="postgres")
        yield server
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)
