"""Seed corpora: real payloads cut from the lab's and the shared real-world captures.

Real traffic makes better seeds than hand-written packets: the fuzzer starts from what the
parsers meet in the field (vendor STUN attributes, fragmented DTLS handshakes, Zoom's
encapsulation). Payloads are read with flowscan's own reader and decoder, sorted by a rough
guess of their protocol, and capped per kind so that a corpus stays small.
"""

from __future__ import annotations

import gzip
import os
import struct
from collections import defaultdict
from functools import lru_cache
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
LAB_DIR = REPO / "captures" / "lab"
# Multi-datagram inputs (a DTLS flight, QUIC Initials) are datagrams joined by this marker.
FRAME_SEP = b"\xf0\x9f\x90\x9b"
PER_KIND = 48
STREAM_SAMPLE = 8192
SIP_STARTS = (b"INVITE ", b"ACK ", b"BYE ", b"CANCEL ", b"OPTIONS ", b"REGISTER ", b"SIP/2.0 ",
              b"PRACK ", b"UPDATE ", b"NOTIFY ", b"SUBSCRIBE ", b"INFO ", b"MESSAGE ")


def real_dir() -> Path | None:
    """The shared real-world captures: $FLOWSCAN_REAL_CAPTURES, or shared/ beside the
    checkout (a worktree sits one level deeper than the main checkout)."""
    env = os.environ.get("FLOWSCAN_REAL_CAPTURES")
    candidates = [Path(env)] if env else []
    candidates += [p / "shared" / "captures" / "real" for p in REPO.parents[:2]]
    return next((p for p in candidates if p.is_dir()), None)


def lab_captures() -> list[Path]:
    return sorted(LAB_DIR.glob("*/capture*.pcapng"))


def real_captures(max_size: int = 1 << 20) -> list[Path]:
    folder = real_dir()
    if folder is None:
        return []
    return sorted(p for p in folder.iterdir() if p.suffix in (".pcap", ".pcapng")
                  and p.stat().st_size <= max_size)


def _packets(path: Path) -> list[tuple[int, bytes]]:
    from flowscan.capture import CaptureSource, open_reader

    with CaptureSource(str(path)) as source:
        reader = open_reader(source)
        return [(link, data) for _ts, link, data, _wire in reader.packets()]


@lru_cache(maxsize=4)
def harvest(include_real: bool = True) -> dict[str, list[bytes]]:
    """Payloads by kind: stun, dtls, dtls-flight, rtp, zoom, dns, dns-tcp, quic, gquic, sip,
    tls, hello, cert; and the packets themselves by link type (decode)."""
    from flowscan.capture.decode import Decoder
    from flowscan.protocols import demux, hello, stun, tls, zoom

    out: dict[str, list[bytes]] = defaultdict(list)
    streams: dict[bytes, bytearray] = {}
    datagrams: dict[bytes, list[bytes]] = defaultdict(list)

    def add(kind: str, data: bytes) -> None:
        bucket = out[kind]
        if data and len(bucket) < PER_KIND and data not in bucket:
            bucket.append(data)

    paths = lab_captures() + (real_captures() if include_real else [])
    for path in paths:
        decoder = Decoder()
        try:
            packets = _packets(path)
        except Exception:  # noqa: BLE001 - a capture that cannot be read gives no seeds
            continue
        for link, data in packets:
            add(f"link-{link}", data[:512])
            try:
                decoded = decoder.decode(link, data)
            except (IndexError, ValueError):
                continue
            if decoded is None:
                continue
            proto, key, start, end, _flags, _encap = decoded
            payload = data[start:end]
            if not payload:
                continue
            ports = struct.unpack(">HH", key[-4:])
            if proto == 6:
                buf = streams.setdefault(key, bytearray())
                if len(buf) < STREAM_SAMPLE:
                    buf += payload
                continue
            if proto != 17:
                continue
            kind = demux.classify(payload)
            if 53 in ports:
                add("dns", payload)
            elif any(p in zoom.SERVER_PORTS for p in ports):
                add("zoom", payload)
            elif 443 in ports and payload[0] & 0x80:
                add("quic", payload)
                if len(datagrams[key]) < 4:
                    datagrams[key].append(payload)
            elif 443 in ports and payload[0] & 0x01 and b"CHLO" in payload:
                add("gquic", payload)
            elif payload.startswith(SIP_STARTS):
                add("sip", payload)
            elif kind in (demux.STUN, demux.TURN_CHANNEL):
                add("stun", payload)
            elif kind == demux.DTLS:
                add("dtls", payload)
                if len(datagrams[key]) < 6:
                    datagrams[key].append(payload)
            elif kind == demux.RTP:
                add("rtp", payload)
            elif zoom.parse_p2p(payload) is not None:
                add("zoom", payload)
    for frames in datagrams.values():
        kind = "quic-flight" if frames[0][0] & 0x80 and frames[0][0] & 0x40 else "dtls-flight"
        add(kind, FRAME_SEP.join(frames))
    for key, buf in streams.items():
        data = bytes(buf)
        ports = struct.unpack(">HH", key[-4:])
        if 53 in ports:
            add("dns-tcp", data)
        elif data.startswith(SIP_STARTS):
            add("sip", data[:4096])
        elif stun.split_stream(data):
            add("stun", data[:2048])
        elif tls.looks_like_tls(data):
            add("tls", data)
            for mtype, body in _handshake_messages(data):
                add("hello", bytes([mtype]) + body)
                if mtype == hello.CERTIFICATE:
                    for der in hello.parse_certificates(body)[:2]:
                        add("cert", der)
    return dict(out)


def _handshake_messages(stream: bytes) -> list[tuple[int, bytes]]:
    from flowscan.protocols import hello

    handshake = bytearray()
    pos = 0
    while pos + 5 <= len(stream):
        ctype, length = stream[pos], int.from_bytes(stream[pos + 3:pos + 5], "big")
        if ctype == 22:
            handshake += stream[pos + 5:pos + 5 + length]
        pos += 5 + length
    return hello.split_messages(bytes(handshake))


def trim_capture(raw: bytes, max_packets: int, max_bytes: int) -> bytes:
    """The head of a capture, cut at a record boundary: the global header or every
    non-packet pcapng block (sections, interfaces, secrets) and the first packets."""
    if raw[:4] == b"\x0a\x0d\x0d\x0a":
        order = "<" if raw[8:12] == b"\x4d\x3c\x2b\x1a" else ">"
        out, pos, packets = bytearray(), 0, 0
        while pos + 12 <= len(raw):
            btype, blen = struct.unpack_from(order + "II", raw, pos)
            if blen < 12 or pos + blen > len(raw):
                break
            is_packet = btype in (2, 3, 6)
            if not is_packet or (packets < max_packets and len(out) + blen <= max_bytes):
                out += raw[pos:pos + blen]
                packets += is_packet
            pos += blen
        return bytes(out)
    out = bytearray(raw[:24])
    order = "<" if raw[:4] in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1",
                               b"\x34\xcd\xb2\xa1") else ">"
    header = 24 if raw[:4] in (b"\x34\xcd\xb2\xa1", b"\xa1\xb2\xcd\x34") else 16
    pos, packets = 24, 0
    while pos + header <= len(raw) and packets < max_packets:
        (incl,) = struct.unpack_from(order + "I", raw, pos + 8)
        if len(out) + header + incl > max_bytes:
            break
        out += raw[pos:pos + header + incl]
        pos += header + incl
        packets += 1
    return bytes(out)


@lru_cache(maxsize=8)
def captures(kind: str, include_real: bool = True, max_packets: int = 24,
             max_bytes: int = 12288) -> list[bytes]:
    """Small whole captures: pcapng, pcap or gzip (of either), cut from the lab's and the
    real captures."""
    from . import synth

    paths = lab_captures() + (real_captures() if include_real else [])
    heads = [trim_capture(p.read_bytes(), max_packets, max_bytes) for p in paths]
    pcapng = [h for h in heads if h[:4] == b"\x0a\x0d\x0d\x0a"]
    pcap = [h for h in heads if h[:4] != b"\x0a\x0d\x0d\x0a"]
    # The lab writes pcapng only: its packets, rewritten, give pcap seeds of each variant.
    for i, path in enumerate(lab_captures()[:3]):
        packets = [(1.5 + n, 1, data) for n, (_link, data) in enumerate(_packets(path))]
        pcap.append(trim_capture(synth.pcap_file(packets, "<>"[i % 2], nano=i == 1,
                                                 modified=i == 2), max_packets, max_bytes))
    if kind == "pcapng":
        return pcapng
    if kind == "pcap":
        return pcap
    if kind == "gzip":
        return [gzip.compress(h[:4096], mtime=0) for h in pcap[:4] + pcapng[:4]]
    return pcapng + pcap
