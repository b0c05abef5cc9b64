"""A network namespace with veth links to the root namespace, for tests that need a host of its
own network stack (a partition that drops packets silently, without an error on either side).

    with Namespace.create() as ns:
        link = ns.link()             # a veth pair on a /30 no route or address here uses yet
        link.root_ip, link.ns_ip     # this side's and the namespace's address
        ns.popen([...])              # a process inside the namespace (ip netns exec)
        link.cut(); link.heal()      # the root side down: what the namespace sends is dropped

Needs root and iproute2 (`ip`); `available()` says why not. Every name holds this process's pid,
every address is checked unused before it is taken, and everything made is removed on exit.
"""

from __future__ import annotations

import ipaddress
import json
import os
import random
import re
import shutil
import subprocess
from dataclasses import dataclass, field

IP = shutil.which("ip") or "/usr/sbin/ip"
POOL = ipaddress.ip_network("10.0.0.0/8")
PREFIX = 30


def _ip(*args: str, ns: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
    command = [IP, "netns", "exec", ns, IP, *args] if ns else [IP, *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=10, check=check)


def available() -> str | None:
    """None if namespaces and veth pairs can be made here, else why not."""
    if not os.path.exists(IP):
        return "iproute2 (ip) is not installed"
    if os.geteuid() != 0:
        return "network namespaces need root"
    probe = f"nsprobe{os.getpid()}"
    made = _ip("netns", "add", probe, check=False)
    if made.returncode != 0:
        return f"ip netns add failed: {made.stderr.strip()}"
    _ip("netns", "del", probe, check=False)
    return None


def _networks_in_use() -> list[ipaddress.IPv4Network]:
    """Every IPv4 network of an address or a route of any table, in the root namespace."""
    used = []
    for entry in json.loads(_ip("-j", "-4", "addr").stdout or "[]"):
        for addr in entry.get("addr_info", []):
            used.append(ipaddress.ip_network(f"{addr['local']}/{addr['prefixlen']}", strict=False))
    for route in json.loads(_ip("-j", "-4", "route", "show", "table", "all").stdout or "[]"):
        dst = route.get("dst", "")
        if dst and dst != "default":
            used.append(ipaddress.ip_network(dst if "/" in dst else f"{dst}/32", strict=False))
    return used


def _free_subnet(taken: list[ipaddress.IPv4Network]) -> ipaddress.IPv4Network:
    used = _networks_in_use() + taken
    for _ in range(200):
        base = random.randrange(int(POOL.network_address), int(POOL.broadcast_address), 2 ** (32 - PREFIX))
        net = ipaddress.ip_network(f"{ipaddress.ip_address(base)}/{PREFIX}")
        if not any(net.overlaps(u) for u in used if u.prefixlen > 0):
            return net
    raise RuntimeError("no free /30 in 10.0.0.0/8")


def _remove_leftovers() -> None:
    """Namespaces and veths of test processes that died without their teardown (their names
    hold the pid: nst<pid>, v<pid>r<n>). Processes still inside are left alone."""
    for line in _ip("netns", "list").stdout.splitlines():
        match = re.fullmatch(r"nst(\d+)", line.split()[0]) if line.strip() else None
        if match and not os.path.exists(f"/proc/{match.group(1)}"):
            _ip("netns", "del", match.group(0), check=False)
    for entry in json.loads(_ip("-j", "link").stdout or "[]"):
        match = re.fullmatch(r"v(\d+)r\d+", entry.get("ifname", ""))
        if match and not os.path.exists(f"/proc/{match.group(1)}"):
            _ip("link", "del", entry["ifname"], check=False)


@dataclass
class Link:
    """A veth pair: `root_dev` (root_ip) here, `ns_dev` (ns_ip) in the namespace."""

    ns: str
    root_dev: str
    ns_dev: str
    root_ip: str
    ns_ip: str
    subnet: ipaddress.IPv4Network

    def cut(self) -> None:
        """The root side down: what the namespace sends on this link is dropped by the veth
        (no RST, no ICMP; the namespace's side keeps its address, route and neighbour entry),
        and nothing reaches it from here. Connections through it hang, new ones time out."""
        _ip("link", "set", self.root_dev, "down")

    def heal(self) -> None:
        _ip("link", "set", self.root_dev, "up")

    def owns(self, address: str) -> bool:
        return ipaddress.ip_address(address) in self.subnet


@dataclass
class Namespace:
    name: str
    links: list[Link] = field(default_factory=list)

    @classmethod
    def create(cls) -> Namespace:
        _remove_leftovers()
        name = f"nst{os.getpid()}"
        _ip("netns", "add", name)
        ns = cls(name)
        try:
            _ip("link", "set", "lo", "up", ns=name)
        except BaseException:
            ns.destroy()
            raise
        return ns

    def link(self) -> Link:
        """A new veth pair to the root namespace, on a /30 of 10.0.0.0/8 that no address or
        route of the root namespace overlaps; the namespace's side has a permanent neighbour
        entry for this side, so a cut link drops silently instead of failing ARP."""
        index = len(self.links)
        subnet = _free_subnet([link.subnet for link in self.links])
        root_ip, ns_ip = (str(host) for host in subnet.hosts())
        link = Link(self.name, f"v{os.getpid()}r{index}", f"v{os.getpid()}n{index}", root_ip, ns_ip, subnet)
        _ip("link", "add", link.root_dev, "type", "veth", "peer", "name", link.ns_dev)
        self.links.append(link)
        _ip("link", "set", link.ns_dev, "netns", self.name)
        _ip("addr", "add", f"{root_ip}/{PREFIX}", "dev", link.root_dev)
        _ip("link", "set", link.root_dev, "up")
        _ip("addr", "add", f"{ns_ip}/{PREFIX}", "dev", link.ns_dev, ns=self.name)
        _ip("link", "set", link.ns_dev, "up", ns=self.name)
        mac = json.loads(_ip("-j", "link", "show", link.root_dev).stdout)[0]["address"]
        _ip("neigh", "replace", root_ip, "lladdr", mac, "dev", link.ns_dev, "nud", "permanent", ns=self.name)
        return link

    def command(self, args: list[str]) -> list[str]:
        """`args` run inside the namespace (ip netns exec execs it: same pid)."""
        return [IP, "netns", "exec", self.name, *args]

    def destroy(self) -> None:
        """Remove every link and the namespace (deleting a veth removes its peer)."""
        for link in self.links:
            _ip("link", "del", link.root_dev, check=False)
        self.links.clear()
        _ip("netns", "del", self.name, check=False)

    def __enter__(self) -> Namespace:
        return self

    def __exit__(self, *exc) -> None:
        self.destroy()
