"""The production configs stay in step with each other and with `make up`: docker-compose.yml and
the systemd units run the same web server script, Varnish script and commands; the cluster VCL
compiles; nginx sets the header production settings trust."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
UP = (REPO / "deploy" / "scripts" / "up.sh").read_text()


def test_compose_runs_what_make_up_runs():
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    services = compose["services"]
    assert {"postgres", "redis", "web", "worker", "beat", "varnish"} <= set(services)
    assert services["web"]["command"] == ["deploy/scripts/run-web.sh"]
    assert "deploy/scripts/run-web.sh" in UP
    assert services["varnish"]["command"][0] == "deploy/varnish/run-varnishd.sh"
    assert "deploy/varnish/run-varnishd.sh" in UP
    assert services["worker"]["command"][:4] == ["celery", "-A", "newsite", "worker"]
    assert services["beat"]["command"][:4] == ["celery", "-A", "newsite", "beat"]
    # Same ports as make up (the web server :8000, Varnish :8080) and the same variables.
    ports = " ".join(services["web"]["ports"])
    assert ":8000:8000" in ports and ":8080:8080" in ports
    env = services["web"]["environment"]
    for name in ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL", "VARNISH_PURGE_URL"):
        assert name in env and f"export {name}=" in UP
    assert services["varnish"]["environment"]["BACKEND_PORT"] == "8000"
    # Varnish trusts PURGE from localhost only: the purging processes share web's namespace.
    for name in ("worker", "beat", "varnish", "warm"):
        assert services[name]["network_mode"] == "service:web"


def test_compose_worker_shares_the_metrics_directory_and_pids_with_web():
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    services = compose["services"]
    metrics_dir = compose["x-app"]["environment"]["PROMETHEUS_MULTIPROC_DIR"]
    mounts = {name: {v.split(":", 1)[1]: v.split(":", 1)[0] for v in svc.get("volumes", [])}
              for name, svc in services.items()}
    volume = mounts["web"][metrics_dir]
    assert volume in compose["volumes"]
    for name in ("worker", "beat", "warm"):
        assert mounts[name].get(metrics_dir) == volume, f"{name} does not mount {volume} at {metrics_dir}"
        # prometheus-client names its files by pid: one PID namespace for all the writers.
        assert services[name]["pid"] == "service:web"


def test_make_up_gives_every_process_the_same_metrics_directory():
    export = UP.index("export PROMETHEUS_MULTIPROC_DIR=")
    for command in ("deploy/scripts/run-web.sh >>", ".venv/bin/celery -A newsite worker",
                    ".venv/bin/celery -A newsite beat"):
        assert export < UP.index(command), f"{command} starts before PROMETHEUS_MULTIPROC_DIR is exported"
    assert UP.index('mkdir -p "$PROMETHEUS_MULTIPROC_DIR"') < UP.index("deploy/scripts/run-web.sh >>")


def test_gunicorn_config_creates_the_metrics_directory_before_the_app_is_imported(tmp_path):
    """preload_app imports the app before any server hook runs: the directory must exist once
    the config is read."""
    target = tmp_path / "not-yet" / "prometheus"
    code = "import runpy, sys; runpy.run_path(sys.argv[1])"
    subprocess.run([sys.executable, "-c", code, str(REPO / "deploy" / "gunicorn.conf.py")], check=True,
                   env={"PATH": "/usr/bin:/bin", "PROMETHEUS_MULTIPROC_DIR": str(target)}, timeout=30)
    assert target.is_dir()


def test_systemd_units_share_the_metrics_directory():
    units = {p.name: p.read_text() for p in (REPO / "deploy" / "systemd").glob("newsite*")}
    metrics_dir = re.search(r"^PROMETHEUS_MULTIPROC_DIR=(\S+)$", units["newsite.env.example"], re.M).group(1)
    assert metrics_dir.startswith("/run/")
    relative = metrics_dir.removeprefix("/run/")
    for name in ("newsite-web.service", "newsite-worker.service", "newsite-beat.service", "newsite-warm.service"):
        runtime = re.search(r"^RuntimeDirectory=(.+)$", units[name], re.M)
        assert runtime and relative in runtime.group(1).split(), f"{name} does not create {metrics_dir}"
        # Stopping one unit must not remove the files another one still writes.
        assert re.search(r"^RuntimeDirectoryPreserve=yes$", units[name], re.M), name


def test_systemd_units_run_existing_entry_points():
    units = {p.name: p.read_text() for p in (REPO / "deploy" / "systemd").glob("newsite*")}
    assert {"newsite-web.service", "newsite-worker.service", "newsite-beat.service",
            "newsite-warm.service", "newsite.target"} <= set(units)
    assert "ExecStart=/srv/newsite/deploy/scripts/run-web.sh" in units["newsite-web.service"]
    assert "manage.py warm_cache" in units["newsite-warm.service"]
    assert "Type=oneshot" in units["newsite-warm.service"]
    env_example = units["newsite.env.example"]
    assert "DJANGO_SETTINGS_MODULE=newsite.settings_production" in env_example
    for unit in (u for n, u in units.items() if n.endswith(".service")):
        assert "EnvironmentFile=/etc/newsite/newsite.env" in unit
    if shutil.which("systemd-analyze"):
        result = subprocess.run(
            ["systemd-analyze", "verify", "--man=no", *[str(p) for p in sorted((REPO / "deploy" / "systemd").glob("*.service"))]],
            capture_output=True, text=True, timeout=30,
        )
        # Only the install paths (/srv/newsite/.venv) may be missing on this machine.
        problems = [line for line in result.stderr.splitlines() if line and "/srv/newsite/" not in line]
        assert problems == [], result.stderr


def test_nginx_sets_forwarded_proto_and_refuses_purge():
    conf = (REPO / "deploy" / "nginx" / "newsite.conf").read_text()
    assert re.search(r"proxy_set_header X-Forwarded-Proto https;", conf)
    assert "PURGE" in conf and "return 405" in conf
    assert "proxy_pass http://newsite_edge;" in conf and "server 127.0.0.1:8080;" in conf
    assert "alias /srv/newsite/staticfiles/;" in conf


@pytest.mark.skipif(not shutil.which("varnishd"), reason="varnishd not installed")
def test_cluster_vcl_compiles():
    with tempfile.TemporaryDirectory(prefix="newsite-vcc-") as tmp:
        Path(tmp).chmod(0o755)
        vcl = Path(tmp) / "cluster.vcl"
        vcl.write_text(subprocess.run(
            [sys.executable, str(REPO / "deploy" / "varnish" / "render-cluster-vcl.py"),
             "10.0.0.11:8000", "10.0.0.12:8000"], check=True, capture_output=True, text=True).stdout)
        text = vcl.read_text()
        assert "directors.round_robin()" in text and text.count(".probe = app_health;") == 2
        result = subprocess.run(["varnishd", "-C", "-f", str(vcl), "-n", str(Path(tmp) / "n")],
                                capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stderr[-2000:]
