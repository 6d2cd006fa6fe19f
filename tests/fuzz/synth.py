"""Hand-built seeds for what the lab captures lack (TLS over TCP, DNS, Zoom, link types
other than Ethernet): every target gets well-formed starting points even where the shared
real-world captures are absent, as in the test slice."""

from __future__ import annotations

import struct


def _vec(data: bytes, size: int) -> bytes:
    return len(data).to_bytes(size, "big") + data


def _ext(etype: int, value: bytes) -> bytes:
    return struct.pack(">H", etype) + _vec(value, 2)


def client_hello_body() -> bytes:
    """RFC 8446 4.1.2, with server_name, ALPN, supported_versions and use_srtp."""
    sni = _vec(b"\x00" + _vec(b"meet.example.com", 2), 2)
    alpn = _vec(_vec(b"h2", 1) + _vec(b"http/1.1", 1), 2)
    exts = (_ext(0, sni) + _ext(16, alpn) + _ext(43, _vec(b"\x03\x04\x03\x03", 1))
            + _ext(14, _vec(b"\x00\x01\x00\x07", 2) + _vec(b"", 1)))
    return (b"\x03\x03" + bytes(range(32)) + _vec(b"", 1) + _vec(b"\x13\x01\xc0\x2f", 2)
            + _vec(b"\x00", 1) + _vec(exts, 2))


def server_hello_body() -> bytes:
    exts = _ext(43, b"\x03\x04") + _ext(16, _vec(_vec(b"h2", 1), 2)) + _ext(
        14, _vec(b"\x00\x01", 2) + _vec(b"\x01", 1))
    return b"\x03\x03" + bytes(32) + _vec(b"", 1) + b"\x13\x01\x00" + _vec(exts, 2)


def certificate_body(der: bytes = b"\x30\x03\x02\x01\x01") -> bytes:
    return _vec(_vec(der, 3), 3)


def handshake(mtype: int, body: bytes) -> bytes:
    return bytes([mtype]) + _vec(body, 3)


def tls_records(*messages: bytes) -> bytes:
    return b"".join(b"\x16\x03\x01" + _vec(m, 2) for m in messages)


def tls_streams() -> list[bytes]:
    client = tls_records(handshake(1, client_hello_body()))
    server12 = tls_records(handshake(2, server_hello_body().replace(b"\x00\x2b\x00\x02\x03\x04",
                                                                    b"")),
                           handshake(11, certificate_body())) + b"\x17\x03\x03\x00\x02hi"
    server13 = tls_records(handshake(2, server_hello_body())) + b"\x14\x03\x03\x00\x01\x01"
    return [client, server12, server13]


def hello_messages() -> list[bytes]:
    return [b"\x01" + client_hello_body(), b"\x02" + server_hello_body(),
            b"\x0b" + certificate_body(), b"\x0b\x00" + certificate_body()]


def _name(name: str) -> bytes:
    return b"".join(_vec(label.encode(), 1) for label in name.split(".")) + b"\x00"


def dns_messages() -> list[bytes]:
    """A query and a response with CNAME, A and AAAA answers and compression pointers."""
    query = struct.pack(">6H", 0x1234, 0x0100, 1, 0, 0, 0) + _name("zoom.example.com") + \
        b"\x00\x01\x00\x01"
    answers = (b"\xc0\x0c" + struct.pack(">HHIH", 5, 1, 60, 6) + b"\x03cdn\xc0\x11"
               + b"\xc0\x2e" + struct.pack(">HHIH", 1, 1, 60, 4) + bytes([192, 0, 2, 7])
               + b"\xc0\x2e" + struct.pack(">HHIH", 28, 1, 60, 16) + bytes(15) + b"\x01")
    response = struct.pack(">6H", 0x1234, 0x8180, 1, 3, 0, 0) + query[12:] + answers
    return [query, response, _vec(query, 2) + _vec(response, 2)]


def _rtp(pt: int = 111, size: int = 40) -> bytes:
    return struct.pack(">BBHII", 0x90, pt, 7, 1000, 0xDEADBEEF) + b"\xbe\xde\x00\x01" + \
        b"\x10\xff\x00\x00" + bytes(size)


def zoom_packets() -> list[bytes]:
    audio = b"\x0f" + bytes(18) + _rtp()
    video = b"\x10" + bytes(19) + b"\x02" + bytes(3) + _rtp(98)
    rtcp = b"\x21" + bytes(15) + b"\x81\xc8\x00\x06" + bytes(24)
    outer = b"\x05\x00\x01\x00\x00\x00\x00"
    return [outer + b"\x00" + audio, outer + b"\x04" + video, outer + b"\x04" + rtcp,
            b"\x01" + bytes(15), audio, video, b"\x0d" + bytes(6) + b"\x1e" + bytes(19) + _rtp()]


def link_frames(ethernet: list[bytes]) -> dict[int, list[bytes]]:
    """Ethernet frames re-wrapped in the other link layers the decoder reads, and in
    802.1Q, PPPoE and MPLS, so that each link type has seeds."""
    out: dict[int, list[bytes]] = {}
    for frame in ethernet[:12]:
        ethertype, ip = frame[12:14], frame[14:]
        family = 2 if ethertype == b"\x08\x00" else 30
        out.setdefault(1, []).extend([
            frame[:12] + b"\x81\x00\x00\x64" + frame[12:],
            frame[:12] + b"\x88\x64\x11\x00\x00\x01" + _vec(b"\x00\x21" + ip, 2),
            frame[:12] + b"\x88\x47\x00\x01\x01\x40" + ip])
        out.setdefault(113, []).append(b"\x00\x00\x00\x01\x00\x06" + frame[6:12] + b"\0\0"
                                       + ethertype + ip)
        out.setdefault(276, []).append(ethertype + b"\0\0" + bytes(16) + ip)
        out.setdefault(101, []).append(ip)
        out.setdefault(228 if family == 2 else 229, []).append(ip)
        out.setdefault(0, []).append(struct.pack("<I", family) + ip)
        out.setdefault(108, []).append(struct.pack(">I", family) + ip)
    return out


PCAP_MAGIC = {(False, False): 0xA1B2C3D4, (True, False): 0xA1B23C4D,
              (False, True): 0xA1B2CD34}


def pcap_file(packets: list[tuple[float, int, bytes]], order: str = "<", nano: bool = False,
              modified: bool = False) -> bytes:
    """Classic pcap of one link type: plain, nanosecond or Kuznetzov's modified format."""
    link = packets[0][1] if packets else 1
    out = [struct.pack(order + "IHHiIII", PCAP_MAGIC[(nano, modified)], 2, 4, 0, 0, 65535,
                       link)]
    scale = 1_000_000_000 if nano else 1_000_000
    for ts, _link, data in packets:
        sec = int(ts)
        out.append(struct.pack(order + "IIII", sec, int((ts - sec) * scale), len(data),
                               len(data) + 4) + (bytes(8) if modified else b"") + data)
    return b"".join(out)
