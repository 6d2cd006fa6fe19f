"""The report's vocabularies: the words a verdict is made of, each a StrEnum.

The JSON carries their values unchanged (schema flowscan.report/1 lists the same words;
tests/test_vocab.py holds the two together). An Encryption takes only these words: a
verdict nobody defined is an error where it is made, never a value that later stages
(findings, transfers, answers) would silently skip.
"""

from __future__ import annotations

from enum import StrEnum


class Verdict(StrEnum):
    """Who can read the media, from the most exposed to the best protected."""

    PLAINTEXT = "plaintext"  # no encryption
    KEYS_EXPOSED = "keys-exposed"  # encrypted, but the keys crossed the network in clear
    HOP_BY_HOP = "hop-by-hop"  # encrypted to the service's server, which can read it
    UNKNOWN = "unknown"  # the capture does not show how it is protected
    ENCRYPTED_UNVERIFIED = "encrypted-unverified"  # encrypted; who holds the keys unseen
    END_TO_END = "end-to-end"  # only the participants hold the keys


class Termination(StrEnum):
    """Where the media's encryption ends (who is at the other end of the keys)."""

    PEER = "peer"
    SERVER = "server"
    RELAY = "relay"
    UNKNOWN = "unknown"


class KeyExchange(StrEnum):
    DTLS_SRTP = "dtls-srtp"  # RFC 5764
    SDES = "sdes"  # RFC 4568, keys inside the SDP
    ZRTP = "zrtp"  # RFC 6189, in the media path between the endpoints
    PROPRIETARY = "proprietary"  # the service's own signalling
    NONE = "none"
    UNKNOWN = "unknown"


class Basis(StrEnum):
    OBSERVED = "observed"  # the wire alone
    DECRYPTED = "decrypted"  # with the keys, every authentication tag verified


class Confidence(StrEnum):
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"


# Encryption's fields and the vocabulary each takes.
ENCRYPTION_WORDS: dict[str, type[StrEnum]] = {
    "verdict": Verdict, "termination": Termination, "key_exchange": KeyExchange,
    "basis": Basis, "confidence": Confidence,
}
# Each field's words by their text, the member the text stands for: a word checked with
# one dictionary lookup (an Encryption is made and changed once per media flow).
ENCRYPTION_MEMBERS: dict[str, dict[str, StrEnum]] = {
    name: {member.value: member for member in vocabulary}
    for name, vocabulary in ENCRYPTION_WORDS.items()
}
