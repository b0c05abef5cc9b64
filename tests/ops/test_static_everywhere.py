"""Static files are collected (content-hashed names, served immutable) in every way the site runs
with DEBUG off (issue 32): `make up`, the Dockerfile and the docker-compose services built from it,
the systemd web unit on every start and reload, and `make run` when started with DEBUG=false.
Without it the production settings' manifest storage refuses to render a page (a missing
manifest entry) and whitenoise has nothing to serve. What the collected files are served with,
and that the edge keeps them, is tests/cdn/test_edge_files.py."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
COLLECT = "manage.py collectstatic --no-input"


def _read(relative: str) -> str:
    return (REPO / relative).read_text()


def test_make_up_collects_before_the_web_server_starts():
    up = _read("deploy/scripts/up.sh")
    assert COLLECT in up
    assert up.index(COLLECT) < up.index("deploy/scripts/run-web.sh >>")


def test_the_image_carries_collected_files_and_compose_runs_that_image():
    dockerfile = _read("Dockerfile")
    collect = re.search(r"^RUN .*" + re.escape(COLLECT), dockerfile, re.M)
    assert collect, "the Dockerfile runs collectstatic at build"
    assert dockerfile.index("COPY . .") < collect.start() < dockerfile.index("CMD ")
    compose = yaml.safe_load(_read("docker-compose.yml"))
    assert compose["x-app"]["build"] == "."
    static_root = "/app/staticfiles"  # settings.STATIC_ROOT's default under WORKDIR /app
    for name, service in compose["services"].items():
        if service.get("image") == compose["x-app"]["image"]:
            assert "STATIC_ROOT" not in service.get("environment", {}), name
            assert not any(v.split(":")[1] == static_root for v in service.get("volumes", [])), (
                f"{name} mounts a volume over the image's collected files")


def test_the_systemd_web_unit_collects_on_every_start_and_reload():
    unit = _read("deploy/systemd/newsite-web.service")
    lines = [line for line in unit.splitlines() if line.startswith(("ExecStartPre=", "ExecStart=", "ExecReload="))]
    start = [line.split("=", 1)[0] for line in lines if COLLECT in line or "run-web.sh" in line]
    assert start[:2] == ["ExecStartPre", "ExecStart"], lines
    reload = [line for line in lines if line.startswith("ExecReload=")]
    assert COLLECT in reload[0] and "kill -HUP" in reload[-1], reload
    env = _read("deploy/systemd/newsite.env.example")
    assert re.search(r"^STATIC_ROOT=/srv/newsite/staticfiles$", env, re.M)
    assert "install -d -o newsite -g newsite /srv/newsite/staticfiles" in unit


@pytest.mark.parametrize(("debug", "collects"), [("true", False), ("1", False), ("false", True), ("", True)])
def test_make_run_collects_when_debug_is_off(debug, collects):
    """deploy/scripts/run-dev.sh's static step, run with PY=echo: DEBUG on keeps Django's
    development mode (plain names from the apps' folders), DEBUG off collects first."""
    script = _read("deploy/scripts/run-dev.sh")
    step = re.search(r'^case "\$\{DEBUG,,\}" in\n.*?^esac$', script, re.M | re.S)
    assert step, "run-dev.sh has its static step"
    assert script.index(step.group(0)) < script.index("exec $PY manage.py runserver")
    result = subprocess.run(["bash", "-c", "set -euo pipefail\n" + step.group(0)], capture_output=True, text=True,
                            env={"PATH": "/usr/bin:/bin", "PY": "echo", "DEBUG": debug}, timeout=10, check=True)
    assert (COLLECT in result.stdout) is collects, result.stdout
