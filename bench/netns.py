"""Network namespaces for the multi-host harness (issue 27): every piece of namespace plumbing is
here and nowhere else.

`Network.create(["app1", "redis", ...])` takes a free *slot* (0..SLOTS-1), then builds, in the
root namespace, a bridge `nsh<slot>br` holding 10.213.<slot>.1/24 (the harness's own address),
and per host a namespace `nsh<slot>-<host>` joined to the bridge by a veth pair (root side
`nsh<slot>-<host>`, namespace side `eth0`) with the address 10.213.<slot>.<10 + i>/24 and its
loopback up. No default route is given to any namespace and nothing forwards or NATs: a process
in a namespace reaches the bridge's subnet and nothing else (the machine's own PostgreSQL and
Redis listen on 127.0.0.1 of the root namespace, out of reach).

Ownership and leftovers. A slot is held by an exclusive flock on LOCK_DIR/slot-<n>.lock for the
life of the harness process; the kernel releases it when the process dies, however it dies. So
a slot whose lock can be taken belongs to nobody: whatever carries its prefix (processes in its
namespaces, the namespaces, the bridge, veths) is a leftover of a run that crashed, and is
removed before the slot is used. Concurrent runs take different slots and never touch each
other's. `close()` removes everything of the slot (also called by the context manager's exit).

Traffic: `Network.check_url(url)` raises unless the URL's host is an address this Network
assigned to one of its namespaces; the harness calls it before it sends anything.

Faults: `blackhole(host, address)` adds a blackhole route to `address` inside the host's
namespace (its packets to that address are dropped at the source: no firewall is needed, and
there is none on this machine; a local sender's connect() fails at once with EINVAL),
`heal(host, address)` removes it; `link_down(host)` / `link_up(host)` drop and restore the host's
only link. `cut(a, b)` partitions two hosts silently, both ways, and nothing else: each one's
neighbour entry for the other is pinned to DROP_MAC, a MAC no port of the bridge has, so their
frames to each other are flooded by the bridge and dropped by every namespace as not its own
(no RST, no ICMP, no error: sends succeed, connect() times out); `mend(a, b)` removes the two
entries (the kernel resolves the addresses again).

Root is required (ip netns); `available()` says why not when it is not.
"""

from __future__ import annotations

import fcntl
import ipaddress
import json
import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

PREFIX = "nsh"  # newsite hosts: every namespace, bridge and veth of the harness starts with it
SLOTS = 8
SUPERNET = ipaddress.ip_network("10.213.0.0/16")  # slot n uses 10.213.n.0/24
LOCK_DIR = Path("/run/newsite-netns")
FIRST_HOST = 10  # host i gets .FIRST_HOST + i; .1 is the bridge (the harness)
COMMAND_TIMEOUT = 15.0
DROP_MAC = "02:6e:73:68:00:00"  # locally administered ("nsh"); cut() checks no port of the bridge has it


class NetnsUnavailable(Exception):
    """Namespaces cannot be built here; the message says why."""


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check, timeout=COMMAND_TIMEOUT)


def available() -> str | None:
    """None when namespaces can be built here, else the reason."""
    if os.geteuid() != 0:
        return "the multi-host harness needs root (ip netns)"
    if shutil.which("ip") is None:
        return "iproute2 (`ip`) is not installed"
    return None


def _subnet(slot: int) -> ipaddress.IPv4Network:
    return ipaddress.ip_network(f"10.213.{slot}.0/24")


def _in_use(subnet: ipaddress.IPv4Network, own_prefix: str) -> list[str]:
    """Addresses and routes of the root namespace overlapping `subnet`, other than our slot's."""
    clashes = []
    for kind in ("addr", "route"):
        args = ["-j", "-4", "addr", "show"] if kind == "addr" else ["-j", "-4", "route", "show", "table", "all"]
        for entry in json.loads(_ip(*args).stdout or "[]"):
            if kind == "addr":
                if entry.get("ifname", "").startswith(own_prefix):
                    continue
                nets = [ipaddress.ip_network(f"{a['local']}/{a['prefixlen']}", strict=False)
                        for a in entry.get("addr_info", []) if "local" in a]
            else:
                if entry.get("dev", "").startswith(own_prefix) or entry.get("dst") in (None, "default"):
                    continue
                try:
                    nets = [ipaddress.ip_network(entry["dst"], strict=False)]
                except ValueError:
                    continue
            clashes += [f"{kind} {net}" for net in nets if net.overlaps(subnet)]
    return clashes


def _pids_in(namespace: str) -> list[int]:
    out = _ip("netns", "pids", namespace, check=False).stdout.split()
    return [int(p) for p in out if p.isdigit()]


def _clean_slot(slot: int) -> list[str]:
    """Remove every leftover of `slot` (its lock is held by the caller): processes in its
    namespaces (SIGKILL, by pid), the namespaces, its links. Returns what was removed."""
    prefix = f"{PREFIX}{slot}"
    removed = []
    namespaces = [line.split()[0] for line in _ip("netns", "list").stdout.splitlines() if line.strip()]
    for ns in namespaces:
        if not ns.startswith(prefix + "-"):
            continue
        for pid in _pids_in(ns):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + 5
        while _pids_in(ns) and time.monotonic() < deadline:
            time.sleep(0.05)
        _ip("netns", "del", ns, check=False)
        removed.append(f"namespace {ns}")
    for link in json.loads(_ip("-j", "link", "show").stdout or "[]"):
        name = link.get("ifname", "")
        if name.startswith(prefix) and (name == f"{prefix}br" or name.startswith(prefix + "-")):
            _ip("link", "del", name, check=False)
            removed.append(f"link {name}")
    return removed


def _take_slot() -> tuple[int, int, list[str]]:
    """(slot, lock fd, leftovers removed): the first slot no live process holds; leftovers of
    every free slot are removed on the way (a crashed run's)."""
    LOCK_DIR.mkdir(parents=True, exist_ok=True)
    chosen, chosen_fd, removed = None, None, []
    for slot in range(SLOTS):
        fd = os.open(LOCK_DIR / f"slot-{slot}.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        removed += _clean_slot(slot)
        if chosen is None:
            chosen, chosen_fd = slot, fd
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
        else:
            os.close(fd)
    if chosen is None:
        raise NetnsUnavailable(f"all {SLOTS} namespace slots are held by running harnesses")
    return chosen, chosen_fd, removed


@dataclass
class Network:
    slot: int
    subnet: ipaddress.IPv4Network
    hosts: dict[str, str]  # host name -> its address
    lock_fd: int
    leftovers: list[str] = field(default_factory=list)  # what a crashed earlier run had left
    blackholes: set[tuple[str, str]] = field(default_factory=set)
    cuts: set[frozenset[str]] = field(default_factory=set)
    closed: bool = False

    @property
    def gateway(self) -> str:
        """The harness's own address on the bridge (the root namespace)."""
        return str(self.subnet.network_address + 1)

    @property
    def bridge(self) -> str:
        return f"{PREFIX}{self.slot}br"

    def namespace(self, host: str) -> str:
        return f"{PREFIX}{self.slot}-{host}"

    @classmethod
    def create(cls, hosts: list[str]) -> Network:
        reason = available()
        if reason:
            raise NetnsUnavailable(reason)
        if len(hosts) > 200 or len(set(hosts)) != len(hosts):
            raise ValueError("at most 200 distinct host names")
        slot, fd, leftovers = _take_slot()
        subnet = _subnet(slot)
        assert subnet.subnet_of(SUPERNET)
        net = cls(slot, subnet, {}, fd, leftovers)
        try:
            clashes = _in_use(subnet, f"{PREFIX}{slot}")
            if clashes:
                raise NetnsUnavailable(f"{subnet} is already used on this machine: {', '.join(clashes)}")
            _ip("link", "add", net.bridge, "type", "bridge")
            _ip("addr", "add", f"{net.gateway}/{subnet.prefixlen}", "dev", net.bridge)
            _ip("link", "set", net.bridge, "up")
            for i, host in enumerate(hosts):
                if len(net.namespace(host)) > 15:
                    raise ValueError(f"host name {host!r} too long for an interface name")
                address = str(subnet.network_address + FIRST_HOST + i)
                ns, veth = net.namespace(host), net.namespace(host)
                _ip("netns", "add", ns)
                net.hosts[host] = address
                _ip("link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns)
                _ip("link", "set", veth, "master", net.bridge)
                _ip("link", "set", veth, "up")
                _ip("-n", ns, "link", "set", "lo", "up")
                _ip("-n", ns, "addr", "add", f"{address}/{subnet.prefixlen}", "dev", "eth0")
                _ip("-n", ns, "link", "set", "eth0", "up")
        except BaseException:
            net.close()
            raise
        return net

    # --- running things inside a host --------------------------------------------------------

    def wrap(self, host: str, command: list[str]) -> list[str]:
        """`command` run inside `host`'s namespace (`ip netns exec` execs it: same pid)."""
        return ["ip", "netns", "exec", self.namespace(host), *command]

    def run(self, host: str, command: list[str], **kwargs) -> subprocess.CompletedProcess:
        kwargs.setdefault("timeout", 60)
        return subprocess.run(self.wrap(host, command), **kwargs)

    def pids(self, host: str) -> list[int]:
        return _pids_in(self.namespace(host))

    def kill_host(self, host: str) -> int:
        """SIGKILL every process in the host's namespace (the machine dies); how many."""
        pids = self.pids(host)
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        return len(pids)

    # --- addresses ---------------------------------------------------------------------------

    def address(self, host: str) -> str:
        return self.hosts[host]

    def owns(self, address: str) -> bool:
        return address in self.hosts.values()

    def check_url(self, url: str) -> str:
        """`url`, if its host is one of this network's namespace addresses; else ValueError."""
        host = urlsplit(url).hostname
        if self.closed or host is None or not self.owns(host):
            raise ValueError(f"refusing to send traffic to {url}: not an address of this harness's namespaces")
        return url

    # --- faults ------------------------------------------------------------------------------

    def blackhole(self, host: str, address: str) -> None:
        """Packets from `host` to `address` are dropped from now on (a partition)."""
        if not self.owns(address):
            raise ValueError(f"{address} is not an address of this harness")
        _ip("-n", self.namespace(host), "route", "add", "blackhole", f"{address}/32")
        self.blackholes.add((host, address))

    def heal(self, host: str, address: str) -> None:
        _ip("-n", self.namespace(host), "route", "del", "blackhole", f"{address}/32", check=False)
        self.blackholes.discard((host, address))

    def cut(self, a: str, b: str) -> None:
        """Packets between hosts `a` and `b` are dropped from now on, both ways and silently (a
        partition neither side is told of: established connections hear nothing, new ones time
        out); their traffic with every other host and the harness is untouched. Costs 2 + hosts
        `ip` commands (the MAC check)."""
        if a == b or a not in self.hosts or b not in self.hosts:
            raise ValueError(f"cut needs two different hosts of this harness, not {a!r} and {b!r}")
        if DROP_MAC in self._macs():
            raise RuntimeError(f"{DROP_MAC} is the MAC of a port of {self.bridge}: frames to it would arrive")
        self.cuts.add(frozenset((a, b)))
        for host, peer in ((a, b), (b, a)):
            _ip("-n", self.namespace(host), "neigh", "replace", self.address(peer), "lladdr", DROP_MAC,
                "dev", "eth0", "nud", "permanent")

    def mend(self, a: str, b: str) -> None:
        """Undo cut(a, b): both pinned entries are removed, the kernel resolves the addresses again."""
        for host, peer in ((a, b), (b, a)):
            _ip("-n", self.namespace(host), "neigh", "del", self.address(peer), "dev", "eth0", check=False)
        self.cuts.discard(frozenset((a, b)))

    def _macs(self) -> set[str]:
        """The MAC of every port of the bridge: the bridge, the root sides and the hosts' eth0."""
        prefix = f"{PREFIX}{self.slot}"
        links = [link for link in json.loads(_ip("-j", "link", "show").stdout or "[]")
                 if link.get("ifname", "").startswith(prefix)]
        for host in self.hosts:
            links += json.loads(_ip("-n", self.namespace(host), "-j", "link", "show", "eth0").stdout or "[]")
        return {link.get("address", "") for link in links}

    def link_down(self, host: str) -> None:
        _ip("-n", self.namespace(host), "link", "set", "eth0", "down")

    def link_up(self, host: str) -> None:
        _ip("-n", self.namespace(host), "link", "set", "eth0", "up")

    # --- teardown ----------------------------------------------------------------------------

    def close(self) -> None:
        """Kill what still runs in the namespaces, delete them and the links, release the slot."""
        if self.closed:
            return
        self.closed = True
        try:
            _clean_slot(self.slot)
        finally:
            os.close(self.lock_fd)

    def __enter__(self) -> Network:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
