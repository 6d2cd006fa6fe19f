"""Issue 12: every string from a capture or a file is inert in every output.

One crafted capture carries hostile strings where a capture can put them (TLS SNI, DNS
and mDNS names, SIP headers and SDP, STUN SOFTWARE) and lies under a path that holds '[/]',
an escape sequence and a byte that is not UTF-8. The text report (piped, and drawn for a
terminal) must show them as text: no raw control byte, no markup effect, no forged line,
long strings shortened, IPv6 addresses whole. The JSON report must stay valid UTF-8 and
keep them whole.
"""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
from pathlib import Path

import orjson
import pytest
from capfiles import ether, pcap
from packets import stun_message
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.tls.extensions import ServerName, TLS_Ext_ServerName
from scapy.layers.tls.handshake import TLSClientHello
from scapy.layers.tls.record import TLS

import flowscan
from flowscan.report import json as json_report
from flowscan.report import text
from flowscan.report.model import Report
from flowscan.report.sanitize import (
    csv_cell,
    escape_controls,
    html_text,
    inert_line,
    inert_markup,
    inert_text,
    json_inert,
    json_safe,
    json_safe_tree,
)

MARKUP = "[bold red]x[/]"
LINK = "[link=http://evil]y[/link]"
CLOSE = "[/]"
CLEAR = "\x1b[2J"
OSC8 = "\x1b]8;;http://e\x1b\\"
FORGED = "\r\n  finding  high: FORGED media is end-to-end encrypted"
RLO = "\u202e"
SCRIPT = "<script>alert(1)</script>"
FORMULA = "=cmd|' /C calc'!A0"
INVALID = b"\xff\xfe\xc3("
# Separated by spaces so the report's line wrapping (at 160 columns in a pipe) falls
# between them, and each can be found whole in the report.
HOSTILE = [MARKUP, LINK, CLOSE, CLEAR, OSC8, FORGED, RLO, SCRIPT, FORMULA]
# Longer than the report shows (200), within the 2 KiB of each payload flowscan samples:
# a longer string in a packet is never parsed (the 64 KiB case is rendered directly below).
LONG = "A" * 1800

V6_CLIENT = "fe80::abcd:1234:5678:9abc"
V6_SERVER = "2001:db8:aaaa:bbbb:cccc:dddd:eeee:ffff"
MDNS_SRC, MDNS_DST = "fe80::1", "ff02::fb"


def hostile_text(suffix: str) -> str:
    return " ".join(HOSTILE) + " " + suffix


def dns_name(labels: list[bytes]) -> bytes:
    """Wire form of a name from raw labels (each up to 63 bytes; dots and spaces allowed)."""
    return b"".join(bytes([len(label)]) + label for label in labels) + b"\0"


def dns_message(tid: int, labels: list[bytes], answer: str | None) -> bytes:
    """A query for the name, or its response with one A record, built byte by byte so the
    labels hold exactly the hostile bytes."""
    flags = 0x8180 if answer else 0x0100
    head = tid.to_bytes(2, "big") + flags.to_bytes(2, "big") + bytes(
        [0, 1, 0, 1 if answer else 0, 0, 0, 0, 0])
    out = head + dns_name(labels) + b"\x00\x01\x00\x01"
    if answer:
        out += b"\xc0\x0c\x00\x01\x00\x01\x00\x00\x00\x3c\x00\x04"
        out += bytes(int(x) for x in answer.split("."))
    return out


DNS_LABELS = [s.encode() for s in HOSTILE] + [RLO.encode() + INVALID, b"webex", b"com"]
# How the DNS parser gives the name: labels as ASCII with replacement, lower case.
DNS_SHOWN = ".".join(label.decode("ascii", "replace").lower() for label in DNS_LABELS)
SNI = (hostile_text("sfu.zoom.us")).encode()
STUN_SOFTWARE = ("jitsi " + hostile_text(LONG)).encode() + INVALID
SDP_NAME = hostile_text("call").encode() + INVALID
# SIP splits its header at CRLF: a bare LF stays in the value, a line break in the report.
CALL_ID = hostile_text("call-id").replace("\r\n", "\n")


def sip_invite() -> bytes:
    body = (b"v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=" + SDP_NAME + b"\r\nc=IN IP4 192.0.2.1\r\n"
            b"t=0 0\r\nm=audio 30000 RTP/AVP 0\r\na=rtpmap:0 " + SDP_NAME + b"\r\n")
    head = ("INVITE sip:bob@198.51.100.5 SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1:5060\r\n"
            f"Call-ID: {CALL_ID}\r\nSubject: {CALL_ID}\r\n"
            "CSeq: 1 INVITE\r\nContent-Type: application/sdp\r\n"
            f"Content-Length: {len(body)}\r\n\r\n")
    return head.encode() + body


def client_hello(sni: bytes) -> bytes:
    hello = TLSClientHello(version=0x0303, ciphers=[0x1301],
                           ext=[TLS_Ext_ServerName(servernames=[ServerName(servername=sni)])])
    return bytes(TLS(version=0x0301, msg=[hello]))


def capture() -> bytes:
    pkts: list[bytes] = []

    def v4(src: str, dst: str, sport: int, dport: int, payload: bytes) -> None:
        pkts.append(bytes(ether() / IP(src=src, dst=dst) / UDP(sport=sport, dport=dport)
                          / payload))

    def v6(src: str, dst: str, sport: int, dport: int, payload: bytes) -> None:
        pkts.append(bytes(ether() / IPv6(src=src, dst=dst) / UDP(sport=sport, dport=dport)
                          / payload))

    # DNS: the hostile name answered with the address of a big flow, and asked over mDNS.
    v4("192.0.2.1", "192.0.2.53", 40001, 53, dns_message(1, DNS_LABELS, None))
    v4("192.0.2.53", "192.0.2.1", 53, 40001, dns_message(1, DNS_LABELS, "198.51.100.20"))
    v6(MDNS_SRC, MDNS_DST, 5353, 5353, dns_message(0, DNS_LABELS, None))
    for _ in range(30):
        v4("192.0.2.1", "198.51.100.20", 40003, 9999, bytes([0x17]) + bytes(400))
    # TLS: three-way handshake, then a ClientHello with the hostile SNI.
    c, s = ("192.0.2.1", 40002), ("203.0.113.10", 443)
    tcp = [(c, s, "S", 1000, 0, b""), (s, c, "SA", 5000, 1001, b""),
           (c, s, "A", 1001, 5001, b""), (c, s, "PA", 1001, 5001, client_hello(SNI))]
    for (src, sport), (dst, dport), flags, seq, ack, payload in tcp:
        pkts.append(bytes(ether() / IP(src=src, dst=dst) / TCP(
            sport=sport, dport=dport, flags=flags, seq=seq, ack=ack) / payload))
    # SIP: an INVITE with hostile headers and SDP, no a=crypto; then its plain RTP.
    v4("192.0.2.1", "198.51.100.5", 5060, 5060, sip_invite())
    for i in range(12):
        rtp = bytes([0x80, 0]) + (i + 1).to_bytes(2, "big") + (160 * i).to_bytes(4, "big")
        v4("192.0.2.1", "198.51.100.5", 30000, 40000, rtp + b"\xd5" * 160)
    # STUN over IPv6 between long addresses, with a long SOFTWARE.
    txid = bytes(range(12))
    v6(V6_CLIENT, V6_SERVER, 50000, 3478,
       stun_message(0x0001, txid, [(0x8022, STUN_SOFTWARE)]))
    v6(V6_SERVER, V6_CLIENT, 3478, 50000, stun_message(0x0101, txid, []))
    return pcap([(1.0 + i / 100, p) for i, p in enumerate(pkts)])


@pytest.fixture(scope="module")
def hostile_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The capture under a path holding '[/]' (a directory ending in '[' and a file name
    starting with ']'), an escape sequence, and a byte that is not UTF-8."""
    root = tmp_path_factory.mktemp("inert")
    folder = root / "x\udcff["  # os functions write the surrogate back as byte 0xff
    folder.mkdir()
    path = folder / "]\x1b[2J.pcap"
    path.write_bytes(capture())
    return path


def run_scan(path: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-m", "flowscan", "scan", str(path), *args],
                          capture_output=True, timeout=120)


def flat(report: str) -> str:
    """The report with its line wrapping undone (rich wraps at spaces)."""
    return re.sub(r" *\n *", " ", report)


def forged_lines(report: str) -> list[str]:
    """Lines that start as a report line of ours but were written by the capture."""
    return [line for line in report.splitlines()
            if line.lower().startswith("  finding  high: forged")]


SHOWN_ESCAPED = [
    MARKUP, LINK, CLOSE, SCRIPT, FORMULA,  # markup and HTML/CSV bait: shown as typed
    "\\x1b[2J", "\\x1b]8;;http://e\\x1b\\", "\\r\\n  finding", "\\u202e",  # escaped
]


def test_piped_text_report_shows_every_hostile_string_as_text(hostile_path: Path) -> None:
    proc = run_scan(hostile_path)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    for raw in (b"\x1b", b"\r", b"\x07", b"\x85", "\u202e".encode(), b"\xff"):
        assert raw not in out, raw
    report = out.decode("utf-8")  # strict: the report is valid UTF-8
    assert forged_lines(report) == []
    assert "media travels unencrypted" in report  # the SDP without a=crypto was read
    shown = flat(report)
    for text_ in SHOWN_ESCAPED:
        assert text_ in shown, text_
    # The path: '[/]' kept, the escape sequence escaped, the byte 0xff named.
    assert report.splitlines()[0].startswith(f"{hostile_path.parent.parent}/x\\xff[/]"
                                             "\\x1b[2J.pcap  (pcap")
    # The call id's bare LF and the long STUN SOFTWARE, shortened with the count cut.
    assert "\\n  finding  high: FORGED" in shown
    assert "A" * 300 not in report and "more characters cut)" in report


def test_ipv6_addresses_whole_in_the_flow_table(hostile_path: Path) -> None:
    report = run_scan(hostile_path).stdout.decode()
    for endpoint in (f"[{MDNS_SRC}]:5353", f"[{MDNS_DST}]:5353", f"[{V6_CLIENT}]:50000",
                     f"[{V6_SERVER}]:3478"):
        assert endpoint in report, endpoint
    # Other columns are not cut to make room either: only a long name (SNI, DNS) is
    # shortened in the table, to NAME_MAX characters ending in "…" (whole in JSON and CSV).
    table = report.split("\nid ", 1)[1]
    for cut in re.findall(r"\S*…\S*", table):
        assert cut.endswith("…") and len(cut) <= text.NAME_MAX, cut


def _render(report: Report, columns: int, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("COLUMNS", str(columns))
    buf = io.StringIO()
    text.render([report], buf, color=True)
    return buf.getvalue()


SGR = re.compile(r"\x1b\[[0-9;]*m")


def test_terminal_text_report_has_styles_only(hostile_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    report = flowscan.scan(str(hostile_path))
    out = _render(report, 3000, monkeypatch)
    assert SGR.search(out), "a terminal gets styles"
    plain = SGR.sub("", out)
    for raw in ("\x1b", "\r", "\x07", "\u202e", "\udcff"):
        assert raw not in plain, repr(raw)
    assert forged_lines(plain) == []
    for text_ in SHOWN_ESCAPED:
        # Whole, with no style switched inside it: the markup had no effect.
        assert text_ in out, text_
    # A terminal narrower than the table: other columns give way, then the addresses
    # stack (client above server), each still whole on one line and no line too long;
    # narrower, each flow is a block (addresses, then the rest); narrower than any
    # layout, they fold but lose nothing.
    for columns in (160, 100, 80, 40):
        narrow = SGR.sub("", _render(report, columns, monkeypatch))
        for endpoint in (f"[{V6_CLIENT}]:50000", f"[{V6_SERVER}]:3478",
                         f"[{MDNS_DST}]:5353"):
            if columns >= 100:
                assert endpoint in narrow, (columns, endpoint)
                assert max(map(len, narrow.splitlines())) <= columns
            else:  # read down the column: the stacked cell holds client then server
                cells = table_cells(narrow, endpoint)
                assert any(endpoint in cell for cell in cells), (columns, endpoint)


def table_cells(report: str, endpoint: str) -> list[str]:
    """Every table cell that starts like endpoint, read down its column over the lines it
    folds onto (the row's following lines, whose id column is blank) and joined."""
    lines = report.split("\n id ", 1)[-1].splitlines()
    cells = []
    for row, line in enumerate(lines):
        start = line.find(endpoint[:4])
        while start >= 0:
            parts = []
            for offset, below in enumerate(lines[row:]):
                if offset and below[:3].strip():
                    break  # the next row
                token = below[start:].split()
                parts.append(token[0] if token and below[start:start + 1].strip() else "")
            cells.append("".join(parts))
            start = line.find(endpoint[:4], start + 1)
    return cells


def test_json_report_is_utf8_and_keeps_strings_whole(hostile_path: Path) -> None:
    proc = run_scan(hostile_path, "--format", "json")
    assert proc.returncode == 0, proc.stderr
    for raw in (b"\x1b", b"\r", "\u202e".encode()):  # escaped by JSON: \u001b, \u202e
        assert raw not in proc.stdout, raw
    assert b"\\u202e" in proc.stdout
    report = json.loads(proc.stdout.decode("utf-8"))
    # The path's byte 0xff (a lone surrogate in Python) is the one thing rewritten: shown
    # as the escape \xff, as `ls -b` shows it (capture.source.displayable).
    assert report["capture"]["path"] == str(hostile_path).replace("\udcff", "\\xff")
    details = {f["id"]: f["details"] for f in report["flows"]}
    by_proto = {name: d[name] for d in details.values() for name in d}
    assert by_proto["tls"]["sni"] == SNI.decode("ascii", "replace")
    assert DNS_SHOWN in by_proto["dns"]["queries"]
    assert by_proto["sip"]["call_ids"] == [CALL_ID]
    # The rtpmap codec name: its SDP line ends at the hostile CR LF.
    codec = SDP_NAME.decode("utf-8", "replace").splitlines()[0].strip()
    assert by_proto["sip"]["media"][0]["codecs"] == [codec]
    assert by_proto["stun"]["software"] == [STUN_SOFTWARE.decode("utf-8", "replace")]


def test_a_64k_string_is_shortened_in_text_and_whole_in_json(hostile_path: Path) -> None:
    report = flowscan.scan(str(hostile_path))
    huge = "[/]\x1b[2J" + "B" * 65536
    report.capture.warnings.append(huge)
    report.sessions = list(report.sessions)  # made as read (sessions.Sessions): kept
    report.sessions[0].summary = huge
    buf = io.StringIO()
    text.render([report], buf)
    out = buf.getvalue()
    assert out.count("B") < 2 * 1000 and "\x1b" not in out
    # Folded at the report's width under its label: joined again, the text is whole.
    assert re.sub(r" *\n {2,}", "", out).count("[/]\\x1b[2J" + "B" * 100) == 2
    # 1000 characters shown: the escape takes 4 for 1 of the input.
    assert flat(out).count(f"… ({len(huge) - 1000 + 3} more characters cut)") == 2
    whole = json.loads(json_report.dumps_bytes([report]))
    assert whole["capture"]["warnings"][-1] == huge


# -- the sanitiser itself ---------------------------------------------------------------


@pytest.mark.parametrize(("raw", "shown"), [
    ("\x00\x07\x1b\x7f", "\\x00\\x07\\x1b\\x7f"),  # C0 and DEL
    ("\t\n\r", "\\t\\n\\r"),
    ("\x85\x9b", "\\x85\\x9b"),  # C1: NEL, CSI
    ("a\u202eb\u2066\u2067\u2068\u2069", "a\\u202eb\\u2066\\u2067\\u2068\\u2069"),  # bidi
    ("\u200e\u200f\u200b\u200d\ufeff", "\\u200e\\u200f\\u200b\\u200d\\ufeff"),  # marks, ZW
    ("\u2028\u2029", "\\u2028\\u2029"),  # line and paragraph separators
    ("\U000e0001", "\\U000e0001"),  # a tag character (format, outside the BMP)
    ("x\udcffy", "x\\xffy"),  # a byte surrogateescape kept: shown as the byte
    ("\ud800", "\\ud800"),  # any other lone surrogate
    ("zoom.us é 日本 [b]", "zoom.us é 日本 [b]"),  # printable text, markup included, kept
])
def test_inert_text_escapes_what_is_not_printable(raw: str, shown: str) -> None:
    assert inert_text(raw) == shown
    assert inert_line(raw) == shown


def test_inert_text_shortens_without_cutting_an_escape() -> None:
    assert inert_text("x" * 200) == "x" * 200
    assert inert_text("x" * 201) == "x" * 200 + "… (1 more characters cut)"
    # 198 characters then an escape of 4 that would pass 200: cut before the escape.
    assert inert_text("y" * 198 + "\x1b" + "z" * 10) == "y" * 198 + "… (11 more characters cut)"
    assert len(inert_text("\x1b" * 65536)) < 240
    assert inert_text(12345) == "12345"


@pytest.mark.parametrize("data", [*HOSTILE, "\\[bold]x\\", "a\\", "[/]" + LONG])
def test_inert_markup_renders_as_the_plain_text(data: str) -> None:
    from rich.text import Text

    # Inside a template, as a progress bar's label is: one style, the text as it is (but
    # a trailing backslash, which rich.markup.escape doubles so no tag after it is lost).
    rendered = Text.from_markup(f"[bold]{inert_markup(data)}[/bold]")
    assert rendered.plain.rstrip("\\") == inert_text(data).rstrip("\\")
    assert [(s.start, s.end, s.style) for s in rendered.spans] == [
        (0, len(rendered.plain), "bold")]


@pytest.mark.parametrize("cell", ["=cmd|' /C calc'!A0", "+1", "-1+2", "@SUM(A1)", "\tx", "\rx"])
def test_csv_cell_defuses_formulas(cell: str) -> None:
    out = csv_cell(cell)
    assert out.startswith("'") and "\t" not in out and "\r" not in out


def test_csv_cell_keeps_plain_text_whole() -> None:
    assert csv_cell("zoom.us") == "zoom.us"
    assert csv_cell("a=b") == "a=b"
    assert csv_cell("x" * 5000) == "x" * 5000


def test_html_text_escapes_markup_and_controls() -> None:
    assert html_text(SCRIPT + "\x1b") == "&lt;script&gt;alert(1)&lt;/script&gt;\\x1b"
    assert html_text('"a" \'b\' &') == "&quot;a&quot; &#x27;b&#x27; &amp;"


def test_json_safe_leaves_valid_strings_alone_and_replaces_surrogates() -> None:
    assert json_safe("\x1b\u202e[/]") == "\x1b\u202e[/]"
    assert json_safe("a\udcffb\ud800") == "a\ufffdb\ufffd"
    with pytest.raises(orjson.JSONEncodeError):
        orjson.dumps("a\udcff")  # why json_safe exists


def test_json_inert_escapes_invisible_characters_and_parses_the_same() -> None:
    hidden = "a\x7f\x85\x9b\u061c\u200b\u200f\u2028\u202e\u2060\u2066\u2069\ufeff"
    kept = "é 日本 \u00a0\u2010\u2030\u2065 😀"
    data = json_inert(orjson.dumps({"s": hidden + kept}))
    assert json.loads(data) == {"s": hidden + kept}
    assert data.decode("ascii", "replace").count("\\u") == len(hidden) - 1
    assert kept.encode() in data


def test_json_inert_escapes_del_in_otherwise_plain_ascii() -> None:
    """ASCII output skips the scan unless it holds DEL, the one ASCII character escaped."""
    assert json_inert(orjson.dumps({"s": "a\x7fb"})) == b'{"s":"a\\u007fb"}'
    plain = orjson.dumps({"s": "plain ascii"})
    assert json_inert(plain) is plain


def test_json_fallback_equals_orjson_output(hostile_path: Path) -> None:
    """The repaired dump (asdict, strings through json_safe) is the same document orjson
    writes from the dataclasses: same fields, same order, same bytes."""
    report = flowscan.scan(str(hostile_path))
    report.capture.path = "clean.pcap"
    repaired = orjson.dumps(json_safe_tree(report), option=json_report.OPTIONS)
    assert json_inert(repaired) == json_report.dumps_bytes([report])


def test_escape_controls_without_limit_keeps_length() -> None:
    assert escape_controls("a" * 70000) == "a" * 70000
