"""A private PostgreSQL primary and an asynchronous hot standby that applies the WAL `--delay`
seconds late (recovery_min_apply_delay), for running a scenario against a lagging read replica
(docs/scaling.md, issue 26):

    .venv/bin/python -m bench.replica_pair --delay 2 &      # prints PRIMARY_URL STANDBY_URL
    DATABASE_REPLICA_URLS=<standby url> .venv/bin/python -m bench --scenario coherence \\
        --articles 2000 --database-url <primary url>

Runs until SIGTERM / ^C, then stops and removes both clusters.
"""

from __future__ import annotations

import argparse
import shutil
import signal
import time
from pathlib import Path

from bench.pgserver import FAST, PG_BINS, PgServer, as_postgres, temporary_root


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m bench.replica_pair", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--delay", type=float, default=2.0, help="the standby's apply delay in seconds (2)")
    p.add_argument("--primary-port", type=int, required=True)
    p.add_argument("--standby-port", type=int, required=True)
    p.add_argument("--database", default="newsite_bench", help="the database named in the printed URLs")
    opts = p.parse_args()
    if not PG_BINS:
        raise SystemExit("PostgreSQL server binaries not installed (/usr/lib/postgresql/*/bin)")
    bin_dir = Path(PG_BINS[-1])
    root = temporary_root("newsite-replica-pair-")
    primary = PgServer(bin_dir, root / "primary", opts.primary_port, root / "primary.log")
    standby = PgServer(bin_dir, root / "standby", opts.standby_port, root / "standby.log")
    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(1))
    try:
        primary.initdb()
        primary.start(*FAST, "-c wal_level=replica", "-c max_wal_senders=4", "-c max_connections=200")
        as_postgres(str(bin_dir / "pg_basebackup"), "-h", "127.0.0.1", "-p", str(opts.primary_port),
                    "-U", "postgres", "-D", str(standby.data), "-R", "-X", "stream", "--no-sync")
        standby.start(*FAST, "-c hot_standby=on", "-c max_connections=200",
                      f"-c recovery_min_apply_delay={int(opts.delay * 1000)}ms")
        print(primary.url(opts.database), standby.url(opts.database), flush=True)
        while not stopping:
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        standby.stop()
        primary.stop()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
