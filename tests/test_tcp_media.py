"""Media over TCP (issue 17, class 8): TURN over TCP (RFC 6062, RFC 8656: ChannelData padded
to four bytes, section 12.5, and Send/Data indications, sections 10 and 11) and ICE-TCP (RFC
6544, RFC 4571 framing) carry SRTP that gets protocols, a verdict and, with keys, decryption
exactly as over UDP; `flowscan decrypt` rewrites it with the TCP stream kept consistent.
Crafted calls are protected with libsrtp (pylibsrtp); the two real TURN-TCP calls of
srtp_decoder's tests decrypt with the keys their README gives."""

from __future__ import annotations

import base64
import os
import random
import shutil
import struct
import subprocess
from pathlib import Path

import pytest
from capfiles import ether, pcap
from packets import ice_check, ice_response, stun_message
from scapy.layers.inet import IP, TCP

import flowscan
from flowscan.protocols import framing

REAL = Path(__file__).resolve().parents[1] / ".." / "shared" / "captures" / "real"
CLIENT, SERVER = ("192.0.2.10", 40000), ("198.51.100.77", 3478)
SEND, DATA, ALLOCATE, CHANNEL_BIND = 0x0016, 0x0017, 0x0003, 0x0009
XOR_PEER = struct.pack(">BBH", 0, 1, 50000 ^ 0x2112) + bytes(a ^ b for a, b in zip(
    bytes([203, 0, 113, 5]), bytes.fromhex("2112A442"), strict=True))
SUITE = "AES_CM_128_HMAC_SHA1_80"


def channel_data(payload: bytes, channel: int = 0x4000) -> bytes:
    return struct.pack(">HH", channel, len(payload)) + payload + b"\0" * (-len(payload) % 4)


def indication(method: int, payload: bytes) -> bytes:
    return stun_message(method, os.urandom(12), [(0x0012, XOR_PEER), (0x0013, payload)])


def framed(message: bytes) -> bytes:
    return len(message).to_bytes(2, "big") + message


class Sender:
    """One party's SRTP session (libsrtp), sending G.711 (PCMU: a skewed byte histogram,
    plainly not ciphertext once decrypted)."""

    def __init__(self, ssrc: int) -> None:
        pylibsrtp = pytest.importorskip("pylibsrtp")
        self.key = os.urandom(30)
        policy = pylibsrtp.Policy(key=self.key, ssrc_type=pylibsrtp.Policy.SSRC_ANY_OUTBOUND,
                                  srtp_profile=pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_80)
        self.session = pylibsrtp.Session(policy)
        self.ssrc, self.seq, self.plain = ssrc, 1, []  # type: ignore[var-annotated]

    def rtp(self) -> bytes:
        rng = random.Random(self.seq)
        voice = bytes(rng.choice((0xFF, 0xFE, 0x7F, 0x7E, 0xFD, 0x7D)) for _ in range(160))
        plain = struct.pack(">BBHII", 0x80, 0, self.seq, self.seq * 160, self.ssrc) + voice
        self.seq += 1
        self.plain.append(plain)
        return bytes(self.session.protect(plain))

    def rtcp(self) -> bytes:
        # A Receiver Report alone: 32 bytes; SRTCP adds 14 (index and 80-bit tag).
        plain = struct.pack(">BBHI", 0x81, 201, 7, self.ssrc) + struct.pack(
            ">IIIIII", 0x12345678, 0, self.seq, 0, 0, 0)
        self.plain.append(plain)
        return bytes(self.session.protect_rtcp(plain))

    def rtcp_placeholder(self) -> bytes:
        """RTCP from SSRC 0xFA17FA17 under this sender's key, as WebRTC sends it."""
        plain = struct.pack(">BBHI", 0x80, 201, 1, 0xFA17FA17)
        self.plain.append(plain)
        return bytes(self.session.protect_rtcp(plain))

    def spec(self) -> str:
        return f"{self.ssrc:#010x}={SUITE}:inline:{base64.b64encode(self.key).decode()}"


def tcp_capture(path: Path, segments: list[tuple[int, bytes]],
                reorder: tuple[int, int] | None = None, resend: int | None = None,
                drop: int | None = None) -> Path:
    """A TCP connection, handshake first, then each (direction, payload) as one segment;
    reorder swaps two segments as captured, resend captures one twice, drop loses one."""
    ends = (CLIENT, SERVER)
    seq = [1000, 5000]
    frames: list[tuple[int, bytes, int, str]] = [
        (0, b"", 999, "S"), (1, b"", 4999, "SA"), (0, b"", 1000, "A")]
    for side, payload in segments:
        frames.append((side, payload, seq[side], "PA"))
        seq[side] += len(payload)
    if reorder is not None:
        i, j = (3 + k for k in reorder)
        frames[i], frames[j] = frames[j], frames[i]
    if resend is not None:
        frames.insert(3 + resend + 1, frames[3 + resend])
    if drop is not None:
        del frames[3 + drop]
    out = []
    for n, (side, payload, number, flags) in enumerate(frames):
        src, dst = ends[side], ends[1 - side]
        out.append((1.0 + n * 0.02, bytes(
            ether() / IP(src=src[0], dst=dst[0])
            / TCP(sport=src[1], dport=dst[1], flags=flags, seq=number, ack=1) / payload)))
    path.write_bytes(pcap(out))
    return path


def turn_call(tmp_path: Path) -> tuple[Path, Sender, Sender, int]:
    """An allocation, media first in Send and Data indications, then in ChannelData after
    a ChannelBind; one segment holds two frames, one frame is split over two segments, one
    segment is captured twice and two arrive swapped (the hole fills a segment later)."""
    a, b = Sender(0x11111111), Sender(0x22222222)
    tx = [os.urandom(12) for _ in range(2)]
    segments: list[tuple[int, bytes]] = [
        (0, stun_message(ALLOCATE, tx[0], [(0x0019, b"\x11\0\0\0")])),
        (1, stun_message(0x0103, tx[0], [])),
    ]
    for _ in range(3):
        segments += [(0, indication(SEND, a.rtp())), (1, indication(DATA, b.rtp()))]
    segments += [(0, stun_message(CHANNEL_BIND, tx[1], [(0x000C, b"\x40\x00\0\0"),
                                                       (0x0012, XOR_PEER)])),
                 (1, stun_message(0x0109, tx[1], []))]
    for i in range(30):
        segments += [(0, channel_data(a.rtp())), (1, channel_data(b.rtp()))]
        if i == 10:
            segments += [(0, channel_data(a.rtp()) + channel_data(a.rtcp())),
                         (1, channel_data(b.rtcp())), (1, channel_data(b.rtcp_placeholder()))]
    split = channel_data(a.rtp())
    segments += [(0, split[:50]), (0, split[50:]), (1, channel_data(b.rtp()))]
    packets = len(a.plain) + len(b.plain)
    return (tcp_capture(tmp_path / "turn-tcp.pcap", segments, reorder=(40, 42), resend=20),
            a, b, packets)


def ice_tcp_call(tmp_path: Path) -> tuple[Path, Sender, Sender, int]:
    """ICE-TCP: connectivity checks, then SRTP and SRTCP, each in an RFC 4571 frame."""
    a, b = Sender(0x33333333), Sender(0x44444444)
    t1, t2 = os.urandom(12), os.urandom(12)
    segments: list[tuple[int, bytes]] = [(0, framed(ice_check(t1, True))),
                                         (1, framed(ice_response(t1)) + framed(
                                             ice_check(t2, False))),
                                         (0, framed(ice_response(t2)))]
    for i in range(30):
        segments += [(0, framed(a.rtp())), (1, framed(b.rtp()))]
        if i % 10 == 5:
            segments += [(0, framed(a.rtcp())), (1, framed(b.rtcp()))]
    return tcp_capture(tmp_path / "ice-tcp.pcap", segments), a, b, len(a.plain) + len(b.plain)


def media_flow(report: flowscan.api.Report) -> flowscan.api.Flow:  # type: ignore[name-defined]
    (flow,) = [f for f in report.flows if f.encryption is not None]
    return flow


@pytest.mark.parametrize("make", [turn_call, ice_tcp_call])
def test_srtp_over_tcp_is_seen_judged_and_decrypted(make, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    capture, a, b, packets = make(tmp_path)
    flow = media_flow(flowscan.scan(str(capture)))
    assert {"rtp", "stun"} <= set(flow.protocols)
    # Without keys: encrypted, and never end-to-end without evidence.
    assert flow.encryption.verdict == "encrypted-unverified"
    assert flow.encryption.basis == "observed"
    report = flowscan.scan(str(capture), srtp_key=[a.spec(), b.spec()])
    d = media_flow(report).encryption.decryption
    assert (d.packets_decrypted, d.tag_failures, d.inner) == (packets, 0, "codec")
    assert media_flow(report).encryption.verdict != "end-to-end"


def test_turn_tcp_relays_media_in_indications_and_channel_data(tmp_path: Path) -> None:
    capture, *_ = turn_call(tmp_path)
    flow = media_flow(flowscan.scan(str(capture)))
    turn = flow.details["turn"]
    assert turn.channel_data > 0 and turn.data_indications > 0
    assert set(turn.relayed) == {"rtp"} and "turn" in flow.protocols


def _tcp_payloads(capture: Path, port: int) -> dict[tuple[int, int], bytes]:
    """(source port, sequence number) -> payload of each TCP segment, the first copy."""
    from scapy.utils import rdpcap

    out: dict[tuple[int, int], bytes] = {}
    for packet in rdpcap(str(capture)):
        if TCP in packet and port in (packet[TCP].sport, packet[TCP].dport):
            out.setdefault((packet[TCP].sport, packet[TCP].seq), bytes(packet[TCP].payload))
    return out


@pytest.mark.parametrize("make", [turn_call, ice_tcp_call])
def test_decrypted_capture_keeps_the_stream_and_holds_the_clear_packets(
        make, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    capture, a, b, packets = make(tmp_path)
    out = tmp_path / "clear.pcapng"
    report = flowscan.decrypt(str(capture), str(out), srtp_key=[a.spec(), b.spec()])
    before, after = _tcp_payloads(capture, SERVER[1]), _tcp_payloads(out, SERVER[1])
    # Every segment keeps its sequence number and its length: the stream stays whole.
    assert {k: len(v) for k, v in before.items()} == {k: len(v) for k, v in after.items()}
    streams = [b"".join(after[k] for k in sorted(after) if k[0] == port)
               for port in (CLIENT[1], SERVER[1])]
    left = sum(int(w.split()[0]) for w in report.capture.warnings if "over TCP" in w)
    clear = []
    for stream in streams:
        walker = framing.StreamWalker()
        for frame, raw in walker.feed(stream):
            body = raw[frame.data_start - frame.start:frame.data_end - frame.start]
            if frame.has_data and len(body) >= 12 and 128 <= body[0] <= 191:
                clear.append(body)
        assert walker.skipped == 0
    sent = a.plain + b.plain
    found = 0
    for body in clear:
        if body[1] == 201:  # RTCP: the report, then empty SDES packets where the tag was
            size = (int.from_bytes(body[2:4], "big") + 1) * 4
            head = body[:size]
            assert set(body[size:].split(framing.EMPTY_SDES)) <= {b""}
        else:
            head = body[:len(body) - (body[-1] if body[0] & 0x20 else 0)]
            if body[0] & 0x20:  # RTP padding where the tag was, the P bit set
                head = bytes([head[0] & ~0x20 & 0xFF]) + head[1:]
        found += head in sent
    # Split frames and segments captured before a hole filled wait for the stream: all
    # are written in the clear.
    assert (found, left) == (packets, 0)
    if shutil.which("tshark"):
        result = subprocess.run(
            ["tshark", "-r", str(out), "-o", "tcp.check_checksum:TRUE", "-o",
             "rtp.heuristic_rtp:TRUE", "-o", "rtcp.heuristic_rtcp:TRUE",
             "-d", f"tcp.port=={SERVER[1]},stun", "-Y", "tcp.checksum.status == 0 || _ws.malformed",
             "-T", "fields", "-e", "frame.number"],
            capture_output=True, text=True, check=True)
        assert result.stdout.strip() == ""  # no bad checksum, nothing malformed


def test_a_segment_the_capture_lost_costs_only_its_own_packets(tmp_path: Path) -> None:
    a, b = Sender(0x55555555), Sender(0x66666666)
    segments = [(0, b"".join(channel_data(a.rtp()) for _ in range(3))) for _ in range(20)]
    segments += [(1, framed(b.rtp()))]  # the other direction: ICE-TCP framing
    capture = tcp_capture(tmp_path / "lost.pcap", segments, drop=7)
    report = flowscan.scan(str(capture), srtp_key=[a.spec(), b.spec()])
    d = media_flow(report).encryption.decryption
    # The three frames of the lost segment are gone; the framing is found again after it.
    assert (d.packets_decrypted, d.tag_failures) == (len(a.plain) + 1 - 3, 0)
    assert d.stream_gap_bytes == len(segments[7][1])  # said, in the report and evidence
    assert any(f"{d.stream_gap_bytes} bytes of the TCP stream were never captured" in e.detail
               for e in media_flow(report).encryption.evidence)


def test_the_call_line_says_what_the_keys_showed(tmp_path: Path) -> None:
    import io

    from flowscan.report.text import render

    capture, a, b, packets = turn_call(tmp_path)
    out = io.StringIO()
    render([flowscan.scan(str(capture), srtp_key=[a.spec(), b.spec()])], out)
    text = " ".join(out.getvalue().split())
    line = text[text.index("call 1"):]
    assert f"every packet tried decrypted and verified ({packets})" in line
    assert "the transport keys were the only protection" in line
    assert "random" not in line.split("call 1")[1][:400]
    assert a.key.hex() not in text and base64.b64encode(a.key).decode() not in text


def test_walker_finds_the_framing_again_after_a_hole() -> None:
    frames = b"".join(channel_data(bytes([0x80, 0, 0, i]) + bytes(30 + i)) for i in range(8))
    walker = framing.StreamWalker()
    walker.gap(33)  # the capture lost the first 33 bytes
    got = walker.feed(frames[33:])
    assert got and got[0][0].start == 40  # the second frame, the first whole one
    assert walker.skipped == got[0][0].start
    rfc4571 = b"".join(framed(bytes([0x80, 0, 0, i]) + bytes(20 + i)) for i in range(8))
    walker = framing.StreamWalker()
    assert len(walker.feed(rfc4571)) == 8 and walker.mode == framing.RFC4571


def test_reassembler_delivers_in_order_once() -> None:
    stream = b"".join(channel_data(bytes([0x80, 0, 0, i]) + bytes(40)) for i in range(6))
    parts = [stream[i:i + 37] for i in range(0, len(stream), 37)]
    offsets = [i * 37 for i in range(len(parts))]
    r = framing.Reassembler()
    r.syn(99)
    got = []
    order = [0, 2, 1, 1, 3, 5, 4, 0, 7, 6, 7]  # out of order, retransmitted, duplicated
    assert len(parts) == 8
    for i in order:
        got += r.add(offsets[i], parts[i])
    assert [f.start for f, _ in got] == [i * 48 for i in range(6)] and r.missing == 0
    r = framing.Reassembler()
    r.syn(0)
    got = r.add(0, parts[0]) + r.add(offsets[2], parts[2]) + r.add(offsets[3], parts[3])
    got += r.finish()  # part 1 never captured: the hole is passed over and counted
    assert r.missing == 37 and all(f.start >= offsets[2] for f, _ in got[1:])


def _real(name: str) -> Path:
    path = REAL / name
    if not path.exists():
        pytest.skip(f"{path} is absent (the shared real captures are not in a fresh clone)")
    return path


# The keys of srtp_decoder's test calls, from ../shared/captures/real/README.md, and every
# SRTP and SRTCP packet in the streams: WebRTC also sends RTCP from the placeholder SSRC
# 0xFA17FA17 (8 and 2 packets), under the key of the sender's own SSRC, whose tag verifies.
REAL_CALLS = {
    "turn_tcp_call.pcap": ({0x1C090D13: "ODQ3ODIxYTE1NTIxZDVhMGRmNjNiODMwN2M3ODdk",
                            0x1C090D15: "ZDExYzU2MjgxMDU1OGZhYzE2MTI4MTRlODZlMzlm"}, 3959),
    "turn_tcp_wifi_to_3g.pcap": ({0x3482B39F: "ZGRjMTA4OWRkYWJmMGJhM2YxZWQ1MjExODJmMTVl",
                                  0x3482B3A1: "ZmVlOWQwMGJhNDIxMzcyZmVlM2U0NTllMmZiMzM4"}, 1022),
}


@pytest.mark.parametrize("name", sorted(REAL_CALLS))
def test_real_turn_tcp_calls_decrypt_with_every_tag_verified(name: str, tmp_path: Path) -> None:
    capture = _real(name)
    keys, expected = REAL_CALLS[name]
    specs = [f"{ssrc:#010x}={SUITE}:inline:{key}" for ssrc, key in keys.items()]
    flow = media_flow(flowscan.scan(str(capture)))
    assert {"turn", "rtp"} <= set(flow.protocols) and flow.transport == "tcp"
    assert flow.encryption.verdict == "encrypted-unverified"
    out = tmp_path / "clear.pcapng"
    report = flowscan.decrypt(str(capture), str(out), srtp_key=specs)
    d = media_flow(report).encryption.decryption
    assert (d.packets_decrypted, d.tag_failures, d.inner) == (expected, 0, "codec")
    assert media_flow(report).encryption.verdict != "end-to-end"
    if shutil.which("tshark"):
        port = media_flow(report).server.port
        result = subprocess.run(
            ["tshark", "-r", str(out), "-o", "rtp.heuristic_rtp:TRUE", "-d",
             f"tcp.port=={port},stun", "-Y", "rtp && rtp.padding", "-T", "fields",
             "-e", "rtp.ssrc"], capture_output=True, text=True, check=True)
        ssrcs = result.stdout.replace(",", " ").split()
        assert len(ssrcs) > expected // 2 and {int(s, 16) for s in ssrcs} <= set(keys)
        assert not [w for w in report.capture.warnings if "over TCP" in w]


def test_turn_over_tls_says_the_relayed_payload_is_not_visible(tmp_path: Path) -> None:
    from scapy.layers.tls.extensions import ProtocolName, TLS_Ext_ALPN
    from scapy.layers.tls.handshake import TLSClientHello
    from scapy.layers.tls.record import TLS

    hello = bytes(TLS(msg=[TLSClientHello(ciphers=[0x1301], ext=[
        TLS_Ext_ALPN(protocols=[ProtocolName(protocol=b"stun.turn")])])]))
    app_data = [b"\x17\x03\x03" + struct.pack(">H", 180) + os.urandom(180) for _ in range(20)]
    capture = tcp_capture(tmp_path / "turns.pcap", [(0, hello)] + [
        (i % 2, record) for i, record in enumerate(app_data)])
    report = flowscan.scan(str(capture))
    flow = media_flow(report)
    assert "tls" in flow.protocols
    enc = flow.encryption
    assert (enc.verdict, enc.termination, enc.basis) == ("unknown", "relay", "observed")
    (evidence,) = enc.evidence
    assert evidence.signal == "turn-over-tls" and "not visible" in evidence.detail
    assert "ALPN stun.turn" in evidence.detail
    assert report.answers is not None
    assert report.answers.encryption.answer != "yes"
