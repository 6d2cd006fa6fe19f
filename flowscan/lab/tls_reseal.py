"""TURN over TLS given the scenario's public addresses too: each TLS record opened with the
scenario's key log, the TURN messages inside rewritten as over TCP, the record sealed again.

The lab records with private addresses and rewrites them (rewrite.py). Inside TLS, TURN's
XOR-PEER-ADDRESS, XOR-RELAYED-ADDRESS and XOR-MAPPED-ADDRESS would keep the private ones,
and a scan opening the TLS with the key log could not tie the peer to its public address.
The record keys come from the traffic secrets as flowscan derives them to read TLS
(crypto.tls_records: RFC 8446 section 7.3). A record keeps its header, which is the AEAD's
additional data (section 5.2), its length, and its nonce (section 5.3: the write IV xor the
record's sequence number): only the ciphertext and its tag change, so the capture's TCP
sequence numbers stay valid.

The application data of one direction is rewritten as one stream, so a STUN message split
over records, or several in one record, are handled alike. Not handled: a record that does
not verify under the keys is left as captured, and so is every record after it in that
direction (its sequence number, and where the framing resumes, are then unknown), as after
a hole in the capture; the count says how many. TLS 1.2's AEAD records would be sealed the
same way (crypto.tls_records opens them), but no lab scenario has one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from flowscan.crypto.keylog import KeyLog
from flowscan.crypto.tls_records import Opened, TlsWalker, tls_keys
from flowscan.protocols import hello as hs
from flowscan.protocols import tls

# Rewrites a direction's application data in place, keeping its length.
Edit = Callable[[bytearray], None]


@dataclass
class Resealed:
    """What the re-seal did to one direction's protected records."""

    opened: int = 0  # verified under the key log's keys
    resealed: int = 0  # of those, sealed again because their content changed
    left: int = 0  # left as captured: did not verify, or came after one that did not

    def describe(self) -> str:
        return (f"{self.opened} records opened, {self.resealed} sealed again, "
                f"{self.left} left as captured (one that did not verify with the key log, "
                f"or came after a hole, and those after it)")


def _unbroken(trail: list[Opened]) -> list[Opened]:
    """The records from the stream's start up to the first that did not verify, or that
    follows a hole (records lost show as a sequence number skipped, RFC 8446 section
    5.3): past that point the application data would be read out of order."""
    out: list[Opened] = []
    last: dict[int, int] = {}  # epoch -> sequence number of its last record
    for record in trail:
        if record.epoch is None or last.get(id(record.epoch), record.seq - 1) != record.seq - 1:
            break
        last[id(record.epoch)] = record.seq
        out.append(record)
    return out


def reseal_direction(stream: bytearray, walker: TlsWalker, edit: Edit) -> Resealed:
    """One direction's TLS byte stream (from its first record) with the application data
    edited and each changed record sealed again in place."""
    records = walker.records
    records.trail = []
    records.feed(bytes(stream))
    good = _unbroken(records.trail)
    result = Resealed(opened=len(good), left=len(records.trail) - len(good))
    data = bytearray(b"".join(r.content for r in good))
    edit(data)
    pos = 0
    for record in good:
        new = bytes(data[pos:pos + len(record.content)])
        pos += len(record.content)
        if new == record.content or record.epoch is None:
            continue
        header = bytes(stream[record.offset:record.offset + 5])
        end = record.offset + 5 + int.from_bytes(header[3:5], "big")
        body = bytes(stream[record.offset + 5:end])
        plain = record.epoch.open_plain(header, body, record.seq)
        if plain is None:  # it verified a moment ago: only a changed stream gets here
            result.left += 1
            continue
        # TLS 1.3's TLSInnerPlaintext (RFC 8446 section 5.2): the content, then its type
        # and zero padding, which stay; TLS 1.2's plaintext is the content.
        stream[record.offset + 5:end] = record.epoch.seal(
            header, body, record.seq, new + plain[len(record.content):])
        result.resealed += 1
    return result


def reseal_connection(client: bytearray, server: bytearray, keylog: KeyLog, edit: Edit
                      ) -> tuple[Resealed, Resealed] | None:
    """Both directions of a TLS connection (each from its first byte) re-sealed in place;
    None if the hellos do not show, or the key log does not hold the connection's keys."""
    client_hello = (tls.parse_stream(bytes(client)) or tls.TlsSide()).client_hello
    server_hello = (tls.parse_stream(bytes(server)) or tls.TlsSide()).server_hello
    if client_hello is None or server_hello is None:
        return None
    keys = tls_keys(keylog, client_hello.random, server_hello.random,
                    server_hello.cipher_suite, hs.version_name(server_hello.version))
    if keys is None:
        return None
    to_server, to_client = keys.walkers()
    return reseal_direction(client, to_server, edit), reseal_direction(server, to_client, edit)
