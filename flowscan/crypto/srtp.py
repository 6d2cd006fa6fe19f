"""SRTP and SRTCP decryption with authentication (RFC 3711; AES-GCM per RFC 7714).

Every packet's tag is verified: a verified tag proves the key is the right one, and a
failure is counted, never ignored. Key material stays in these objects (repr hides it).
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM


@dataclass(frozen=True)
class Profile:
    name: str
    aead: bool
    key_len: int
    salt_len: int
    tag_len: int


PROFILES = {p.name: p for p in (
    Profile("SRTP_AES128_CM_HMAC_SHA1_80", False, 16, 14, 10),
    Profile("SRTP_AES128_CM_HMAC_SHA1_32", False, 16, 14, 4),
    Profile("SRTP_AEAD_AES_128_GCM", True, 16, 12, 16),
    Profile("SRTP_AEAD_AES_256_GCM", True, 32, 12, 16),
)}
# SDES crypto suite names (RFC 4568 section 6.2) -> the same profiles.
SDES_SUITES = {"AES_CM_128_HMAC_SHA1_80": "SRTP_AES128_CM_HMAC_SHA1_80",
               "AES_CM_128_HMAC_SHA1_32": "SRTP_AES128_CM_HMAC_SHA1_32",
               "AEAD_AES_128_GCM": "SRTP_AEAD_AES_128_GCM",
               "AEAD_AES_256_GCM": "SRTP_AEAD_AES_256_GCM"}


def _aes_ctr(key: bytes, iv: int, length: int) -> bytes:
    encryptor = Cipher(algorithms.AES(key), modes.CTR(iv.to_bytes(16, "big"))).encryptor()
    return encryptor.update(bytes(length)) + encryptor.finalize()


class _AesCounter:
    """AES in counter mode (RFC 3711 section 4.1.1) with one keyed context for all packets:
    each packet only resets the counter block, which is most of the per-packet cost saved."""

    def __init__(self, key: bytes) -> None:
        self._ctx = Cipher(algorithms.AES(key), modes.CTR(bytes(16))).decryptor()

    def xor(self, iv: int, data: bytes | memoryview) -> bytes:
        self._ctx.reset_nonce(iv.to_bytes(16, "big"))
        return self._ctx.update(data)


class _HmacSha1:
    """HMAC-SHA1 (RFC 2104) as two keyed SHA-1 states, copied per packet."""

    def __init__(self, key: bytes) -> None:
        block = key.ljust(64, b"\0")
        self._inner = hashlib.sha1(bytes(b ^ 0x36 for b in block))
        self._outer = hashlib.sha1(bytes(b ^ 0x5C for b in block))

    def verify(self, tag: bytes | memoryview, *parts: bytes | memoryview) -> bool:
        inner = self._inner.copy()
        for part in parts:
            inner.update(part)
        outer = self._outer.copy()
        outer.update(inner.digest())
        return hmac.compare_digest(outer.digest()[:len(tag)], tag)


def kdf(master_key: bytes, master_salt: bytes, label: int, length: int) -> bytes:
    """The AES-CM key derivation of RFC 3711 section 4.3 with a key derivation rate of 0:
    x = (label || r) XOR master_salt, IV = x * 2^16. A 96-bit salt (RFC 7714 section 11) is
    taken as the high bits of the 112-bit field."""
    salt = int.from_bytes(master_salt.ljust(14, b"\0"), "big")
    x = salt ^ (label << 48)
    return _aes_ctr(master_key, x << 16, length)


@dataclass
class SessionKeys:
    enc: bytes = field(repr=False)
    auth: bytes = field(repr=False)
    salt: bytes = field(repr=False)


def session_keys(profile: Profile, master_key: bytes, master_salt: bytes, rtcp: bool
                 ) -> SessionKeys:
    base = 3 if rtcp else 0  # labels 0-2 for SRTP, 3-5 for SRTCP (RFC 3711 section 4.3.2)
    return SessionKeys(kdf(master_key, master_salt, base, profile.key_len),
                       b"" if profile.aead else kdf(master_key, master_salt, base + 1, 20),
                       kdf(master_key, master_salt, base + 2, profile.salt_len))


def _rtp_header_length(packet: bytes) -> int | None:
    """Fixed header, CSRCs and header extension (RFC 3550 section 5.1 and 5.3.1)."""
    if len(packet) < 12 or packet[0] >> 6 != 2:
        return None
    hlen = 12 + 4 * (packet[0] & 0x0F)
    if packet[0] & 0x10:
        if len(packet) < hlen + 4:
            return None
        hlen += 4 + 4 * ((packet[hlen + 2] << 8) | packet[hlen + 3])
    return hlen if hlen <= len(packet) else None


class _Keyed:
    """What one master key gives: the SRTP and SRTCP session keys (RFC 3711 section 4.3),
    made once into the primitives each packet uses."""

    def __init__(self, profile: Profile, master_key: bytes, master_salt: bytes) -> None:
        rtp = session_keys(profile, master_key, master_salt, rtcp=False)
        rtcp = session_keys(profile, master_key, master_salt, rtcp=True)
        self.rtp_salt = int.from_bytes(rtp.salt, "big")
        self.rtcp_salt = int.from_bytes(rtcp.salt, "big")
        if profile.aead:
            self.rtp_gcm, self.rtcp_gcm = AESGCM(rtp.enc), AESGCM(rtcp.enc)
        else:
            self.rtp_ctr, self.rtcp_ctr = _AesCounter(rtp.enc), _AesCounter(rtcp.enc)
            self.rtp_mac, self.rtcp_mac = _HmacSha1(rtp.auth), _HmacSha1(rtcp.auth)


class SrtpContext:
    """One direction of one SRTP session: session keys, and per-SSRC rollover counters.

    Several master keys may protect one session, each packet naming its own by the master
    key identifier it carries (RFC 3711 section 3.1; SDES lists them, RFC 4568 section
    6.1); the rollover counters are the session's, whichever key a packet used."""

    def __init__(self, profile: Profile, master_key: bytes, master_salt: bytes,
                 mki: bytes = b"", more: tuple[tuple[bytes, bytes, bytes], ...] = ()) -> None:
        self.profile = profile
        # The master key identifier each packet carries when the key was signalled with one
        # (RFC 3711 section 3.1): before the tag with HMAC-SHA1, last with AES-GCM.
        self.mki = mki
        self._first = _Keyed(profile, master_key, master_salt)
        self._by_mki = {mki: self._first}
        for key, salt, other in more if mki else ():  # keys are told apart only by MKI
            if len(other) == len(mki):
                self._by_mki.setdefault(other, _Keyed(profile, key, salt))
        self._state: dict[int, tuple[int, int]] = {}  # ssrc -> (roc, highest seq)
        self.decrypted = 0
        self.failed = 0
        self.fingerprint = hashlib.sha256(master_key + master_salt).hexdigest()[:16]

    def __repr__(self) -> str:
        return f"SrtpContext({self.profile.name}, key sha256 {self.fingerprint})"

    @staticmethod
    def _guess_roc(state: tuple[int, int] | None, seq: int) -> int:
        """RFC 3711 section 3.3.1 and appendix A."""
        if state is None:
            return 0
        roc, s_l = state
        if s_l < 32768:
            return roc - 1 if seq - s_l > 32768 and roc > 0 else roc
        return roc + 1 if s_l - 32768 > seq else roc

    def _select(self, packet: bytes, tag_len: int) -> tuple[bytes, _Keyed | None]:
        """The packet laid out as if it had no MKI, and the master key its MKI names (None,
        a failure counted, for an MKI of no key given). The MKI sits before the HMAC-SHA1
        tag (RFC 3711 3.1, 3.4), or last with AES-GCM (RFC 7714 8.1, 9.1)."""
        m = len(self.mki)
        if not m:
            return packet, self._first
        at = len(packet) - m if self.profile.aead else len(packet) - tag_len - m
        keyed = self._by_mki.get(packet[at:at + m])
        if keyed is None:
            self.failed += 1
        return packet[:at] + packet[at + m:], keyed

    def unprotect_rtp(self, packet: bytes) -> bytes | None:
        """The RTP packet in the clear, or None if the tag does not verify."""
        hlen = _rtp_header_length(packet)
        p = self.profile
        if hlen is None or len(packet) < hlen + p.tag_len + len(self.mki):
            self.failed += 1
            return None
        packet, keyed = self._select(packet, p.tag_len)
        if keyed is None:
            return None
        seq, ssrc = (packet[2] << 8) | packet[3], int.from_bytes(packet[8:12], "big")
        state = self._state.get(ssrc)
        roc = self._guess_roc(state, seq)
        if p.aead:  # RFC 7714 section 8: IV = (0x0000 || SSRC || ROC || SEQ) XOR salt
            iv = ((ssrc << 48) | (roc << 16) | seq) ^ keyed.rtp_salt
            try:
                plain = keyed.rtp_gcm.decrypt(iv.to_bytes(12, "big"), packet[hlen:],
                                              packet[:hlen])
            except InvalidTag:
                self.failed += 1
                return None
        else:  # RFC 3711 sections 4.1.1 and 4.2: HMAC-SHA1 over packet || ROC, then AES-CM
            view = memoryview(packet)
            end = len(packet) - p.tag_len
            if not keyed.rtp_mac.verify(view[end:], view[:end], roc.to_bytes(4, "big")):
                self.failed += 1
                return None
            index = (roc << 16) | seq
            iv = (keyed.rtp_salt << 16) ^ (ssrc << 64) ^ (index << 16)
            plain = keyed.rtp_ctr.xor(iv, view[hlen:end])
        if state is None or (roc, seq) > state:  # the highest index seen so far
            self._state[ssrc] = (roc, seq)
        self.decrypted += 1
        return packet[:hlen] + plain

    def unprotect_rtcp(self, packet: bytes) -> bytes | None:
        """SRTCP (RFC 3711 section 3.4; RFC 7714 section 9): the compound in the clear."""
        p = self.profile
        # SRTCP's tag is 80 bits for both HMAC-SHA1 profiles (RFC 5764 section 4.1.2).
        tag_len = p.tag_len if p.aead else 10
        if len(packet) < 8 + 4 + tag_len + len(self.mki):
            self.failed += 1
            return None
        packet, keyed = self._select(packet, tag_len)  # SRTCP's MKI follows E and index
        if keyed is None:
            return None
        ssrc = int.from_bytes(packet[4:8], "big")
        if p.aead:
            trailer = packet[-4:]
            index = int.from_bytes(trailer, "big") & 0x7FFFFFFF
            iv = ((ssrc << 48) | index) ^ keyed.rtcp_salt
            try:
                plain = keyed.rtcp_gcm.decrypt(iv.to_bytes(12, "big"), packet[8:-4],
                                              packet[:8] + trailer)
            except InvalidTag:
                self.failed += 1
                return None
        else:
            body, tag = packet[:-tag_len], packet[-tag_len:]
            if not keyed.rtcp_mac.verify(tag, body):
                self.failed += 1
                return None
            trailer = body[-4:]
            word = int.from_bytes(trailer, "big")
            encrypted, index = word >> 31, word & 0x7FFFFFFF
            if not encrypted:
                self.decrypted += 1
                return body[:-4]
            iv = (keyed.rtcp_salt << 16) ^ (ssrc << 64) ^ (index << 16)
            plain = keyed.rtcp_ctr.xor(iv, body[8:-4])
        self.decrypted += 1
        return packet[:8] + plain
