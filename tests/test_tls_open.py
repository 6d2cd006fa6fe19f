"""TLS opened with an NSS key log (crypto/tls_records.py, tlsopen.py): RFC 8448's "Simple
1-RTT Handshake" (section 3) for the TLS 1.3 key schedule and records, crafted records for
TLS 1.2 AES-GCM and for TURN framing inside TLS, and the lab's TURN-over-TLS call."""

from __future__ import annotations

import itertools
import json
import pickle
import random
from dataclasses import replace
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

import flowscan
from flowscan.capture import CaptureSource
from flowscan.crypto.dtls_srtp import prf
from flowscan.crypto.keylog import KeyLog
from flowscan.crypto.tls_records import Epoch, RecordOpener, TlsWalker, tls_keys, traffic_keys
from flowscan.options import ScanOptions
from flowscan.pipeline import read_account_identify
from flowscan.protocols import framing
from flowscan.report.json import dumps, report_to_dict
from flowscan.report.model import Endpoint
from flowscan.tlsopen import open_tls_flows

LAB = Path(__file__).resolve().parent.parent / "captures" / "lab"

# RFC 8448 section 3: the ClientHello's random and the four traffic secrets.
CLIENT_RANDOM = bytes.fromhex("cb34ecb1e78163ba1c38c6dacb196a6dffa21a8d9912ec18a2ef6283024dece7")
SECRETS = {
    "CLIENT_HANDSHAKE_TRAFFIC_SECRET":
        "b3eddb126e067f35a780b3abf45e2d8f3b1a950738f52e9600746a0e27a55a21",
    "SERVER_HANDSHAKE_TRAFFIC_SECRET":
        "b67b7d690cc16c4e75e54213cb2d37b4e9c912bcded9105d42befd59d391ad38",
    "CLIENT_TRAFFIC_SECRET_0": "9e40646ce79a7f9dc05af8889bce6552875afa0b06df0087f792ebb7c17504a5",
    "SERVER_TRAFFIC_SECRET_0": "a11af9f05531f856ad47116b45a950328204b4f44bfb6b3a4b4f1f3fcb631643",
}
# The records, as RFC 8448 section 3 lists them ("complete record").
CLIENT_HELLO = bytes.fromhex(
    "16030100c4010000c00303cb34ecb1e78163ba1c38c6dacb196a6dffa21a8d9912ec18a2ef6283024dece7"
    "000006130113031302010000910000000b0009000006736572766572ff01000100000a00140012001d0017"
    "00180019010001010102010301040023000000330026002400"
    "1d002099381de560e4bd43d23d8e435a7dbafeb3c06e51c13cae4d5413691e529aaf2c002b0003020304000d"
    "0020001e040305030603020308040805080604010501060102010402050206020202002d00020101001c0002"
    "4001")
SERVER_HELLO = bytes.fromhex(
    "160303005a020000560303a6af06a4121860dc5e6e60249cd34c95930c8ac5cb1434dac155772ed3e26928"
    "00130100002e00330024001d0020c9828876112095fe66762bdbf7c672e156d6cc253b833df1dd69b1b04e"
    "751f0f002b00020304")
SERVER_HANDSHAKE = bytes.fromhex(  # EncryptedExtensions .. Finished, server handshake keys
    "17030302a2d1ff334a56f5bff6594a07cc87b580233f500f45e489e7f33af35edf7869fcf40aa40aa2b8ea73"
    "f848a7ca07612ef9f945cb960b4068905123ea78b111b429ba9191cd05d2a389280f526134aadc7fc78c4b72"
    "9df828b5ecf7b13bd9aefb0e57f271585b8ea9bb355c7c79020716cfb9b1183ef3ab20e37d57a6b9d747760"
    "9aee6e122a4cf51427325250c7d0e509289444c9b3a648f1d71035d2ed65b0e3cdd0cbae8bf2d0b227812cb"
    "b360987255cc744110c453baa4fcd610928d809810e4b7ed1a8fd991f06aa6248204797e36a6a73b70a2559"
    "c09ead686945ba246ab66e5edd8044b4c6de3fcf2a89441ac66272fd8fb330ef8190579b3684596c960bd59"
    "6eea520a56a8d650f563aad27409960dca63d3e688611ea5e22f4415cf9538d51a200c27034272968a264ed"
    "6540c84838d89f72c24461aad6d26f59ecaba9acbbb317b66d902f4f292a36ac1b639c637ce343117b65962"
    "2245317b49eeda0c6258f100d7d961ffb138647e92ea330faeea6dfa31c7a84dc3bd7e1b7a6c7178af36879"
    "018e3f252107f243d243dc7339d5684c8b0378bf30244da8c87c843f5e56eb4c5e8280a2b48052cf93b1649"
    "9a66db7cca71e4599426f7d461e66f99882bd89fc50800becca62d6c74116dbd2972fda1fa80f85df881edb"
    "e5a37668936b335583b599186dc5c6918a396fa48a181d6b6fa4f9d62d513afbb992f2b992f67f8afe67f76"
    "913fa388cb5630c8ca01e0c65d11c66a1e2ac4c85977b7c7a6999bbf10dc35ae69f5515614636c0b9b68c19"
    "ed2e31c0b3b66763038ebba42f3b38edc0399f3a9f23faa63978c317fc9fa66a73f60f0504de93b5b845e27"
    "5592c12335ee340bbc4fddd502784016e4b3be7ef04dda49f4b440a30cb5d2af939828fd4ae3794e44f94df"
    "5a631ede42c1719bfdabf0253fe5175be898e750edc53370d2b")
SERVER_TICKET = bytes.fromhex(  # NewSessionTicket, server application keys, sequence 0
    "17030300de3a6b8f90414a97d6959c3487680de5134a2b240e6cffac116e95d41d6af8f6b580dcf3d11d63c7"
    "58db289a015940252f55713e061dc13e078891a38efbcf5753ad8ef170ad3c7353d16d9da773b9ca7f2b9fa1"
    "b6c0d4a3d03f75e09c30ba1e62972ac46f75f7b981be63439b2999ce13064615139891d5e4c5b406f16e3fc1"
    "81a77ca475840025db2f0a77f81b5ab05b94c01346755f69232c86519d86cbeeac87aac347d143f9605d64f6"
    "50db4d023e70e952ca49fe5137121c74bc2697687e248746d6df353005f3bce18696129c8153556b3b6c6779"
    "b37bf15985684f")
SERVER_DATA = bytes.fromhex(
    "17030300432e937e11ef4ac740e538ad36005fc4a46932fc3225d05f82aa1b36e30efaf97d90e6dffc602dcb"
    "501a59a8fcc49c4bf2e5f0a21c0047c2abf332540dd032e167c2955d")
CLIENT_FINISHED = bytes.fromhex(
    "170303003575ec4dc238cce60b298044a71e219c56cc77b0517fe9b93c7a4bfc44d87f38f80338ac98fc46de"
    "b384bd1caeacab6867d726c40546")
CLIENT_DATA = bytes.fromhex(
    "1703030043a23f7054b62c94d0affafe8228ba55cbefacea42f914aa66bcab3f2b9819a8a5b46b395bd54a9a"
    "20441e2b62974e1f5a6292a2977014bd1e3deae63aeebb21694915e4")
CLIENT_ALERT = bytes.fromhex("1703030013c9872760655666b74d7ff1153efd6db6d0b0e3")
FIFTY = bytes(range(50))  # the application data each side sends in RFC 8448 section 3


def rfc8448_keylog() -> KeyLog:
    keylog = KeyLog()
    keylog.add_text("".join(f"{label} {CLIENT_RANDOM.hex()} {secret}\n"
                            for label, secret in SECRETS.items()), "rfc8448")
    return keylog


def test_rfc8448_traffic_keys() -> None:
    """RFC 8446 section 7.3 with the "tls13 " label prefix: RFC 8448 section 3's write
    keys and IVs, for the handshake and the application secrets."""
    expected = {
        "SERVER_HANDSHAKE_TRAFFIC_SECRET": ("3fce516009c21727d0f2e4e86ee403bc",
                                            "5d313eb2671276ee13000b30"),
        "CLIENT_HANDSHAKE_TRAFFIC_SECRET": ("dbfaa693d1762c5b666af5d950258d01",
                                            "5bd3c71b836e0b76bb73265f"),
        "SERVER_TRAFFIC_SECRET_0": ("9f02283b6c9c07efc26bb9f2ac92e356",
                                    "cf782b88dd83549aadf1e984"),
        "CLIENT_TRAFFIC_SECRET_0": ("17422dda596ed5d9acd890e3c63f5051",
                                    "5b78923dee08579033e523d9"),
    }
    for label, (key, iv) in expected.items():
        assert traffic_keys(bytes.fromhex(SECRETS[label]), 16, False) == (
            bytes.fromhex(key), bytes.fromhex(iv))


def feed_in_pieces(opener: RecordOpener, stream: bytes, size: int) -> list[bytes]:
    out: list[bytes] = []
    for at in range(0, len(stream), size):
        out += opener.feed(stream[at:at + size])
    return out


@pytest.mark.parametrize("piece", [1, 7, 5000])
def test_rfc8448_records_open_across_epochs(piece: int) -> None:
    """Each direction of RFC 8448's connection, fed in pieces of any size: the clear
    hellos are passed over, the handshake records open under the handshake secrets, then
    the application records under the traffic secrets from sequence number 0, and only
    the application data comes out (not the Finished, the ticket or the alert)."""
    keys = tls_keys(rfc8448_keylog(), CLIENT_RANDOM, None, 0x1301, "TLS 1.3")
    assert keys is not None and keys.tls13
    client, server = keys.walkers()
    assert feed_in_pieces(server.records, SERVER_HELLO + SERVER_HANDSHAKE + SERVER_TICKET
                          + SERVER_DATA, piece) == [FIFTY]
    assert (server.records.opened, server.records.failed) == (3, 0)
    assert feed_in_pieces(client.records, CLIENT_HELLO + CLIENT_FINISHED + CLIENT_DATA
                          + CLIENT_ALERT, piece) == [FIFTY]
    assert (client.records.opened, client.records.failed) == (3, 0)


def test_a_damaged_record_is_counted_and_nothing_of_it_comes_out() -> None:
    keys = tls_keys(rfc8448_keylog(), CLIENT_RANDOM, None, 0x1301, "TLS 1.3")
    assert keys is not None
    _client, server = keys.walkers()
    damaged = bytearray(SERVER_DATA)
    damaged[30] ^= 1
    assert server.records.feed(SERVER_HANDSHAKE + SERVER_TICKET + bytes(damaged)) == []
    assert (server.records.opened, server.records.failed) == (2, 1)


def test_no_keys_without_every_secret_and_no_secret_in_repr() -> None:
    keylog = rfc8448_keylog()
    keys = tls_keys(keylog, CLIENT_RANDOM, None, 0x1301, "TLS 1.3")
    assert keys is not None
    shown = repr(keys) + repr(keys.walkers()[0].records.epochs)
    assert not any(secret in shown for secret in SECRETS.values())
    assert SECRETS["CLIENT_TRAFFIC_SECRET_0"] not in keys.description
    assert tls_keys(keylog, bytes(32), None, 0x1301, "TLS 1.3") is None  # another connection
    assert tls_keys(keylog, CLIENT_RANDOM, None, 0x1304, "TLS 1.3") is None  # CCM: not opened
    del keylog.secrets[("SERVER_TRAFFIC_SECRET_0", CLIENT_RANDOM)]
    del keylog.secrets[("SERVER_HANDSHAKE_TRAFFIC_SECRET", CLIENT_RANDOM)]
    assert tls_keys(keylog, CLIENT_RANDOM, None, 0x1301, "TLS 1.3") is None


def seal13(epoch: Epoch, content: bytes, ctype: int = 23, padding: int = 0) -> bytes:
    """A TLS 1.3 record (RFC 8446 section 5.2) under the epoch's next sequence number."""
    inner = content + bytes([ctype]) + bytes(padding)
    header = b"\x17\x03\x03" + (len(inner) + 16).to_bytes(2, "big")
    nonce = (int.from_bytes(epoch.iv, "big") ^ epoch.seq).to_bytes(12, "big")
    epoch.seq += 1
    return header + AESGCM(epoch.key).encrypt(nonce, inner, header)


def stun_binding(transaction: bytes) -> bytes:
    return b"\x00\x01\x00\x00\x21\x12\xa4\x42" + transaction


def channel_data(payload: bytes) -> bytes:
    return b"\x40\x00" + len(payload).to_bytes(2, "big") + payload + bytes(-len(payload) % 4)


def rtp_packet(seq: int) -> bytes:
    return bytes([0x80, 0x6F]) + seq.to_bytes(2, "big") + bytes(8) + bytes([seq % 256]) * 41


def turn_inside_tls() -> tuple[list[bytes], list[bytes], Epoch]:
    """A client's TLS 1.3 stream (RFC 8448's client traffic keys) carrying TURN framing:
    a STUN message, then ChannelData split across records, records zero-padded."""
    key, iv = traffic_keys(bytes.fromhex(SECRETS["CLIENT_TRAFFIC_SECRET_0"]), 16, False)
    sender = Epoch(False, key, iv)
    frames = [stun_binding(bytes(range(12)))] + [channel_data(rtp_packet(n)) for n in range(12)]
    stream = b"".join(frames)
    cuts = [0, 15, 70, 71, 200, 333, 512, len(stream)]
    records = [seal13(sender, stream[a:b], padding=n % 3 * 5)
               for n, (a, b) in enumerate(itertools.pairwise(cuts))]
    return records, frames, sender


def opened_frames(walker: TlsWalker, data: bytes) -> list[bytes]:
    return [raw for _frame, raw in walker.feed(data)]


def client_walker() -> TlsWalker:
    keys = tls_keys(rfc8448_keylog(), CLIENT_RANDOM, None, 0x1301, "TLS 1.3")
    assert keys is not None
    walker = keys.walkers()[0]
    walker.records.current = walker.records.epochs[1]  # past the handshake
    return walker


def test_turn_framing_walked_inside_tls_as_over_tcp() -> None:
    """The application data is walked as TURN over TCP's stream: every STUN and
    ChannelData frame, whatever the record boundaries and the padding (RFC 8446 5.4)."""
    records, frames, _ = turn_inside_tls()
    walker = client_walker()
    assert opened_frames(walker, b"".join(records)) == frames
    assert walker.inner.mode == framing.TURN and walker.records.failed == 0


def test_out_of_order_and_retransmitted_segments_reassemble_before_tls() -> None:
    """TCP reassembly (framing.Reassembler) comes first: segments shuffled within the
    reorder window and sent twice give the same frames as the stream in order."""
    records, frames, _ = turn_inside_tls()
    stream = b"".join(records)
    segments = [(at, stream[at:at + 90]) for at in range(0, len(stream), 90)]
    shuffled = segments + segments[2:5]
    random.Random(7).shuffle(shuffled)
    reassembler = framing.Reassembler(client_walker())
    isn = 1000
    assert reassembler.take(isn, True, b"") is None  # the SYN: no data yet
    out: list[bytes] = []
    for at, piece in shuffled:
        taken = reassembler.take(isn + 1 + at, False, piece)
        if taken is not None:
            out += [raw for _frame, raw in taken[1]]
    assert out == frames and reassembler.missing == 0


def test_a_lost_record_is_passed_over_and_the_stream_found_again() -> None:
    """A hole in the capture: the records after it open under the sequence numbers that
    follow the lost ones (tried up to tls_records.MAX_LOST_RECORDS ahead), and the framing
    is found again after the gap."""
    records, frames, sender = turn_inside_tls()
    more = [seal13(sender, channel_data(rtp_packet(100 + n))) for n in range(4)]
    walker = client_walker()
    head = b"".join(records[:2])
    out = opened_frames(walker, head)
    lost = len(records[2]) + len(records[3])
    walker.gap(len(head) + lost)
    out += opened_frames(walker, b"".join(records[4:] + more))
    assert out[:1] == frames[:1]
    assert [channel_data(rtp_packet(100 + n)) for n in range(4)] == out[-4:]
    assert walker.records.failed == 0


def test_tls12_aes_gcm_opens_after_change_cipher_spec() -> None:
    """TLS 1.2 with an AES-GCM suite (RFC 5288): keys from the CLIENT_RANDOM master
    secret's key block (RFC 5246 section 6.3), the explicit nonce in each record, the
    sequence number in the additional data; records before ChangeCipherSpec are clear."""
    client_random, server_random, master = bytes(range(32)), bytes(range(32, 64)), bytes(48)
    keylog = KeyLog()
    keylog.add_text(f"CLIENT_RANDOM {client_random.hex()} {master.hex()}\n", "t")
    keys = tls_keys(keylog, client_random, server_random, 0xC02F, "TLS 1.2")
    assert keys is not None and not keys.tls13
    block = prf(master, b"key expansion", server_random + client_random, 40)
    key, salt = block[:16], block[32:36]

    def sealed(seq: int, ctype: int, content: bytes) -> bytes:
        explicit = (seq + 77).to_bytes(8, "big")
        aad = seq.to_bytes(8, "big") + bytes([ctype, 3, 3]) + len(content).to_bytes(2, "big")
        body = explicit + AESGCM(key).encrypt(salt + explicit, content, aad)
        return bytes([ctype, 3, 3]) + len(body).to_bytes(2, "big") + body

    stream = (b"\x16\x03\x03\x00\x04\x10\x00\x00\x00" + b"\x14\x03\x03\x00\x01\x01"
              + sealed(0, 22, b"\x14\x00\x00\x0c" + bytes(12))
              + sealed(1, 23, b"hello") + sealed(2, 23, b"world"))
    client, _server = keys.walkers()
    assert feed_in_pieces(client.records, stream, 3) == [b"hello", b"world"]
    assert (client.records.opened, client.records.failed) == (3, 0)


def lab_scan(folder: Path, keyed: bool) -> flowscan.api.Report:
    keylog = [str(folder / "keys.log")] if keyed else []
    return flowscan.scan(str(folder / "capture.pcapng"), keylog=keylog)


def test_turn_over_tls_opened_with_the_key_log() -> None:
    """The lab's TURN-over-TLS call (Chromium, coturn on port 5349, TLS 1.3) with its key
    log: the TLS opens, the TURN framing inside is walked as over TCP, the DTLS inside
    keys the SRTP from the same key log, and every packet decrypts to codec frames, as
    for turn-tcp-chromium. The lab's address rewrite re-sealed the TLS records, so the TURN
    messages inside name the peer's public address: end-to-end through the relay, as the
    manifest says and as for the TCP twin. No secret in the report."""
    folder = LAB / "turn-tls-chromium"
    report = lab_scan(folder, keyed=True)
    (flow,) = [f for f in report.flows if f.encryption is not None]
    enc = flow.encryption
    assert enc is not None
    manifest = json.loads((folder / "manifest.json").read_text())
    truth = next(f["truth"]["decrypted"] for f in manifest["flows"] if f.get("kind") == "media")
    assert (enc.verdict, enc.termination, enc.basis, enc.confidence) == (
        truth["verdict"], truth["termination"], "decrypted", "high")
    assert enc.key_exchange == "dtls-srtp" and enc.evidence[0].signal == "tls-opened"
    assert "TLS 1.3" in enc.evidence[0].detail and "0 did not verify" in enc.evidence[0].detail
    dec = enc.decryption
    assert dec is not None
    assert dec.inner == truth["inner"] and dec.tag_failures == 0 and dec.packets_decrypted > 800
    assert {"tls", "stun", "turn", "dtls", "rtp"} <= set(flow.protocols)
    assert flow.app is not None and flow.app.name == "webrtc"
    twin = [f for f in lab_scan(LAB / "turn-tcp-chromium", keyed=True).flows if f.encryption]
    assert twin[0].encryption is not None and twin[0].encryption.decryption is not None
    assert (twin[0].encryption.decryption.inner, twin[0].details["dtls"].srtp_profile) == (
        dec.inner, flow.details["dtls"].srtp_profile)
    assert (twin[0].encryption.verdict, twin[0].encryption.termination) == (
        enc.verdict, enc.termination) == ("end-to-end", "relay")
    secrets = {line.split()[2] for line in (folder / "keys.log").read_text().splitlines()}
    assert len(secrets) > 4 and not any(secret in dumps([report]) for secret in secrets)


def test_turn_over_tls_without_keys_says_the_key_log_would_open_it() -> None:
    report = lab_scan(LAB / "turn-tls-chromium", keyed=False)
    (flow,) = [f for f in report.flows if f.encryption is not None]
    assert flow.encryption is not None
    assert (flow.encryption.verdict, flow.encryption.termination) == ("unknown", "relay")
    (evidence,) = flow.encryption.evidence
    assert evidence.signal == "turn-over-tls" and "--keylog" in evidence.detail
    assert flow.protocols == ("tls",)


def test_tls_secrets_alone_open_tls_but_not_the_media(tmp_path: Path) -> None:
    """Only Chromium's TLS lines: the framing inside is seen and judged, but the DTLS
    secrets are missing, so nothing decrypts and the verdict stays observed."""
    folder = LAB / "turn-tls-chromium"
    tls_only = [line for line in (folder / "keys.log").read_text().splitlines()
                if "TRAFFIC_SECRET" in line]
    assert len(tls_only) == 4
    keys = tmp_path / "tls.log"
    keys.write_text("\n".join(tls_only) + "\n")
    report = flowscan.scan(str(folder / "capture.pcapng"), keylog=[str(keys)])
    (flow,) = [f for f in report.flows if f.encryption is not None]
    assert flow.encryption is not None
    assert flow.encryption.basis == "observed" and flow.encryption.decryption is None
    assert flow.encryption.evidence[0].signal == "tls-opened"
    assert flow.encryption.key_exchange == "dtls-srtp"


def test_key_update_moves_to_the_next_traffic_secret() -> None:
    """A KeyUpdate (RFC 8446 section 4.6.3) inside a record: what follows is under the
    next traffic secret, HKDF-Expand-Label(secret, "traffic upd", "", Hash.length)
    (section 7.2), from sequence number 0."""
    walker = client_walker()
    sender = Epoch.tls13_secret(bytes.fromhex(SECRETS["CLIENT_TRAFFIC_SECRET_0"]), 0x1301)
    before = seal13(sender, b"before")
    update = seal13(sender, b"\x18\x00\x00\x01\x00", ctype=22)  # update_not_requested
    following = sender.updated()
    assert following.key != sender.key and following.seq == 0
    after = seal13(following, b"after")
    assert walker.records.feed(before + update + after) == [b"before", b"after"]
    assert (walker.records.opened, walker.records.failed) == (3, 0)


def test_decrypted_capture_keeps_tls_as_captured_and_says_so(tmp_path: Path) -> None:
    """`flowscan decrypt`: the media inside TLS decrypts, but its clear cannot go back
    inside the TLS records: every packet of the capture is written as it was, and a
    warning counts the packets left so."""
    from flowscan.capture import CaptureSource, open_reader

    folder = LAB / "turn-tls-chromium"
    out = tmp_path / "clear.pcapng"
    report = flowscan.api.decrypt(str(folder / "capture.pcapng"), str(out),
                                  keylog=[str(folder / "keys.log")])
    (flow,) = [f for f in report.flows if f.encryption is not None]
    assert flow.encryption is not None and flow.encryption.decryption is not None
    decrypted = flow.encryption.decryption.packets_decrypted
    assert any(w.startswith(f"{decrypted} packets decrypted inside TLS")
               for w in report.capture.warnings)

    def frames(path: Path) -> list[bytes]:
        with CaptureSource(str(path)) as source:
            return [data for _ts, _link, data, _wire in open_reader(source).packets()]

    assert frames(out) == frames(folder / "capture.pcapng")


def rfc8448_connection(tmp_path: Path, client_data: list[bytes], server_data: list[bytes]
                       ) -> Path:
    """RFC 8448 section 3's connection over TCP (its hellos, handshake records and ticket
    as the RFC lists them), then application records of our own under its traffic keys,
    one segment each; and its key log beside the capture."""
    from test_tcp_media import tcp_capture

    client = Epoch.tls13_secret(bytes.fromhex(SECRETS["CLIENT_TRAFFIC_SECRET_0"]), 0x1301)
    server = Epoch.tls13_secret(bytes.fromhex(SECRETS["SERVER_TRAFFIC_SECRET_0"]), 0x1301)
    server.seq = 1  # after the ticket
    segments = [(0, CLIENT_HELLO), (1, SERVER_HELLO + SERVER_HANDSHAKE),
                (0, CLIENT_FINISHED), (1, SERVER_TICKET)]
    for n in range(max(len(client_data), len(server_data))):
        segments += [(0, seal13(client, d, padding=n % 4)) for d in client_data[n:n + 1]]
        segments += [(1, seal13(server, d)) for d in server_data[n:n + 1]]
    (tmp_path / "keys.log").write_text("".join(
        f"{label} {CLIENT_RANDOM.hex()} {secret}\n" for label, secret in SECRETS.items()))
    return tcp_capture(tmp_path / "tls.pcap", segments)


def media_in_channel_data(n: int, ssrc: int) -> bytes:
    header = bytes([0x80, 0x6F]) + n.to_bytes(2, "big") + (n * 960).to_bytes(4, "big")
    return channel_data(header + ssrc.to_bytes(4, "big") + random.Random(n).randbytes(80))


def test_stun_inside_tls_on_any_port_is_opened_and_judged(tmp_path: Path) -> None:
    """TURN over TLS needs no port 5349 to be found: with the key log, a TLS connection
    whose client opens with a STUN request is walked as TURN over TCP, and its relayed
    media judged; without the key log it shows nothing."""
    client = [stun_binding(bytes(12))] + [media_in_channel_data(n, 0x1234) for n in range(12)]
    server = [b"\x01\x01\x00\x00\x21\x12\xa4\x42" + bytes(12)] + [
        media_in_channel_data(n, 0x5678) for n in range(12)]
    capture = rfc8448_connection(tmp_path, client, server)
    plain = flowscan.scan(str(capture))
    (flow,) = plain.flows
    assert flow.protocols == ("tls",) and flow.encryption is None
    report = flowscan.scan(str(capture), keylog=[str(tmp_path / "keys.log")])
    (flow,) = report.flows
    assert {"tls", "stun", "turn", "rtp"} <= set(flow.protocols)
    assert flow.encryption is not None and flow.encryption.evidence[0].signal == "tls-opened"
    # The server's handshake record, the client's Finished, the ticket, and 13 each way.
    assert "29 records opened, 0 did not verify" in flow.encryption.evidence[0].detail
    assert flow.details["turn"].channel_data > 0


def test_https_inside_tls_is_left_as_it_was(tmp_path: Path) -> None:
    """Keys for a TLS connection that carries HTTP ('G' of GET is a ChannelData first
    byte, 0x47): its client does not open with STUN, so nothing about it changes."""
    capture = rfc8448_connection(tmp_path, [b"GET / HTTP/1.1\r\nHost: example\r\n\r\n"],
                                 [b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"])
    plain = flowscan.scan(str(capture))
    report = flowscan.scan(str(capture), keylog=[str(tmp_path / "keys.log")])
    assert report_to_dict(plain)["flows"] == report_to_dict(report)["flows"]
    assert report.flows[0].protocols == ("tls",)


def test_opens_with_stun() -> None:
    assert framing.opens_with_stun(stun_binding(bytes(12)))
    assert framing.opens_with_stun(b"\x00\x14" + stun_binding(bytes(12)))  # RFC 4571
    assert not framing.opens_with_stun(b"GET / HTTP/1.1\r\n")
    assert not framing.opens_with_stun(channel_data(rtp_packet(1)))


def test_what_the_key_log_opens_stays_with_its_own_flow() -> None:
    """Flows with equal facts share one facts object (identify_workers.SharedFacts): the
    TURN found inside one flow's TLS joins that flow's facts alone, never the facts of a
    flow that shares them."""
    folder = LAB / "turn-tls-chromium"
    path = str(folder / "capture.pcapng")
    with CaptureSource(path) as source:
        flows = read_account_identify(source, ScanOptions(workers=0), None).flows
    tls = [i for i, (flow, facts) in enumerate(flows)
           if facts.tls is not None and flow.transport == "tcp"]
    # Each TLS flow gets a twin: another flow (another client port) sharing its facts.
    twins = [(replace(flow, client=Endpoint(flow.client.ip, flow.client.port + 1)), facts)
             for flow, facts in (flows[i] for i in tls)]
    before = [pickle.dumps(facts) for _, facts in twins]
    flows += twins
    keylog = KeyLog()
    keylog.add_file(str(folder / "keys.log"))
    open_tls_flows(path, keylog, flows)
    opened = [flows[i][1] for i in tls if flows[i][1].tls_opened]
    assert opened and all("turn" in facts.protocols for facts in opened)
    assert not {id(facts) for facts in opened} & {id(facts) for _, facts in twins}
    assert [pickle.dumps(facts) for _, facts in twins] == before
    assert not any("turn" in twin.protocols for twin, _ in twins)
