"""SFrame (RFC 9605): the end-to-end layer that participants put on each media frame.

Header (section 4.3): a config byte X|K(3)|Y|C(3), then the key ID and counter fields; a
value under 8 fits in K or C, a larger one is written in K+1 or C+1 big-endian bytes.
Keys (section 4.4.2): sframe_secret = HKDF-Extract("", base_key); sframe_key and
sframe_salt are HKDF-Expand(sframe_secret, "SFrame 1.0 Secret key "/"... salt " + KID (8
bytes) + cipher suite (2 bytes), Nk/Nn). Encryption (section 4.4.3): nonce = salt XOR CTR,
AAD = header + metadata. Cipher suite 0x0004: AES_128_GCM_SHA256_128.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass, field

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDFExpand

AES_128_GCM_SHA256_128 = 0x0004
KEY_SIZE, NONCE_SIZE, TAG_SIZE = 16, 12, 16


def _minimal(value: int) -> bytes:
    return value.to_bytes(max(1, (value.bit_length() + 7) // 8), "big")


def encode_header(kid: int, ctr: int) -> bytes:
    config = 0
    tail = b""
    if kid < 8:
        config |= kid << 4
    else:
        kid_bytes = _minimal(kid)
        config |= 0x80 | (len(kid_bytes) - 1) << 4
        tail += kid_bytes
    if ctr < 8:
        config |= ctr
    else:
        ctr_bytes = _minimal(ctr)
        config |= 0x08 | (len(ctr_bytes) - 1)
        tail += ctr_bytes
    return bytes([config]) + tail


def parse_header(data: bytes) -> tuple[int, int, int] | None:
    """(key ID, counter, header length), or None if data is too short."""
    if not data:
        return None
    config = data[0]
    pos = 1
    if config & 0x80:
        n = ((config >> 4) & 0x07) + 1
        if len(data) < pos + n:
            return None
        kid = int.from_bytes(data[pos:pos + n], "big")
        pos += n
    else:
        kid = (config >> 4) & 0x07
    if config & 0x08:
        n = (config & 0x07) + 1
        if len(data) < pos + n:
            return None
        ctr = int.from_bytes(data[pos:pos + n], "big")
        pos += n
    else:
        ctr = config & 0x07
    return kid, ctr, pos


@dataclass(frozen=True)
class SframeKey:
    key: bytes = field(repr=False)
    salt: bytes = field(repr=False)


def derive(base_key: bytes, kid: int, suite: int = AES_128_GCM_SHA256_128) -> SframeKey:
    secret = hmac.new(b"", base_key, hashlib.sha256).digest()  # HKDF-Extract("", base_key)
    tail = kid.to_bytes(8, "big") + suite.to_bytes(2, "big")
    key = HKDFExpand(hashes.SHA256(), KEY_SIZE, b"SFrame 1.0 Secret key " + tail).derive(secret)
    salt = HKDFExpand(hashes.SHA256(), NONCE_SIZE, b"SFrame 1.0 Secret salt " + tail).derive(
        secret)
    return SframeKey(key, salt)


def _nonce(salt: bytes, ctr: int) -> bytes:
    return (int.from_bytes(salt, "big") ^ ctr).to_bytes(NONCE_SIZE, "big")


def protect(base_key: bytes, kid: int, ctr: int, plaintext: bytes, metadata: bytes = b""
            ) -> bytes:
    header = encode_header(kid, ctr)
    k = derive(base_key, kid)
    return header + AESGCM(k.key).encrypt(_nonce(k.salt, ctr), plaintext, header + metadata)


def unprotect(base_key: bytes, data: bytes, metadata: bytes = b"") -> bytes | None:
    parsed = parse_header(data)
    if parsed is None:
        return None
    kid, ctr, length = parsed
    k = derive(base_key, kid)
    try:
        return AESGCM(k.key).decrypt(_nonce(k.salt, ctr), data[length:],
                                     data[:length] + metadata)
    except Exception:  # noqa: BLE001 - a wrong key or a damaged frame: not readable
        return None
