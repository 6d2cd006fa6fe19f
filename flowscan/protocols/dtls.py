"""DTLS records (RFC 6347 section 4.1, RFC 9147 section 4) and the clear handshake.

Handshake messages may be fragmented across records and datagrams (RFC 6347 section
4.2.3); fragments are put back together by message sequence and offset. Records of epoch
0 are in the clear; later epochs are encrypted and only counted, as are DTLS 1.3's
ciphertext records with the unified header (RFC 9147 section 4).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from flowscan.protocols import hello as hs
from flowscan.protocols.cursor import Cursor, Truncated

RECORD_HEADER = 13
CONTENT_TYPES = {20: "change_cipher_spec", 21: "alert", 22: "handshake",
                 23: "application_data", 25: "ack"}
DTLS_VERSIONS = (0xFEFF, 0xFEFD, 0xFEFC)
MIN_CIPHERTEXT = 17  # the inner content type and a 16-byte AEAD tag (RFC 9147 section 4)
CIPHERTEXT = -1  # a DTLS 1.3 DTLSCiphertext record: its content type is encrypted too
MAX_MESSAGE = 1 << 16


@dataclass
class DtlsRecord:
    content_type: int
    version: int
    epoch: int
    sequence: int
    fragment: bytes


def parse_records(datagram: bytes, unified: bool = False) -> list[DtlsRecord] | None:
    """Every DTLSPlaintext/ciphertext record of a datagram (None if the first is not).
    DTLS 1.3's unified header is taken only with `unified`, once this side has shown a
    clear DTLS record: its first byte alone (0x20-0x3F) is too weak a sign."""
    out: list[DtlsRecord] = []
    cur = Cursor(datagram)
    try:
        while cur.remaining:
            if unified and datagram[len(datagram) - cur.remaining] & 0xE0 == 0x20:
                out.append(_unified_record(cur))
                continue
            if cur.remaining < RECORD_HEADER:
                break
            ctype, version = cur.u8(), cur.u16()
            if ctype not in CONTENT_TYPES or version not in DTLS_VERSIONS:
                break
            epoch, seq = cur.u16(), cur.uint(6)
            out.append(DtlsRecord(ctype, version, epoch, seq, cur.vector(2)))
    except Truncated:
        pass
    return out or None


def _unified_record(cur: Cursor) -> DtlsRecord:
    """RFC 9147 section 4: 0b001CSLEE, then connection ID, 8- or 16-bit sequence number and
    an optional length. A connection ID's length was negotiated, so it cannot be parsed here:
    the rest of the datagram is then taken as one record."""
    flags = cur.u8()
    if flags & 0x10:
        return DtlsRecord(CIPHERTEXT, 0xFEFC, flags & 3, 0, cur.take(cur.remaining))
    seq = cur.u16() if flags & 0x08 else cur.u8()
    length = cur.u16() if flags & 0x04 else cur.remaining
    if length < MIN_CIPHERTEXT:
        raise Truncated
    return DtlsRecord(CIPHERTEXT, 0xFEFC, flags & 3, seq, cur.take(length))


@dataclass
class DtlsSide:
    """What one direction of a DTLS association shows."""

    records: int = 0
    version: int | None = None
    content_types: set[str] = field(default_factory=set)
    client_hello: hs.ClientHello | None = None
    server_hello: hs.ServerHello | None = None
    certificates: list[bytes] = field(default_factory=list)
    encrypted_records: int = 0
    _fragments: dict[int, dict[int, bytes]] = field(default_factory=dict, repr=False)
    _lengths: dict[int, tuple[int, int]] = field(default_factory=dict, repr=False)

    def add_datagram(self, datagram: bytes) -> bool:
        records = parse_records(datagram, unified=self.records > 0)
        if records is None:
            return False
        for record in records:
            self.records += 1
            self.version = self.version or record.version
            self.content_types.add(CONTENT_TYPES.get(record.content_type, "encrypted"))
            if record.epoch or record.content_type == CIPHERTEXT:
                self.encrypted_records += 1
            elif record.content_type == 22:
                self._handshake_fragments(record.fragment)
        return True

    def _handshake_fragments(self, data: bytes) -> None:
        cur = Cursor(data)
        try:
            while cur.remaining >= 12:
                mtype, length, seq = cur.u8(), cur.u24(), cur.u16()
                offset, frag_len = cur.u24(), cur.u24()
                body = cur.take(frag_len)
                if length > MAX_MESSAGE or offset + frag_len > length:
                    return
                self._lengths.setdefault(seq, (mtype, length))
                self._fragments.setdefault(seq, {})[offset] = body
                self._complete(seq)
        except Truncated:
            pass

    def _complete(self, seq: int) -> None:
        mtype, length = self._lengths[seq]
        pieces = self._fragments[seq]
        body = bytearray(length)
        covered = 0
        for offset in sorted(pieces):
            if offset > covered:
                return  # a gap: wait for more fragments
            piece = pieces[offset]
            body[offset:offset + len(piece)] = piece
            covered = max(covered, offset + len(piece))
        if covered < length:
            return
        message = bytes(body)
        if mtype == hs.CLIENT_HELLO and self.client_hello is None:
            self.client_hello = hs.parse_client_hello(message, dtls=True)
        elif mtype == hs.SERVER_HELLO and self.server_hello is None:
            self.server_hello = hs.parse_server_hello(message, dtls=True)
        elif mtype == hs.CERTIFICATE and not self.certificates:
            self.certificates = hs.parse_certificates(message)
