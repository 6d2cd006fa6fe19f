"""SRTP keys from a DTLS handshake's secrets (RFC 5764 section 4.2).

The keying material is the TLS exporter with label "EXTRACTOR-dtls_srtp" and no context,
split into client and server write keys, then client and server write salts. DTLS 1.2
computes it with the PRF over the master secret and both randoms (RFC 5705); DTLS 1.3 with
HKDF from the exporter secret (RFC 8446 section 7.5, with DTLS 1.3's label prefix).
"""

from __future__ import annotations

import hashlib
import hmac

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDFExpand

from flowscan.crypto.srtp import PROFILES, SrtpContext

# Cipher suites whose PRF hash is SHA-384 (RFC 5289); the others used by DTLS-SRTP use SHA-256.
SHA384_SUITES = {0xC02C, 0xC030, 0xC024, 0xC028, 0x009F, 0x00A3, 0xC0AD, 0xC0AF}
# TLS 1.3 suites with SHA-384 (RFC 8446 appendix B.4): TLS_AES_256_GCM_SHA384.
TLS13_SHA384_SUITES = {0x1302}
LABEL = b"EXTRACTOR-dtls_srtp"
# HKDF-Expand-Label's prefix: "tls13 " in TLS 1.3 (RFC 8446 section 7.1), "dtls13" in
# DTLS 1.3 (RFC 9147 section 5.9), which keeps the two protocols' keys apart.
DTLS13_PREFIX = b"dtls13"
TLS13_PREFIX = b"tls13 "


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


def hkdf_expand_label(secret: bytes, label: bytes, context: bytes, length: int,
                      algorithm: hashes.HashAlgorithm, prefix: bytes = DTLS13_PREFIX) -> bytes:
    """RFC 8446 section 7.1: HKDF-Expand with the HkdfLabel structure as info."""
    full = prefix + label
    info = (length.to_bytes(2, "big") + bytes([len(full)]) + full
            + bytes([len(context)]) + context)
    return HKDFExpand(algorithm, length, info).derive(secret)


def exporter13(exporter_secret: bytes, label: bytes, context: bytes, length: int,
               sha384: bool = False, prefix: bytes = DTLS13_PREFIX) -> bytes:
    """TLS-Exporter (RFC 8446 section 7.5): HKDF-Expand-Label(Derive-Secret(secret, label,
    ""), "exporter", Hash(context), length). No context and an empty one are the same."""
    algorithm: hashes.HashAlgorithm = hashes.SHA384() if sha384 else hashes.SHA256()
    empty = hashlib.new(algorithm.name, b"").digest()
    derived = hkdf_expand_label(exporter_secret, label, empty, algorithm.digest_size,
                                algorithm, prefix)
    return hkdf_expand_label(derived, b"exporter", hashlib.new(algorithm.name, context).digest(),
                             length, algorithm, prefix)


def _split(material: bytes, profile_name: str, mki: bytes) -> tuple[SrtpContext, SrtpContext]:
    """RFC 5764 section 4.2: client key, server key, client salt, server salt; both
    directions carry the MKI that use_srtp negotiated, if any (section 4.1.1)."""
    profile = PROFILES[profile_name]
    k, s = profile.key_len, profile.salt_len
    client_key, server_key = material[:k], material[k:2 * k]
    client_salt, server_salt = material[2 * k:2 * k + s], material[2 * k + s:2 * (k + s)]
    return (SrtpContext(profile, client_key, client_salt, mki),
            SrtpContext(profile, server_key, server_salt, mki))


def material_length(profile_name: str) -> int:
    profile = PROFILES[profile_name]
    return 2 * (profile.key_len + profile.salt_len)


def srtp_contexts(master_secret: bytes, client_random: bytes, server_random: bytes,
                  profile_name: str, cipher_suite: int, mki: bytes = b""
                  ) -> tuple[SrtpContext, SrtpContext]:
    """DTLS 1.2: (what the DTLS client sends with, what the DTLS server sends with)."""
    material = prf(master_secret, LABEL, client_random + server_random,
                   material_length(profile_name), cipher_suite in SHA384_SUITES)
    return _split(material, profile_name, mki)


def srtp_contexts13(exporter_secret: bytes, profile_name: str, cipher_suite: int,
                    mki: bytes = b"") -> tuple[SrtpContext, SrtpContext]:
    """DTLS 1.3: the same split, from the exporter secret the key log names."""
    material = exporter13(exporter_secret, LABEL, b"", material_length(profile_name),
                          cipher_suite in TLS13_SHA384_SUITES)
    return _split(material, profile_name, mki)
