"""Writers for crafted capture files, so tests control every header field and block."""

from __future__ import annotations

import struct
from pathlib import Path

# Scapy resolves a missing destination MAC with ARP; explicit addresses keep tests offline.
MAC_A = "02:00:00:00:00:0a"
MAC_B = "02:00:00:00:00:0b"

REAL_DIR = Path(__file__).resolve().parent.parent.parent / "shared" / "captures" / "real"


def pcap(packets: list[tuple[float, bytes]], *, linktype: int = 1, order: str = "<",
         nano: bool = False, snaplen: int = 262144) -> bytes:
    magic = 0xA1B23C4D if nano else 0xA1B2C3D4
    out = [struct.pack(order + "IHHiIII", magic, 2, 4, 0, 0, snaplen, linktype)]
    scale = 1_000_000_000 if nano else 1_000_000
    for ts, data in packets:
        sec = int(ts)
        frac = round((ts - sec) * scale)
        out.append(struct.pack(order + "IIII", sec, frac, len(data), len(data)) + data)
    return b"".join(out)


def _pad(data: bytes) -> bytes:
    return data + b"\0" * (-len(data) % 4)


def block(order: str, btype: int, body: bytes) -> bytes:
    body = _pad(body)
    length = 12 + len(body)
    return struct.pack(order + "II", btype, length) + body + struct.pack(order + "I", length)


def option(order: str, code: int, value: bytes) -> bytes:
    return struct.pack(order + "HH", code, len(value)) + _pad(value)


def shb(order: str = "<") -> bytes:
    return block(order, 0x0A0D0D0A, struct.pack(order + "IHHq", 0x1A2B3C4D, 1, 0, -1))


def idb(order: str = "<", linktype: int = 1, snaplen: int = 0, tsresol: int | None = None,
        tsoffset: int | None = None) -> bytes:
    opts = b""
    if tsresol is not None:
        opts += option(order, 9, bytes((tsresol,)))
    if tsoffset is not None:
        opts += option(order, 14, struct.pack(order + "q", tsoffset))
    if opts:
        opts += option(order, 0, b"")
    return block(order, 1, struct.pack(order + "HHI", linktype, 0, snaplen) + opts)


def epb(order: str, if_id: int, ticks: int, data: bytes, orig: int | None = None) -> bytes:
    body = struct.pack(order + "IIIII", if_id, ticks >> 32, ticks & 0xFFFFFFFF, len(data),
                       len(data) if orig is None else orig)
    return block(order, 6, body + _pad(data))


def spb(order: str, data: bytes) -> bytes:
    return block(order, 3, struct.pack(order + "I", len(data)) + _pad(data))


def opb(order: str, if_id: int, ticks: int, data: bytes) -> bytes:
    body = struct.pack(order + "HHIIII", if_id, 0, ticks >> 32, ticks & 0xFFFFFFFF, len(data),
                       len(data))
    return block(order, 2, body + _pad(data))


def nrb(order: str, ipv4: bytes, name: str) -> bytes:
    value = ipv4 + name.encode() + b"\0"
    rec = struct.pack(order + "HH", 1, len(value)) + _pad(value)
    return block(order, 4, rec + struct.pack(order + "HH", 0, 0))


def dsb(order: str, secrets_type: int, data: bytes) -> bytes:
    return block(order, 0x0A, struct.pack(order + "II", secrets_type, len(data)) + _pad(data))


def ether() -> object:
    from scapy.layers.l2 import Ether

    return Ether(src=MAC_A, dst=MAC_B)
