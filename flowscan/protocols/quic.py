"""QUIC long headers (RFC 9000 section 17.2) and Initial packet protection (RFC 9001
section 5; QUIC v2, RFC 9369 section 3), to read the TLS ClientHello a client sends."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass, field

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDFExpand

from flowscan.protocols import hello as hs
from flowscan.protocols.cursor import Cursor, Truncated

VERSION_1 = 0x00000001
VERSION_2 = 0x6B3343CF
# RFC 9001 section 5.2 and RFC 9369 section 3.3.1.
INITIAL_SALTS = {
    VERSION_1: bytes.fromhex("38762cf7f55934b34d179ae6a4c80cadccbb7f0a"),
    VERSION_2: bytes.fromhex("0dede3def700a6db819381be6e269dcbf9bd2ed9"),
}
LABEL_PREFIX = {VERSION_1: "quic", VERSION_2: "quicv2"}
INITIAL_TYPE = {VERSION_1: 0, VERSION_2: 1}  # RFC 9369 section 3.2
FRAME_PADDING, FRAME_PING, FRAME_ACK, FRAME_ACK_ECN, FRAME_CRYPTO = 0, 1, 2, 3, 6


def varint(cur: Cursor) -> int:
    """Variable-length integer (RFC 9000 section 16)."""
    first = cur.u8()
    length = 1 << (first >> 6)
    value = first & 0x3F
    for _ in range(length - 1):
        value = (value << 8) | cur.u8()
    return value


def hkdf_expand_label(secret: bytes, label: str, length: int) -> bytes:
    """HKDF-Expand-Label with an empty context (RFC 8446 section 7.1)."""
    full = b"tls13 " + label.encode()
    info = length.to_bytes(2, "big") + bytes([len(full)]) + full + b"\x00"
    return HKDFExpand(hashes.SHA256(), length, info).derive(secret)


@dataclass(frozen=True)
class InitialKeys:
    key: bytes = field(repr=False)
    iv: bytes = field(repr=False)
    hp: bytes = field(repr=False)


def initial_keys(version: int, dcid: bytes, *, server: bool = False) -> InitialKeys:
    """The Initial secrets anyone can derive from the client's Destination Connection ID."""
    initial = hmac.new(INITIAL_SALTS[version], dcid, hashlib.sha256).digest()  # HKDF-Extract
    secret = hkdf_expand_label(initial, "server in" if server else "client in", 32)
    prefix = LABEL_PREFIX[version]
    return InitialKeys(hkdf_expand_label(secret, f"{prefix} key", 16),
                       hkdf_expand_label(secret, f"{prefix} iv", 12),
                       hkdf_expand_label(secret, f"{prefix} hp", 16))


@dataclass
class LongHeader:
    start: int  # offset of the packet's first byte in the datagram
    packet_type: int
    version: int
    dcid: bytes
    scid: bytes
    token: bytes
    pn_offset: int  # where the (protected) packet number starts
    end: int  # end of this packet in the datagram


def parse_long_header(data: bytes, start: int = 0) -> LongHeader | None:
    if len(data) < start + 7 or not data[start] & 0x80 or not data[start] & 0x40:
        return None
    cur = Cursor(data, start)
    try:
        first, version = cur.u8(), cur.u32()
        dcid, scid = cur.vector(1), cur.vector(1)
        if len(dcid) > 20 or len(scid) > 20:
            return None
        ptype = (first >> 4) & 0x03
        token = b""
        if version in INITIAL_TYPE and ptype == INITIAL_TYPE[version]:
            token = cur.take(varint(cur))
        if version == 0:  # version negotiation has no length
            return LongHeader(start, ptype, version, dcid, scid, token, cur.pos, len(data))
        length = varint(cur)
        if cur.pos + length > len(data):
            return None
        return LongHeader(start, ptype, version, dcid, scid, token, cur.pos,
                          cur.pos + length)
    except Truncated:
        return None


def decrypt_initial(data: bytes, header: LongHeader, keys: InitialKeys) -> bytes | None:
    """Remove header protection (RFC 9001 section 5.4) and open the AEAD (section 5.3)."""
    sample_at = header.pn_offset + 4
    if sample_at + 16 > header.end:
        return None
    encryptor = Cipher(algorithms.AES(keys.hp), modes.ECB()).encryptor()
    mask = encryptor.update(data[sample_at:sample_at + 16]) + encryptor.finalize()
    first = data[header.start] ^ (mask[0] & 0x0F)  # long header: low 4 bits protected
    pn_len = (first & 0x03) + 1
    pn_bytes = bytes(b ^ m for b, m in zip(data[header.pn_offset:header.pn_offset + pn_len],
                                            mask[1:1 + pn_len], strict=True))
    aad = bytes([first]) + data[header.start + 1:header.pn_offset] + pn_bytes
    nonce = (int.from_bytes(keys.iv, "big") ^ int.from_bytes(pn_bytes, "big")).to_bytes(
        12, "big")
    try:
        return AESGCM(keys.key).decrypt(nonce, data[header.pn_offset + pn_len:header.end], aad)
    except Exception:  # noqa: BLE001 - a wrong key or a damaged packet: not readable
        return None


def crypto_frames(plaintext: bytes) -> list[tuple[int, bytes]]:
    """(offset, data) of the CRYPTO frames of a decrypted Initial payload (RFC 9000 19.6)."""
    out = []
    cur = Cursor(plaintext)
    try:
        while cur.remaining:
            ftype = varint(cur)
            if ftype in (FRAME_PADDING, FRAME_PING):
                continue
            if ftype in (FRAME_ACK, FRAME_ACK_ECN):
                varint(cur), varint(cur)
                ranges = varint(cur)
                varint(cur)
                for _ in range(ranges * 2):
                    varint(cur)
                if ftype == FRAME_ACK_ECN:
                    varint(cur), varint(cur), varint(cur)
                continue
            if ftype == FRAME_CRYPTO:
                offset, length = varint(cur), varint(cur)
                out.append((offset, cur.take(length)))
                continue
            break  # a frame an Initial should not carry: stop reading
    except Truncated:
        pass
    return out


@dataclass
class QuicInitial:
    version: int
    dcid: bytes
    crypto: list[tuple[int, bytes]] = field(default_factory=list)


def parse_client_initials(datagram: bytes) -> list[QuicInitial]:
    """The client Initial packets coalesced in one datagram, decrypted."""
    out: list[QuicInitial] = []
    pos = 0
    while pos < len(datagram):
        header = parse_long_header(datagram, pos)
        if header is None:
            break
        if header.version in INITIAL_TYPE and header.packet_type == INITIAL_TYPE[header.version]:
            keys = initial_keys(header.version, header.dcid)
            plain = decrypt_initial(datagram, header, keys)
            if plain is not None:
                out.append(QuicInitial(header.version, header.dcid, crypto_frames(plain)))
        pos = header.end
    return out


def client_hello(initials: list[QuicInitial]) -> hs.ClientHello | None:
    """Reassemble the CRYPTO stream from offset 0 and read the ClientHello in it."""
    pieces = sorted((off, data) for q in initials for off, data in q.crypto)
    stream = bytearray()
    for off, data in pieces:
        if off > len(stream):
            break
        stream[off:off + len(data)] = data
    for mtype, body in hs.split_messages(bytes(stream)):
        if mtype == hs.CLIENT_HELLO:
            return hs.parse_client_hello(body)
    return None


@dataclass
class GoogleQuicHello:
    """Google QUIC (Q0xx) client hello: its CHLO message travels in the clear."""

    version: str
    sni: str | None
    user_agent: str | None


def parse_gquic_chlo(datagram: bytes) -> GoogleQuicHello | None:
    """Public header with the version flag (0x01) and a Q0xx version, then a CHLO message:
    tag count, then (tag, end offset) pairs, then the values (QUIC crypto handshake)."""
    if len(datagram) < 13 or not datagram[0] & 0x01 or datagram[0] & 0x80:
        return None
    cid_len = 8 if datagram[0] & 0x08 else 0
    version = datagram[1 + cid_len:5 + cid_len]
    if version[:1] != b"Q" or not version[1:].isdigit():
        return None
    at = datagram.find(b"CHLO", 5 + cid_len)
    if at < 0:
        return None
    cur = Cursor(datagram, at + 4)
    values: dict[bytes, bytes] = {}
    try:
        count = int.from_bytes(cur.take(2), "little")
        cur.skip(2)
        entries = [(cur.take(4), int.from_bytes(cur.take(4), "little")) for _ in range(count)]
        base = cur.pos
        start = 0
        for tag, end in entries:
            if end < start or base + end > len(datagram):
                break
            values[tag] = datagram[base + start:base + end]
            start = end
    except Truncated:
        return None
    sni = values.get(b"SNI\0")
    uaid = values.get(b"UAID")
    return GoogleQuicHello(version.decode(), sni.decode("ascii", "replace") if sni else None,
                           uaid.decode("ascii", "replace") if uaid else None)
