"""The fuzz targets: every parser entry point, each with its seeds and one-input function.

A target calls every entry point of its module on each input (both values of each mode
flag too), so a run of N inputs is N inputs for each entry point. What a target may raise
is what the code documents: protocol parsers return None or a partial result and raise
nothing (flowscan/protocols/__init__.py); the packet decoder raises IndexError/ValueError
for short or inconsistent packets (capture/decode.py); readers and scans raise
flowscan.errors.CaptureError or UsageError; --srtp-key and claims files UsageError.
"""

from __future__ import annotations

import os
import struct
import tempfile
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import Any

from flowscan import api
from flowscan.capture import CaptureSource, open_reader
from flowscan.capture.decode import SUPPORTED_LINKS, UDP_GTPU, UDP_VXLAN, Decoder
from flowscan.capture.edit import LayerDecoder, replace_udp_payload
from flowscan.crypto import keys as srtp_keys
from flowscan.crypto.keylog import KeyLog
from flowscan.crypto.srtp import SDES_SUITES
from flowscan.errors import CaptureError, FlowscanError, UsageError
from flowscan.policy import claims
from flowscan.protocols import demux, dns, dtls, quic, rtp, sip, stun, tls, zoom
from flowscan.protocols import hello as hs
from flowscan.protocols.cursor import Cursor, Truncated, u16_list

from . import synth
from .harness import SecretLeak, Target
from .seeds import FRAME_SEP, captures, harvest

REPO = Path(__file__).resolve().parents[2]
INCLUDE_REAL = os.environ.get("FLOWSCAN_FUZZ_LAB_ONLY") != "1"


def _kinds(*kinds: str, extra: Callable[[], list[bytes]] = list) -> Callable[[], list[bytes]]:
    """Harvested payloads of these kinds, then hand-built ones (synth.py)."""
    def seeds() -> list[bytes]:
        found = harvest(INCLUDE_REAL)
        return [s for k in kinds for s in found.get(k, [])] + extra()
    return seeds


def _text(data: bytes) -> str:
    return data.decode("utf-8", "replace")


# --- protocols/* ---------------------------------------------------------------------------

def one_stun(data: bytes) -> None:
    demux.classify(data)
    for exact in (True, False):
        msg = stun.parse(data, exact=exact)
        if msg is not None:
            zoom.zoom_stun_signature(msg.attributes, data)
        stun.parse_channel_data(data, exact=exact)
    for message in stun.split_stream(data):
        stun.parse(message, exact=False)


def one_dtls(data: bytes) -> None:
    frames = data.split(FRAME_SEP)
    for unified in (False, True):
        dtls.parse_records(data, unified=unified)
    side = dtls.DtlsSide()
    for frame in frames:
        side.add_datagram(frame)


def one_hello(data: bytes) -> None:
    """First byte: the handshake type the seed came with; the rest: the message body."""
    body = data[1:]
    for flag in (False, True):
        hs.parse_client_hello(body, dtls=flag)
        hs.parse_server_hello(body, dtls=flag)
        hs.parse_certificates(body, tls13=flag)
        hs.split_messages(data, dtls=flag)
    hs.describe_certificate(body)
    hs.version_name(int.from_bytes(data[:2], "big"))


def one_tls(data: bytes) -> None:
    tls.looks_like_tls(data)
    tls.parse_stream(data)


def one_quic(data: bytes) -> None:
    initials: list[quic.QuicInitial] = []
    for frame in data.split(FRAME_SEP):
        quic.parse_long_header(frame)
        initials += quic.parse_client_initials(frame)
        quic.parse_gquic_chlo(frame)
    quic.client_hello(initials)
    # Mutated Initials seldom survive the AEAD, so the decrypted side (CRYPTO frames and the
    # ClientHello reassembled from them) is fed the input directly as well.
    frames = quic.crypto_frames(data)
    quic.client_hello([quic.QuicInitial(quic.VERSION_1, b"", frames)])


def one_rtp(data: bytes) -> None:
    rtp.is_rtcp_type(data[1] if len(data) > 1 else 0)
    rtp.parse_rtp(data)
    compound = rtp.parse_rtcp(data)
    if compound is not None:
        rtp.sdes_cnames(data, compound)
        for packet in compound.packets:
            _ = packet.name
    rtp.srtcp_trailers(data)


def one_dns(data: bytes) -> None:
    dns.parse(data)
    dns.parse_tcp(data)


def one_zoom(data: bytes) -> None:
    zoom.parse_server(data)
    zoom.parse_p2p(data)


CURSOR_OPS = 10


def one_cursor(data: bytes) -> None:
    """A small program over the cursor: byte 0 says how many (op, argument) pairs follow,
    the rest is the buffer. Truncated is the cursor's documented signal; besides it, the
    position must never pass the end, and every read must return what it promised."""
    u16_list(data)
    if not data:
        return
    count = min(data[0] & 0x0F, (len(data) - 1) // 2)
    program, buf = data[1:1 + 2 * count], data[1 + 2 * count:]
    cur = Cursor(buf, 0, None if data[0] & 0x10 else max(0, len(buf) - (data[0] >> 5)))
    cursors = [cur]
    for i in range(0, len(program), 2):
        op, arg = program[i] % CURSOR_OPS, program[i + 1]
        c = cursors[-1]
        before = c.pos
        try:
            if op == 0:
                assert len(c.take(arg)) == arg
            elif op == 1:
                c.skip(arg)
            elif op == 2:
                assert c.uint(arg % 9) >= 0
            elif op == 3:
                assert 0 <= c.u8() < 1 << 8
            elif op == 4:
                assert 0 <= c.u16() < 1 << 16
            elif op == 5:
                assert 0 <= c.u24() < 1 << 24
            elif op == 6:
                assert 0 <= c.u32() < 1 << 32
            elif op == 7:
                c.vector(1 + arg % 3)
            elif op == 8:
                inner = c.sub(arg)
                assert inner.remaining == arg
                cursors.append(inner)
            else:
                c.take(-arg)  # a negative size is refused, never read backwards
        except Truncated:
            assert c.pos == before, "a refused read must not move the cursor"
        assert 0 <= c.pos <= c.end <= len(buf), "cursor out of its bounds"


# --- SIP/SDP, SDES, key log, --srtp-key, claims (owned by another engineer) ---------------

def _hidden(secret: str, *texts: str) -> None:
    """Key text found in a message or repr, where the input did not also put it elsewhere."""
    for text in texts:
        if secret in text:
            raise SecretLeak(f"key material in output: {text[:80]!r}")


def _sdes_params(text: str) -> list[str]:
    """The key||salt base64 of every a=crypto-style key parameter in text (8+ chars)."""
    found = []
    for part in text.replace(";", " ").replace("\n", " ").split():
        if part.startswith("inline:"):
            key = part[7:].split("|")[0]
            if len(key) >= 8:
                found.append(key)
    return found


# What the structures' reprs always hold (class and field names): a "key" that is part of
# this text ("fingerpr") is found in any repr, whatever the parser did with it.
_REPR_SKELETON = repr(sip.SdpMedia("", 0, "", [], crypto=[sip.SdesKey("", "", "")])) + repr(
    {("", 0): srtp_keys.SrtpKey(next(iter(srtp_keys.PROFILES.values())), b"", b"")})


def _taken_keys(text: str, media: list[sip.SdpMedia]) -> list[str]:
    """Key text the parser took as a=crypto key params and that occurs once in the input:
    found anywhere in the output, it can only have come from the key params."""
    return [key for m in media for c in m.crypto for key in _sdes_params(c.key_params)
            if text.count(key) == 1 and key not in _REPR_SKELETON]


def _check_media(text: str, media: list[sip.SdpMedia]) -> None:
    shown = repr(media)
    for key in _taken_keys(text, media):
        _hidden(key, shown)


def one_sip(data: bytes) -> None:
    msg = sip.parse(data)
    if msg is not None:
        _check_media(_text(data), msg.media)


def one_sdp(data: bytes) -> None:
    text = _text(data)
    media = sip.parse_sdp(text)
    _check_media(text, media)
    found = srtp_keys.media_keys(media, "fuzz")
    shown = repr(found)
    for key in _taken_keys(text, media):
        _hidden(key, shown)


def one_sdes(data: bytes) -> None:
    """`SUITE KEY-PARAMS`, the two fields of an a=crypto line that sdes_key takes."""
    text = _text(data)
    suite, _, params = text.partition(" ")
    try:
        key = srtp_keys.sdes_key(suite, params, "fuzz")
    except Exception as exc:
        for secret in _sdes_params(params):
            _hidden(secret, str(exc))
        raise
    if key is not None:
        shown = repr(key)
        for secret in _sdes_params(params):
            _hidden(secret, shown)
        if len(key.master_key) >= 4:
            _hidden(repr(key.master_key), shown)


STATIC_SRTP_TEXT = " ".join(SDES_SUITES) + " SSRC=SUITE:inline:BASE64 IP:PORT=SUITE:inline:BASE64"


def one_srtp_key(data: bytes) -> None:
    spec = data.decode("utf-8", "surrogateescape")  # as Python decodes the command line
    target, _, rest = spec.partition("=")
    secrets = [s for s in _sdes_params(rest.replace(":inline:", " inline:"))
               if s not in target and s not in STATIC_SRTP_TEXT]
    keys = srtp_keys.ExplicitKeys()
    try:
        keys.add_spec(spec, 1)
    except Exception as exc:
        for secret in secrets:
            _hidden(secret, str(exc))
        raise
    shown = repr(keys)
    for secret in secrets:
        _hidden(secret, shown)


def one_keylog(data: bytes) -> None:
    text = data.decode("ascii", "replace")  # as add_file and the secrets block decode it
    log = KeyLog()
    secrets = [tok for line in text.splitlines() for tok in line.split()[1:]
               if len(tok) >= 16]
    try:
        log.add_text(text, "fuzz")
    except Exception as exc:
        for secret in secrets:
            _hidden(secret, str(exc))
        raise
    shown = repr(log) + " ".join(log.malformed)
    for secret in secrets:
        _hidden(secret, shown)


@lru_cache(maxsize=1)
def _scratch() -> Path:
    """A private folder for inputs that the code under test only reads from a path."""
    base = "/dev/shm" if os.path.isdir("/dev/shm") else None
    return Path(tempfile.mkdtemp(prefix="flowscan-fuzz-", dir=base))


def one_claims(data: bytes) -> None:
    path = _scratch() / "claims.toml"
    path.write_bytes(data)
    claims.load_claims(str(path))


# --- capture/* and the whole scan ----------------------------------------------------------

def _read_all(path: str) -> tuple[Any, ...]:
    """Everything a reader yields for a capture, or the error it raised."""
    with CaptureSource(path) as source:
        try:
            reader = open_reader(source)
            packets = [p for batch in reader.batches() for p in batch.packets()]
        except CaptureError as exc:
            return ("error", str(exc))
        facts = reader.facts
        return (packets, facts.format, facts.warnings, facts.sections, facts.interfaces,
                facts.packets, sorted(facts.link_types), facts.names,
                [(s.secrets_type, s.data) for s in facts.secrets], source.sha256())


def one_capture(data: bytes) -> None:
    """The readers, twice: with the compiled walker and with its Python reference, which
    must agree (tests/test_walk.py holds them to that on crafted files; here on anything)."""
    path = _scratch() / "capture.bin"  # a file: a pipe's reads are sized for huge captures
    path.write_bytes(data)
    native = _read_all(str(path))
    os.environ["FLOWSCAN_PURE_PYTHON"] = "1"
    try:
        pure = _read_all(str(path))
    finally:
        del os.environ["FLOWSCAN_PURE_PYTHON"]
    assert native == pure, "compiled and Python record walkers disagree"
    if native[0] == "error":
        raise CaptureError(str(path), native[1])


LINKS = sorted(SUPPORTED_LINKS)


def one_decode(data: bytes) -> None:
    """Byte 0 picks the link type, the rest is the frame. When the payload of a decoded UDP
    packet is replaced (capture/edit.py), decoding the new frame must find the new payload."""
    if not data:
        return
    link, frame = LINKS[data[0] % len(LINKS)], data[1:]
    decoded = Decoder().decode(link, frame)
    layered = LayerDecoder()
    again = layered.decode(link, frame)
    assert again == decoded, "LayerDecoder decodes differently from Decoder"
    if decoded is None or decoded[0] != 17:
        return
    if {UDP_GTPU, UDP_VXLAN} & set(struct.unpack(">HH", decoded[1][-4:])):
        return  # on a tunnel port the payload's content decides what it is: no invariant
    start, end = decoded[2], min(decoded[3], len(frame))
    if start > end:
        return
    new = frame[start:end][::-1] + b"\x00fz"
    edited = replace_udp_payload(frame, layered.layers, start, end, new)
    if edited is None:
        return
    redecoded = Decoder().decode(link, edited)
    assert redecoded is not None, "an edited frame no longer decodes"
    assert edited[redecoded[2]:redecoded[3]] == new, "the edited frame carries another payload"


def one_scan(data: bytes) -> None:
    path = _scratch() / "capture.bin"
    path.write_bytes(data)
    api.scan(str(path))


def _decode_seeds() -> list[bytes]:
    found = harvest(INCLUDE_REAL)
    frames = {int(k[5:]): v[:24] for k, v in found.items() if k.startswith("link-")}
    for link, more in synth.link_frames(frames.get(1, [])).items():
        frames.setdefault(link, []).extend(more)
    return [bytes([LINKS.index(link)]) + f for link, fs in frames.items()
            if link in SUPPORTED_LINKS for f in fs]


def _quic_seeds() -> list[bytes]:
    out = _kinds("quic", "quic-flight", "gquic")()
    vector = REPO / "tests" / "vectors" / "rfc9001_a2_client_initial.hex"
    if vector.is_file():
        out.append(bytes.fromhex(vector.read_text().split()[0]))
    for datagram in list(out):
        for initial in quic.parse_client_initials(datagram.split(FRAME_SEP)[0]):
            plain = b"".join(b"\x06" + _varint(off) + _varint(len(d)) + d
                             for off, d in initial.crypto)
            out.append(plain)
    return out


def _varint(value: int) -> bytes:
    if value < 1 << 6:
        return value.to_bytes(1, "big")
    if value < 1 << 14:
        return (value | 0x4000).to_bytes(2, "big")
    return (value | 0x80000000).to_bytes(4, "big")


def _hello_seeds() -> list[bytes]:
    found = harvest(INCLUDE_REAL)
    out = list(found.get("hello", [])) + synth.hello_messages()
    out += [b"\x0b" + der for der in found.get("cert", [])]
    for flight in found.get("dtls-flight", []):
        for frame in flight.split(FRAME_SEP):
            for record in dtls.parse_records(frame) or []:
                if record.content_type == 22 and not record.epoch:
                    out.append(bytes([record.fragment[:1][0] if record.fragment else 0])
                               + record.fragment[12:])
    return out[:96]


SDP_SEED = (b"v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n"
            b"m=audio 40000 RTP/SAVP 0 8\r\na=rtpmap:0 PCMU/8000\r\n"
            b"a=crypto:1 AES_CM_128_HMAC_SHA1_80 "
            b"inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz|2^20|1:4\r\n"
            b"a=crypto:2 AEAD_AES_256_GCM inline:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIj"
            b"JCUmJygpKiss\r\na=setup:actpass\r\na=fingerprint:sha-256 AB:CD\r\n"
            b"a=candidate:1 1 udp 2130706431 192.0.2.1 40000 typ host\r\n"
            b"m=video 40002/2 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP6 2001:db8::1\r\n")
SIP_SEED = (b"INVITE sip:bob@example.com SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1\r\n"
            b"Call-ID: abc@192.0.2.1\r\nCSeq: 1 INVITE\r\nContent-Type: application/sdp\r\n"
            b"Content-Length: " + str(len(SDP_SEED)).encode() + b"\r\n\r\n" + SDP_SEED)
KEYLOG_SEED = (b"# comment\nCLIENT_RANDOM " + b"ab" * 32 + b" " + b"cd" * 48 + b"\n"
               b"EXPORTER_SECRET " + b"01" * 32 + b" " + b"ef" * 32 + b"\n"
               b"CLIENT_HANDSHAKE_TRAFFIC_SECRET " + b"02" * 32 + b" " + b"99" * 48 + b"\r\n")
CLAIMS_SEED = (b"[claims]\nmedia_end_to_end = true\nno_plaintext_media = true\n"
               b"media_stays_in = \"EU\"\nsignalling_stays_in = \"CA\"\n"
               b"allowed_operators = [30103, 15169]\n")
TEXT_TOKENS = (b"\r\n", b"\n", b" ", b":", b"=", b"|", b";", b"/", b"inline:", b"2^31",
               b"MKI", b"\xc2\xb2", b"\xd9\xa3", b"\xef\xbc\x91", b"-1", b"0x", b"[", b"]",
               b"\"", b"#")
SDP_TOKENS = (*TEXT_TOKENS, b"m=audio ", b"c=IN IP4 ", b"a=crypto:", b"a=rtpmap:", b"v=0",
              b"AES_CM_128_HMAC_SHA1_32", b"AEAD_AES_128_GCM", b"a=fingerprint:",
              b"Content-Length: ", b"Content-Type: application/sdp", b"\r\n\r\n")


def _text_seeds(*seeds: bytes) -> Callable[[], list[bytes]]:
    return lambda: list(seeds)


def _sdes_seeds() -> list[bytes]:
    out = []
    for line in SDP_SEED.split(b"\r\n"):
        if line.startswith(b"a=crypto:"):
            out.append(b" ".join(line.split(b" ")[1:]))
    out.append(b"AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz|1:1;"
               b"inline:QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNk|2:1")
    return out


def _srtp_key_seeds() -> list[bytes]:
    return [b"0x1234abcd=" + s.replace(b" ", b":", 1) for s in _sdes_seeds()] + [
        b"192.0.2.1:40000=AES_CM_128_HMAC_SHA1_80:inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz",
        b"[2001:db8::1]:5004=AEAD_AES_128_GCM:inline:AAECAwQFBgcICQoLDA0ODxAREhMUFRYX",
        b"305419896=AES_CM_128_HMAC_SHA1_32:inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz|1:4"]


TARGETS: dict[str, Target] = {t.name: t for t in (
    Target("stun", "protocols/stun.py (+ demux.classify): parse, parse_channel_data, "
           "split_stream", _kinds("stun"), one_stun),
    Target("dtls", "protocols/dtls.py: parse_records, DtlsSide.add_datagram (reassembly)",
           _kinds("dtls", "dtls-flight"), one_dtls),
    Target("hello", "protocols/hello.py: Client/ServerHello, Certificate, split_messages, "
           "describe_certificate", _hello_seeds, one_hello),
    Target("tls", "protocols/tls.py: parse_stream", _kinds("tls", extra=synth.tls_streams),
           one_tls, max_len=16384),
    Target("quic", "protocols/quic.py: long headers, Initial decryption, CRYPTO frames, "
           "ClientHello, gQUIC CHLO", _quic_seeds, one_quic),
    Target("rtp", "protocols/rtp.py: parse_rtp, parse_rtcp, sdes_cnames, srtcp_trailers",
           _kinds("rtp"), one_rtp),
    Target("dns", "protocols/dns.py: parse, parse_tcp",
           _kinds("dns", "dns-tcp", extra=synth.dns_messages), one_dns),
    Target("zoom", "protocols/zoom.py: parse_server, parse_p2p",
           _kinds("zoom", extra=synth.zoom_packets), one_zoom),
    Target("cursor", "protocols/cursor.py: every read, bounds kept",
           lambda: [bytes([0x0F]) + bytes(range(30)) + b"\x00\x05abcdefgh" * 4],
           one_cursor, documented=(Truncated,)),
    Target("sip", "protocols/sip.py: parse (SIP message and its SDP body)",
           lambda: [*_kinds("sip")(), SIP_SEED], one_sip, dictionary=SDP_TOKENS),
    Target("sdp", "protocols/sdp.py parse_sdp + crypto/keys.py media_keys",
           _text_seeds(SDP_SEED), one_sdp, dictionary=SDP_TOKENS),
    Target("sdes", "crypto/keys.py sdes_key: a=crypto key params", _sdes_seeds, one_sdes,
           dictionary=SDP_TOKENS),
    Target("srtp-key", "crypto/keys.py ExplicitKeys.add_spec: --srtp-key", _srtp_key_seeds,
           one_srtp_key, documented=(UsageError,), dictionary=SDP_TOKENS),
    Target("keylog", "crypto/keylog.py KeyLog.add_text: key log files, secrets blocks",
           _text_seeds(KEYLOG_SEED), one_keylog,
           dictionary=(*TEXT_TOKENS, b"CLIENT_RANDOM ", b"EXPORTER_SECRET ", b"a" * 64)),
    Target("claims", "policy/claims.py load_claims", _text_seeds(CLAIMS_SEED), one_claims,
           documented=(UsageError,),
           dictionary=(*TEXT_TOKENS, b"[claims]", b"true", b"= [", b"{", b"}", b"'''", b"\\u")),
    Target("pcap", "capture/: pcap reader (compiled and Python walkers compared)",
           lambda: captures("pcap", INCLUDE_REAL), one_capture, documented=(CaptureError,),
           max_len=16384),
    Target("pcapng", "capture/: pcapng reader (compiled and Python walkers compared)",
           lambda: captures("pcapng", INCLUDE_REAL), one_capture, documented=(CaptureError,),
           max_len=16384),
    Target("gzip", "capture/source.py: gzip streams under either reader",
           lambda: captures("gzip", INCLUDE_REAL), one_capture, documented=(CaptureError,),
           max_len=8192),
    Target("decode", "capture/decode.py Decoder + capture/edit.py replace_udp_payload",
           _decode_seeds, one_decode, documented=(IndexError, ValueError)),
    Target("scan", "flowscan.api.scan on a whole (mutated) capture",
           lambda: captures("all", INCLUDE_REAL, 16, 8192), one_scan,
           documented=(FlowscanError,), time_limit=20.0, max_len=16384),
)}
