"""The lab's reference captures: their manifests against the bytes (tshark), flowscan's
observed verdicts against the manifests, and one WebRTC scenario regenerated end to end."""

from __future__ import annotations

import hashlib
import hmac
import importlib.util
import ipaddress
import json
import os
import re
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pytest

import flowscan
from flowscan.lab.netns import SUBNET
from flowscan.lab.rewrite import long_term_key
from flowscan.lab.scenarios import SCENARIOS, conversations
from flowscan.protocols import stun

LAB = Path(__file__).resolve().parent.parent / "captures" / "lab"
COMMITTED = sorted(p for p in LAB.iterdir() if (p / "manifest.json").exists()) if (
    LAB.is_dir()) else []
needs_tshark = pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark not installed")


# TLS_ECDHE_{RSA,ECDSA}_WITH_CHACHA20_POLY1305_SHA256 (RFC 7905 section 2)
CHACHA20_SUITES = {"0xcca8", "0xcca9"}


def tshark(capture: Path, display_filter: str, *fields: str, relayed: bool = False
           ) -> list[list[str]]:
    """Fields of the matching frames; relayed: with tshark's "STUN over TURN" heuristic,
    off by default, which dissects the STUN inside ChannelData and DATA attributes."""
    cmd = ["tshark", "-r", str(capture), "-Y", display_filter, "-T", "fields"]
    if relayed:
        cmd += ["--enable-heuristic", "stun_turn"]
    for field in fields:
        cmd += ["-e", field]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    return [line.split("\t") for line in out.splitlines()]


def dtls_records(capture: Path) -> list[tuple[str, int, int, int | None, str | None]]:
    """(source, content type, epoch, handshake type, ClientHello random) of every DTLS
    record: from tshark's DTLS fields, or, inside TURN ChannelData, which tshark 4.0 leaves
    undissected, from the bytes tshark extracts (record header: RFC 6347 section 4.1;
    handshake header 12 bytes, then version and random: section 4.2.2)."""
    out: list[tuple[str, int, int, int | None, str | None]] = []
    for src, ctypes, epochs, htypes, randoms in tshark(
            capture, "dtls", "ip.src", "dtls.record.content_type", "dtls.record.epoch",
            "dtls.handshake.type", "dtls.handshake.random"):
        first_h = int(htypes.split(",")[0]) if htypes else None
        random = randoms.replace(":", "") if first_h == 1 else None
        for ct, ep in zip(ctypes.split(","), epochs.split(","), strict=False):
            out.append((src, int(ct), int(ep), first_h if int(ep) == 0 else None, random))
    # Before a channel is bound, datagrams ride in Send and Data indications' DATA attribute
    # (RFC 8656 section 11), which tshark leaves undissected too.
    for src, data in tshark(capture, "(stun.channel || stun.att.type == 0x0013) && data",
                            "ip.src", "data.data"):
        for chunk in data.split(","):  # over TCP, a segment may carry several
            out += _records_in(src, bytes.fromhex(chunk.replace(":", "")))
    return out


def _records_in(src: str, raw: bytes) -> list[tuple[str, int, int, int | None, str | None]]:
    out: list[tuple[str, int, int, int | None, str | None]] = []
    pos = 0
    while pos + 13 <= len(raw) and 20 <= raw[pos] <= 63 and raw[pos + 1] == 0xFE:
        ctype, epoch = raw[pos], int.from_bytes(raw[pos + 3:pos + 5], "big")
        first_h = raw[pos + 13] if ctype == 22 and not epoch and pos + 13 < len(raw) else None
        random = raw[pos + 27:pos + 59].hex() if first_h == 1 else None
        out.append((src, ctype, epoch, first_h, random))
        pos += 13 + int.from_bytes(raw[pos + 11:pos + 13], "big")
    return out


def captures_of(folder: Path, manifest: dict[str, object]) -> list[tuple[Path, str, str]]:
    """(capture, manifest key of its flows, host it was taken at) for each capture point."""
    out = [(folder / "capture.pcapng", "flows", str(manifest["captured_at"]))]
    for key in sorted(manifest):
        if key.startswith("flows_at_"):
            host = key.removeprefix("flows_at_")
            out.append((folder / f"capture-{host}.pcapng", key, host))
    return out


def check_against_bytes(folder: Path) -> None:
    """What the manifest says is there, tshark finds there."""
    manifest = json.loads((folder / "manifest.json").read_text())
    assert sum(p.stat().st_size for p in folder.iterdir()) < 2_000_000
    for capture, key, at in captures_of(folder, manifest):
        check_capture(folder, manifest, capture, key, at)


def truth_protocols(manifest: dict) -> set[str]:  # type: ignore[type-arg]
    """The protocols the scenario's media runs, by its truth."""
    return {p for media in manifest["truth"]["media"] for p in media["protocols"]}


def is_webrtc(manifest: dict) -> bool:  # type: ignore[type-arg]
    """A WebRTC call by its truth (aiortc, or a browser through Janus), not by its name."""
    return any(m.get("app") == "webrtc" for m in manifest["truth"].get("media", []))


def check_stun_integrity(capture: Path, manifest: dict) -> None:  # type: ignore[type-arg]
    """Every MESSAGE-INTEGRITY in the rewritten capture, at every depth of TURN, verifies
    with a lab credential (RFC 8489 section 14.5): the address rewrite recomputed them."""
    messages = stun_at_every_depth(
        [bytes.fromhex(payload.replace(":", ""))
         for (payload,) in tshark(capture, "udp && stun", "udp.payload")]
        + tcp_turn_frames(capture))
    checked = sum(_integrity_verifies(data, lab_keys(manifest)) for data in messages)
    if "stun" in truth_protocols(manifest):
        assert checked, "ICE checks and TURN requests carry MESSAGE-INTEGRITY"


def lab_keys(manifest: dict) -> list[bytes]:  # type: ignore[type-arg]
    """The scenario's STUN credentials: ICE passwords (short-term, RFC 8489 section
    9.1.1) and the relay's long-term key (section 9.2.2)."""
    creds = manifest.get("stun_credentials", {})
    keys = [p.encode() for p in creds.get("ice_passwords", [])]
    if creds.get("turn"):
        keys.append(long_term_key(*creds["turn"]))
    return keys


def stun_at_every_depth(frames: list[bytes]) -> list[bytes]:
    """The STUN messages of these datagrams or TURN frames, and those they carry: in
    ChannelData (RFC 8656 section 12.4) and in a Send or Data indication's DATA attribute
    (sections 10-11), read with flowscan's STUN parser."""
    out: list[bytes] = []
    todo = list(frames)
    while todo:
        frame = todo.pop()
        channel = stun.parse_channel_data(frame)
        if channel is not None:
            todo.append(channel.payload)
            continue
        message = stun.parse(frame, exact=False)
        if message is None or message.classic:
            continue
        out.append(frame[:message.length])
        if message.data is not None:
            todo.append(message.data)
    return out


def private_addresses(messages: list[bytes]) -> set[str]:
    """Addresses from the lab's private network (netns.SUBNET, 10.77.0.0/24) that STUN
    messages name in their (XOR-)MAPPED, XOR-PEER and XOR-RELAYED attributes."""
    lab = ipaddress.ip_network(f"{SUBNET}.0/24")
    out = set()
    for data in messages:
        message = stun.parse(data, exact=False)
        assert message is not None
        for found in (message.mapped, message.xor_mapped, message.xor_peer,
                      message.xor_relayed):
            if found is not None and ipaddress.ip_address(found[0]) in lab:
                out.add(found[0])
    return out


def _integrity_verifies(data: bytes, keys: list[bytes]) -> bool:
    """True when the message has a MESSAGE-INTEGRITY and it verifies; an assertion error
    when it has one that does not."""
    pos = 20
    while pos + 4 <= len(data):
        atype, alen = struct.unpack_from(">HH", data, pos)
        if atype == 0x0008:
            head = bytearray(data[:pos])
            head[2:4] = (pos + 24 - 20).to_bytes(2, "big")
            mac = data[pos + 4:pos + 24]
            assert any(hmac.compare_digest(hmac.new(k, bytes(head), hashlib.sha1).digest(),
                                           mac) for k in keys), "integrity broken"
            return True
        pos += 4 + alen + (-alen % 4)
    return False


def tcp_turn_frames(capture: Path) -> list[bytes]:
    """The STUN and ChannelData messages of every TURN-over-TCP stream, from the byte
    streams tshark reassembles: STUN messages (20-byte header plus length) and ChannelData
    (4-byte header plus length, padded to four over TCP: RFC 8656 section 12.5) back to
    back."""
    streams = {row[0] for row in tshark(capture, "tcp.len > 0 && !tls", "tcp.stream")}
    out: list[bytes] = []
    for stream in sorted(streams):
        follow = subprocess.run(["tshark", "-r", str(capture), "-q", "-z",
                                 f"follow,tcp,raw,{stream}"], capture_output=True,
                                text=True, check=True).stdout.splitlines()
        sides: dict[bool, bytes] = {False: b"", True: b""}
        for line in follow:
            if re.fullmatch(r"\t?[0-9a-f]+", line):
                sides[line.startswith("\t")] += bytes.fromhex(line.strip())
        for raw in sides.values():
            out += tcp_frames(raw)
    return out


def tcp_frames(raw: bytes) -> list[bytes]:
    """A TURN-over-TCP direction cut into its STUN and ChannelData messages (each without
    ChannelData's padding)."""
    out = []
    pos = 0
    while pos + 4 <= len(raw):
        length = int.from_bytes(raw[pos + 2:pos + 4], "big")
        size = 4 + length if 0x40 <= raw[pos] <= 0x4F else 20 + length
        out.append(raw[pos:pos + size])
        pos += size + (-size % 4)
    return out


def check_capture(folder: Path, manifest: dict, capture: Path, key: str,  # type: ignore[type-arg]
                  at: str) -> None:
    scenario = SCENARIOS[manifest["scenario"]]
    # The flows, packet for packet in each direction, are those of the capture.
    recorded = {tuple(f["endpoints"]): f["packets"] for f in manifest[key]}
    assert recorded == {k: v for k, v in conversations(capture).items()}
    media = [f for f in manifest[key] if f.get("kind") == "media"]
    assert media and all(min(f["packets"]) > 0 for f in media), "media flows both ways"
    # Parses cleanly: the only malformed frames tshark may report are encrypted SRTCP it
    # cannot dissect without keys; STUN fingerprints verify after the address rewrite.
    check_stun_integrity(capture, manifest)
    # Chromium retransmits its ClientHello, which its post-quantum key share makes two
    # records long: tshark 4.0's reassembly calls the repeated fragments overlaps.
    malformed = tshark(capture, "_ws.malformed", "frame.protocols", "_ws.expert.message")
    assert all("rtcp" in row[0] or "srtcp" in row[0] or (
        row[0].endswith(":dtls") and row[1] == "New fragment overlaps old data (retransmission?)")
        for row in malformed), malformed
    # Fingerprints verify at every depth: tshark dissects relayed STUN when asked.
    statuses = {s for row in tshark(capture, "stun.att.crc32", "stun.att.crc32.status",
                                    relayed=True) for s in row[0].split(",")}
    assert statuses <= {"1"}, statuses
    addresses = {p.address for p in scenario.hosts.values()}
    seen = {row[0] for row in tshark(capture, "ip", "ip.src")}
    assert scenario.hosts[at].address in seen
    assert seen <= addresses, "every packet carries the scenario's public addresses"
    assert b"10.77.0." not in capture.read_bytes(), "a lab address left in a payload"
    inside = {a for row in tshark(capture, "stun.att.ipv4", "stun.att.ipv4", relayed=True)
              for a in row[0].split(",")}
    assert inside <= addresses, "STUN addresses rewritten too, relayed ones included"
    protocols = truth_protocols(manifest)
    if "dtls" in protocols:
        ends = {e.rsplit(":", 1)[0] for f in media for e in f["endpoints"]
                if "dtls" in f["truth"]["protocols"]}
        dtls13 = any(m.get("dtls_version") == "1.3" for m in manifest["truth"]["media"])
        (check_dtls13 if dtls13 else check_dtls12)(folder, manifest, capture, ends)
        if "turn" not in protocols:
            profiles = tshark(capture, "dtls.use_srtp.protection_profile",
                              "dtls.use_srtp.protection_profile")
            assert profiles, "use_srtp offered"
        report = flowscan.scan(str(capture.with_name(capture.stem + "-dsb.pcapng")))
        assert report.capture.decryption_secrets.kinds == ["tls-keylog"]
    if "turn" in protocols and "tls" in protocols:  # TURN over TLS: all of it inside
        assert tshark(capture, "tls.handshake.type == 1 && tcp.dstport == 5349", "frame.number")
        assert not tshark(capture, "stun || dtls || rtp", "frame.number")
        check_inside_tls(folder, capture.with_name(capture.stem + "-dsb.pcapng"))
    elif "turn" in protocols:
        assert tshark(capture, "stun.channel", "frame.number"), "TURN ChannelData on the wire"
    if any(f.get("kind") == "signalling" for f in manifest[key]):
        methods = {row[0] for row in tshark(capture, "sip.Method", "sip.Method")}
        assert {"INVITE", "ACK"} <= methods
        crypto = [row for row in tshark(capture, "sdp", "sdp.media_attr")
                  if "crypto:" in row[0]]
        assert bool(crypto) == (manifest["scenario"] == "sip-sdes-srtp")


def _prf_sha256(secret: bytes, label: bytes, seed: bytes, size: int) -> bytes:
    """TLS 1.2's PRF, P_SHA256 (RFC 5246 section 5)."""
    out, a = b"", label + seed
    while len(out) < size:
        a = hmac.new(secret, a, hashlib.sha256).digest()
        out += hmac.new(secret, a + label + seed, hashlib.sha256).digest()
    return out[:size]


def chacha20_handshakes(capture: Path, keylog: list[str]) -> dict[frozenset[str], set[str]]:
    """Per DTLS 1.2 handshake that chose ChaCha20-Poly1305 (its two UDP ends): the ends
    whose Finished (the first epoch-1 handshake record) opens with the key log's master
    secret. Keys from the key block (RFC 5246 section 6.3; no MAC keys, 32-byte keys and
    12-byte IVs, RFC 7905 section 2), nonce the IV XOR the 64-bit epoch and sequence
    number, additional data that number, type, version and plaintext length (RFC 7905
    section 2, RFC 6347 section 4.1.2.1)."""
    masters = {line.split()[1]: bytes.fromhex(line.split()[2]) for line in keylog}
    hellos: dict[frozenset[str], dict[int, tuple[str, bytes]]] = {}
    finished: dict[frozenset[str], dict[str, bytes]] = {}
    chacha: set[frozenset[str]] = set()
    for src, sport, dst, dport, payload in tshark(
            capture, "dtls", "ip.src", "udp.srcport", "ip.dst", "udp.dstport", "udp.payload"):
        me, conv = f"{src}:{sport}", frozenset((f"{src}:{sport}", f"{dst}:{dport}"))
        raw, pos = bytes.fromhex(payload.replace(":", "")), 0
        while pos + 13 <= len(raw):
            size = int.from_bytes(raw[pos + 11:pos + 13], "big")
            record = raw[pos:pos + 13 + size]
            pos += 13 + size
            if record[0] != 22:
                continue
            if record[3:5] != b"\0\0":
                finished.setdefault(conv, {}).setdefault(me, record)
            elif len(record) >= 62 and record[13] in (1, 2) and not record[19:22].strip(b"\0"):
                # A whole hello or a message's first fragment (fragment offset 0).
                hellos.setdefault(conv, {})[record[13]] = (me, record[27:59])
                suite_at = 60 + record[59]
                if record[13] == 2 and f"0x{record[suite_at:suite_at + 2].hex()}" in \
                        CHACHA20_SUITES:
                    chacha.add(conv)
    return {conv: _chacha20_opened(hellos[conv], finished.get(conv, {}), masters)
            for conv in chacha}


def _chacha20_opened(hellos: dict[int, tuple[str, bytes]], finished: dict[str, bytes],
                     masters: dict[str, bytes]) -> set[str]:
    from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

    (client, client_random), (server, server_random) = hellos[1], hellos[2]
    block = _prf_sha256(masters[client_random.hex()], b"key expansion",
                        server_random + client_random, 88)
    keys = {client: (block[:32], block[64:76]), server: (block[32:64], block[76:88])}
    opened = set()
    for end, record in finished.items():
        key, iv = keys[end]
        nonce = bytes(a ^ b for a, b in zip(iv, bytes(4) + record[3:11], strict=True))
        body = record[13:]
        aad = record[3:11] + record[:3] + (len(body) - 16).to_bytes(2, "big")
        if ChaCha20Poly1305(key).decrypt(nonce, body, aad)[0] == 20:
            opened.add(end)
    return opened


def check_inside_tls(folder: Path, dsb: Path) -> None:
    """With the TLS secrets of the DSB, tshark opens the TLS to the relay: inside are TURN
    messages back to back (RFC 8656 section 3.1) carrying a DTLS handshake both ways whose
    ClientHello the key log keys (RFC 6347 section 4.1 record headers). The lab re-sealed
    the records after its address rewrite: tshark's opening verifies their tags, and every
    STUN message inside, relayed ICE checks included, names only the scenario's public
    addresses, its MESSAGE-INTEGRITY verifying with a lab credential."""
    sides = inside_tls(dsb)
    assert len(sides) == 2, "decrypted TLS both ways"
    records = []
    frames: list[bytes] = []
    for src, raw in sides.items():
        kinds = set()
        pos = 0
        while pos + 4 <= len(raw):
            length = int.from_bytes(raw[pos + 2:pos + 4], "big")
            if 0x40 <= raw[pos] <= 0x4F:  # ChannelData, padded to four over TCP
                kinds.add("channel-data")
                frames.append(raw[pos:pos + 4 + length])
                records += _records_in(src, raw[pos + 4:pos + 4 + length])
                pos += 4 + length + (-length % 4)
                continue
            assert raw[pos + 4:pos + 8] == b"\x21\x12\xa4\x42", "STUN or ChannelData only"
            kinds.add("stun")
            frames.append(raw[pos:pos + 20 + length])
            records += _records_in(src, _data_attribute(raw[pos:pos + 20 + length]))
            pos += 20 + length
        assert pos == len(raw) and kinds == {"stun", "channel-data"}
    assert {src for src, ctype, epoch, *_ in records if ctype == 22 and epoch} == set(sides)
    randoms = {r[4] for r in records if r[4]}
    keylog = {line.split()[1] for line in (folder / "keys.log").read_text().splitlines()
              if line.startswith("CLIENT_RANDOM ")}
    assert randoms and randoms <= keylog, "the DTLS inside is keyed"
    manifest = json.loads((folder / "manifest.json").read_text())
    public = {h["address"] for h in manifest["hosts"].values()}
    messages = stun_at_every_depth(frames)
    named = {a for m in messages for a in xor_addresses(m)}
    assert named and named <= public, "TURN addresses inside the TLS rewritten too"
    relayed = [m for m in messages if m not in frames]
    assert relayed and all(_integrity_verifies(m, lab_keys(manifest)) for m in relayed)
    assert sum(_integrity_verifies(m, lab_keys(manifest)) for m in messages) > 2


def inside_tls(dsb: Path) -> dict[str, bytes]:
    """Each side's application data in a TLS connection tshark opens with the DSB's
    secrets, by its address."""
    sides: dict[str, bytes] = {}
    for src, data in tshark(dsb, "data", "ip.src", "data.data"):
        for chunk in data.split(","):
            sides[src] = sides.get(src, b"") + bytes.fromhex(chunk.replace(":", ""))
    return sides


def xor_addresses(message: bytes) -> set[str]:
    """The IPv4 addresses of a STUN message's XOR-MAPPED, XOR-PEER and XOR-RELAYED
    attributes (RFC 8489 section 14.2: the address xor the magic cookie)."""
    out = set()
    pos = 20
    while pos + 4 <= len(message):
        atype, alen = struct.unpack_from(">HH", message, pos)
        value = message[pos + 4:pos + 4 + alen]
        if atype in (0x0020, 0x0012, 0x0016) and value[1:2] == b"\x01":
            out.add(str(ipaddress.IPv4Address(bytes(
                a ^ b for a, b in zip(value[4:8], b"\x21\x12\xa4\x42", strict=True)))))
        pos += 4 + alen + (-alen % 4)
    return out


def _data_attribute(message: bytes) -> bytes:
    """The DATA attribute of a Send or Data indication (RFC 8656 section 14.4), else b""."""
    pos = 20
    while pos + 4 <= len(message):
        atype, alen = struct.unpack_from(">HH", message, pos)
        if atype == 0x0013:
            return message[pos + 4:pos + 4 + alen]
        pos += 4 + alen + (-alen % 4)
    return b""


def check_dtls12(folder: Path, manifest: dict, capture: Path,  # type: ignore[type-arg]
                 ends: set[str]) -> None:
    """DTLS 1.2 (RFC 6347): hellos both ways, encrypted Finished both ways, every
    ClientHello keyed by a CLIENT_RANDOM line, and tshark decrypts the DSB copy."""
    records = dtls_records(capture)
    assert {r[3] for r in records if r[3] is not None} >= {1, 2}
    finished_from = {r[0] for r in records if r[1] == 22 and r[2] >= 1}
    assert ends <= finished_from, "encrypted Finished both ways: handshakes complete"
    randoms = {r[4] for r in records if r[4]}
    keylog = (folder / "keys.log").read_text().splitlines()
    assert keylog and all(re.fullmatch(r"CLIENT_RANDOM [0-9a-f]{64} [0-9a-f]{96}", line)
                          for line in keylog)
    assert randoms and randoms <= {line.split()[1] for line in keylog}, "every handshake keyed"
    # The DSB copy carries the secrets: tshark decrypts the handshake's Finished.
    dsb = capture.with_name(capture.stem + "-dsb.pcapng")
    suites = [row[0] for row in tshark(capture, "dtls.handshake.type == 2",
                                       "dtls.handshake.ciphersuite")]
    # tshark 4.0 does not look inside ChannelData, and leaves the epoch out of DTLS
    # ChaCha20-Poly1305's nonce (its debug log: "seq 0", "auth tag mismatch"), which
    # aiortc picks when rtpengine offers it first: those Finished are opened here.
    chacha = chacha20_handshakes(capture, keylog)
    assert len(chacha) == len(set(suites) & CHACHA20_SUITES and chacha)
    for conv, opened in chacha.items():
        assert opened == conv, f"both Finished of {sorted(conv)} open"
    if any(suite not in CHACHA20_SUITES for suite in suites) and \
            "turn" not in truth_protocols(manifest):
        assert tshark(dsb, "dtls.handshake.type == 20", "frame.number")
        assert not tshark(capture, "dtls.handshake.type == 20", "frame.number")

DTLS13_LABELS = {"CLIENT_HANDSHAKE_TRAFFIC_SECRET", "SERVER_HANDSHAKE_TRAFFIC_SECRET",
                 "CLIENT_TRAFFIC_SECRET_0", "SERVER_TRAFFIC_SECRET_0", "EXPORTER_SECRET"}


def server_hello_version(record: bytes) -> int | None:
    """The version a plaintext DTLS ServerHello selects (supported_versions, RFC 8446
    section 4.2.1), from the record's bytes: record header 13, handshake header 12
    (RFC 9147 sections 4 and 5.2), then version 2, random 32, session ID, cipher suite 2,
    compression 1, extensions."""
    if len(record) < 13 + 12 + 35 or record[0] != 22 or record[13] != 2:
        return None
    pos = 13 + 12 + 34
    pos += 1 + record[pos] + 3
    end = pos + 2 + int.from_bytes(record[pos:pos + 2], "big")
    pos += 2
    while pos + 4 <= min(end, len(record)):
        etype, elen = int.from_bytes(record[pos:pos + 2], "big"), int.from_bytes(
            record[pos + 2:pos + 4], "big")
        if etype == 43 and elen == 2:
            return int.from_bytes(record[pos + 4:pos + 6], "big")
        pos += 4 + elen
    return None


def check_dtls13(folder: Path, manifest: dict, capture: Path,  # type: ignore[type-arg]
                 ends: set[str]) -> None:
    """DTLS 1.3 (RFC 9147), which tshark 4.0 leaves undissected past the ClientHello: the
    hello offers 0xfefc, the ServerHello (read from the bytes) selects it, both ends then
    send records under the unified header (encrypted epochs 2 and 3), and the key log holds
    the DTLS 1.3 secrets of that ClientHello's random."""
    offered = tshark(capture, "dtls.handshake.type == 1", "ip.src", "dtls.handshake.random",
                     "dtls.handshake.extensions.supported_version")
    offered = [row for row in offered if len(row) > 2 and row[2]]  # reassembled hellos
    assert offered and all("0xfefc" in row[2] for row in offered)
    randoms = {row[1].replace(":", "") for row in offered}
    selected, encrypted_from = set(), set()
    for src, payload in tshark(capture, "udp && !stun && !rtp", "ip.src", "udp.payload"):
        data = bytes.fromhex(payload.replace(":", ""))
        if data and data[0] & 0xE0 == 0x20:  # unified header: 001CSLEE
            encrypted_from.add(src)
        version = server_hello_version(data)
        if version is not None:
            selected.add(version)
    assert selected == {0xFEFC}, "the server selects DTLS 1.3"
    assert ends <= encrypted_from, "encrypted records both ways: handshakes complete"
    keylog = [line.split() for line in (folder / "keys.log").read_text().splitlines()]
    assert {line[0] for line in keylog} == DTLS13_LABELS
    assert all(re.fullmatch(r"[0-9a-f]{64}", line[1]) and re.fullmatch(r"[0-9a-f]{64,96}",
                                                                        line[2])
               for line in keylog)
    assert {line[1] for line in keylog} == randoms, "the handshake keyed"


def check_verdicts(folder: Path) -> None:
    """flowscan, from the wire alone, gives each media flow its observed truth."""
    manifest = json.loads((folder / "manifest.json").read_text())
    for capture, key, _at in captures_of(folder, manifest):
        check_capture_verdicts(capture, manifest[key])


def check_capture_verdicts(capture: Path, entries: list[dict]) -> None:  # type: ignore[type-arg]
    report = flowscan.scan(str(capture))
    flows = {frozenset((f"{f.client.ip}:{f.client.port}", f"{f.server.ip}:{f.server.port}")):
             f for f in report.flows}
    for entry in entries:
        if entry.get("kind") != "media":
            continue
        flow = flows[frozenset(entry["endpoints"])]
        expected = entry["truth"]["observed"]
        assert flow.encryption is not None, entry
        assert flow.encryption.verdict == expected["verdict"], (entry, flow.encryption)
        if "termination" in expected:
            assert flow.encryption.termination == expected["termination"]
        assert flow.encryption.evidence


@needs_tshark
@pytest.mark.parametrize("folder", COMMITTED, ids=lambda p: p.name)
def test_committed_scenario_matches_its_bytes(folder: Path) -> None:
    check_against_bytes(folder)


@pytest.mark.parametrize("folder", COMMITTED, ids=lambda p: p.name)
def test_observed_verdicts_match_the_manifest(folder: Path) -> None:
    check_verdicts(folder)


@needs_tshark
@pytest.mark.parametrize("folder", COMMITTED, ids=lambda p: p.name)
def test_no_lab_address_in_stun_at_any_depth(folder: Path) -> None:
    """No STUN message a lab capture holds names the lab's private network: not on the
    wire, not relayed inside ChannelData or a DATA attribute, not inside TURN over TCP or
    (opened with the scenario's keys) TLS. Read with flowscan's STUN parser from the
    datagrams and streams tshark gives; the relayed messages' integrity verifies."""
    manifest = json.loads((folder / "manifest.json").read_text())
    for capture, _key, _at in captures_of(folder, manifest):
        frames = [bytes.fromhex(payload.replace(":", ""))
                  for (payload,) in tshark(capture, "udp", "udp.payload")]
        frames += tcp_turn_frames(capture)
        dsb = capture.with_name(capture.stem + "-dsb.pcapng")
        if dsb.exists() and tshark(capture, "tls", "frame.number"):
            for raw in inside_tls(dsb).values():
                frames += tcp_frames(raw)
        messages = stun_at_every_depth(frames)
        assert not private_addresses(messages), (capture.name, private_addresses(messages))
        if "turn" in truth_protocols(manifest):
            relayed = [m for m in messages if m not in frames]
            assert relayed, "ICE checks through the relay"
            assert all(_integrity_verifies(m, lab_keys(manifest)) for m in relayed)


def test_every_scenario_is_committed() -> None:
    assert sorted(p.name for p in COMMITTED) == sorted(SCENARIOS)


def _lab_ready() -> str | None:
    if os.geteuid() != 0:
        return "the lab needs root for network namespaces"
    for tool in ("ip", "tcpdump", "tshark", "editcap"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    if importlib.util.find_spec("aiortc") is None:
        return "aiortc is not installed (pip install -e '.[lab]')"
    return None


@pytest.mark.skipif(_lab_ready() is not None, reason=str(_lab_ready()))
def test_p2p_webrtc_regenerates_end_to_end(tmp_path: Path) -> None:
    out = tmp_path / "p2p-webrtc"
    done = subprocess.run(["flowscan", "lab", "run", "p2p-webrtc", "-o", str(out)],
                          capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr
    check_against_bytes(out)
    check_verdicts(out)


def _chromium_ready() -> str | None:
    return _lab_ready() or SCENARIOS["turn-tcp-chromium"].missing()


@pytest.mark.skipif(_chromium_ready() is not None, reason=str(_chromium_ready()))
def test_turn_tcp_chromium_regenerates(tmp_path: Path) -> None:
    """A browser call (about 15 s to record) through TURN over TCP, afresh: the stream
    rewrite keeps every STUN message's integrity and the verdict matches the truth."""
    out = tmp_path / "turn-tcp-chromium"
    done = subprocess.run([sys.executable, "-m", "flowscan", "lab", "run", "turn-tcp-chromium",
                           "-o", str(out)], capture_output=True, text=True, timeout=180,
                          cwd=Path(flowscan.__file__).resolve().parent.parent)
    assert done.returncode == 0, done.stderr
    check_against_bytes(out)
    check_verdicts(out)



def test_ng_protocol_bencode() -> None:
    """The lab's rtpengine control speaks bencode (BitTorrent BEP 3's examples), keys
    sorted, and reads back what it writes."""
    from flowscan.lab.sip_gateway import bdecode, bencode

    assert bencode("spam") == b"4:spam" and bencode(3) == b"i3e"
    assert bencode(["spam", "eggs"]) == b"l4:spam4:eggse"
    assert bencode({"spam": ["a", "b"], "cow": "moo"}) == b"d3:cow3:moo4:spaml1:a1:bee"
    message = {"command": "offer", "rtcp-mux": ["demux"], "ICE": "remove", "n": -2}
    assert bdecode(bencode(message)) == (message, len(bencode(message)))


def _browser_lab_ready() -> str | None:
    return _lab_ready() if os.geteuid() != 0 else SCENARIOS["sfu-janus-browser"].missing()


@pytest.mark.skipif(_browser_lab_ready() is not None, reason=str(_browser_lab_ready()))
def test_sfu_janus_browser_regenerates_end_to_end(tmp_path: Path) -> None:
    """Chromium through Janus, recorded afresh (about 20 s): its bytes, its observed
    verdicts, and every leg decrypted with the key-log shim's secrets as its truth says."""
    out = tmp_path / "sfu-janus-browser"
    done = subprocess.run([sys.executable, "-m", "flowscan", "lab", "run", "sfu-janus-browser",
                           "-o", str(out)], capture_output=True, text=True, timeout=180,
                          cwd=LAB.parent.parent)  # this checkout's flowscan
    assert done.returncode == 0, done.stderr
    check_against_bytes(out)
    check_verdicts(out)
    manifest = json.loads((out / "manifest.json").read_text())
    report = flowscan.scan(str(out / "capture-sfu.pcapng"), keylog=[str(out / "keys.log")])
    legs = [f for f in report.flows if f.encryption is not None]
    assert len(legs) == len(manifest["flows_at_sfu"]) == 4
    assert all(f.encryption is not None and f.encryption.decryption is not None
               and (f.encryption.verdict, f.encryption.basis, f.encryption.decryption.inner)
               == ("hop-by-hop", "decrypted", "codec") for f in legs)
