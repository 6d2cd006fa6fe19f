"""A private network of network namespaces that the lab creates and always removes.

Every host is a namespace with one veth into a bridge that lives in a switch namespace;
addresses are private (10.77.0.0/24). Nothing is routed anywhere else: there is no default
route, so traffic cannot leave the lab.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass, field

SUBNET = "10.77.0"


class LabError(RuntimeError):
    """The lab could not be set up or run (not root, a tool missing, a peer failing)."""


def _ip(*args: str, ns: str | None = None) -> None:
    cmd = ["ip", *args] if ns is None else ["ip", "netns", "exec", ns, "ip", *args]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode:
        said = (done.stderr.strip().splitlines() or [f"exit code {done.returncode}"])[-1]
        raise LabError(f"{' '.join(cmd)}: {said}")


@dataclass
class Host:
    name: str
    ns: str
    address: str
    interface: str


@dataclass
class LabNetwork:
    hosts: list[str]
    tag: str = field(default_factory=lambda: f"{os.getpid() % 100000}")
    members: dict[str, Host] = field(default_factory=dict)

    @property
    def switch(self) -> str:
        return f"fs{self.tag}-sw"

    def __enter__(self) -> LabNetwork:
        if os.geteuid() != 0:
            raise LabError("the lab needs root to create network namespaces")
        try:
            _ip("netns", "add", self.switch)
            _ip("link", "add", "br0", "type", "bridge", ns=self.switch)
            _ip("link", "set", "br0", "up", ns=self.switch)
            for index, name in enumerate(self.hosts, start=1):
                ns = f"fs{self.tag}-{name}"
                address = f"{SUBNET}.{index}"
                outer, inner = f"v{self.tag}{index}s", f"v{self.tag}{index}h"
                _ip("netns", "add", ns)
                _ip("link", "add", outer, "type", "veth", "peer", "name", inner)
                _ip("link", "set", outer, "netns", self.switch)
                _ip("link", "set", inner, "netns", ns)
                _ip("link", "set", outer, "master", "br0", ns=self.switch)
                _ip("link", "set", outer, "up", ns=self.switch)
                _ip("addr", "add", f"{address}/24", "dev", inner, ns=ns)
                _ip("link", "set", inner, "up", ns=ns)
                _ip("link", "set", "lo", "up", ns=ns)
                self.members[name] = Host(name, ns, address, inner)
        except Exception:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        for host in self.members.values():
            subprocess.run(["ip", "netns", "del", host.ns], capture_output=True)
        subprocess.run(["ip", "netns", "del", self.switch], capture_output=True)

    def host(self, name: str) -> Host:
        return self.members[name]

    def exec_args(self, name: str) -> list[str]:
        return ["ip", "netns", "exec", self.members[name].ns]
