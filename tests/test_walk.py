"""The record walker: compiled and Python loops give the same record starts, and whole scans
give the same report either way."""

from __future__ import annotations

import os
import struct
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from capfiles import block, epb, idb, pcap, shb

import flowscan
from flowscan.capture import walk
from flowscan.report.json import report_to_dict

LAB = Path(__file__).resolve().parent.parent / "captures" / "lab"
PAD = bytes(256)


@pytest.fixture(params=["native", "python"])
def mode(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "native":
        if walk._walk is None:
            pytest.skip("the compiled walker was not built (setup.py: optional extension)")
        monkeypatch.delenv("FLOWSCAN_PURE_PYTHON", raising=False)
    else:
        monkeypatch.setenv("FLOWSCAN_PURE_PYTHON", "1")
    assert walk.native() == (request.param == "native")
    return request.param


def test_compiled_walker_is_built_where_required() -> None:
    """CI sets FLOWSCAN_REQUIRE_NATIVE: there the extension must have been built, or the
    benchmark and the native half of these tests would silently measure the fallback."""
    if not os.environ.get("FLOWSCAN_REQUIRE_NATIVE"):
        pytest.skip("FLOWSCAN_REQUIRE_NATIVE is not set (CI sets it)")
    assert walk._walk is not None


@pytest.mark.parametrize("order", ["<", ">"])
def test_pcap_starts_stop_before_a_cut_record(mode: str, order: str) -> None:
    body = pcap([(1.0, b"a" * 10), (2.0, b"b" * 3), (3.0, b""), (4.0, b"c" * 40)],
                order=order)
    cut = len(body) - 5  # the last record's data is cut
    buf = bytearray(body) + PAD
    starts, off = walk.pcap_starts(buf, 24, cut, 16, order)
    assert starts.tolist() == [24, 24 + 26, 24 + 26 + 19]
    assert off == 24 + 26 + 19 + 16
    # A header cut by the end is not a record either, whatever the padding holds.
    starts, off = walk.pcap_starts(buf, 24, 24 + 10, 16, order)
    assert starts.tolist() == [] and off == 24


def test_pcap_starts_of_the_modified_format_and_an_absurd_length(mode: str) -> None:
    rec = struct.pack("<IIII", 0, 0, 4, 4) + bytes(8) + b"wxyz"  # 24-byte header
    hostile = struct.pack("<IIII", 0, 0, 0xFFFFFFF0, 4) + bytes(8)
    buf = bytearray(rec * 3 + hostile) + PAD
    starts, off = walk.pcap_starts(buf, 0, len(buf) - len(PAD), 24, "<")
    assert starts.tolist() == [0, 28, 56] and off == 84


@pytest.mark.parametrize("order", ["<", ">"])
def test_epb_runs_end_at_other_blocks_cut_blocks_and_bad_lengths(mode: str, order: str) -> None:
    packets = [epb(order, 0, i, bytes(5 + i)) for i in range(3)]
    other = block(order, 5, b"statistics")
    data = b"".join(packets) + other + packets[0]
    buf = bytearray(data) + PAD
    starts, off, bad = walk.epb_starts(buf, 0, len(data), order)
    sizes = [len(p) for p in packets]
    assert starts.tolist() == [0, sizes[0], sizes[0] + sizes[1]]
    assert off == sum(sizes) and bad is None
    starts, off, bad = walk.epb_starts(buf, sum(sizes) + len(other), len(data) - 1, order)
    assert starts.tolist() == [] and off == sum(sizes) + len(other) and bad is None
    for length in (8, 13, 1 << 25):
        broken = bytearray(packets[1])
        broken[4:8] = struct.pack(order + "I", length)
        data = packets[0] + bytes(broken) + packets[2]
        starts, off, bad = walk.epb_starts(bytearray(data) + PAD, 0, len(data), order)
        assert starts.tolist() == [0] and off == sizes[0] and bad == length


def test_epb_run_of_minimal_blocks_is_walked_whole(mode: str) -> None:
    """Twelve-byte blocks, the shortest a length check lets through: the output array is
    sized for them (the reader then rejects them as corrupt packets)."""
    data = struct.pack("<III", 6, 12, 12) * 1000
    starts, off, bad = walk.epb_starts(bytearray(data) + PAD, 0, len(data), "<")
    assert len(starts) == 1000 and off == len(data) and bad is None
    assert np.array_equal(starts, np.arange(0, len(data), 12))


def _scan(path: Path, pure: bool, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    if pure:
        monkeypatch.setenv("FLOWSCAN_PURE_PYTHON", "1")
    else:
        monkeypatch.delenv("FLOWSCAN_PURE_PYTHON", raising=False)
    return report_to_dict(flowscan.scan(str(path)))


@pytest.mark.skipif(walk._walk is None, reason="the compiled walker was not built")
@pytest.mark.parametrize("name", ["sfu-webrtc/capture.pcapng", "sip-sdes-srtp/capture.pcapng"])
def test_lab_reports_are_the_same_either_way(name: str, monkeypatch: pytest.MonkeyPatch
                                              ) -> None:
    path = LAB / name
    assert _scan(path, False, monkeypatch) == _scan(path, True, monkeypatch)


@pytest.mark.skipif(walk._walk is None, reason="the compiled walker was not built")
def test_real_reports_are_the_same_either_way(real_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    native = _scan(real_path, False, monkeypatch)
    assert native["capture"]["packets"] > 0  # type: ignore[index]
    assert native == _scan(real_path, True, monkeypatch)


@pytest.mark.skipif(walk._walk is None, reason="the compiled walker was not built")
def test_cut_and_corrupt_files_fail_the_same_way(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    good = shb() + idb() + b"".join(epb("<", 0, i, bytes(60)) for i in range(5))
    corrupt = bytearray(good)
    third = len(shb() + idb()) + 2 * len(epb("<", 0, 0, bytes(60)))
    corrupt[third + 4:third + 8] = struct.pack("<I", 13)
    cases = {"cut.pcapng": good[:-7], "corrupt.pcapng": bytes(corrupt),
             "cut.pcap": pcap([(1.0, bytes(60))] * 4)[:-9]}
    for name, data in cases.items():
        path = tmp_path / name
        path.write_bytes(data)
        outcomes = []
        for pure in (False, True):
            try:
                outcomes.append(_scan(path, pure, monkeypatch)["capture"]["warnings"])
            except flowscan.errors.CaptureError as exc:
                outcomes.append(str(exc))
        assert outcomes[0] == outcomes[1], name
        assert outcomes[0], name  # each case is reported, as a warning or an error


@pytest.mark.skipif(walk._walk is None, reason="the compiled walker was not built")
def test_walkers_agree_on_hostile_buffers(monkeypatch: pytest.MonkeyPatch) -> None:
    """Random and mutated buffers (a fixed seed, so a failure repeats): the compiled walker
    reads nothing outside what it is given and stops where the Python loop stops."""
    rng = np.random.default_rng(20261123)
    good_pcap = pcap([(float(i), bytes(int(rng.integers(0, 90)))) for i in range(40)])[24:]
    good_epb = b"".join(epb("<", 0, i, bytes(int(rng.integers(0, 90)))) for i in range(40))
    cases = 0
    for base in (good_pcap, good_epb):
        for _ in range(400):
            data = bytearray(base)
            for at in rng.integers(0, len(data), size=int(rng.integers(0, 6))):
                data[int(at)] = int(rng.integers(0, 256))
            if rng.random() < 0.3:
                data = bytearray(rng.integers(0, 256, size=int(rng.integers(0, 200)),
                                              dtype=np.uint8).tobytes())
            n = int(rng.integers(0, len(data) + 1))
            off = int(rng.integers(0, n + 1))
            order = "<" if rng.random() < 0.7 else ">"
            header = 16 if rng.random() < 0.8 else 24
            buf = bytearray(data) + PAD
            answers = []
            for pure in (False, True):
                if pure:
                    monkeypatch.setenv("FLOWSCAN_PURE_PYTHON", "1")
                else:
                    monkeypatch.delenv("FLOWSCAN_PURE_PYTHON", raising=False)
                starts, end = walk.pcap_starts(buf, off, n, header, order)
                run, stop, bad = walk.epb_starts(buf, off, n, order)
                answers.append((starts.tolist(), end, run.tolist(), stop, bad))
            assert answers[0] == answers[1]
            cases += 1
    assert cases == 800
