"""One bad line never hides the rest: SIP and SDP lines, key log lines, secrets blocks, and
the files given on the command line (claims, --sdp, --srtp-key), on the lab's real calls."""

from __future__ import annotations

import json
import re
import struct
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from capfiles import block, dsb

import flowscan
from flowscan.digits import ascii_float, ascii_int, ascii_int_auto, is_ascii_digits
from flowscan.identify import identify_samples
from flowscan.protocols import sip
from flowscan.report.json import dumps

LAB = Path(__file__).resolve().parent.parent / "captures" / "lab"
SDES_CALL = LAB / "sip-sdes-srtp" / "capture.pcapng"
SUPERSCRIPT_TWO = "\u00b2".encode()  # '²': str.isdigit says yes, int says no


def flowscan_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "flowscan", *args], capture_output=True,
                          text=True)


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    """The CLI's stderr, asserted to be exactly one line and a usage error (exit 2)."""
    assert result.returncode == 2, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert "unexpected failure" not in result.stderr and "Traceback" not in result.stderr
    return lines[0]


def with_content_length(message: bytes) -> bytes:
    """A SIP message with its Content-Length made right for its (edited) body."""
    head, sep, body = message.partition(b"\r\n\r\n")
    head = re.sub(rb"(?im)^content-length:[ \t]*[0-9]+",
                  b"Content-Length: " + str(len(body)).encode(), head)
    return head + sep + body


def rewrite_sip(tmp_path: Path, edit: Callable[[bytes], bytes], source: Path = SDES_CALL,
                keep: Callable[[bytes], bool] = lambda payload: True) -> Path:
    """The capture with each SIP payload replaced by edit(payload), each packet rebuilt by
    Scapy so that its IP and UDP lengths and checksums are right; packets whose UDP payload
    keep() refuses are left out."""
    from scapy.layers.inet import IP, UDP
    from scapy.packet import Raw
    from scapy.utils import rdpcap, wrpcapng

    packets = []
    for packet in rdpcap(str(source)):
        payload = bytes(packet[UDP].payload) if UDP in packet else b""
        if not keep(payload):
            continue
        if b"SIP/2.0" in payload[:200]:
            new = edit(payload)
            if new != payload:
                udp = packet[UDP]
                udp.remove_payload()
                udp.add_payload(Raw(new))
                del udp.len, udp.chksum, packet[IP].len, packet[IP].chksum
                when = packet.time
                packet = packet.__class__(bytes(packet))
                packet.time = when
        packets.append(packet)
    out = tmp_path / "rewritten.pcapng"
    wrpcapng(str(out), packets)
    return out


def bad_rtpmap(payload: bytes) -> bytes:
    """Each SDP body's first rtpmap line rewritten to `a=rtpmap:² x`."""
    if b"a=rtpmap:0 PCMU/8000" not in payload:
        return payload
    return with_content_length(payload.replace(b"a=rtpmap:0 PCMU/8000",
                                               b"a=rtpmap:" + SUPERSCRIPT_TWO + b" x"))


def bad_rtpmap_lines() -> list[tuple[int, int]]:
    """(message, line) of each line bad_rtpmap rewrites, counted in the capture itself."""
    from scapy.layers.inet import UDP
    from scapy.utils import rdpcap

    payloads = [bytes(p[UDP].payload) for p in rdpcap(str(SDES_CALL)) if UDP in p]
    messages = [p for p in payloads if b"SIP/2.0" in p[:200]]
    return [(i, m.split(b"\r\n").index(b"a=rtpmap:0 PCMU/8000") + 1)
            for i, m in enumerate(messages, 1) if b"a=rtpmap:0 PCMU/8000" in m]


def media(report: flowscan.api.Report) -> list:  # type: ignore[type-arg]
    return [f for f in report.flows if f.encryption is not None]


# -- numbers -------------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["\u00b2", "\u0663", "+7", " 7", "7 ", "1_000", "", "7.0",
                                  "9" * 19, "\uff17"])
def test_numbers_are_ascii_digits_only(text: str) -> None:
    assert ascii_int(text) is None and ascii_int_auto(text) is None
    assert not is_ascii_digits(text) or len(text) > 18


def test_ascii_numbers_read() -> None:
    assert (ascii_int("0"), ascii_int("065535"), ascii_int_auto("0x1234abcd"),
            ascii_int_auto("42")) == (0, 65535, 0x1234ABCD, 42)
    assert ascii_int_auto("0x") is None and ascii_int_auto("0x\u0663") is None
    assert (ascii_float("-33.9"), ascii_float("151")) == (-33.9, 151.0)
    assert all(ascii_float(t) is None for t in ("nan", "inf", "\u0661\u0662", "1_0", "1e3"))


# -- SIP and SDP, line by line -------------------------------------------------------------

SDP = (b"v=0\r\no=- 1 1 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\nt=0 0\r\n"
       b"m=audio 49170 RTP/SAVP 0\r\n"
       b"a=rtpmap:" + SUPERSCRIPT_TWO + b" x\r\n"
       b"a=rtpmap:0 PCMU/8000\r\n"
       b"a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR\r\n"
       b"m=video 5\xd9\xa3 RTP/SAVP 96\r\n"  # an Arabic-Indic digit, which int() would take
       b"a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNk\r\n"
       b"m=video 51372 RTP/SAVP 96\r\n"
       b"a=crypto:\xc2\xb2 AES_CM_128_HMAC_SHA1_80 inline:c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0\r\n"
       b"a=crypto:2 AES_CM_128_HMAC_SHA1_80 inline:WVphYmNkZWZnaGlqa2xtbm9wcXJzdHV2d3h5ejAx\r\n"
       b"a=rtpmap:96 VP8/90000\r\n")


def invite(body: bytes = SDP, length: bytes | None = None, extra: bytes = b"") -> bytes:
    return (b"INVITE sip:bob@example.com SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.10\r\n"
            b"Call-ID: call-1\r\nCSeq: 1 INVITE\r\n" + extra + b"Content-Type: application/sdp\r\n"
            b"Content-Length: " + (length or str(len(body)).encode()) + b"\r\n\r\n" + body)


def test_bad_sdp_lines_are_skipped_and_named_by_line_the_rest_kept() -> None:
    msg = sip.parse(invite())
    assert msg is not None and msg.skipped is None and msg.method == "INVITE"
    audio, video = msg.media
    assert (audio.port, audio.rtpmap, [k.tag for k in audio.crypto]) == (49170, {0: "PCMU/8000"},
                                                                        ["1"])
    # The section of the malformed m= line is skipped whole: its key is not given to the
    # audio above it; the section after it is read, its one good a=crypto line kept.
    assert (video.port, [k.tag for k in video.crypto], video.rtpmap) == (51372, ["2"],
                                                                        {96: "VP8/90000"})
    head_lines = 6  # start line and five header fields, then the empty line
    assert [(n - head_lines - 1, reason.split()[0]) for n, reason in msg.malformed] == [
        (7, "a=rtpmap"), (10, "m="), (13, "a=crypto")]
    assert "PS1uQCVee" not in repr(msg) and "c2VjcmV0" not in repr(msg.malformed)


def test_bad_header_lines_are_skipped_and_a_bad_content_length_loses_no_keys() -> None:
    extra = b"Subject: caf\xe9\r\nno colon here\r\n folded onto nothing? no: onto the above\r\n"
    msg = sip.parse(invite(extra=extra, length="\u0663\u0660".encode()) + b"garbage")
    assert msg is not None and msg.call_id == "call-1"
    reasons = dict(msg.malformed)
    assert reasons[5] == "not UTF-8 text" and reasons[6].startswith("not a header field")
    assert reasons[9] == "Content-Length is not ASCII digits"
    # Without a usable length the body runs to the end (RFC 3261 section 18.3): keys kept.
    assert [len(m.crypto) for m in msg.media] == [1, 1]
    # In a stream, it ends where the next message starts.
    follow = b"SIP/2.0 200 OK\r\nCall-ID: call-1\r\nContent-Length: 0\r\n\r\n"
    first = sip.parse(invite(length=b"12x") + follow)
    assert first is not None and len(first.media) == 2
    second = sip.parse((invite(length=b"12x") + follow)[first.length:])
    assert second is not None and second.status == 200
    trailing = sip.parse(b"INVITE sip:bob@example.com SIP/2.0 \r\nCall-ID: x\r\n\r\n")
    assert trailing is not None and (trailing.method, trailing.skipped) == ("INVITE", None)


@pytest.mark.parametrize("start", [b"SIP/2.0 " + SUPERSCRIPT_TWO + b"00 OK",
                                   b"SIP/2.0 2000 OK", b"SIP/2.0 099 Odd", b"SIP/2.0 +20 OK",
                                   b"INVITE sip:a b SIP/2.0"])
def test_a_bad_start_line_skips_its_message_and_not_the_next(start: bytes) -> None:
    bad = start + b"\r\nCall-ID: hidden\r\nContent-Length: 0\r\n\r\n"
    msg = sip.parse(bad)
    assert msg is not None and msg.skipped and msg.length == len(bad)
    # Both messages in one TCP stream, the bad one first: the INVITE and its keys are read.
    key = bytes(12) + struct.pack("!HH", 40000, 5060)
    facts = identify_samples((6, key, [(0.0, 0, bad + invite())], (0, 0)))
    assert facts.sip is not None and facts.sip.messages == ["INVITE"]
    assert facts.sip.call_ids == ["call-1"] and len(facts.sdp_media) == 2
    assert facts.sip.malformed_lines[0] == {"message": 1, "line": 1,
                                            "reason": msg.skipped + "; the message is skipped"}
    assert all(m["message"] == 2 for m in facts.sip.malformed_lines[1:])
    # CRLF keepalives between messages in a stream (RFC 5626 section 3.5.1) end nothing.
    stream = b"\r\n\r\n" + bad + b"\r\n\r\n\r\n\r\n" + invite() + b"\r\n\r\n"
    facts = identify_samples((6, key, [(0.0, 0, stream)], (0, 0)))
    assert facts.sip is not None and facts.sip.messages == ["INVITE"]


def test_sdes_call_with_a_bad_rtpmap_line_keeps_its_keys_and_verdict(tmp_path: Path) -> None:
    capture = rewrite_sip(tmp_path, bad_rtpmap)
    report = flowscan.scan(str(capture))
    flows = media(report)
    assert len(flows) == 2 and {f.encryption.verdict for f in flows} == {"keys-exposed"}
    rtp = max(flows, key=lambda f: f.packets)
    # The keys themselves survived: the call was decrypted with them.
    assert rtp.encryption.basis == "decrypted" and rtp.encryption.decryption.tag_failures == 0
    assert rtp.encryption.decryption.packets_decrypted > 400
    (finding,) = [f for f in report.findings if f.kind == "keys-exposed-media"]
    assert sorted(finding.flows) == sorted(f.id for f in flows)
    (signalling,) = [f for f in report.flows if "sip" in f.protocols]
    sip_details = signalling.details["sip"]
    assert sip_details.messages == ["INVITE", "180", "200", "ACK", "BYE", "200"]
    # Named by message (its place in the flow) and line, counted from the start line: the
    # INVITE's 13 header lines, the empty line, then the SDP's eighth line; the 200's 11.
    assert [(m["message"], m["line"]) for m in sip_details.malformed_lines] == [(1, 22),
                                                                                (3, 20)]
    assert bad_rtpmap_lines() == [(1, 22), (3, 20)]
    assert all(m["reason"].startswith("a=rtpmap") for m in sip_details.malformed_lines)
    assert (f"flow {signalling.id}: 2 malformed SIP/SDP line(s) were skipped (message 1 line "
            "22, message 3 line 20)") in " ".join(report.capture.warnings)
    text = dumps([report])
    assert "\u00b2" not in text and "\\u00b2" not in text
    claims = tmp_path / "claims.toml"
    claims.write_text("[claims]\nno_plaintext_media = true\n")
    checked = flowscan_cli("check", str(capture), "--claims", str(claims))
    assert checked.returncode == 1, checked.stdout + checked.stderr
    assert "contradicted" in checked.stdout


def test_report_with_malformed_lines_matches_the_schema(tmp_path: Path) -> None:
    from importlib import resources

    import jsonschema

    report = flowscan.scan(str(rewrite_sip(tmp_path, bad_rtpmap)))
    document = json.loads(dumps([report]))
    schema = json.loads(resources.files("flowscan.report").joinpath("schema.json").read_text())
    jsonschema.validate(document, schema)
    bad = dict(document)
    (flow,) = [f for f in bad["flows"] if "sip" in f["details"]]
    flow["details"]["sip"]["malformed_lines"][0]["line"] = "21"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, schema)


def test_sip_response_with_a_superscript_status_is_skipped_alone(tmp_path: Path) -> None:
    def bad_status(payload: bytes) -> bytes:
        if payload.startswith(b"SIP/2.0 200 OK"):  # the BYE's answer
            return b"SIP/2.0 " + SUPERSCRIPT_TWO + payload[9:]
        return payload

    report = flowscan.scan(str(rewrite_sip(tmp_path, bad_status)))
    (signalling,) = [f for f in report.flows if "sip" in f.protocols]
    details = signalling.details["sip"]
    assert details.messages == ["INVITE", "180", "200", "ACK", "BYE"]
    assert [(m["message"], m["line"]) for m in details.malformed_lines] == [(6, 1)]
    assert {f.encryption.verdict for f in media(report)} == {"keys-exposed"}


# -- key logs and secrets blocks -----------------------------------------------------------

ODD_SECRET = "abcdef0123" * 9 + "a"  # 91 hex digits: no whole number of bytes
ODD_LINE = f"CLIENT_RANDOM {'ab' * 32} {ODD_SECRET}"


def with_odd_line(keys: str, at: int = 1) -> tuple[str, int]:
    """The key log with ODD_LINE inserted after its first `at` lines; its line number."""
    lines = keys.splitlines()
    return "\n".join([*lines[:at], ODD_LINE, *lines[at:]]) + "\n", at + 1


def test_a_key_log_with_an_odd_length_secret_still_decrypts(tmp_path: Path) -> None:
    folder = LAB / "p2p-webrtc"
    text, number = with_odd_line((folder / "keys.log").read_text())
    keylog = tmp_path / "keys.log"
    keylog.write_text(text)
    report = flowscan.scan(str(folder / "capture.pcapng"), keylog=[str(keylog)])
    (flow,) = media(report)
    assert flow.encryption.basis == "decrypted" and flow.encryption.verdict == "end-to-end"
    warnings = " ".join(report.capture.warnings)
    assert f"{keylog} line {number}" in warnings and ODD_SECRET[:16] not in warnings
    assert ODD_SECRET[:16] not in dumps([report])
    # The decrypt command too: it goes on, warns, and never prints the secret.
    out = tmp_path / "clear.pcapng"
    result = flowscan_cli("decrypt", str(folder / "capture.pcapng"), "-o", str(out),
                          "--keylog", str(keylog))
    assert result.returncode == 0, result.stderr
    assert f"line {number}" in result.stderr and ODD_SECRET[:16] not in result.stderr
    assert ODD_SECRET[:16] not in result.stdout


def pcapng_with_secrets(source: Path, *blocks: bytes) -> bytes:
    """The pcapng source with blocks inserted right after its section header block."""
    data = source.read_bytes()
    assert data[:4] == b"\x0a\x0d\x0d\x0a" and data[8:12] == b"\x4d\x3c\x2b\x1a"
    (shb_length,) = struct.unpack_from("<I", data, 4)
    return data[:shb_length] + b"".join(blocks) + data[shb_length:]


def test_a_secrets_block_with_an_odd_length_line_still_decrypts(tmp_path: Path) -> None:
    folder = LAB / "p2p-webrtc"
    text, number = with_odd_line((folder / "keys.log").read_text(), at=0)
    capture = tmp_path / "dsb.pcapng"
    # A corrupt block first (its secrets length overruns it), then the good one.
    corrupt = block("<", 0x0A, struct.pack("<II", 0x544C534B, 4096) + ODD_SECRET.encode())
    capture.write_bytes(pcapng_with_secrets(folder / "capture.pcapng", corrupt,
                                            dsb("<", 0x544C534B, text.encode())))
    report = flowscan.scan(str(capture))
    (flow,) = media(report)
    assert flow.encryption.basis == "decrypted" and flow.encryption.verdict == "end-to-end"
    assert report.capture.decryption_secrets.blocks == 1
    warnings = report.capture.warnings
    assert any("decryption secrets block 1 " in w and "skipped" in w for w in warnings)
    assert any(f"decryption secrets block 2 line {number}" in w for w in warnings)
    assert ODD_SECRET[:16] not in dumps([report])
    out = tmp_path / "clear.pcapng"
    result = flowscan_cli("decrypt", str(capture), "-o", str(out))
    assert result.returncode == 0, result.stderr
    assert f"block 2 line {number}" in result.stderr and ODD_SECRET[:16] not in result.stderr


# -- files and keys on the command line ----------------------------------------------------


@pytest.mark.parametrize("content", [
    b"[claims]\nno_plaintext_media = true  # caf\xe9\n",
    b"\xff\xfe[\x00c\x00l\x00a\x00i\x00m\x00s\x00]\x00\n\x00",  # UTF-16
    b"[claims]\nallowed_operators = [" + b"1" * 5000 + b"]\n",
    b"[claims]\nallowed_operators = " + b"[" * 5000 + b"]" * 5000 + b"\n",
    b"[claims]\nallowed_operators = [true]\n",
], ids=["latin-1", "utf-16", "huge-integer", "deep-nesting", "boolean-asn"])
def test_bad_claims_file_is_one_line_exit_2(tmp_path: Path, content: bytes) -> None:
    claims = tmp_path / "claims.toml"
    claims.write_bytes(content)
    line = one_line_error(flowscan_cli("check", str(SDES_CALL), "--claims", str(claims)))
    assert str(claims) in line


def test_non_utf8_claims_error_names_the_line(tmp_path: Path) -> None:
    claims = tmp_path / "claims.toml"
    claims.write_bytes(b"[claims]\n\nno_plaintext_media = true  # caf\xe9\n")
    line = one_line_error(flowscan_cli("check", str(SDES_CALL), "--claims", str(claims)))
    assert f"{claims}, line 3: not UTF-8" in line


def _media_only(tmp_path: Path) -> tuple[Path, list[bytes]]:
    """The SDES call without its SIP packets, and the SDP bodies they carried."""
    bodies: list[bytes] = []

    def keep(payload: bytes) -> bool:
        if b"SIP/2.0" in payload[:200]:
            body = payload.partition(b"\r\n\r\n")[2]
            if body:
                bodies.append(body)
            return False
        return True

    return rewrite_sip(tmp_path, lambda p: p, keep=keep), bodies


def test_sdp_file_not_utf8_is_one_line_exit_2(tmp_path: Path) -> None:
    sdp = tmp_path / "call.sdp"
    sdp.write_bytes(b"v=0\r\ns=Caf\xe9\r\n")
    line = one_line_error(flowscan_cli("scan", str(SDES_CALL), "--sdp", str(sdp)))
    assert str(sdp) in line and "line 2" in line


def test_sdp_file_with_a_bad_line_is_used_with_a_warning(tmp_path: Path) -> None:
    capture, bodies = _media_only(tmp_path)
    assert len(bodies) == 2
    text = b"".join(bodies).replace(b"a=rtpmap:0 PCMU/8000",
                                    b"a=rtpmap:" + SUPERSCRIPT_TWO + b" x")
    sdp = tmp_path / "call.sdp"
    sdp.write_bytes(text)
    lines = text.split(b"\n")
    numbers = [n for n, line in enumerate(lines, 1) if SUPERSCRIPT_TWO in line]
    assert len(numbers) == 2
    report = flowscan.scan(str(capture), sdp=[str(sdp)])
    rtp = max(media(report), key=lambda f: f.packets)
    assert rtp.encryption.basis == "decrypted" and rtp.encryption.decryption.tag_failures == 0
    (warning,) = [w for w in report.capture.warnings if str(sdp) in w]
    assert all(f"line {n} (a=rtpmap" in warning for n in numbers) and "\u00b2" not in warning
    result = flowscan_cli("scan", str(capture), "--sdp", str(sdp), "--format", "json")
    assert result.returncode == 0 and "unexpected failure" not in result.stderr


KEY = "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNk"  # 30 bytes: an AES_CM_128 key||salt
SUITE = "AES_CM_128_HMAC_SHA1_80"


@pytest.mark.parametrize("spec", [
    f"{SUITE}:inline:{KEY}=0x1234",
    f"{SUITE}:inline:{KEY}={SUITE}:inline:{KEY}",
    f"inline:{KEY}=0x1234:{SUITE}",
    f"0x1234=inline:{KEY}:{SUITE}",
    f"0x1234={KEY}",
    f"{KEY}=0x1234",
    f"{KEY}={SUITE}:inline:{KEY}",
    f"{SUITE}=0x1234:inline:{KEY}",
    f"198.51.100.7:{KEY}={SUITE}:inline:{KEY}",
    f"0x1234={SUITE}:inline:{KEY}|2^20|1:\u0663",
    f"0x1234={SUITE}:{KEY}",
    f"\u0661\u0662={SUITE}:inline:{KEY}",
])
def test_srtp_key_errors_never_echo_the_key(spec: str) -> None:
    line = one_line_error(flowscan_cli("scan", str(SDES_CALL), "--srtp-key", spec))
    assert line.startswith("flowscan: error: --srtp-key #1: ")
    assert KEY not in line and KEY[:8] not in line and "TARGET=SUITE:inline:KEY" in line


def test_sdp_file_with_a_byte_order_mark_is_read(tmp_path: Path) -> None:
    capture, bodies = _media_only(tmp_path)
    sdp = tmp_path / "call.sdp"
    sdp.write_bytes(b"\xef\xbb\xbf" + b"".join(bodies))
    report = flowscan.scan(str(capture), sdp=[str(sdp)])
    assert max(media(report), key=lambda f: f.packets).encryption.basis == "decrypted"
    assert not [w for w in report.capture.warnings if str(sdp) in w]


@pytest.mark.parametrize("vantage", ["\u0661\u0662,3", "nan,0", "inf,inf", "91,0", "0,181",
                                     "1_0,2", "1,2,3"])
def test_vantage_coordinates_are_ascii_decimals_in_range(vantage: str) -> None:
    from flowscan.errors import UsageError

    with pytest.raises(UsageError, match="--vantage"):
        flowscan.scan(str(SDES_CALL), vantage=vantage)
