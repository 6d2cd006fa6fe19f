"""The streamed renderers write what rendering the report at once writes: JSON flows and
sessions dumped a chunk per orjson call (a chunk orjson refuses item by item), JSON Lines
objects spliced after their two leading members, CSV cells taken on a fast path. Strings
from captures stay inert on every path."""

from __future__ import annotations

import dataclasses
import inspect
from typing import Any

import orjson
import pytest

from flowscan.identify import fields_map
from flowscan.report import csv as csv_report
from flowscan.report import json as json_report
from flowscan.report import jsonl, model
from flowscan.report.model import (
    CaptureInfo,
    DirectionStats,
    Encryption,
    Endpoint,
    EvidenceItem,
    Flow,
    MediaSession,
    Report,
    ToolInfo,
)
from flowscan.report.sanitize import json_inert, json_safe_tree

SURROGATE = "x\udcffy"  # a lone surrogate: orjson refuses it
INVISIBLE = "a\u202eb\u200bc\x85d\x7fe"  # bidi override, zero width, C1, DEL
FLOWS = 23
HOSTILE_AT = {5: SURROGATE, 6: INVISIBLE, 17: INVISIBLE}  # flow id -> its SNI


def flow(number: int) -> Flow:
    sni = HOSTILE_AT.get(number, f"host{number}.example")
    return Flow(
        id=number, transport="udp", client=Endpoint("192.0.2.1", 40000 + number),
        server=Endpoint("198.51.100.7", 443), client_basis="first-packet",
        to_server=DirectionStats(3, 300 + number, 1.5, 2.25),
        to_client=DirectionStats(0, 0, None, None), protocols=("quic",),
        details={"quic": fields_map([("sni", sni), ("versions", ("v1",)), ("empty", [])])},
        encryption=Encryption("hop-by-hop", "server", "proprietary", "observed", "medium",
                              evidence=(EvidenceItem("quic", sni),), session=number))


def report(name: str = "c.pcap") -> Report:
    capture = CaptureInfo(name, "ab" * 32, 1, False, "pcap", ["ethernet"], 1, 1, FLOWS, 1,
                          1.0, 2.0)
    return Report(tool=ToolInfo("flowscan", "0"), capture=capture,
                  flows=[flow(n) for n in range(1, FLOWS + 1)],
                  sessions=[MediaSession(n, None, (n,), ("hop-by-hop",),
                                         HOSTILE_AT.get(n, f"session {n}"))
                            for n in range(1, FLOWS + 1)])


@pytest.mark.parametrize("chunk", [1, 4, 5, 7, 1024])
def test_json_in_chunks_equals_the_report_dumped_at_once(
        monkeypatch: pytest.MonkeyPatch, chunk: int) -> None:
    """The surrogate's flow (5) falls in the middle of a chunk for most sizes: its chunk is
    written item by item, the others whole, and the bytes are those of one dump."""
    monkeypatch.setattr(json_report, "CHUNK", chunk)
    reports = [report(), report("d.pcap")]
    for given in ([reports[0]], reports):
        whole = given[0] if len(given) == 1 else given
        expected = json_inert(orjson.dumps(json_safe_tree(whole), option=json_report.OPTIONS))
        written = json_report.dumps_bytes(given)
        assert written == expected
        assert "\u202e".encode() not in written and b"\\u202e" in written
        assert b"x\xef\xbf\xbdy" in written  # the surrogate as U+FFFD, its flow alone


def test_jsonl_spliced_lines_equal_the_lines_built_as_dicts() -> None:
    """A flow's line is its dump after "type" and "sha256"; the surrogate's flow takes the
    repairing path; both equal the line built from the whole dict."""
    sha = "ab" * 32
    for value in report().flows:
        body: dict[str, Any] = {"type": "flow", "sha256": sha, **dataclasses.asdict(value)}
        expected = json_inert(orjson.dumps(json_safe_tree(body),
                                           option=orjson.OPT_APPEND_NEWLINE))
        assert jsonl._line("flow", sha, value) == expected
    assert "\u202e".encode() not in b"".join(jsonl.lines(report()))


def test_jsonl_keeps_the_leading_members_of_a_dataclass_that_names_them() -> None:
    @dataclasses.dataclass
    class Clash:
        id: int
        type: str

    assert jsonl._line("x", "s", Clash(1, "mine")) == b'{"type":"mine","sha256":"s","id":1}\n'


@pytest.mark.parametrize("values", [
    ["plain", "", "=1+2", "-x", "+x", "@x", "\tx", "\rx", "a\x1bb", INVISIBLE, SURROGATE],
    [0, 7, -3, True, False, None, 1.5, -0.25, float("nan"), 10**20],
    [Encryption("plaintext", "peer", "none", "observed", "high").verdict, "x" * 300],
])
def test_csv_fast_cells_equal_the_cell_function(values: list[object]) -> None:
    assert csv_report._cells(values) == [csv_report._cell(v) for v in values]


def test_every_report_dataclass_takes_the_fast_serialisation() -> None:
    """A slots dataclass without the Serialised base costs orjson an AttributeError per
    object: slower, not wrong (the bytes are the same either way)."""
    for _, cls in inspect.getmembers(model, inspect.isclass):
        if dataclasses.is_dataclass(cls) and cls.__module__ == model.__name__:
            assert issubclass(cls, model.Serialised), cls
    quick = model.Endpoint("192.0.2.1", 1)
    assert quick.__dict__ is None
    assert orjson.dumps(quick) == b'{"ip":"192.0.2.1","port":1}'
