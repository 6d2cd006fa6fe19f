"""Build a large pcap by replaying the shared real captures with rewritten addresses.

Replay i rewrites the third octet of every outer IPv4 address with (octet XOR variant),
variant = i mod VARIANTS, so the flow set stops growing after VARIANTS replays: a capture of
4M packets then has the same flows as one of 1M, and memory can be compared fairly.
Packets are re-timed at a steady rate so that no flow reaches the idle timeout.

With --source CAPTURE, that one capture (a lab call, say) is replayed as it is, addresses
unchanged: a capture shaped like a long video call, a few flows with many packets each.
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


def build(out: Path, count: int, source: Path | None = None) -> None:
    paths = [source] if source else [p for p in sorted(REAL_DIR.glob("*.pcap*"))
                                     if p.suffix in (".pcap", ".pcapng")]
    corpus = load_corpus(paths)
    if not corpus:
        sys.exit(f"no Ethernet packets in {source or REAL_DIR}")
    variants = 1 if source else VARIANTS
    with open(out, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1))
        record = struct.Struct("<IIII")
        written = 0
        replay = 0
        ts_us = 1_700_000_000 * 1_000_000
        while written < count:
            variant = replay % variants
            for data, wirelen, ip in corpus:
                if written >= count:
                    break
                if ip is not None and variant:
                    frame = bytearray(data)
                    frame[ip + 14] ^= variant
                    frame[ip + 18] ^= variant
                    data = bytes(frame)
                f.write(record.pack(ts_us // 1_000_000, ts_us % 1_000_000, len(data), wirelen))
                f.write(data)
                ts_us += STEP_US
                written += 1
            replay += 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("out", type=Path)
    parser.add_argument("--packets", type=int, default=1_000_000)
    parser.add_argument("--source", type=Path, help="replay this capture alone, unchanged")
    args = parser.parse_args()
    build(args.out, args.packets, args.source)


if __name__ == "__main__":
    main()
