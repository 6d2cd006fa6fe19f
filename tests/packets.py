"""Byte builders for protocol messages the tests craft (STUN, DTLS, RTP, SIP)."""

from __future__ import annotations

import os
import struct

MAGIC = 0x2112A442


def stun_message(msg_type: int, txid: bytes, attrs: list[tuple[int, bytes]]) -> bytes:
    """RFC 8489 section 5 header and padded attributes (no integrity: not checked here)."""
    body = b"".join(struct.pack(">HH", t, len(v)) + v + b"\0" * (-len(v) % 4)
                    for t, v in attrs)
    return struct.pack(">HHI", msg_type, len(body), MAGIC) + txid + body


def ice_check(txid: bytes, controlling: bool) -> bytes:
    role = 0x802A if controlling else 0x8029
    return stun_message(0x0001, txid, [(0x0006, b"abcd:efgh"), (0x0024, b"\x6e\x00\x01\xff"),
                                       (role, b"\x01" * 8)])


def ice_response(txid: bytes) -> bytes:
    xor = struct.pack(">BBH", 0, 1, 40000 ^ 0x2112) + bytes(4)
    return stun_message(0x0101, txid, [(0x0020, xor)])


def dtls_handshake(msg_type: int, body: bytes, seq: int, offset: int, length: int) -> bytes:
    frag = body[offset:offset + length]
    return (bytes([msg_type]) + len(body).to_bytes(3, "big") + seq.to_bytes(2, "big")
            + offset.to_bytes(3, "big") + len(frag).to_bytes(3, "big") + frag)


def dtls_record(content: bytes, epoch: int = 0, seq: int = 0, ctype: int = 22) -> bytes:
    return (bytes([ctype]) + b"\xfe\xfd" + epoch.to_bytes(2, "big") + seq.to_bytes(6, "big")
            + len(content).to_bytes(2, "big") + content)


def dtls_client_hello_body(sni: bytes = b"sfu.example.net") -> bytes:
    """DTLS 1.2 ClientHello (RFC 6347 4.2.1: a cookie after the session id) offering
    use_srtp with two profiles and an empty MKI (RFC 5764 4.1.1)."""
    use_srtp = struct.pack(">HHHHHB", 14, 7, 4, 0x0007, 0x0001, 0)
    sni_ext = struct.pack(">HHHBH", 0, len(sni) + 5, len(sni) + 3, 0, len(sni)) + sni if (
        sni) else b""  # WebRTC endpoints send no SNI
    exts = use_srtp + sni_ext
    return (b"\xfe\xfd" + b"\x11" * 32 + b"\x00" + b"\x00" + struct.pack(">HH", 2, 0xC02B)
            + b"\x01\x00" + len(exts).to_bytes(2, "big") + exts)


def dtls_server_hello_body(profile: int = 0x0001) -> bytes:
    exts = struct.pack(">HHHHB", 14, 5, 2, profile, 0)
    return (b"\xfe\xfd" + b"\x22" * 32 + b"\x00" + b"\xc0\x2b" + b"\x00"
            + len(exts).to_bytes(2, "big") + exts)


def dtls_client_hello(sni: bytes = b"sfu.example.net") -> bytes:
    body = dtls_client_hello_body(sni)
    return dtls_record(dtls_handshake(1, body, 0, 0, len(body)))


def dtls_certificate(ders: list[bytes], seq: int = 1, record_seq: int = 1) -> bytes:
    """A DTLS 1.2 Certificate message in the clear (RFC 5246 7.4.2: a 24-bit list length,
    then each DER certificate with a 24-bit length), in one record."""
    chain = b"".join(len(d).to_bytes(3, "big") + d for d in ders)
    body = len(chain).to_bytes(3, "big") + chain
    return dtls_record(dtls_handshake(11, body, seq, 0, len(body)), seq=record_seq)


def dtls_server_hello() -> bytes:
    body = dtls_server_hello_body()
    return dtls_record(dtls_handshake(2, body, 0, 0, len(body)))


def dtls_encrypted(seq: int) -> bytes:
    return dtls_record(os.urandom(48), epoch=1, seq=seq, ctype=23)


def srtp_like(seq: int, ssrc: int, pt: int = 111, size: int = 160) -> bytes:
    """An RTP header followed by random bytes, as SRTP looks on the wire."""
    return bytes([0x80, pt]) + struct.pack(">HII", seq, seq * 960, ssrc) + os.urandom(size)


def dtls13_client_hello(random: bytes, profiles: list[int], mki: bytes = b"") -> bytes:
    """DTLS 1.3 ClientHello (RFC 9147 5.3): legacy version 1.2, an empty legacy cookie,
    supported_versions naming 1.3 (RFC 8446 4.2.1) and use_srtp (RFC 5764 4.1.1)."""
    listed = b"".join(p.to_bytes(2, "big") for p in profiles)
    use_srtp = (struct.pack(">HHH", 14, len(listed) + 3 + len(mki), len(listed)) + listed
                + bytes([len(mki)]) + mki)
    exts = struct.pack(">HHBH", 43, 3, 2, 0xFEFC) + use_srtp
    body = (b"\xfe\xfd" + random + b"\x00" + b"\x00" + struct.pack(">HH", 2, 0x1301)
            + b"\x01\x00" + len(exts).to_bytes(2, "big") + exts)
    return dtls_record(dtls_handshake(1, body, 0, 0, len(body)))


def dtls13_server_hello(random: bytes, suite: int = 0x1301) -> bytes:
    """DTLS 1.3 ServerHello: the profile is not here but in the encrypted extensions."""
    exts = struct.pack(">HHH", 43, 2, 0xFEFC)
    body = (b"\xfe\xfd" + random + b"\x00" + suite.to_bytes(2, "big") + b"\x00"
            + len(exts).to_bytes(2, "big") + exts)
    return dtls_record(dtls_handshake(2, body, 0, 0, len(body)))


def dtls13_ciphertext(seq: int, epoch: int = 2) -> bytes:
    """A DTLSCiphertext record, unified header 0b001CSLEE with 16-bit sequence and length
    (RFC 9147 section 4)."""
    content = os.urandom(40)
    return bytes([0x2C | (epoch & 3)]) + struct.pack(">HH", seq, len(content)) + content


def rtcp_sdes(chunks: list[tuple[int, list[tuple[int, bytes]]]]) -> bytes:
    """An RTCP SDES packet (RFC 3550 6.5): per chunk an SSRC, its items, a null item and
    padding to 32 bits."""
    body = b""
    for ssrc, items in chunks:
        chunk = ssrc.to_bytes(4, "big") + b"".join(bytes([t, len(v)]) + v for t, v in items)
        chunk += b"\0" * (4 - len(chunk) % 4)  # at least one null octet ends the items
        body += chunk
    return bytes([0x80 | len(chunks), 202]) + (len(body) // 4).to_bytes(2, "big") + body


def crc32c(data: bytes) -> int:
    """CRC-32c (Castagnoli, RFC 4960 appendix B), which ZRTP packets end with."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


def zrtp_packet(seq: int, ssrc: int, kind: str, body: bytes = b"") -> bytes:
    """A ZRTP packet (RFC 6189 section 5): 0x10 0x00, sequence number, the magic cookie
    'ZRTP', the source identifier, the message (preamble 0x505a, length in words, type
    block, body) and the CRC-32c."""
    body += b"\0" * (-len(body) % 4)
    message = struct.pack(">HH", 0x505A, 3 + len(body) // 4) + kind.ljust(8).encode() + body
    packet = struct.pack(">BBHI", 0x10, 0, seq, 0x5A525450) + struct.pack(">I", ssrc) + message
    return packet + struct.pack(">I", crc32c(packet))


def zrtp_hello(zid: bytes, mitm: bool = False, client: bytes = b"GNU ZRTP 4.6.6  ") -> bytes:
    """Hello body (section 5.2): version, client identifier, H3, ZID, the flags and counts
    word (hc cc ac kc sc), the algorithm lists, MAC."""
    lists = [b"S256"], [b"AES1"], [b"HS32", b"HS80"], [b"DH3k", b"Mult"], [b"B32 "]
    counts = (int(mitm) << 29) | (1 << 16) | (1 << 12) | (2 << 8) | (2 << 4) | 1
    return (b"1.10" + client + os.urandom(32) + zid + struct.pack(">I", counts)
            + b"".join(b"".join(x) for x in lists) + os.urandom(8))


def zrtp_commit(zid: bytes) -> bytes:
    """Commit body (section 5.4): H2, ZID, hash, cipher, auth tag, key agreement and SAS
    types, hvi, MAC."""
    return os.urandom(32) + zid + b"S256AES1HS32DH3kB32 " + os.urandom(32) + os.urandom(8)


def zrtp_dhpart() -> bytes:
    """DHPart1/DHPart2 body (section 5.5/5.6): H1, four secret IDs, pv (DH3k: 384 bytes),
    MAC."""
    return os.urandom(32) + os.urandom(32) + os.urandom(384) + os.urandom(8)


def zrtp_confirm() -> bytes:
    """Confirm1/Confirm2 body (section 5.7): confirm_mac, CFB IV, then the encrypted H0,
    flags and cache expiration interval."""
    return os.urandom(8) + os.urandom(16) + os.urandom(40)
