"""Bad, truncated and hostile captures: a one-line error or a report with a warning."""

from __future__ import annotations

import gzip
import random
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest
from capfiles import epb, ether, idb, pcap, shb
from scapy.layers.inet import IP, UDP

import flowscan
from flowscan.errors import CaptureError


def frame(i: int = 0) -> bytes:
    return bytes(ether() / IP(src="192.0.2.1", dst="192.0.2.2") / UDP(sport=4000 + i % 5,
                                                                        dport=3478) / (b"p" * 60))


def write(tmp_path: Path, data: bytes, name: str = "bad.pcap") -> str:
    path = tmp_path / name
    path.write_bytes(data)
    return str(path)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "file is empty"),
        (b"GET / HTTP/1.1\r\n", "not a pcap or pcapng capture"),
        (b"\xd4\xc3\xb2\xa1\x02\x00", "pcap global header is cut short"),
        (gzip.compress(b"hello world"), "after gzip decompression"),
    ],
    ids=["empty", "wrong-magic", "short-header", "gzip-not-capture"],
)
def test_unreadable_files_raise_one_clear_error(tmp_path: Path, data: bytes, reason: str) -> None:
    path = write(tmp_path, data)
    with pytest.raises(CaptureError) as info:
        flowscan.scan(path)
    assert reason in str(info.value)
    assert path in str(info.value)


def test_missing_path_and_directory(tmp_path: Path) -> None:
    with pytest.raises(CaptureError, match="no such file"):
        flowscan.scan(str(tmp_path / "nope.pcap"))
    with pytest.raises(CaptureError, match="is a directory"):
        flowscan.scan(str(tmp_path))


def test_absurd_record_length_is_an_error_naming_where(tmp_path: Path) -> None:
    good = pcap([(1.0, frame()), (2.0, frame())])
    hostile = good + struct.pack("<IIII", 3, 0, 0x7FFFFFFF, 0x7FFFFFFF) + b"x" * 32
    with pytest.raises(CaptureError) as info:
        flowscan.scan(write(tmp_path, hostile))
    message = str(info.value)
    assert "record length 2147483647 is absurd" in message
    assert "after packet 2" in message
    assert f"byte offset {len(good)}" in message


def test_pcapng_corrupt_block_is_an_error(tmp_path: Path) -> None:
    blocks = shb() + idb() + epb("<", 0, 1, frame())
    bad = bytearray(blocks + epb("<", 0, 2, frame()))
    bad[-4:] = struct.pack("<I", 999)  # trailing length no longer matches the header
    with pytest.raises(CaptureError, match="is corrupt"):
        flowscan.scan(write(tmp_path, bytes(bad), "bad.pcapng"))
    huge = blocks + struct.pack("<II", 6, 0xFFFFFFF0)
    with pytest.raises(CaptureError, match="bad length"):
        flowscan.scan(write(tmp_path, huge, "huge.pcapng"))
    with pytest.raises(CaptureError, match="interface 3 out of range"):
        flowscan.scan(write(tmp_path, shb() + idb() + epb("<", 3, 1, frame()), "if.pcapng"))


@pytest.mark.parametrize("kind", ["pcap", "pcapng", "pcap.gz"])
def test_capture_cut_mid_packet_reports_with_warning(tmp_path: Path, kind: str) -> None:
    if kind == "pcapng":
        data = shb() + idb() + b"".join(epb("<", 0, i, frame(i)) for i in range(10))
    else:
        data = pcap([(float(i), frame(i)) for i in range(10)])
    cut = data[:-30]
    if kind == "pcap.gz":
        cut = gzip.compress(data)[:-20]  # the gzip trailer and some data are missing
    report = flowscan.scan(write(tmp_path, cut, "cut." + kind))
    packets = report.capture.packets
    # A cut deflate stream loses the tail of what it was decompressing, so fewer survive.
    assert packets == 9 if kind != "pcap.gz" else 0 < packets < 10
    (warning,) = report.capture.warnings
    assert "cut short" in warning
    assert f"after packet {packets};" in warning
    assert "byte offset" in warning
    assert ("gzip stream cut short" in warning) == (kind == "pcap.gz")


def test_cli_error_is_one_line_and_exit_2(tmp_path: Path) -> None:
    path = write(tmp_path, b"\x00" * 64)
    proc = subprocess.run([sys.executable, "-m", "flowscan", "scan", path],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr.count("\n") == 1
    assert proc.stderr.startswith(f"flowscan: error: {path}: not a pcap or pcapng capture")


def test_cli_reports_good_captures_and_still_exits_2_for_a_bad_one(tmp_path: Path) -> None:
    good = write(tmp_path, pcap([(1.0, frame())]), "good.pcap")
    proc = subprocess.run([sys.executable, "-m", "flowscan", "scan", good,
                           str(tmp_path / "missing.pcap"), "--format", "json"],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert '"packets": 1' in proc.stdout
    assert "missing.pcap: no such file" in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("fmt", ["pcap", "pcapng"])
def test_mutated_captures_never_crash_or_hang(tmp_path: Path, fmt: str) -> None:
    if fmt == "pcap":
        base = pcap([(float(i), frame(i)) for i in range(40)])
    else:
        base = shb() + idb() + b"".join(epb("<", 0, i, frame(i)) for i in range(40))
    rng = random.Random(20201)
    path = tmp_path / ("m." + fmt)
    for _ in range(300):
        data = bytearray(base)
        for _ in range(rng.randint(1, 8)):
            pos = rng.randrange(len(data))
            data[pos] = rng.randrange(256)
        if rng.random() < 0.3:
            data = data[: rng.randrange(len(data))]
        path.write_bytes(bytes(data))
        started = time.monotonic()
        try:
            report = flowscan.scan(str(path))
        except CaptureError as exc:
            assert str(path) in str(exc)
        else:
            assert report.capture.packets <= 40
        assert time.monotonic() - started < 5


def test_ip_header_cut_inside_its_addresses_is_malformed_not_a_flow(tmp_path: Path) -> None:
    """A GRE packet cut after 16 bytes of its IPv4 header: no flow key can be made of it."""
    from scapy.layers.inet import GRE

    whole = bytes(ether() / IP(src="198.51.100.1", dst="203.0.113.9") / GRE())
    path = tmp_path / "cut.pcap"
    path.write_bytes(pcap([(1.0, whole[:14 + 16]), (2.0, frame(1))]))
    report = flowscan.scan(str(path))
    assert len(report.flows) == 1
    assert any("too short or inconsistent" in w for w in report.capture.warnings)


def test_mutated_frames_of_a_keyed_call_never_crash_decryption(tmp_path: Path) -> None:
    """Bytes flipped and frames cut inside the lab's DTLS-SRTP call, decrypted with its keys:
    a report every time, packets cut short counted, never a traceback."""
    from scapy.utils import rdpcap

    lab = Path(__file__).resolve().parent.parent / "captures" / "lab" / "p2p-webrtc"
    frames = [bytes(p) for p in rdpcap(str(lab / "capture.pcapng"))]
    rng = random.Random(7)
    path = tmp_path / "m.pcap"
    truncated = 0
    data: bytes | bytearray  # each frame as read, then mutated in a bytearray
    for _ in range(12):
        mutated = []
        for i, data in enumerate(frames):
            data = bytearray(data)
            if rng.random() < 0.3:
                for _ in range(rng.randint(1, 6)):
                    data[rng.randrange(len(data))] = rng.randrange(256)
            if rng.random() < 0.1:
                data = data[:rng.randrange(1, len(data))]
            mutated.append((float(i), bytes(data)))
        path.write_bytes(pcap(mutated))
        report = flowscan.decrypt(str(path), str(tmp_path / "out.pcapng"),
                                  keylog=[str(lab / "keys.log")])
        truncated += sum(f.encryption.decryption.truncated for f in report.flows
                         if f.encryption and f.encryption.decryption)
    assert truncated > 0
