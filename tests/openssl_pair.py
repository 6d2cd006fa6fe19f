"""Two OpenSSL endpoints (pyOpenSSL) handshaking in memory: a self-signed certificate and the
loop that hands each flight over through the memory BIOs."""

from __future__ import annotations

import contextlib
import datetime
from typing import Any


def self_signed() -> tuple[Any, Any]:
    """An EC key and a self-signed certificate for it."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "flowscan lab")])
    start = datetime.datetime(2026, 1, 1)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(1).not_valid_before(start)
            .not_valid_after(start + datetime.timedelta(days=3650)).sign(key, hashes.SHA256()))
    return key, cert


def handshake(client: Any, server: Any, flights: int = 20) -> None:
    from OpenSSL import SSL

    for _ in range(flights):
        for a, b in ((client, server), (server, client)):
            with contextlib.suppress(SSL.WantReadError):
                a.do_handshake()
            with contextlib.suppress(SSL.WantReadError):
                while True:
                    b.bio_write(a.bio_read(65536))
