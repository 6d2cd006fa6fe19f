"""The lab's address rewrite inside TURN over TLS (flowscan/lab/tls_reseal.py): RFC 8448
section 3's TLS 1.3 connection carrying TURN messages that name the lab's private
addresses, re-sealed with the public ones; and a record that does not verify, left alone."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import struct
import zlib
from pathlib import Path

from test_tls_open import (
    CLIENT_FINISHED,
    CLIENT_HELLO,
    CLIENT_RANDOM,
    SECRETS,
    SERVER_HANDSHAKE,
    SERVER_HELLO,
    SERVER_TICKET,
    channel_data,
    rfc8448_keylog,
    rtp_packet,
    seal13,
)

from flowscan.crypto.keylog import KeyLog
from flowscan.crypto.tls_records import Epoch, tls_keys
from flowscan.lab.rewrite import long_term_key, rewrite_capture, rewrite_turn_stream
from flowscan.lab.tls_reseal import reseal_connection
from flowscan.protocols import framing

COOKIE = b"\x21\x12\xa4\x42"
MAPPING = {"10.77.0.1": "81.2.69.161", "10.77.0.2": "24.114.20.15",
           "10.77.0.3": "78.46.100.21"}
TURN_KEY = long_term_key("lab", "lab.example", "lab-secret")
HEADER = 5  # TLS record header (RFC 8446 section 5.1)


def xor_address(atype: int, address: str, port: int) -> bytes:
    """An XOR-*-ADDRESS attribute (RFC 8489 section 14.2), IPv4."""
    raw = ipaddress.IPv4Address(address).packed
    value = b"\x00\x01" + (port ^ 0x2112).to_bytes(2, "big") + bytes(
        a ^ b for a, b in zip(raw, COOKIE, strict=True))
    return struct.pack(">HH", atype, len(value)) + value


def stun(mtype: int, transaction: bytes, attributes: bytes) -> bytes:
    """A STUN message with MESSAGE-INTEGRITY (RFC 8489 section 14.5, the long-term key)
    and FINGERPRINT (section 14.7) after its attributes."""
    head = struct.pack(">HH", mtype, len(attributes) + 24) + COOKIE + transaction
    mac = hmac.new(TURN_KEY, head + attributes, hashlib.sha1).digest()
    body = attributes + struct.pack(">HH", 0x0008, 20) + mac
    head = struct.pack(">HH", mtype, len(body) + 8) + COOKIE + transaction
    crc = (zlib.crc32(head + body) ^ 0x5354554E) & 0xFFFFFFFF
    return head + body + struct.pack(">HHI", 0x8028, 4, crc)


def addresses(message: bytes) -> set[str]:
    out = set()
    pos = 20
    while pos + 4 <= len(message):
        atype, alen = struct.unpack_from(">HH", message, pos)
        if atype in (0x0012, 0x0016, 0x0020):
            raw = message[pos + 8:pos + 12]
            out.add(str(ipaddress.IPv4Address(bytes(a ^ b for a, b in zip(raw, COOKIE,
                                                                             strict=True)))))
        pos += 4 + alen + (-alen % 4)
    return out


def verifies(message: bytes) -> bool:
    """MESSAGE-INTEGRITY with the TURN key, and FINGERPRINT, as RFC 8489 14.5 and 14.7."""
    at = len(message) - 8 - 24
    head = bytearray(message[:at])
    head[2:4] = (at + 24 - 20).to_bytes(2, "big")
    mac = hmac.new(TURN_KEY, bytes(head), hashlib.sha1).digest()
    crc = (zlib.crc32(message[:-8]) ^ 0x5354554E) & 0xFFFFFFFF
    return mac == message[at + 4:at + 24] and crc.to_bytes(4, "big") == message[-4:]


PERMISSION = stun(0x0008, bytes(range(12)), xor_address(0x0012, "10.77.0.2", 50000))
BIND = stun(0x0009, bytes(range(1, 13)),
            b"\x00\x0c\x00\x04\x40\x00\x00\x00" + xor_address(0x0012, "10.77.0.2", 50000))
ALLOCATED = stun(0x0103, bytes(range(2, 14)), xor_address(0x0016, "10.77.0.3", 49160)
                 + xor_address(0x0020, "10.77.0.1", 51688))
MEDIA = channel_data(rtp_packet(7))


def connection() -> tuple[bytes, bytes, list[int], list[int]]:
    """RFC 8448 section 3's connection, then TURN inside it under its traffic keys. The
    client's CreatePermission is split over two records (the split falls inside the
    peer's address), a ChannelBind shares a record with ChannelData; the server answers
    an Allocate. Also where each application record starts."""
    client = Epoch.tls13_secret(bytes.fromhex(SECRETS["CLIENT_TRAFFIC_SECRET_0"]), 0x1301)
    server = Epoch.tls13_secret(bytes.fromhex(SECRETS["SERVER_TRAFFIC_SECRET_0"]), 0x1301)
    server.seq = 1  # after the ticket
    to_server = [PERMISSION[:30], PERMISSION[30:] + MEDIA, MEDIA + BIND, MEDIA]
    to_client = [ALLOCATED, MEDIA]
    head = CLIENT_HELLO + CLIENT_FINISHED
    records = [seal13(client, data, padding=n * 3) for n, data in enumerate(to_server)]
    starts = [len(head) + sum(map(len, records[:n])) for n in range(len(records))]
    back_head = SERVER_HELLO + SERVER_HANDSHAKE + SERVER_TICKET
    back = [seal13(server, data, padding=5) for data in to_client]
    back_starts = [len(back_head) + sum(map(len, back[:n])) for n in range(len(back))]
    return head + b"".join(records), back_head + b"".join(back), starts, back_starts


def edit(data: bytearray) -> None:
    rewrite_turn_stream(data, MAPPING, [TURN_KEY])


def application_data(client: bytes, server: bytes) -> tuple[bytes, bytes, int]:
    """Each direction's application data opened afresh, and how many records failed."""
    keys = tls_keys(rfc8448_keylog(), CLIENT_RANDOM, None, 0x1301, "TLS 1.3")
    assert keys is not None
    to_server, to_client = keys.walkers()
    sent = b"".join(to_server.records.feed(client))
    back = b"".join(to_client.records.feed(server))
    return sent, back, to_server.records.failed + to_client.records.failed


def stun_messages(data: bytes) -> list[bytes]:
    out, pos = [], 0
    while isinstance(frame := framing.frame_at(data, pos, framing.TURN), framing.Frame):
        if frame.kind == "stun":
            out.append(data[frame.start:frame.end])
        pos = frame.end
    return out


def test_turn_inside_tls_resealed_with_public_addresses() -> None:
    """Every record still verifies under the same keys after the re-seal, the TURN
    messages inside name the public addresses and their MESSAGE-INTEGRITY and FINGERPRINT
    verify, every length and record header is as it was, and records with nothing to
    rewrite are byte for byte as they were."""
    client, server, starts, back_starts = connection()
    new_client, new_server = bytearray(client), bytearray(server)
    sides = reseal_connection(new_client, new_server, rfc8448_keylog(), edit)
    assert sides is not None
    (to_server, to_client) = sides
    # Finished and four records; the server's handshake record, ticket and two records.
    assert (to_server.opened, to_server.resealed, to_server.left) == (5, 3, 0)
    assert (to_client.opened, to_client.resealed, to_client.left) == (4, 1, 0)
    assert (len(new_client), len(new_server)) == (len(client), len(server))
    for old, new, at in ((client, new_client, starts), (server, new_server, back_starts)):
        assert [new[a:a + HEADER] for a in at] == [old[a:a + HEADER] for a in at]
    assert new_client[:starts[0]] == client[:starts[0]]  # hello and Finished untouched
    assert new_client[starts[3]:] == client[starts[3]:]  # ChannelData alone: untouched
    assert new_server[back_starts[1]:] == server[back_starts[1]:]
    sent, back, failed = application_data(bytes(new_client), bytes(new_server))
    assert failed == 0
    before = application_data(client, server)
    assert (len(sent), len(back)) == (len(before[0]), len(before[1]))
    messages = stun_messages(sent) + stun_messages(back)
    assert [m[:2] for m in messages] == [b"\x00\x08", b"\x00\x09", b"\x01\x03"]
    assert all(verifies(m) for m in messages)
    assert [addresses(m) for m in messages] == [
        {"24.114.20.15"}, {"24.114.20.15"}, {"78.46.100.21", "81.2.69.161"}]
    assert [addresses(m) for m in stun_messages(before[0]) + stun_messages(before[1])] == [
        {"10.77.0.2"}, {"10.77.0.2"}, {"10.77.0.3", "10.77.0.1"}]


def test_a_record_that_does_not_verify_is_left_as_captured() -> None:
    """A damaged tag in the record holding the second half of the CreatePermission: that
    record and those after it are left exactly as captured, and the count says so; the
    first half, whose message cannot be completed, is not touched either."""
    client, server, starts, _ = connection()
    damaged = bytearray(client)
    damaged[starts[2] - 1] ^= 1  # the last tag byte of the second application record
    new_client, new_server = bytearray(damaged), bytearray(server)
    sides = reseal_connection(new_client, new_server, rfc8448_keylog(), edit)
    assert sides is not None
    assert (sides[0].opened, sides[0].resealed, sides[0].left) == (2, 0, 3)
    assert "3 left as captured (one that did not verify" in sides[0].describe()
    assert new_client == damaged
    assert sides[1].resealed == 1  # the other direction is rewritten as before


def test_records_after_a_hole_are_left_as_captured() -> None:
    """A record the capture lost (its bytes zeros in the rebuilt stream): the records after
    it still open (the opener finds them again by sequence number), but their application
    data cannot be put in order with what came before, so they are left as captured."""
    client, server, starts, _ = connection()
    holed = bytearray(client)
    holed[starts[1]:starts[2]] = bytes(starts[2] - starts[1])
    new_client = bytearray(holed)
    sides = reseal_connection(new_client, bytearray(server), rfc8448_keylog(), edit)
    assert sides is not None
    assert (sides[0].opened, sides[0].resealed, sides[0].left) == (2, 0, 2)
    assert new_client == holed


def test_without_the_connection_s_keys_nothing_changes() -> None:
    client, server, _, _ = connection()
    other = KeyLog()
    other.add_text("".join(f"{label} {bytes(32).hex()} {secret}\n"
                           for label, secret in SECRETS.items()), "another connection")
    new_client, new_server = bytearray(client), bytearray(server)
    assert reseal_connection(new_client, new_server, other, edit) is None
    assert (new_client, new_server) == (client, server)


def test_rewrite_capture_reseals_tls_and_keeps_tcp_sequence_numbers(tmp_path: Path) -> None:
    """The whole rewrite on a capture (scapy, as the lab runs it): the IP addresses mapped,
    each segment as long as it was, the TLS re-sealed and said so in words without keys."""
    from scapy.layers.inet import IP, TCP
    from scapy.utils import rdpcap
    from test_tcp_media import tcp_capture

    client, server, starts, back_starts = connection()
    segments = [(0, client[:starts[0]]), (1, server[:back_starts[0]])]
    segments += [(0, client[a:b]) for a, b in zip(starts, [*starts[1:], len(client)],
                                                  strict=True)]
    segments += [(1, server[back_starts[0]:])]
    src = tcp_capture(tmp_path / "raw.pcap", segments)
    sender = rdpcap(str(src))[0][IP].src
    mapping = {**MAPPING, sender: "81.2.69.161"}
    done = rewrite_capture(src, tmp_path / "out.pcap", mapping, [TURN_KEY], rfc8448_keylog())
    assert len(done.notes) == 2 and all("0 left as captured" in n for n in done.notes)
    assert "81.2.69.161" in done.notes[0] and sender not in " ".join(done.notes)
    assert not any(secret in " ".join(done.notes) for secret in SECRETS.values())
    before, after = rdpcap(str(src)), rdpcap(str(tmp_path / "out.pcap"))
    assert [(p[TCP].seq, len(p[TCP].payload)) for p in before] == [
        (p[TCP].seq, len(p[TCP].payload)) for p in after]
    assert {p[IP].src for p in after} == {"81.2.69.161", before[1][IP].src}
    changed = [i for i, (a, b) in enumerate(zip(before, after, strict=True))
               if bytes(a[TCP].payload) != bytes(b[TCP].payload)]
    assert len(changed) == 4  # three client records, the server's Allocate answer
