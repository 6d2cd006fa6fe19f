"""Many small captures in one run: `flowscan scan DIR -o OUT/ --tables T`, serial and -j 2.

Builds N captures (1,000 by default) from the lab captures and the shared real ones, copy k
of each with its IPv4 addresses rewritten (third octet XOR k, consistently in the IP
headers and in STUN, SIP/SDP and RTCP payloads, as flowscan.lab.rewrite does for the lab),
so that no two captures are alike. Then, each in a fresh process, scans them serially and
with `-j 2` (a Dask LocalCluster of two worker processes) at several counts, and reports:
wall time; the client's peak RSS (its VmHWM); the workers' peak RSS, summed over the worker
processes; and the peak of the whole process tree's RSS, summed while it runs (sampled
from /proc every 20 ms). Target (issue 14): the client's memory flat in the number of
captures, at most 300 MB for 1,000. Linux only (/proc).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import struct
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from make_replay import REAL_DIR, ipv4_offset

from flowscan.capture import CaptureSource, open_reader
from flowscan.lab.rewrite import rewrite_rtcp, rewrite_sip, rewrite_stun

HERE = Path(__file__).resolve().parent
LAB = HERE.parent / "captures" / "lab"
PCAP_HEADER = struct.Struct("<IHHiIII")
RECORD = struct.Struct("<IIII")
UDP, TCP = 17, 6
SAMPLE_S = 0.02


def sources() -> list[Path]:
    """The lab's captures and the shared real ones, in a fixed order."""
    lab = sorted(LAB.glob("*/capture*.pcapng"))
    real = sorted(p for p in REAL_DIR.glob("*.pcap*") if p.suffix in (".pcap", ".pcapng"))
    return lab + real


def checksum(data: bytes) -> int:
    """The Internet checksum, RFC 1071."""
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def ip_start(frame: bytes, link: int) -> int | None:
    """Where the IPv4 header starts: Ethernet (1) or raw IP (101)."""
    if link == 1:
        return ipv4_offset(frame)
    return 0 if link == 101 and frame[:1] and frame[0] >> 4 == 4 else None


def rewrite_packet(frame: bytes, link: int, mapping: dict[str, str]) -> bytes:
    """The frame with its IPv4 addresses mapped, in the headers and in the UDP payload's
    STUN, SIP/SDP and RTCP; IP and transport checksums made right again."""
    at = ip_start(frame, link)
    if at is None or len(frame) < at + 20:
        return frame
    ihl = (frame[at] & 0x0F) * 4
    total = int.from_bytes(frame[at + 2:at + 4], "big")
    proto = frame[at + 9]
    header = bytearray(frame[at:at + ihl])
    for pos in (12, 16):
        old = ".".join(str(b) for b in header[pos:pos + 4])
        header[pos:pos + 4] = bytes(int(x) for x in mapping.get(old, old).split("."))
    l4 = frame[at + ihl:at + total] if total >= ihl else b""
    trailer = frame[at + total:] if total >= ihl else frame[at + ihl:]
    fragment = int.from_bytes(header[6:8], "big") & 0x3FFF
    if proto == UDP and len(l4) >= 8 and not fragment:
        payload = rewrite_rtcp(rewrite_sip(rewrite_stun(l4[8:], mapping, None), mapping),
                               mapping)
        l4 = l4[:4] + struct.pack("!HH", 8 + len(payload), 0) + payload  # no UDP checksum
    elif proto == TCP and len(l4) >= 20 and not fragment:
        pseudo = bytes(header[12:20]) + struct.pack("!BBH", 0, TCP, len(l4))
        l4 = l4[:16] + b"\0\0" + l4[18:]
        l4 = l4[:16] + struct.pack("!H", checksum(pseudo + l4)) + l4[18:]
    header[2:4] = struct.pack("!H", ihl + len(l4))
    header[10:12] = b"\0\0"
    header[10:12] = struct.pack("!H", checksum(bytes(header)))
    return frame[:at] + bytes(header) + l4 + trailer


def addresses(packets: list[tuple[float, int, bytes, int]]) -> set[str]:
    found = set()
    for _ts, link, frame, _wire in packets:
        at = ip_start(frame, link)
        if at is not None and len(frame) >= at + 20:
            found.add(".".join(str(b) for b in frame[at + 12:at + 16]))
            found.add(".".join(str(b) for b in frame[at + 16:at + 20]))
    return found


def write_copy(dst: Path, packets: list[tuple[float, int, bytes, int]], variant: int) -> None:
    """One rewritten copy as a pcap: third octet of every IPv4 address XOR variant."""
    mapping = {}
    for addr in addresses(packets):
        a, b, c, d = addr.split(".")
        mapping[addr] = f"{a}.{b}.{int(c) ^ variant}.{d}"
    link = packets[0][1] if packets else 1
    with open(dst, "wb") as out:
        out.write(PCAP_HEADER.pack(0xA1B2C3D4, 2, 4, 0, 0, 262144, link))
        for ts, pkt_link, frame, wire in packets:
            new = rewrite_packet(frame, pkt_link, mapping)
            usec = round(ts * 1_000_000)
            out.write(RECORD.pack(usec // 1_000_000, usec % 1_000_000, len(new),
                                  wire + len(new) - len(frame)))
            out.write(new)


def build(folder: Path, count: int) -> None:
    """count rewritten captures in folder (kept between runs: a stamp names the count)."""
    stamp = folder / "built.json"
    if stamp.exists() and json.loads(stamp.read_text()).get("count") == count:
        return
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    originals = sources()
    print(f"building {count} captures from {len(originals)} originals ...", flush=True)
    loaded = []
    for path in originals:
        with CaptureSource(str(path)) as source:
            loaded.append((path, list(open_reader(source).packets())))
    for i in range(count):
        path, packets = loaded[i % len(loaded)]
        variant = i // len(loaded) + 1
        name = f"{path.parent.name}-{path.stem}" if path.is_relative_to(LAB) else path.stem
        write_copy(folder / f"{i:04d}-{name}-v{variant}.pcap", packets, variant)
    stamp.write_text(json.dumps({"count": count}) + "\n")


def descendants(root: int) -> list[int]:
    """root and every process below it, from /proc."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        ppid = int(text[text.rindex(")") + 2:].split()[1])
        children.setdefault(ppid, []).append(int(stat.parent.name))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, []))
    return out


def memory_kb(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) of a process in kB; zeros once it is gone."""
    values = {"VmRSS:": 0, "VmHWM:": 0}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key = line.split(maxsplit=1)[0] if line else ""
            if key in values:
                values[key] = int(line.split()[1])
    except (OSError, ValueError):
        pass
    return values["VmRSS:"], values["VmHWM:"]


def measure(command: list[str]) -> dict[str, float]:
    """Wall time and peak memory of a command and the processes it starts."""
    start = time.perf_counter()
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    client_hwm = 0
    worker_hwm: dict[int, int] = {}
    tree_peak = 0
    while proc.poll() is None:
        tree = 0
        for pid in descendants(proc.pid):
            rss, hwm = memory_kb(pid)
            tree += rss
            if pid == proc.pid:
                client_hwm = max(client_hwm, hwm)
            else:
                worker_hwm[pid] = max(worker_hwm.get(pid, 0), hwm)
        tree_peak = max(tree_peak, tree)
        time.sleep(SAMPLE_S)
    wall = time.perf_counter() - start
    err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(command)} exited {proc.returncode}: {err[-2000:]}")
    client_kb = client_hwm  # VmHWM only grows: the last sample is within 20 ms of exit
    return {"seconds": round(wall, 2), "client_peak_mb": round(client_kb / 1024, 1),
            "workers_peak_mb": round(sum(worker_hwm.values()) / 1024, 1),
            "processes": 1 + len(worker_hwm), "tree_peak_mb": round(tree_peak / 1024, 1)}


def same_reports(one: Path, two: Path) -> bool:
    names = sorted(p.name for p in one.iterdir())
    return names == sorted(p.name for p in two.iterdir()) and all(
        (one / n).read_bytes() == (two / n).read_bytes() for n in names)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=HERE / "out")
    parser.add_argument("--counts", default="250,500,1000",
                        help="numbers of captures to scan, comma separated")
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()
    counts = sorted(int(c) for c in args.counts.split(","))
    folder = args.out / "many"
    build(folder, max(counts))
    everything = sorted(p for p in folder.iterdir() if p.suffix == ".pcap")
    results = []
    print(f"{'captures':>8} {'run':7} {'seconds':>8} {'client MB':>10} {'workers MB':>11} "
          f"{'tree MB':>8}", flush=True)
    for count in counts:
        subset = args.out / f"many-{count}"
        shutil.rmtree(subset, ignore_errors=True)
        subset.mkdir()
        for path in everything[:count]:
            os.symlink(path, subset / path.name)
        outputs = {}
        for label, extra in (("serial", []), (f"-j {args.jobs}", ["-j", str(args.jobs)])):
            reports = args.out / f"reports-{count}-{label.replace(' ', '')}"
            tables = args.out / f"tables-{count}-{label.replace(' ', '')}"
            shutil.rmtree(reports, ignore_errors=True)
            shutil.rmtree(tables, ignore_errors=True)
            row = measure([sys.executable, "-m", "flowscan", "scan", str(subset), "-o",
                           f"{reports}/", "--format", "json", "--home", "EU", "--tables",
                           str(tables), *extra])
            row.update(captures=count, run=label)
            results.append(row)
            outputs[label] = reports
            print(f"{count:8} {label:7} {row['seconds']:8.2f} {row['client_peak_mb']:10.1f} "
                  f"{row['workers_peak_mb']:11.1f} {row['tree_peak_mb']:8.1f}", flush=True)
        serial_out, parallel_out = outputs.values()
        if not same_reports(serial_out, parallel_out):
            raise SystemExit(f"{count} captures: -j {args.jobs} wrote other reports")
    clients = [r["client_peak_mb"] for r in results]
    print(f"client peak RSS: {min(clients):.0f} to {max(clients):.0f} MB over "
          f"{counts[0]} to {counts[-1]} captures; target <= 300 MB for 1,000: "
          f"{'met' if max(clients) <= 300 else 'NOT met'}")
    (args.out / "many_captures.json").write_text(json.dumps(
        {"cpus": os.cpu_count(), "results": results}, indent=2) + "\n")


if __name__ == "__main__":
    main()
