"""Parsers on RFC test vectors and crafted packets, including malformed and truncated ones:
each returns a result, a partial result or None ("not this protocol"); none raises."""

from __future__ import annotations

import random
import struct
from pathlib import Path

import pytest
from packets import dtls_client_hello_body, dtls_handshake, dtls_record, rtcp_sdes
from scapy.layers.dns import DNS, DNSQR, DNSRR
from scapy.layers.rtp import RTP, RTPExtension
from scapy.layers.tls.extensions import (
    ProtocolName,
    ServerName,
    TLS_Ext_ALPN,
    TLS_Ext_ServerName,
    TLS_Ext_SupportedVersion_CH,
)
from scapy.layers.tls.handshake import TLSClientHello
from scapy.layers.tls.record import TLS

from flowscan.protocols import demux, dns, dtls, hello, quic, rtp, sip, stun, tls, zoom
from flowscan.protocols.cursor import Cursor, Truncated

VECTORS = Path(__file__).parent / "vectors"

# RFC 5769 section 2: sample request, IPv4 and IPv6 responses, long-term auth request.
RFC5769_REQUEST = bytes.fromhex(
    "000100582112a442b7e7a701bc34d686fa87dfae802200105354554e207465737420636c69656e74"
    "002400046e0001ff80290008932ff9b151263b36000600096576746a3a68367659202020000800149a"
    "eaa70cbfd8cb56781ef2b5b2d3f249c1b571a280280004e57a3bcf")
RFC5769_IPV4 = bytes.fromhex(
    "0101003c2112a442b7e7a701bc34d686fa87dfae8022000b7465737420766563746f722000200008"
    "0001a147e112a643000800142b91f599fd9e90c38c7489f92af9ba53f06be7d780280004c07d4c96")
RFC5769_IPV6 = bytes.fromhex(
    "010100482112a442b7e7a701bc34d686fa87dfae8022000b7465737420766563746f722000200014"
    "0002a1470113a9faa5d3f179bc25f4b5bed2b9d900080014a382954e4be67bf11784c97c8292c275"
    "bfe3ed4180280004c8fb0b4c")
RFC5769_LONG_TERM = bytes.fromhex(
    "000100602112a44278ad3433c6ad72c029da412e00060012e3839ee38388e383aae38383e382afe3"
    "82b900000015001c662f2f3439396b39353464364f4c33346f4c394653547679363473410014000b"
    "6578616d706c652e6f72670000080014f67024656dd64a3e02b8e0712e85c9a28ca89666")


def hostile_variants(data: bytes, seed: int = 5769) -> list[bytes]:
    """Every prefix, and a few hundred random byte flips."""
    rng = random.Random(seed)
    out = [data[:n] for n in range(len(data))]
    for _ in range(300):
        b = bytearray(data)
        for _ in range(rng.randint(1, 4)):
            b[rng.randrange(len(b))] = rng.randrange(256)
        out.append(bytes(b))
    return out


def test_stun_rfc5769_request() -> None:
    msg = stun.parse(RFC5769_REQUEST)
    assert msg is not None
    assert (msg.msg_class, msg.method, msg.classic) == ("request", "binding", False)
    assert msg.transaction_id.hex() == "b7e7a701bc34d686fa87dfae"
    assert (msg.software, msg.username, msg.priority) == ("STUN test client", "evtj:h6vY",
                                                          0x6E0001FF)
    assert msg.ice_role == "controlled" and msg.integrity and msg.fingerprint
    assert msg.attributes == [0x8022, 0x0024, 0x8029, 0x0006, 0x0008, 0x8028]


@pytest.mark.parametrize(("vector", "address"), [
    (RFC5769_IPV4, ("192.0.2.1", 32853)),
    (RFC5769_IPV6, ("2001:db8:1234:5678:11:2233:4455:6677", 32853)),
])
def test_stun_rfc5769_responses_xor_mapped_address(vector: bytes, address: tuple[str, int]
                                                   ) -> None:
    msg = stun.parse(vector)
    assert msg is not None
    assert (msg.msg_class, msg.method, msg.software) == ("success", "binding", "test vector")
    assert msg.xor_mapped == address


def test_stun_rfc5769_long_term_username_is_utf8() -> None:
    msg = stun.parse(RFC5769_LONG_TERM)
    assert msg is not None and msg.username == "\u30de\u30c8\u30ea\u30c3\u30af\u30b9"


def test_stun_classic_turn_and_channel_data() -> None:
    # Zoom's classic STUN binding request (RFC 3489: no cookie, 128-bit transaction id).
    zoom_req = bytes.fromhex("00010018c15dae63585d14392e582c260403bf3001010014"
                             "3132333435363738393031323334353637383900")
    msg = stun.parse(zoom_req)
    assert msg is not None and msg.classic and len(msg.transaction_id) == 16
    assert zoom.zoom_stun_signature(msg.attributes, zoom_req)
    # A TURN Send indication carrying XOR-PEER-ADDRESS and DATA (RFC 8656 section 11).
    txid = bytes(range(12))
    peer = struct.pack(">BBH", 0, 1, 40000 ^ 0x2112) + bytes(
        a ^ b for a, b in zip(bytes([203, 0, 113, 9]), bytes.fromhex("2112a442"), strict=True))
    data = b"\x80\x00" + b"r" * 18
    attrs = struct.pack(">HH", 0x0012, 8) + peer + struct.pack(">HH", 0x0013, len(data)) + data
    send = struct.pack(">HHI", 0x0016, len(attrs), 0x2112A442) + txid + attrs
    msg = stun.parse(send)
    assert msg is not None and (msg.method, msg.msg_class) == ("send", "indication")
    assert msg.xor_peer == ("203.0.113.9", 40000) and msg.data == data
    channel = stun.parse_channel_data(b"\x40\x01\x00\x05hello\x00\x00\x00", exact=True)
    assert channel is not None and (channel.channel, channel.payload) == (0x4001, b"hello")
    assert stun.parse_channel_data(b"\x40\x01\x00\x09hello") is None


def test_stun_rejects_what_is_not_stun() -> None:
    assert stun.parse(RFC5769_REQUEST + b"\0\0\0\0") is None  # length disagrees (UDP)
    assert stun.parse(RFC5769_REQUEST + b"more", exact=False) is not None  # TCP stream
    assert stun.parse(b"\x80" + RFC5769_REQUEST[1:]) is None  # top bits set: RTP range
    for variant in hostile_variants(RFC5769_REQUEST):
        stun.parse(variant)
        stun.parse(variant, exact=False)
        stun.parse_channel_data(variant)


def test_demux_first_byte_ranges() -> None:
    # RFC 7983 section 7.
    assert [demux.classify(bytes([b])) for b in (0, 3, 17, 22, 63, 64, 79, 128, 191, 200)] == [
        "stun", "stun", "zrtp", "dtls", "dtls", "turn-channel", "turn-channel", "rtp", "rtp",
        None]
    assert demux.classify(b"") is None


def client_hello_bytes() -> bytes:
    ch = TLSClientHello(
        version=0x0303, gmt_unix_time=0x01020304, random_bytes=b"\x05" * 28,
        ciphers=[0x1301, 0xC02F],
        ext=[TLS_Ext_ServerName(servernames=[ServerName(servername=b"meet.example.org")]),
             TLS_Ext_ALPN(protocols=[ProtocolName(protocol=b"h2"),
                                     ProtocolName(protocol=b"http/1.1")]),
             TLS_Ext_SupportedVersion_CH(versions=[0x0304, 0x0303])])
    return bytes(ch)


def test_tls_client_hello_from_scapy() -> None:
    record = bytes(TLS(version=0x0301, msg=[TLSClientHello(client_hello_bytes())]))
    side = tls.parse_stream(record)
    assert side is not None and side.client_hello is not None
    ch = side.client_hello
    assert (ch.sni, ch.alpn, ch.supported_versions) == ("meet.example.org", ["h2", "http/1.1"],
                                                         [0x0304, 0x0303])
    assert ch.cipher_suites == [0x1301, 0xC02F]
    assert ch.random == bytes([1, 2, 3, 4]) + b"\x05" * 28
    for variant in hostile_variants(record):
        tls.parse_stream(variant)


def test_dtls_client_hello_fragmented_across_datagrams() -> None:
    body = dtls_client_hello_body()
    first = dtls_record(dtls_handshake(1, body, 0, 0, 30))
    second = dtls_record(dtls_handshake(1, body, 0, 30, len(body) - 30), seq=1)
    side = dtls.DtlsSide()
    assert side.add_datagram(second) and side.client_hello is None  # a gap: not yet
    assert side.add_datagram(first)
    ch = side.client_hello
    assert ch is not None and ch.srtp_profiles == [0x0007, 0x0001] and ch.sni == "sfu.example.net"
    assert [hello.SRTP_PROFILES[p] for p in ch.srtp_profiles] == [
        "SRTP_AEAD_AES_128_GCM", "SRTP_AES128_CM_HMAC_SHA1_80"]
    encrypted = dtls_record(b"\x99" * 40, epoch=1, ctype=23)
    assert side.add_datagram(encrypted) and side.encrypted_records == 1
    for variant in hostile_variants(first + second):
        dtls.DtlsSide().add_datagram(variant)


def test_dtls_server_hello_selects_profile() -> None:
    exts = struct.pack(">HHHHB", 14, 5, 2, 0x0001, 0)
    body = (b"\xfe\xfd" + b"\x22" * 32 + b"\x00" + b"\xc0\x2b" + b"\x00"
            + len(exts).to_bytes(2, "big") + exts)
    side = dtls.DtlsSide()
    side.add_datagram(dtls_record(dtls_handshake(2, body, 0, 0, len(body))))
    assert side.server_hello is not None
    assert (side.server_hello.cipher_suite, side.server_hello.srtp_profile) == (0xC02B, 1)


def test_rtp_header_with_csrcs_and_one_byte_extension() -> None:
    packet = bytes(RTP(version=2, extension=1, numsync=2, marker=1, payload_type=111,
                       sequence=4242, timestamp=96000, sourcesync=0xDEADBEEF,
                       sync=[1, 2]) / RTPExtension(header_id=0xBEDE, header=[0x10FF0000])
                   / (b"\x7c" + b"o" * 40))
    head = rtp.parse_rtp(packet)
    assert head is not None
    assert (head.payload_type, head.sequence, head.timestamp, head.ssrc, head.marker) == (
        111, 4242, 96000, 0xDEADBEEF, True)
    assert head.csrcs == [1, 2] and head.extension_form == "one-byte"
    assert head.extension_ids == [1]
    assert head.header_length == 12 + 8 + 8 and head.payload_length == 41
    for variant in hostile_variants(packet):
        rtp.parse_rtp(variant)
        rtp.parse_rtcp(variant)


def test_rtp_two_byte_extension_and_rtcp_compound() -> None:
    ext = b"\x05\x02ab\x00\x00\x00\x00"  # id 5, length 2, then padding to a word
    packet = bytes([0x90, 96]) + struct.pack(">HII", 1, 2, 3) + struct.pack(
        ">HH", 0x1000, len(ext) // 4) + ext + b"v" * 10
    head = rtp.parse_rtp(packet)
    assert head is not None and head.extension_form == "two-byte" and head.extension_ids == [5]
    sr = struct.pack(">BBHI", 0x80, 200, 6, 0x1111) + b"\0" * 20
    rr = struct.pack(">BBHI", 0x81, 201, 7, 0x1111) + b"\0" * 24
    compound = rtp.parse_rtcp(sr + rr + b"\x80\x00\x00\x01" + b"t" * 10)
    assert compound is not None and [p.name for p in compound.packets] == ["SR", "RR"]
    assert compound.trailing == 14
    assert rtp.parse_rtp(sr) is None  # RFC 5761: type 200 is RTCP, not RTP


def test_sdes_cnames_of_every_chunk_and_nothing_raised_on_truncation() -> None:
    rr = struct.pack(">BBHI", 0x80, 201, 1, 0x1111)
    sdes = rtcp_sdes([(0x1111, [(1, b"sip:alice@198.51.100.7"), (2, b"Alice")]),
                      (0x2222, [(1, b"bob@example.org")])])
    data = rr + sdes
    compound = rtp.parse_rtcp(data)
    assert compound is not None and compound.trailing == 0
    assert [p.name for p in compound.packets] == ["RR", "SDES"]
    assert rtp.sdes_cnames(data, compound) == ["sip:alice@198.51.100.7", "bob@example.org"]
    for cut in range(len(data)):
        part = rtp.parse_rtcp(data[:cut])
        if part is not None:
            assert rtp.sdes_cnames(data[:cut], part) in ([], ["sip:alice@198.51.100.7"])
    # The header says one chunk more than there is: the items stop at the packet's end.
    lying = bytearray(sdes)
    lying[0] = 0x80 | 7
    whole = rtp.parse_rtcp(bytes(lying))
    assert whole is not None and len(rtp.sdes_cnames(bytes(lying), whole)) == 2


def test_dns_names_with_compression_and_cname_chain() -> None:
    answer = DNS(id=7, qr=1, qd=DNSQR(qname="meet.example.org"),
                 an=[DNSRR(rrname="meet.example.org", type="CNAME", rdata="edge.example.net"),
                     DNSRR(rrname="edge.example.net", type="A", rdata="198.51.100.4"),
                     DNSRR(rrname="edge.example.net", type="AAAA", rdata="2001:db8::4")])
    raw = bytes(answer)
    msg = dns.parse(raw)
    assert msg is not None and msg.response and msg.questions == ["meet.example.org"]
    assert msg.answers == [("meet.example.org", 5, "edge.example.net"),
                           ("edge.example.net", 1, "198.51.100.4"),
                           ("edge.example.net", 28, "2001:db8::4")]
    assert dns.parse_tcp(len(raw).to_bytes(2, "big") + raw)[0].answers == msg.answers
    looping = bytearray(raw)
    looping[12:14] = b"\xc0\x0c"  # a name pointing at itself
    assert dns.parse(bytes(looping)) is None
    for variant in hostile_variants(raw):
        dns.parse(variant)


SDP_OFFER = (
    "v=0\r\no=- 1 1 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\nt=0 0\r\n"
    "m=audio 49170 RTP/SAVP 0 8\r\na=rtpmap:0 PCMU/8000\r\n"
    "a=crypto:1 AES_CM_128_HMAC_SHA1_80 "
    "inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR|2^20|1:32\r\n"
    "m=video 51372 UDP/TLS/RTP/SAVPF 96\r\na=fingerprint:sha-256 AB:CD\r\na=setup:actpass\r\n")


def test_sip_invite_with_sdp_and_sdes_keys_never_printed() -> None:
    body = SDP_OFFER.encode()
    invite = (b"INVITE sip:bob@example.com SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.10\r\n"
              b"i: call-1@example.com\r\nCSeq: 1 INVITE\r\nContent-Type: application/sdp\r\n"
              b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
    msg = sip.parse(invite)
    assert msg is not None and (msg.method, msg.call_id) == ("INVITE", "call-1@example.com")
    audio, video = msg.media
    assert (audio.media, audio.port, audio.address, audio.protocol) == (
        "audio", 49170, "192.0.2.10", "RTP/SAVP")
    assert audio.rtpmap == {0: "PCMU/8000"}
    (key,) = audio.crypto
    assert key.suite == "AES_CM_128_HMAC_SHA1_80" and len(key.fingerprint) == 16
    assert "PS1uQCVee" not in repr(msg) and "PS1uQCVee" not in key.fingerprint
    assert (video.fingerprint, video.setup) == ("sha-256 AB:CD", "actpass")
    response = sip.parse(b"SIP/2.0 200 OK\r\nCall-ID: x\r\nContent-Length: 0\r\n\r\n")
    assert response is not None and response.status == 200
    assert sip.parse(b"HTTP/1.1 200 OK\r\n\r\n") is None
    for variant in hostile_variants(invite[:200]):
        sip.parse(variant)


def test_quic_initial_keys_rfc9001_and_rfc9369() -> None:
    dcid = bytes.fromhex("8394c8f03e515708")
    v1 = quic.initial_keys(quic.VERSION_1, dcid)  # RFC 9001 appendix A.1
    assert (v1.key.hex(), v1.iv.hex(), v1.hp.hex()) == (
        "1f369613dd76d5467730efcbe3b1a22d", "fa044b2f42a3fd3b46fb255c",
        "9f50449e04a0e810283a1e9933adedd2")
    v2 = quic.initial_keys(quic.VERSION_2, dcid)  # RFC 9369 appendix A.1
    assert (v2.key.hex(), v2.iv.hex(), v2.hp.hex()) == (
        "8b1a0bc121284290a29e0971b5cd045d", "91f73e2351d8fa91660e909f",
        "45b95e15235d6f45a6b19cbcb0294ba9")
    server = quic.initial_keys(quic.VERSION_1, dcid, server=True)
    assert server.key.hex() == "cf3a5331653c364c88f0f379b6067e37"
    assert "key=" not in repr(v1)


def test_quic_rfc9001_client_initial_decrypts_to_client_hello() -> None:
    packet = bytes.fromhex((VECTORS / "rfc9001_a2_client_initial.hex").read_text().strip())
    initials = quic.parse_client_initials(packet)
    assert len(initials) == 1 and initials[0].dcid.hex() == "8394c8f03e515708"
    ch = quic.client_hello(initials)
    assert ch is not None and ch.sni == "example.com"
    damaged = bytearray(packet)
    damaged[600] ^= 1  # the AEAD tag no longer verifies
    assert quic.parse_client_initials(bytes(damaged)) == []
    for variant in hostile_variants(packet[:300], seed=9001):
        quic.parse_client_initials(variant)
        quic.parse_gquic_chlo(variant)


def test_zoom_server_and_p2p_encapsulation() -> None:
    rtp_audio = bytes([0x80, 113]) + struct.pack(">HII", 7, 8, 0x4909BAE8) + b"a" * 20
    inner = bytes([15]) + b"\0" * 18 + rtp_audio
    server = bytes([5, 0, 1, 0, 0, 0, 0, 4]) + inner
    packet = zoom.parse_server(server)
    assert packet is not None and (packet.direction, packet.media) == ("from-zoom", "audio")
    assert packet.rtp is not None and packet.rtp.ssrc == 0x4909BAE8
    p2p = zoom.parse_p2p(inner)
    assert p2p is not None and p2p.form == "p2p" and p2p.media == "audio"
    assert zoom.parse_p2p(bytes([15]) + b"\0" * 40) is None  # no RTP where it belongs
    assert zoom.parse_server(b"\x07" * 20) is None
    for variant in hostile_variants(server):
        zoom.parse_server(variant)
        zoom.parse_p2p(variant)


def test_srtcp_trailer_found_in_libsrtp_output_and_not_in_plain_rtcp() -> None:
    """RFC 3711 section 3.4 / RFC 7714 section 9: libsrtp's SRTCP carries E=1 and an index
    that counts up, where each layout puts it."""
    pylibsrtp = pytest.importorskip("pylibsrtp")
    import os

    from flowscan.protocols import rtp as rtp_proto

    layouts = {"hmac-sha1-80": pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_80,
               "aead": pylibsrtp.Policy.SRTP_PROFILE_AEAD_AES_128_GCM}
    for layout, profile in layouts.items():
        size = 30 if layout == "hmac-sha1-80" else 28
        session = pylibsrtp.Session(pylibsrtp.Policy(
            key=os.urandom(size), ssrc_type=pylibsrtp.Policy.SSRC_ANY_OUTBOUND,
            srtp_profile=profile))
        rtcp = struct.pack(">BBHI", 0x81, 201, 7, 0xCAFE) + os.urandom(24)
        first, second = (rtp_proto.srtcp_trailers(session.protect_rtcp(rtcp))
                         for _ in range(2))
        assert second[layout] == first[layout] + 1
    plain = struct.pack(">BBHI", 0x81, 201, 7, 0xCAFE) + bytes(24)
    assert rtp_proto.srtcp_trailers(plain) == {}


def test_cursor_reads_within_its_window_and_stops_cleanly() -> None:
    """The shared reader under every parser: big-endian integers, TLS-style vectors (RFC 8446
    section 3.4), and a window (sub) that ends before the data does."""
    data = bytes([0xAB]) + struct.pack(">HI", 0x1234, 0xDEADBEEF) + b"\x12\x34\x56" \
        + b"\x03abc" + b"\x00\x02hi" + b"\x00\x00\x04wxyz" + b"tail"
    cur = Cursor(data)
    assert (cur.u8(), cur.u16(), cur.u32(), cur.u24()) == (0xAB, 0x1234, 0xDEADBEEF, 0x123456)
    assert (cur.vector(1), cur.vector(2), cur.vector(3)) == (b"abc", b"hi", b"wxyz")
    assert cur.remaining == 4
    window = Cursor(data, 10, 14)  # b"\x03abc": the vector fits, nothing after it does
    assert window.vector(1) == b"abc"
    for read in (window.u8, window.u16, window.u24, window.u32):
        with pytest.raises(Truncated):
            read()
    for length_bytes, raw in ((1, b"\x05abc"), (2, b"\x00\x09abc"), (3, b"\x00\x00")):
        short = Cursor(raw)
        with pytest.raises(Truncated):
            short.vector(length_bytes)
        assert short.pos == 0  # a vector that does not fit is not consumed
