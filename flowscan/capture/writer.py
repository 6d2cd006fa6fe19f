"""A pcapng writer: what `flowscan decrypt` writes its decrypted capture with.

Block layouts follow the pcapng specification (draft-ietf-opsawg-pcapng, sections 4.1 Section
Header, 4.2 Interface Description, 4.3 Enhanced Packet). One interface per link type;
timestamps in microseconds (the default if_tsresol). No Decryption Secrets Blocks are ever
written: the output carries no key material.
"""

from __future__ import annotations

import struct
from typing import BinaryIO

SHB, IDB, EPB = 0x0A0D0D0A, 0x00000001, 0x00000006
BYTE_ORDER_MAGIC = 0x1A2B3C4D
OPT_COMMENT, OPT_END = 1, 0


def _pad(data: bytes) -> bytes:
    return data + bytes(-len(data) % 4)


def _options(comment: str | None) -> bytes:
    if not comment:
        return b""
    text = comment.encode()
    return struct.pack("<HH", OPT_COMMENT, len(text)) + _pad(text) + struct.pack("<HH", OPT_END, 0)


def _block(kind: int, body: bytes) -> bytes:
    length = 12 + len(body)
    return struct.pack("<II", kind, length) + body + struct.pack("<I", length)


class PcapngWriter:
    def __init__(self, stream: BinaryIO, comment: str | None = None) -> None:
        self._stream = stream
        self._interfaces: dict[int, int] = {}  # link type -> interface id
        body = struct.pack("<IHHq", BYTE_ORDER_MAGIC, 1, 0, -1) + _options(comment)
        stream.write(_block(SHB, body))

    def add(self, ts: float, link: int, data: bytes, wire: int) -> None:
        interface = self._interfaces.get(link)
        if interface is None:
            interface = self._interfaces[link] = len(self._interfaces)
            self._stream.write(_block(IDB, struct.pack("<HHI", link, 0, 0)))
        micros = round(ts * 1_000_000)
        body = struct.pack("<IIIII", interface, micros >> 32, micros & 0xFFFFFFFF,
                           len(data), max(wire, len(data))) + _pad(data)
        self._stream.write(_block(EPB, body))
