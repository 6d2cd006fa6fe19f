"""TLS over TCP opened with an NSS key log: what a TURN relay reached over TLS carries.

TURN over TLS (RFC 8656 section 3.1) puts the STUN and ChannelData framing, and the DTLS-SRTP
media it relays, inside TLS. With the TLS secrets in the key log each direction's records
are opened (RFC 8446 section 5.2: AEAD over the record, the real content type after the
zero padding; TLS 1.2's AES-GCM, RFC 5288, and ChaCha20-Poly1305, RFC 7905, from the key
block of RFC 5246 section 6.3) and the application data goes on to the framing walker, as
the bytes of TURN over TCP would. Secrets are never named but by a short SHA-256.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305

from flowscan.crypto.dtls_srtp import TLS13_PREFIX, hkdf_expand_label, prf
from flowscan.crypto.keylog import KeyLog, fingerprint
from flowscan.protocols import hello as hs
from flowscan.protocols.framing import Frame, StreamWalker

CCS, ALERT, HANDSHAKE, APPLICATION = 20, 21, 22, 23
KEY_UPDATE = 24  # handshake message type (RFC 8446 section 4.6.3)
MAX_RECORD = (1 << 14) + 256  # TLSCiphertext.length at most (RFC 8446 section 5.2)
MAX_LOST_RECORDS = 64  # sequence numbers tried for the first record after a gap
TAG = 16
HEAD = 10  # application data bytes kept from the stream's start

# TLS 1.3 suites (RFC 8446 appendix B.4): (ChaCha20?, key length, SHA-384?).
TLS13_SUITES = {0x1301: (False, 16, False), 0x1302: (False, 32, True),
                0x1303: (True, 32, False)}
# TLS 1.2 AEAD suites: AES-GCM (RFC 5288, RFC 5289) and ChaCha20-Poly1305 (RFC 7905).
TLS12_SUITES = {0x009C: (False, 16, False), 0x009D: (False, 32, True),
                0x009E: (False, 16, False), 0x009F: (False, 32, True),
                0xC02B: (False, 16, False), 0xC02C: (False, 32, True),
                0xC02F: (False, 16, False), 0xC030: (False, 32, True),
                0xCCA8: (True, 32, False), 0xCCA9: (True, 32, False),
                0xCCAA: (True, 32, False)}
SUITE_NAMES = {0x1301: "TLS_AES_128_GCM_SHA256", 0x1302: "TLS_AES_256_GCM_SHA384",
               0x1303: "TLS_CHACHA20_POLY1305_SHA256"}


def traffic_keys(secret: bytes, key_len: int, sha384: bool) -> tuple[bytes, bytes]:
    """RFC 8446 section 7.3: the write key and IV of a traffic secret."""
    algorithm: hashes.HashAlgorithm = hashes.SHA384() if sha384 else hashes.SHA256()
    return (hkdf_expand_label(secret, b"key", b"", key_len, algorithm, TLS13_PREFIX),
            hkdf_expand_label(secret, b"iv", b"", 12, algorithm, TLS13_PREFIX))


@dataclass
class Epoch:
    """One direction's record protection under one set of keys, and its sequence number."""

    chacha: bool
    key: bytes = field(repr=False)
    iv: bytes = field(repr=False)
    tls13: bool = True
    secret: bytes = field(default=b"", repr=False)  # TLS 1.3: for KeyUpdate
    sha384: bool = False
    seq: int = 0

    @classmethod
    def tls13_secret(cls, secret: bytes, suite: int) -> Epoch:
        chacha, key_len, sha384 = TLS13_SUITES[suite]
        key, iv = traffic_keys(secret, key_len, sha384)
        return cls(chacha, key, iv, True, secret, sha384)

    def updated(self) -> Epoch:
        """After a KeyUpdate: the next traffic secret (RFC 8446 section 7.2)."""
        algorithm: hashes.HashAlgorithm = hashes.SHA384() if self.sha384 else hashes.SHA256()
        following = hkdf_expand_label(self.secret, b"traffic upd", b"",
                                      algorithm.digest_size, algorithm, TLS13_PREFIX)
        suite = next(s for s, v in TLS13_SUITES.items()
                     if v == (self.chacha, len(self.key), self.sha384))
        return Epoch.tls13_secret(following, suite)

    def _protection(self, header: bytes, body: bytes, seq: int
                    ) -> tuple[bytes, bytes, bytes, bytes] | None:
        """(nonce, explicit nonce kept in the record, AEAD ciphertext, additional data) of
        the record with sequence number seq; None if it is too short to hold a tag."""
        if not self.chacha and not self.tls13:  # RFC 5288 section 3: salt || explicit nonce
            explicit, body = body[:8], body[8:]
            nonce = self.iv + explicit
        else:  # RFC 8446 section 5.3 (IV xor sequence number); RFC 7905 section 2 for 1.2
            explicit = b""
            nonce = (int.from_bytes(self.iv, "big") ^ seq).to_bytes(12, "big")
        if len(body) < TAG:
            return None
        # RFC 8446 section 5.2: the additional data is the record header; RFC 5246 section
        # 6.2.3.3: sequence number, type, version and the plaintext's length.
        aad = header if self.tls13 else (seq.to_bytes(8, "big") + header[:3]
                                         + (len(body) - TAG).to_bytes(2, "big"))
        return nonce, explicit, body, aad

    def _aead(self) -> AESGCM | ChaCha20Poly1305:
        return ChaCha20Poly1305(self.key) if self.chacha else AESGCM(self.key)

    def open_plain(self, header: bytes, body: bytes, seq: int) -> bytes | None:
        """The AEAD plaintext of the record (TLS 1.3: TLSInnerPlaintext, content, type and
        zero padding), its tag verified; None if it does not verify."""
        parts = self._protection(header, body, seq)
        if parts is None:
            return None
        nonce, _explicit, sealed, aad = parts
        try:
            return self._aead().decrypt(nonce, sealed, aad)
        except InvalidTag:
            return None

    def seal(self, header: bytes, body: bytes, seq: int, plain: bytes) -> bytes:
        """The record body again with plain (as long as the one it held) sealed under the
        same key, nonce and additional data (RFC 8446 section 5.2), its tag recomputed."""
        parts = self._protection(header, body, seq)
        if parts is None or len(parts[2]) != len(plain) + TAG:
            raise ValueError("a record is sealed again only at its own length")
        nonce, explicit, _sealed, aad = parts
        return explicit + self._aead().encrypt(nonce, plain, aad)

    def open(self, header: bytes, body: bytes, seq: int) -> tuple[int, bytes] | None:
        """(content type, content) of the record with sequence number seq, its tag
        verified; None if it does not verify."""
        plain = self.open_plain(header, body, seq)
        if plain is None:
            return None
        if not self.tls13:
            return header[0], plain
        inner = plain.rstrip(b"\0")  # TLSInnerPlaintext: content, type, zero padding
        return (inner[-1], inner[:-1]) if inner else None


@dataclass(frozen=True)
class Opened:
    """A protected record as the opener met it: where its header sits in the direction's
    stream, the epoch and sequence number that opened it (None: it did not verify), and
    its application data (b"" for other content). What sealing it again needs."""

    offset: int
    epoch: Epoch | None = field(repr=False)
    seq: int
    content: bytes = field(repr=False)


class RecordOpener:
    """One direction's TLS records, fed in stream order: the application data in them.
    The epochs come in the order the direction uses them (TLS 1.3: handshake, then
    application traffic); a protected record that does not verify under the current one
    is tried under the next, from sequence number 0 (RFC 8446 section 5.3)."""

    def __init__(self, epochs: list[Epoch], tls13: bool) -> None:
        self.epochs = epochs
        self.tls13 = tls13
        self.current: Epoch | None = epochs[0] if tls13 and epochs else None
        self.buf = bytearray()
        self.base = 0  # stream offset of buf[0]
        self.synced = True
        self._held = 0  # while not synced: where to look again once more bytes come
        self.opened = 0
        self.failed = 0
        self.changed = False  # TLS 1.2: ChangeCipherSpec seen, what follows is protected
        self.trail: list[Opened] | None = None  # set to a list to keep each protected record

    def gap(self, offset: int) -> None:
        self.buf = bytearray()
        self.base = offset
        self.synced = False

    def feed(self, data: bytes) -> list[bytes]:
        """The application data of the records data completes."""
        self.buf += data
        out: list[bytes] = []
        pos, found = self._next(0)
        while found:
            end = pos + 5 + int.from_bytes(self.buf[pos + 3:pos + 5], "big")
            if end > len(self.buf):
                break
            content = self._record(bytes(self.buf[pos:pos + 5]), bytes(self.buf[pos + 5:end]),
                                   self.base + pos)
            if content:
                out.append(content)
            pos, found = self._next(end)
        del self.buf[:pos]
        self.base += pos
        return out

    def _next(self, pos: int) -> tuple[int, bool]:
        """Where the next record starts, and whether its header (RFC 8446 section 5.1) is
        there and plausible; after an implausible one the records are found again."""
        while True:
            if not self.synced:
                found = self._resync(pos)
                if found is None:
                    return self._held, False
                pos, self.synced = found, True
            if len(self.buf) - pos < 5:
                return pos, False
            length = int.from_bytes(self.buf[pos + 3:pos + 5], "big")
            if self.buf[pos] in (CCS, ALERT, HANDSHAKE, APPLICATION) and \
                    self.buf[pos + 1] == 3 and length <= MAX_RECORD:
                return pos, True
            self.synced = False

    def _record(self, header: bytes, body: bytes, offset: int) -> bytes | None:
        ctype = header[0]
        if (self.tls13 and ctype != APPLICATION) or (not self.tls13 and not self.changed):
            # The clear handshake, a compatibility ChangeCipherSpec (RFC 8446 appendix
            # D.4), or TLS 1.2 before its ChangeCipherSpec.
            if ctype == CCS and not self.tls13 and self.epochs:
                self.changed, self.current = True, self.epochs[0]
            return None
        for epoch in self._candidates():
            opened = epoch.open(header, body, epoch.seq)
            if opened is not None:
                self.current = epoch
                epoch.seq += 1
                self.opened += 1
                content = self._content(epoch, *opened)
                if self.trail is not None:
                    self.trail.append(Opened(offset, epoch, epoch.seq - 1, content or b""))
                return content
        self.failed += 1
        if self.trail is not None:
            self.trail.append(Opened(offset, None, -1, b""))
        return None

    def _candidates(self) -> list[Epoch]:
        if self.current is None:
            return []
        at = next((i for i, e in enumerate(self.epochs) if e is self.current), None)
        later = self.epochs[at + 1:] if at is not None else []
        return [self.current] + [e for e in later if e.seq == 0]

    def _content(self, epoch: Epoch, ctype: int, content: bytes) -> bytes | None:
        if ctype == HANDSHAKE and self.tls13 and any(
                t == KEY_UPDATE for t, _ in hs.split_messages(content)):
            following = epoch.updated()
            self.epochs.append(following)
            self.current = following
        return content if ctype == APPLICATION else None

    def _resync(self, pos: int) -> int | None:
        """After a gap: the first record header whose record verifies under the current
        keys with one of the next MAX_LOST_RECORDS sequence numbers; None if none yet,
        with _held where to look again once more bytes come."""
        for start in range(pos, len(self.buf) - 5):
            head = bytes(self.buf[start:start + 5])
            length = int.from_bytes(head[3:5], "big")
            if head[0] != APPLICATION or head[1:3] != b"\x03\x03" or length > MAX_RECORD:
                continue
            if start + 5 + length > len(self.buf):
                self._held = start
                return None
            body = bytes(self.buf[start + 5:start + 5 + length])
            for epoch in self._candidates():
                for seq in range(epoch.seq, epoch.seq + MAX_LOST_RECORDS):
                    if epoch.open(head, body, seq) is not None:
                        self.current, epoch.seq = epoch, seq
                        return start
        self._held = max(pos, len(self.buf) - 5)
        return None


class TlsWalker:
    """A TCP direction's bytes (framing.Reassembler's walker) with TLS taken off: the
    application data walked frame by frame as TURN over TCP is. `base` is how far the
    TLS stream has been read; frames are placed in the application data's own offsets."""

    def __init__(self, records: RecordOpener) -> None:
        self.records = records
        self.inner = StreamWalker()
        self.plain = 0  # application data bytes walked so far
        self.head = b""  # the application data's first bytes, for what the stream is

    @property
    def base(self) -> int:
        return self.records.base

    def gap(self, offset: int) -> None:
        lost = offset - self.records.base - len(self.records.buf)
        self.records.gap(offset)
        self.plain += max(lost, 0)
        self.inner.gap(self.plain)

    def feed(self, data: bytes) -> list[tuple[Frame, bytes]]:
        out: list[tuple[Frame, bytes]] = []
        for content in self.records.feed(data):
            if self.plain < HEAD:  # from the start: a gap moves plain on
                self.head += content[:HEAD - self.plain]
            self.plain += len(content)
            out += self.inner.feed(content)
        return out


@dataclass(frozen=True)
class TlsKeys:
    """Both directions' record keys of one TLS connection, and how the report names them."""

    client: list[Epoch] = field(repr=False)
    server: list[Epoch] = field(repr=False)
    tls13: bool
    description: str  # version and suite
    key_sha256: str

    def walkers(self) -> tuple[TlsWalker, TlsWalker]:
        """Fresh walkers (client to server, server to client): each pass its own state."""
        def copy(epochs: list[Epoch]) -> list[Epoch]:
            return [Epoch(e.chacha, e.key, e.iv, e.tls13, e.secret, e.sha384)
                    for e in epochs]
        return (TlsWalker(RecordOpener(copy(self.client), self.tls13)),
                TlsWalker(RecordOpener(copy(self.server), self.tls13)))


TLS13_LABELS = (("CLIENT_HANDSHAKE_TRAFFIC_SECRET", "CLIENT_TRAFFIC_SECRET_0"),
                ("SERVER_HANDSHAKE_TRAFFIC_SECRET", "SERVER_TRAFFIC_SECRET_0"))


def tls_keys(keylog: KeyLog, client_random: bytes, server_random: bytes | None,
             suite: int, version: str | None) -> TlsKeys | None:
    """The record keys of the connection whose ClientHello carried client_random, from
    the key log's TLS 1.3 traffic secrets or its TLS 1.2 master secret; None without
    them or for a suite not opened here."""
    if suite in TLS13_SUITES and version in (None, "TLS 1.3"):
        sides = [[keylog.secrets[(label, client_random)] for label in labels
                  if (label, client_random) in keylog.secrets] for labels in TLS13_LABELS]
        if not all(sides):
            return None
        epochs = [[Epoch.tls13_secret(s, suite) for s in side] for side in sides]
        return TlsKeys(epochs[0], epochs[1], True, f"TLS 1.3, {SUITE_NAMES[suite]}",
                       fingerprint(b"".join(sides[0] + sides[1])))
    master = keylog.master_secret(client_random)
    if suite not in TLS12_SUITES or master is None or server_random is None:
        return None
    chacha, key_len, sha384 = TLS12_SUITES[suite]
    iv_len = 12 if chacha else 4  # RFC 7905 section 2; RFC 5288 section 3
    block = prf(master, b"key expansion", server_random + client_random,
                2 * (key_len + iv_len), sha384)  # RFC 5246 section 6.3, no MAC keys
    keys = block[:key_len], block[key_len:2 * key_len]
    ivs = block[2 * key_len:2 * key_len + iv_len], block[2 * key_len + iv_len:]
    return TlsKeys([Epoch(chacha, keys[0], ivs[0], False)],
                   [Epoch(chacha, keys[1], ivs[1], False)], False,
                   f"{version or 'TLS 1.2'}, cipher suite 0x{suite:04x}", fingerprint(master))
