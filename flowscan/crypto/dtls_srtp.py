"""SRTP keys from a DTLS 1.2 handshake's master secret (RFC 5764 section 4.2).

The keying material is the TLS exporter (RFC 5705) with label "EXTRACTOR-dtls_srtp" over
client_random + server_random: TLS 1.2's PRF (RFC 5246 section 5) with the cipher suite's
hash. It splits into client and server write keys, then client and server write salts.
"""

from __future__ import annotations

import hashlib
import hmac

from flowscan.crypto.srtp import PROFILES, SrtpContext

# Cipher suites whose PRF hash is SHA-384 (RFC 5289); the others used by DTLS-SRTP use SHA-256.
SHA384_SUITES = {0xC02C, 0xC030, 0xC024, 0xC028, 0x009F, 0x00A3, 0xC0AD, 0xC0AF}
LABEL = b"EXTRACTOR-dtls_srtp"


def prf(secret: bytes, label: bytes, seed: bytes, length: int, sha384: bool = False) -> bytes:
    """P_hash(secret, label + seed), RFC 5246 section 5."""
    digest = hashlib.sha384 if sha384 else hashlib.sha256
    seed = label + seed
    out = b""
    a = seed
    while len(out) < length:
        a = hmac.new(secret, a, digest).digest()
        out += hmac.new(secret, a + seed, digest).digest()
    return out[:length]


def srtp_contexts(master_secret: bytes, client_random: bytes, server_random: bytes,
                  profile_name: str, cipher_suite: int) -> tuple[SrtpContext, SrtpContext]:
    """(what the DTLS client sends with, what the DTLS server sends with)."""
    profile = PROFILES[profile_name]
    k, s = profile.key_len, profile.salt_len
    material = prf(master_secret, LABEL, client_random + server_random, 2 * (k + s),
                   cipher_suite in SHA384_SUITES)
    client_key, server_key = material[:k], material[k:2 * k]
    client_salt, server_salt = material[2 * k:2 * k + s], material[2 * k + s:]
    return (SrtpContext(profile, client_key, client_salt),
            SrtpContext(profile, server_key, server_salt))
