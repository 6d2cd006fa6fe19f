"""Protocol facts against Wireshark's dissectors, field by field, on the shared captures."""

from __future__ import annotations

import shutil
import subprocess
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import pytest

import flowscan
from flowscan.capture import CaptureSource, open_reader
from flowscan.capture.decode import PROTO_UDP, Decoder
from flowscan.protocols import rtp, stun

pytestmark = pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark not installed")
HEURISTICS = ["--enable-heuristic", "rtp_udp", "--enable-heuristic", "rtcp_udp"]


def udp_payloads(path: Path) -> dict[int, bytes]:
    """Frame number -> UDP payload, as flowscan's decoder extracts it."""
    decoder = Decoder()
    out: dict[int, bytes] = {}
    with CaptureSource(str(path)) as source:
        for number, (_ts, link, data, _wire) in enumerate(open_reader(source).packets(), 1):
            try:
                decoded = decoder.decode(link, data)
            except (IndexError, ValueError):
                continue
            if decoded and decoded[0] == PROTO_UDP:
                out[number] = data[decoded[2]:decoded[3]]
    return out


def tshark(path: Path, display_filter: str, fields: list[str], extra: Sequence[str] = ()
           ) -> dict[int, list[str]]:
    cmd = ["tshark", "-r", str(path), *extra, "-Y", display_filter, "-T", "fields",
           "-E", "occurrence=a", "-E", "aggregator=|", "-e", "frame.number"]
    for field in fields:
        cmd += ["-e", field]
    rows = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    return {int(r.split("\t")[0]): r.split("\t")[1:] for r in rows.splitlines()}


def test_stun_fields_agree(real_path: Path) -> None:
    payloads = udp_payloads(real_path)
    # Frames tshark itself calls malformed are left out: MS-TURN (teams.pcap) does not pad
    # attributes, tshark assumes it does and loses the message; flowscan reads it unpadded.
    rows = tshark(real_path, "stun && udp && !icmp && !_ws.malformed",
                  ["stun.type", "stun.id", "stun.att.username", "stun.att.software",
                   "stun.att.priority", "stun.att.ipv4", "stun.att.port"])
    for number, (mtype, tid, username, software, priority, ipv4, port) in rows.items():
        payload = payloads[number]
        if not mtype or not payload.startswith(bytes.fromhex(mtype[2:6])):
            continue  # STUN found deeper inside (MS-TURN's 0xff10 framing): not at offset 0
        msg = stun.parse(payload)
        assert msg is not None, f"frame {number}: tshark dissects STUN {mtype}"
        assert msg.transaction_id.hex() == tid.replace("0x", "")
        if username.isprintable():  # binary MS-TURN tokens: tshark stops at the first NUL
            assert (msg.username or "") == username
        assert (msg.software or "") == software
        assert (str(msg.priority) if msg.priority is not None else "") == priority.split("|")[0]
        # Every address flowscan reads is one tshark decoded (tshark also decodes vendor
        # address attributes flowscan does not read, such as MS-TURN's).
        theirs = {(ip, int(p)) for ip, p in zip(ipv4.split("|"), port.split("|"),
                                               strict=False) if ip and p}
        ours = {a for a in (msg.mapped, msg.xor_mapped, msg.xor_peer, msg.xor_relayed)
                if a and ":" not in a[0]}
        assert ours <= theirs, (number, ours, theirs)
        if 0x0020 in msg.attributes and ipv4:
            assert msg.xor_mapped is not None, number


def test_rtp_and_rtcp_headers_agree(real_path: Path) -> None:
    payloads = udp_payloads(real_path)
    rows = tshark(real_path, "rtp && !rtcp", ["rtp.ssrc", "rtp.seq", "rtp.p_type",
                                              "rtp.timestamp", "rtp.ext.profile"], HEURISTICS)
    for number, (ssrc, seq, ptype, ts, profile) in rows.items():
        if not ssrc:
            continue  # tshark's heuristic named the conversation, not this frame
        head = rtp.parse_rtp(payloads[number])
        assert head is not None, f"frame {number}: tshark dissects RTP"
        assert (head.ssrc, head.sequence, head.payload_type, head.timestamp) == (
            int(ssrc, 16), int(seq), int(ptype), int(ts)), number
        if profile:
            assert head.extension_profile == int(profile, 16)
    rows = tshark(real_path, "rtcp && !rtp", ["rtcp.pt"], HEURISTICS)
    for number, (types,) in rows.items():
        compound = rtp.parse_rtcp(payloads[number])
        assert compound is not None, f"frame {number}: tshark dissects RTCP"
        theirs = [int(t) for t in types.split("|") if t]
        ours = [p.packet_type for p in compound.packets]
        assert ours == theirs[:len(ours)] and ours, number


def flow_key(row: list[str]) -> frozenset[tuple[str, int]]:
    src4, dst4, src6, dst6, sport, dport = row[:6]
    src, dst = (src4 or src6).split("|")[-1], (dst4 or dst6).split("|")[-1]
    return frozenset([(src, int(sport.split("|")[-1])), (dst, int(dport.split("|")[-1]))])


ENDPOINTS = ["ip.src", "ip.dst", "ipv6.src", "ipv6.dst"]


def test_dtls_handshake_fields_agree(real_path: Path) -> None:
    rows = tshark(real_path, "dtls.handshake.type == 1 || dtls.handshake.type == 2",
                  [*ENDPOINTS, "udp.srcport", "udp.dstport", "dtls.handshake.type",
                   "dtls.handshake.random", "dtls.handshake.ciphersuite",
                   "dtls.use_srtp.protection_profile"])
    if not rows:
        pytest.skip("no DTLS handshake in this capture")
    expected: dict[frozenset[tuple[str, int]], dict[str, set[str]]] = defaultdict(
        lambda: defaultdict(set))
    for row in rows.values():
        key = flow_key(row)
        types, randoms = row[6].split("|"), row[7].split("|")
        for mtype, random in zip(types, randoms, strict=False):
            field = {"1": "client_random", "2": "server_random"}.get(mtype)
            if field and random:
                expected[key][field].add(random.replace(":", ""))
        if "2" in types:
            suites = [s for s in row[8].split("|") if s]
            expected[key]["cipher_suite"].update(f"0x{int(s, 16):04x}" for s in suites[-1:])
    flows = {frozenset([(f.client.ip, f.client.port), (f.server.ip, f.server.port)]): f
             for f in flowscan.scan(str(real_path)).flows}
    for key, fields in expected.items():
        details = flows[key].details.get("dtls")
        assert details is not None, key
        for field, values in fields.items():
            assert getattr(details, field) in values, (key, field, values)


def test_tls_and_quic_sni_agree(real_path: Path) -> None:
    rows = tshark(real_path, "tls.handshake.type == 1",
                  [*ENDPOINTS, "tcp.srcport", "tcp.dstport", "udp.srcport", "udp.dstport",
                   "tls.handshake.extensions_server_name"])
    flows = {frozenset([(f.client.ip, f.client.port), (f.server.ip, f.server.port)]): f
             for f in flowscan.scan(str(real_path)).flows}
    compared = 0
    for row in rows.values():
        tcp = bool(row[4])
        ports = row[4:6] if tcp else row[6:8]
        key = flow_key([*row[:4], *ports])
        details = flows[key].details
        ours = details.get("tls") if tcp else details.get("quic")
        sni = row[8].split("|")[0]
        assert getattr(ours, "sni", None) == (sni or None), (key, sni)
        compared += 1
    if not compared:
        pytest.skip("no TLS or QUIC ClientHello in this capture")
