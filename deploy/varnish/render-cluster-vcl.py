#!/usr/bin/env python3
"""Render deploy/varnish/default.vcl for several app hosts: its single `backend default` becomes
one backend per host with a health probe, behind a round-robin director (vmod directors, in
Debian's varnish package). Everything else in default.vcl (xkey purges, grace, query-string
normalisation) is kept as it is, so the cluster edge and the single-host edge never drift.

    deploy/varnish/render-cluster-vcl.py 10.0.0.11:8000 10.0.0.12:8000 10.0.0.13:8000 > cluster.vcl

Options: --probe-url (default /api/categories/, a cached public read that answers without Redis),
--probe-host (a name in ALLOWED_HOSTS, default localhost), --interval / --timeout / --window /
--threshold of the probe. A host is taken out after (window - threshold + 1) failed probes and
back in after `threshold` good ones; while all are sick, Varnish serves what grace allows.
Stdlib only (runs before the venv exists, e.g. in a container build).
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

DEFAULT_VCL = Path(__file__).resolve().parent / "default.vcl"
BACKEND_RE = re.compile(r"^backend default \{\n(?P<body>.*?)^\}\n", re.M | re.S)


def render(backends: list[tuple[str, int]], *, source: str, probe_url: str = "/api/categories/",
           probe_host: str = "localhost", interval: str = "1s", timeout: str = "1s",
           window: int = 3, threshold: int = 2) -> str:
    match = BACKEND_RE.search(source)
    if not match:
        raise ValueError("default.vcl: `backend default { ... }` not found")
    body = match.group("body")
    # The timeouts of default.vcl's backend, without its host and port.
    timeouts = "".join(line + "\n" for line in body.splitlines() if ".host" not in line and ".port" not in line)
    blocks = [
        "probe app_health {\n"
        "    .request =\n"
        f'        "GET {probe_url} HTTP/1.1"\n'
        f'        "Host: {probe_host}"\n'
        '        "X-Forwarded-Proto: https"\n'
        '        "Connection: close";\n'
        "    .expected_response = 200;\n"
        f"    .interval = {interval};\n"
        f"    .timeout = {timeout};\n"
        f"    .window = {window};\n"
        f"    .threshold = {threshold};\n"
        f"    .initial = {threshold};\n"
        "}\n"
    ]
    for index, (host, port) in enumerate(backends, start=1):
        blocks.append(
            f"backend app{index} {{\n"
            f'    .host = "{host}";\n'
            f'    .port = "{port}";\n'
            f"{timeouts}"
            "    .probe = app_health;\n"
            "}\n"
        )
    vcl = source[: match.start()] + "\n".join(blocks) + source[match.end():]
    vcl, n = re.subn(r"^import std;\n", "import std;\nimport directors;\n", vcl, count=1, flags=re.M)
    if n != 1:
        raise ValueError("default.vcl: `import std;` not found")
    adds = "".join(f"    cluster.add_backend(app{i});\n" for i in range(1, len(backends) + 1))
    vcl += (
        "\n# --- Added by render-cluster-vcl.py: round-robin over the healthy app hosts. --------\n"
        "sub vcl_init {\n"
        "    new cluster = directors.round_robin();\n"
        f"{adds}"
        "}\n\n"
        "sub vcl_backend_fetch {\n"
        "    set bereq.backend = cluster.backend();\n"
        "}\n\n"
        "sub vcl_backend_error {\n"
        "    # A host that died since its last good probe: try the next one (the director moves on).\n"
        f"    if (bereq.retries < {max(len(backends) - 1, 1)}) {{\n"
        "        return (retry);\n"
        "    }\n"
        "}\n"
    )
    return vcl


def parse_backend(value: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    if not host or not port.isdigit():
        raise argparse.ArgumentTypeError(f"expected host:port, got {value!r}")
    return host, int(port)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("backends", nargs="+", type=parse_backend, help="host:port of each app host")
    parser.add_argument("--source", type=Path, default=DEFAULT_VCL)
    parser.add_argument("--probe-url", default="/api/categories/")
    parser.add_argument("--probe-host", default="localhost")
    parser.add_argument("--interval", default="1s")
    parser.add_argument("--timeout", default="1s")
    parser.add_argument("--window", type=int, default=3)
    parser.add_argument("--threshold", type=int, default=2)
    args = parser.parse_args(argv)
    sys.stdout.write(render(
        args.backends, source=args.source.read_text(), probe_url=args.probe_url,
        probe_host=args.probe_host, interval=args.interval, timeout=args.timeout,
        window=args.window, threshold=args.threshold,
    ))
    return 0


if __name__ == "__main__":
    sys.exit(main())
