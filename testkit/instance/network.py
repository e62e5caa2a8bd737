"""The instance's network namespace, owned by a sidecar container.

dockerd here runs with `--bridge=none --iptables=false`, so the harness wires the network
itself: a sidecar container started with `--network none` owns the namespace (the
instance joins it with `--network container:<sidecar>`, so the namespace, and every
service the harness runs in it, outlives the instance's reboots), and a veth pair links it
to the host:

    host  <veth host side> 10.213.N.1/24  ----  eth0 10.213.N.2/24  instance namespace

In the namespace, nothing but the instance's NGINX may listen on 80/443, so what EC2 and
ECR answer on those ports is reached through DNAT rules to side ports on 127.0.0.1
(`route_localnet`): 169.254.169.254:80 (IMDS), and one address per registry host name on
443. The rules live in the namespace's own nat table; they vanish with it.
"""

from __future__ import annotations

import ipaddress
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass

IMDS_ADDRESS = "169.254.169.254"
SUBNET_PREFIX = "10.213"


class NetworkError(RuntimeError):
    """A step of the namespace wiring failed; the message has the command and its output."""


def run(argv: Sequence[str], check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(list(argv), capture_output=True, text=True, check=False)
    if check and result.returncode != 0:
        raise NetworkError(f"{' '.join(argv)} failed ({result.returncode}): "
                           f"{result.stderr.strip() or result.stdout.strip()}")
    return result


def nsenter(pid: int) -> list[str]:
    """The argv prefix that runs a command in the network namespace of `pid`."""
    return ["nsenter", f"--net=/proc/{pid}/ns/net", "--"]


def used_subnets() -> set[int]:
    """Third octets of 10.213.N.0/24 already on a host interface."""
    out = run(["ip", "-4", "-o", "addr", "show"]).stdout
    taken = set()
    for word in out.split():
        if word.startswith(f"{SUBNET_PREFIX}."):
            taken.add(int(word.split(".")[2]))
    return taken


@dataclass(frozen=True)
class Addresses:
    """The /24 of one instance: the host's side, the instance, and one address per
    registry host name (DNATed to the registry's side port)."""

    octet: int

    def _at(self, last: int) -> str:
        return f"{SUBNET_PREFIX}.{self.octet}.{last}"

    @property
    def host(self) -> str:
        return self._at(1)

    @property
    def instance(self) -> str:
        return self._at(2)

    def registry(self, index: int) -> str:
        return self._at(10 + index)

    @property
    def network(self) -> ipaddress.IPv4Network:
        return ipaddress.IPv4Network(f"{SUBNET_PREFIX}.{self.octet}.0/24")


def free_addresses() -> Addresses:
    taken = used_subnets()
    for octet in range(1, 255):
        if octet not in taken:
            return Addresses(octet)
    raise NetworkError(f"every {SUBNET_PREFIX}.N.0/24 is in use on this host")


def wire(pid: int, host_veth: str, addresses: Addresses) -> None:
    """A veth pair between the host and the namespace of `pid` (eth0 inside), addressed,
    with route_localnet so DNAT to 127.0.0.1 works for the namespace's own traffic."""
    ns = nsenter(pid)
    run(["ip", "link", "add", host_veth, "type", "veth", "peer", "name", "eth0",
         "netns", str(pid)])
    run(["ip", "addr", "add", f"{addresses.host}/24", "dev", host_veth])
    run(["ip", "link", "set", host_veth, "up"])
    run([*ns, "ip", "addr", "add", f"{addresses.instance}/24", "dev", "eth0"])
    run([*ns, "ip", "link", "set", "eth0", "up"])
    run([*ns, "ip", "link", "set", "lo", "up"])
    run([*ns, "ip", "route", "add", f"{IMDS_ADDRESS}/32", "dev", "eth0"])
    for name in ("all", "eth0"):
        run([*ns, "sysctl", "-q", "-w", f"net.ipv4.conf.{name}.route_localnet=1"])


def dnat(pid: int, address: str, port: int, side_port: int) -> None:
    """Connections from the namespace to address:port go to 127.0.0.1:side_port."""
    run([*nsenter(pid), "iptables", "-t", "nat", "-A", "OUTPUT", "-d", f"{address}/32",
         "-p", "tcp", "--dport", str(port), "-j", "DNAT",
         "--to-destination", f"127.0.0.1:{side_port}"])


def unwire(host_veth: str) -> None:
    """Remove the host side of the veth pair (the peer goes with it), if it is still there."""
    if run(["ip", "link", "show", host_veth], check=False).returncode == 0:
        run(["ip", "link", "del", host_veth], check=False)
