"""Build a large pcap by replaying the shared real captures with rewritten addresses.

Replay i rewrites the second and third octets of every outer IPv4 address with
(octets XOR variant), variant = i mod VARIANTS, so the flow set stops growing after VARIANTS
replays: a capture of 4M packets then has the same flows as one of 1M, and memory can be
compared fairly. With --variants 0 every replay gets addresses of its own (variant = i), so
the flows keep growing with the packets: the flow-heavy shape.
Packets are re-timed at a steady rate so that no flow reaches the idle timeout.

With --source CAPTURE, that one capture (a lab call, say) is replayed as it is, addresses
unchanged: a capture shaped like a long video call, a few flows with many packets each.

With --shape distinct or churn, the capture is made up rather than replayed, to measure
memory against the number of flows ever seen: "distinct" is one UDP packet for each of N
flows (no two share a socket; 6 ms apart, so about 50,000 are open at once under the
default idle timeout of 300 s); "churn" is N packets of one UDP socket pair, 400 s apart,
so each packet opens a new flow after the last one timed out.
"""

from __future__ import annotations

import argparse
import struct
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from flowscan.capture import CaptureSource, open_reader

REAL_DIR = Path(__file__).resolve().parent.parent.parent / "shared" / "captures" / "real"
VARIANTS = 64
STEP_US = 20  # 50,000 packets per second


def ipv4_offset(frame: bytes) -> int | None:
    """Offset of the outer IPv4 header in an Ethernet frame (VLAN tags skipped)."""
    off = 12
    et = (frame[off] << 8) | frame[off + 1]
    while et in (0x8100, 0x88A8) and len(frame) > off + 6:
        off += 4
        et = (frame[off] << 8) | frame[off + 1]
    return off + 2 if et == 0x0800 and len(frame) >= off + 22 else None


def load_corpus(paths: list[Path]) -> list[tuple[bytes, int, int | None]]:
    packets = []
    for path in paths:
        with CaptureSource(str(path)) as source:
            for _ts, link, data, wirelen in open_reader(source).packets():
                if link == 1:
                    packets.append((data, wirelen, ipv4_offset(data)))
    return packets


def build(out: Path, count: int, source: Path | None = None, variants: int = VARIANTS) -> None:
    paths = [source] if source else [p for p in sorted(REAL_DIR.glob("*.pcap*"))
                                     if p.suffix in (".pcap", ".pcapng")]
    corpus = load_corpus(paths)
    if not corpus:
        sys.exit(f"no Ethernet packets in {source or REAL_DIR}")
    variants = 1 if source else variants
    with open(out, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1))
        record = struct.Struct("<IIII")
        written = 0
        replay = 0
        ts_us = 1_700_000_000 * 1_000_000
        while written < count:
            variant = replay % variants if variants else replay
            for data, wirelen, ip in corpus:
                if written >= count:
                    break
                if ip is not None and variant:
                    frame = bytearray(data)
                    for octet in (13, 17):
                        frame[ip + octet] ^= variant >> 8 & 0xFF
                        frame[ip + octet + 1] ^= variant & 0xFF
                    data = bytes(frame)
                f.write(record.pack(ts_us // 1_000_000, ts_us % 1_000_000, len(data), wirelen))
                f.write(data)
                ts_us += STEP_US
                written += 1
            replay += 1


SYNTHETIC_STEP_US = {"distinct": 6_000, "churn": 400_000_000}
# An RTP packet (version 2, payload type 111) with 20 bytes of payload.
SYNTHETIC_PAYLOAD = bytes.fromhex("806f0001000000010000abcd") + bytes(20)


def synthetic_frame(shape: str, i: int) -> bytes:
    """Ethernet, IPv4 and UDP headers around the RTP payload; for "distinct", flow i's
    client address 10.x.y.z and port are unique to it."""
    udp_len = 8 + len(SYNTHETIC_PAYLOAD)
    if shape == "distinct":
        client = bytes((10, (i >> 16) & 0xFF, (i >> 8) & 0xFF, i & 0xFF))
        sport = 10_000 + (i >> 24)
    else:
        client, sport = bytes((10, 0, 0, 1)), 40_000
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + udp_len, 0, 0, 64, 17, 0, client,
                     bytes((192, 0, 2, 7)), )
    udp = struct.pack("!HHHH", sport, 50_000, udp_len, 0)
    ether = b"\x02\x00\x00\x00\x00\x01\x02\x00\x00\x00\x00\x02\x08\x00"
    return ether + ip + udp + SYNTHETIC_PAYLOAD


def build_synthetic(out: Path, count: int, shape: str) -> None:
    step = SYNTHETIC_STEP_US[shape]
    record = struct.Struct("<IIII")
    with open(out, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1))
        ts_us = 1_700_000_000 * 1_000_000
        for i in range(count):
            frame = synthetic_frame(shape, i)
            f.write(record.pack(ts_us // 1_000_000, ts_us % 1_000_000, len(frame), len(frame)))
            f.write(frame)
            ts_us += step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("out", type=Path)
    parser.add_argument("--packets", type=int, default=1_000_000)
    parser.add_argument("--source", type=Path, help="replay this capture alone, unchanged")
    parser.add_argument("--shape", choices=("replay", *SYNTHETIC_STEP_US), default="replay",
                        help="replay the corpus, or make up distinct flows or churn")
    parser.add_argument("--variants", type=int, default=VARIANTS,
                        help="address variants replayed in turn; 0: every replay its own")
    args = parser.parse_args()
    if args.shape == "replay":
        build(args.out, args.packets, args.source, args.variants)
    else:
        build_synthetic(args.out, args.packets, args.shape)


if __name__ == "__main__":
    main()
