"""wrk runs (installed from Debian when missing) and the workloads' request mixes."""

import json
import math
import random
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from bench.stack import Unavailable, pinned

LUA = Path(__file__).resolve().parent / "lua" / "request.lua"


def ensure_wrk(log) -> str:
    path = shutil.which("wrk")
    if path:
        return path
    log("wrk missing: installing the Debian package")
    env = {"DEBIAN_FRONTEND": "noninteractive", "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
    sudo = [] if _is_root() else ["sudo"]
    for cmd in (["apt-get", "install", "-y", "-qq", "--no-install-recommends", "wrk"],
                ["apt-get", "update", "-qq"],
                ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "wrk"]):
        subprocess.run([*sudo, *cmd], env=env, capture_output=True)
        path = shutil.which("wrk")
        if path:
            return path
    raise Unavailable("wrk is not installed and apt-get could not install it")


def _is_root() -> bool:
    import os

    return os.geteuid() == 0


def zipf_exponent(n: int, hot_fraction: float = 0.05, hot_share: float = 0.92) -> float:
    """The exponent s for which the top hot_fraction of n ranks get hot_share of the mass."""
    k = max(1, int(n * hot_fraction))

    def share(s: float) -> float:
        weights = [r ** -s for r in range(1, n + 1)]
        return sum(weights[:k]) / sum(weights)

    lo, hi = 0.0, 3.0
    for _ in range(40):
        mid = (lo + hi) / 2
        if share(mid) < hot_share:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


@dataclass
class Workload:
    """What wrk requests: `fixed` one path, `zipf` article details, `feed` home pages 1..pages."""

    name: str
    kind: str
    path: str = ""
    ids_file: Path | None = None
    exponent: float = 1.0
    pages: int = 5

    def probe_path(self) -> str:
        if self.kind == "fixed":
            return self.path
        if self.kind == "feed":
            return "/api/articles/?page=1"
        first = self.ids_file.read_text().split("\n", 1)[0].strip()
        return f"/api/articles/{first}/"

    def wrk_args(self, prefix: str) -> list[str]:
        prefix = prefix or "-"
        if self.kind == "fixed":
            return ["fixed", prefix, self.path]
        if self.kind == "zipf":
            return ["zipf", prefix, str(self.ids_file), f"{self.exponent:.6f}"]
        return ["feed", prefix, str(self.pages)]


def write_ranked_ids(ids: list[int], path: Path, seed: int = 8) -> Path:
    """Article ids in Zipf rank order (hottest first), shuffled so heat is not by recency."""
    ranked = list(ids)
    random.Random(seed).shuffle(ranked)
    path.write_text("\n".join(str(i) for i in ranked) + "\n")
    return path


def run_wrk(wrk: str, base_url: str, workload: Workload, prefix: str, duration: float,
            connections: int, threads: int = 1, timeout: str = "5s") -> dict:
    """One wrk run; returns its BENCHJSON summary plus req_s."""
    cmd = pinned([wrk, "-t", str(threads), "-c", str(connections), "-d", f"{max(1, math.ceil(duration))}s",
                  "--timeout", timeout, "-s", str(LUA), base_url, "--", *workload.wrk_args(prefix)], 1)
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 60)
    for line in result.stdout.splitlines():
        if line.startswith("BENCHJSON "):
            data = json.loads(line.removeprefix("BENCHJSON "))
            data["req_s"] = data["requests"] / (data["duration_us"] / 1e6) if data["duration_us"] else 0.0
            data["errors"] = data["connect"] + data["read"] + data["write"] + data["timeout"]
            return data
    raise RuntimeError(f"wrk gave no summary (code {result.returncode}): {result.stderr.strip()[-300:]}")
