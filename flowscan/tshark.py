"""The second engine: Wireshark's dissectors (through pyshark) feeding the same flow table.

It exists as a cross-check of the native reader: if both agree on flows, packets and bytes,
neither has silently dropped or misattributed traffic. It is slow (tshark dissects every
layer), so it is for verification, not for large captures.
"""

from __future__ import annotations

import hashlib
import ipaddress
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from flowscan.capture import CaptureSource, open_reader
from flowscan.capture.decode import NO_PORTS, PROTO_TCP, PROTO_UDP, Decoded
from flowscan.errors import CaptureError
from flowscan.flows import FlowTable
from flowscan.options import ScanOptions
from flowscan.report.model import Report
from flowscan.version import __version__

TUNNEL_LAYERS = {"gtp": "gtp-u", "gre": "gre", "vxlan": "vxlan", "pppoes": "pppoe",
                 "mpls": "mpls"}
ICMP_LAYERS = {"icmp": 1, "icmpv6": 58}
FLOW_TABLE_ONLY = ("the tshark engine gives the flow table only (packets and bytes per flow "
                   "through Wireshark's dissectors): no apps, encryption verdicts, locations, "
                   "sessions or findings; scan with the native engine for those")


def _upper_layer(ip_layer: Any) -> int:
    """The IP protocol number of what follows the IP header and its extensions.

    IPv6 extension headers (RFC 8200 section 4) each carry their own Next Header; the
    upper-layer protocol is the last in the chain, not the fixed header's `nxt` (0 for a
    Hop-by-Hop header, as MLD reports carry). Wireshark names them `hopopts_nxt`,
    `dstopts_nxt`, `routing_nxt`, `fraghdr_nxt`, in the order the headers appear.
    """
    if ip_layer.layer_name == "ip":
        return int(ip_layer.proto)
    chain = [name for name in ip_layer.field_names if name.endswith("_nxt")]
    return int(getattr(ip_layer, chain[-1]) if chain else ip_layer.nxt)


def packet_to_decoded(packet: Any) -> tuple[float, int, Decoded] | None:
    """Innermost IP and transport of a pyshark packet, as the native decoder would give them.

    ICMP ends the walk: the IP and UDP headers quoted inside an ICMP error belong to the
    ICMP message, not to a flow of their own.
    """
    ip_layer = None
    transport = None
    icmp: int | None = None
    encap: list[str] = []
    for layer in packet.layers:
        name = layer.layer_name
        if name in ("ip", "ipv6"):
            if ip_layer is not None and not encap:
                encap.append("ip-in-ip")
            ip_layer, transport = layer, None
        elif name in ("udp", "tcp") and ip_layer is not None:
            transport = layer
        elif name in ICMP_LAYERS:
            transport, icmp = None, ICMP_LAYERS[name]
            break
        elif name == "vlan":
            encap.append(f"vlan:{int(layer.id)}")
        elif name in TUNNEL_LAYERS and ip_layer is not None:
            encap.append(TUNNEL_LAYERS[name])
    if ip_layer is None:
        return None
    src = ipaddress.ip_address(ip_layer.src).packed
    dst = ipaddress.ip_address(ip_layer.dst).packed
    ts = float(packet.sniff_timestamp)
    wirelen = int(packet.length)
    if transport is not None:
        proto = PROTO_UDP if transport.layer_name == "udp" else PROTO_TCP
        ports = int(transport.srcport).to_bytes(2, "big") + int(transport.dstport).to_bytes(
            2, "big")
        flags = int(transport.flags, 16) if proto == PROTO_TCP else 0
        key = src + dst + ports
    else:
        proto = icmp if icmp is not None else _upper_layer(ip_layer)
        flags = 0
        key = src + dst + NO_PORTS
    return ts, wirelen, (proto, key, 0, 0, flags, tuple(encap) or None)


def _sha256(path: str) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def scan_with_tshark(path: str, options: ScanOptions) -> Report:
    """Build the report's flow table from tshark's dissection of the capture."""
    from flowscan.report.build import with_answers
    from flowscan.report.model import CaptureInfo, ToolInfo
    from flowscan.report.records import flow_record, timestamp

    if shutil.which("tshark") is None:
        raise CaptureError(path, "the tshark engine needs tshark installed (apt install tshark)")
    spool = None
    if path == "-":
        with tempfile.NamedTemporaryFile(
            prefix="flowscan-", suffix=".pcap", delete=False
        ) as spool:
            shutil.copyfileobj(sys.stdin.buffer, spool)
        real_path = spool.name
    else:
        real_path = path
    try:
        # The native reader validates the file and names its format; tshark does the rest.
        with CaptureSource(real_path) as source:
            facts = open_reader(source).facts
            compressed = source.compressed
        sha, size = _sha256(real_path)
        flows: list[Any] = []
        table = FlowTable(on_close=lambda s: flows.append(flow_record(s)),
                          idle_timeout=options.idle_timeout, sample_packets=0)
        read = _read_packets(_pdml_packets(real_path), table)
        table.close_all()
        flows.sort(key=lambda f: f.id)
        info = CaptureInfo(
            path="<stdin>" if path == "-" else path, sha256=sha, size_bytes=size,
            compressed=compressed, format=facts.format + ("+gzip" if compressed else ""),
            link_types=[], sections=facts.sections, interfaces=facts.interfaces,
            packets=read.packets, bytes=read.bytes,
            first_timestamp=timestamp(read.first) if read.packets else None,
            last_timestamp=timestamp(read.last) if read.packets else None,
            ip_packets=read.ip_packets, non_ip_packets=read.packets - read.ip_packets,
            warnings=[FLOW_TABLE_ONLY, *read.warnings],
        )
        return with_answers(Report(tool=ToolInfo("flowscan", __version__ + "+tshark"),
                                   capture=info, flows=flows), None)
    finally:
        if spool is not None:
            os.unlink(spool.name)


@dataclass
class _TsharkRead:
    """What tshark's dissection of the capture counted."""

    packets: int = 0
    bytes: int = 0
    ip_packets: int = 0
    first: float = float("inf")
    last: float = float("-inf")
    warnings: list[str] = field(default_factory=list)


def _read_packets(packets: Iterator[Any], table: FlowTable) -> _TsharkRead:
    read = _TsharkRead()
    try:
        for packet in packets:
            read.packets += 1
            ts = float(packet.sniff_timestamp)
            read.bytes += int(packet.length)
            read.first, read.last = min(read.first, ts), max(read.last, ts)
            decoded = packet_to_decoded(packet)
            if decoded is None:
                continue
            read.ip_packets += 1
            table.add(decoded[0], decoded[1], decoded[2], b"")
    except Exception as exc:  # noqa: BLE001 - tshark's complaint becomes a warning
        read.warnings.append(f"tshark stopped after packet {read.packets}: {exc}".strip())
    return read


PDML_END = b"</packet>"


class TsharkFailed(Exception):
    """tshark ended with a non-zero status: the packets read so far may not be all."""


def _pdml_packets(path: str) -> Iterator[Any]:
    """pyshark packets from tshark's PDML dissection of the capture, tshark run here.

    The process is started, read to its end and waited for by this function, not by
    pyshark's asyncio machinery: that reaps children through a SIGCHLD watcher and the
    Popen kept inside the event loop's transport, and when the test suite or a library
    user has started more processes than the pid space holds, a stale reaper can collect
    a reused pid, so a tshark that finished cleanly was reported as crashed (exit 255).
    Popen.wait() on its own child has no such race, and no signal handler is touched.
    A non-zero exit raises, and _read_packets turns it into the report's warning.
    """
    from pyshark.tshark.output_parser.tshark_xml import packet_from_xml_packet

    command = ["tshark", "-l", "-n", "-T", "pdml", "-o", "ip.defragment:FALSE", "-r", path]
    with tempfile.TemporaryFile() as errors, subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=errors, stdin=subprocess.DEVNULL) as proc:
        assert proc.stdout is not None
        read_to_end = False
        try:
            pending = b""
            while chunk := proc.stdout.read(1 << 16):
                pending += chunk
                start = 0
                while (end := pending.find(PDML_END, start)) != -1:
                    end += len(PDML_END)
                    opening = pending.find(b"<packet>", start, end)
                    yield packet_from_xml_packet(pending[opening:end])
                    start = end
                pending = pending[start:]
            read_to_end = True
        finally:
            # Stopped early (an exception in the caller): no orphan. At the end of its
            # output tshark may not have exited yet, and is waited for, never killed.
            if not read_to_end:
                proc.kill()
            proc.stdout.close()
            status = proc.wait()
        if status != 0:
            errors.seek(0)
            raise TsharkFailed(f"tshark exited with status {status}: "
                               f"{_last_line(errors.read())}")


def _last_line(stderr: bytes) -> str:
    """tshark's last complaint, without its "running as root" preamble."""
    lines = [line for line in stderr.decode("utf-8", "replace").splitlines()
             if line.strip() and "could be dangerous" not in line]
    return lines[-1].strip().removeprefix("tshark: ") if lines else "no message"
