"""NSS key log files (SSLKEYLOGFILE) and pcapng Decryption Secrets Blocks.

Lines are `LABEL <client_random hex> <secret hex>`; CLIENT_RANDOM carries a (D)TLS 1.2
master secret, the TLS 1.3 labels (EXPORTER_SECRET among them) the 1.3 secrets. Malformed
lines are counted and named by line number, never echoed: they may hold key material.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path

from flowscan.errors import UsageError

# The secret is whole bytes: an even number of hex digits. An odd count matched here once
# and then failed bytes.fromhex, aborting the scan; now it is a malformed line like any other.
LINE = re.compile(r"([A-Z_0-9]+) ([0-9a-fA-F]{64}) ((?:[0-9a-fA-F]{2}){1,128})")


@dataclass
class KeyLog:
    # (label, client random) -> secret
    secrets: dict[tuple[str, bytes], bytes] = field(default_factory=dict, repr=False)
    sources: list[str] = field(default_factory=list)
    malformed: list[str] = field(default_factory=list)  # "source line N", never the content

    def add_text(self, text: str, source: str) -> None:
        self.sources.append(source)
        # Lines end at LF (CRLF too, the CR stripped below), so numbers match an editor's:
        # str.splitlines would also split at form feeds and other separators.
        for number, raw in enumerate(text.split("\n"), 1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            match = LINE.fullmatch(line)
            if match is None:
                self.malformed.append(f"{source} line {number}")
                continue
            label, random, secret = match.groups()
            self.secrets[(label, bytes.fromhex(random))] = bytes.fromhex(secret)

    def add_file(self, path: str) -> None:
        try:
            text = Path(path).read_text(encoding="ascii", errors="replace")
        except OSError as exc:
            raise UsageError(f"{path}: cannot read key log: {exc.strerror}") from None
        self.add_text(text, path)

    def master_secret(self, client_random: bytes) -> bytes | None:
        return self.secrets.get(("CLIENT_RANDOM", client_random))

    def exporter_secret(self, client_random: bytes) -> bytes | None:
        """The (D)TLS 1.3 exporter_master_secret (RFC 8446 section 7.1)."""
        return self.secrets.get(("EXPORTER_SECRET", client_random))

    def __len__(self) -> int:
        return len(self.secrets)


def fingerprint(secret: bytes) -> str:
    """How reports name a key: a short SHA-256, never the key."""
    return hashlib.sha256(secret).hexdigest()[:16]
