"""TLS handshake messages, shared by TLS over TCP, DTLS and QUIC's CRYPTO frames.

ClientHello and ServerHello per RFC 8446 section 4.1.2-4.1.3 (DTLS adds a cookie to the
ClientHello, RFC 6347 section 4.2.1), the extensions that matter here (server_name RFC 6066
section 3, ALPN RFC 7301, supported_versions RFC 8446 section 4.2.1, use_srtp RFC 5764
section 4.1.1), and Certificate (RFC 8446 section 4.4.2; TLS 1.2 RFC 5246 section 7.4.2).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from functools import lru_cache

from flowscan.protocols.cursor import Cursor, Truncated, u16_list

CLIENT_HELLO = 1
SERVER_HELLO = 2
CERTIFICATE = 11

EXT_SERVER_NAME = 0
EXT_USE_SRTP = 14
EXT_ALPN = 16
EXT_SUPPORTED_VERSIONS = 43

# RFC 5764 section 4.1.2 and RFC 7714 section 14.2.
SRTP_PROFILES = {
    0x0001: "SRTP_AES128_CM_HMAC_SHA1_80", 0x0002: "SRTP_AES128_CM_HMAC_SHA1_32",
    0x0005: "SRTP_NULL_HMAC_SHA1_80", 0x0006: "SRTP_NULL_HMAC_SHA1_32",
    0x0007: "SRTP_AEAD_AES_128_GCM", 0x0008: "SRTP_AEAD_AES_256_GCM",
}
VERSIONS = {0x0300: "SSL 3.0", 0x0301: "TLS 1.0", 0x0302: "TLS 1.1", 0x0303: "TLS 1.2",
            0x0304: "TLS 1.3", 0xFEFF: "DTLS 1.0", 0xFEFD: "DTLS 1.2", 0xFEFC: "DTLS 1.3"}


def version_name(code: int) -> str:
    return VERSIONS.get(code, f"0x{code:04x}")


@dataclass
class ClientHello:
    legacy_version: int
    random: bytes
    cipher_suites: list[int] = field(default_factory=list)
    extensions: list[int] = field(default_factory=list)
    sni: str | None = None
    alpn: list[str] = field(default_factory=list)
    supported_versions: list[int] = field(default_factory=list)
    srtp_profiles: list[int] = field(default_factory=list)
    srtp_mki: bytes = b""


@dataclass
class ServerHello:
    legacy_version: int
    random: bytes
    cipher_suite: int
    extensions: list[int] = field(default_factory=list)
    selected_version: int | None = None
    alpn: str | None = None
    srtp_profile: int | None = None
    srtp_mki: bytes = b""

    @property
    def version(self) -> int:
        return self.selected_version or self.legacy_version


@dataclass
class CertificateInfo:
    subject: str
    issuer: str
    sha256: str
    dns_names: list[str] = field(default_factory=list)
    not_before: str | None = None
    not_after: str | None = None


def parse_client_hello(body: bytes, *, dtls: bool = False) -> ClientHello | None:
    cur = Cursor(body)
    try:
        hello = ClientHello(cur.u16(), cur.take(32))
        cur.vector(1)  # legacy_session_id
        if dtls:
            cur.vector(1)  # cookie
        suites = cur.vector(2)
        hello.cipher_suites = u16_list(suites)
        cur.vector(1)  # legacy_compression_methods
        if cur.remaining >= 2:
            _client_extensions(hello, cur.sub(cur.u16()))
    except Truncated:
        return None
    return hello


def _client_extensions(hello: ClientHello, cur: Cursor) -> None:
    try:
        while cur.remaining >= 4:
            etype, value = cur.u16(), cur.vector(2)
            hello.extensions.append(etype)
            ext = Cursor(value)
            if etype == EXT_SERVER_NAME:
                names = ext.sub(ext.u16())
                while names.remaining >= 3:
                    kind, name = names.u8(), names.vector(2)
                    if kind == 0:
                        hello.sni = name.decode("ascii", "replace")
            elif etype == EXT_ALPN:
                protos = ext.sub(ext.u16())
                while protos.remaining:
                    hello.alpn.append(protos.vector(1).decode("ascii", "replace"))
            elif etype == EXT_SUPPORTED_VERSIONS:
                versions = ext.vector(1)
                hello.supported_versions = u16_list(versions)
            elif etype == EXT_USE_SRTP:
                profiles = ext.vector(2)
                hello.srtp_profiles = u16_list(profiles)
                hello.srtp_mki = ext.vector(1)  # RFC 5764 4.1.1: srtp_mki<0..255>
    except Truncated:
        pass


def parse_server_hello(body: bytes, *, dtls: bool = False) -> ServerHello | None:
    cur = Cursor(body)
    try:
        version, random = cur.u16(), cur.take(32)
        cur.vector(1)  # legacy_session_id_echo
        hello = ServerHello(version, random, cur.u16())
        cur.u8()  # legacy_compression_method
        if cur.remaining >= 2:
            exts = cur.sub(cur.u16())
            while exts.remaining >= 4:
                etype, value = exts.u16(), exts.vector(2)
                hello.extensions.append(etype)
                ext = Cursor(value)
                if etype == EXT_SUPPORTED_VERSIONS and len(value) == 2:
                    hello.selected_version = ext.u16()
                elif etype == EXT_ALPN:
                    ext.u16()
                    hello.alpn = ext.vector(1).decode("ascii", "replace")
                elif etype == EXT_USE_SRTP:
                    profiles = ext.vector(2)
                    if len(profiles) >= 2:
                        hello.srtp_profile = int.from_bytes(profiles[:2], "big")
                    hello.srtp_mki = ext.vector(1)
    except Truncated:
        return None
    return hello


def parse_certificates(body: bytes, *, tls13: bool = False) -> list[bytes]:
    """DER certificates of a Certificate message, leaf first."""
    cur = Cursor(body)
    out: list[bytes] = []
    try:
        if tls13:
            cur.vector(1)  # certificate_request_context
        chain = cur.sub(cur.u24())
        while chain.remaining >= 3:
            out.append(chain.vector(3))
            if tls13:
                chain.vector(2)  # per-certificate extensions
    except Truncated:
        pass
    return out


@lru_cache(maxsize=512)
def describe_certificate(der: bytes) -> CertificateInfo | None:
    """Subject, issuer, names and fingerprint; cached, as servers repeat their chains."""
    from cryptography import x509

    digest = hashlib.sha256(der).hexdigest()
    try:
        cert = x509.load_der_x509_certificate(der)
        subject = cert.subject.rfc4514_string()
        issuer = cert.issuer.rfc4514_string()
    except Exception:  # noqa: BLE001 - any malformed certificate is "not described"
        return None
    names: list[str] = []
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
        names = [str(n) for n in san.value.get_values_for_type(x509.DNSName)]
    except Exception:  # noqa: BLE001 - no or malformed SAN
        pass
    return CertificateInfo(subject, issuer, digest, names,
                           cert.not_valid_before_utc.isoformat(),
                           cert.not_valid_after_utc.isoformat())


def split_messages(stream: bytes, *, dtls: bool = False) -> list[tuple[int, bytes]]:
    """Whole handshake messages (type, body) at the start of a reassembled stream."""
    out: list[tuple[int, bytes]] = []
    cur = Cursor(stream)
    header_extra = 8 if dtls else 0  # message_seq, fragment_offset, fragment_length
    try:
        while cur.remaining >= 4:
            mtype, length = cur.u8(), cur.u24()
            cur.skip(header_extra)
            out.append((mtype, cur.take(length)))
    except Truncated:
        pass
    return out
