"""Writes demo-call.pcap: a small synthetic capture for the README's first command.

It is crafted with Scapy (not recorded from a real stack) and stands in until the lab's
real-stack captures exist. Deterministic: the same script writes the same bytes.
Content: DNS lookup of a media server, a TCP/TLS-like signalling connection, STUN binding
request and response, and RTP-shaped UDP media both ways, from a client in 192.0.2.0/24
(documentation range) to servers in 198.51.100.0/24 and 203.0.113.0/24.
"""

from __future__ import annotations

from pathlib import Path

from scapy.layers.dns import DNS, DNSQR, DNSRR
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.l2 import Ether
from scapy.utils import wrpcap

CLIENT, RESOLVER, SIGNAL, MEDIA = "192.0.2.10", "192.0.2.1", "198.51.100.20", "203.0.113.30"
MAC_C, MAC_R = "02:00:00:00:00:10", "02:00:00:00:00:01"


def frame(src: str, dst: str, l4: object, out: bool = True) -> Ether:
    return Ether(src=MAC_C if out else MAC_R, dst=MAC_R if out else MAC_C) / IP(
        src=src, dst=dst, id=1) / l4


def main() -> None:
    t0 = 1_700_000_000.0
    pkts = []

    def add(t: float, p: Ether) -> None:
        p.time = t0 + t
        pkts.append(p)

    q = DNS(id=0x1234, rd=1, qd=DNSQR(qname="media.example.org"))
    add(0.000, frame(CLIENT, RESOLVER, UDP(sport=53001, dport=53) / q))
    add(0.012, frame(RESOLVER, CLIENT, UDP(sport=53, dport=53001) / DNS(
        id=0x1234, qr=1, rd=1, ra=1, qd=q.qd,
        an=DNSRR(rrname="media.example.org", rdata=MEDIA, ttl=60)), out=False))
    add(0.020, frame(CLIENT, SIGNAL, TCP(sport=50500, dport=443, flags="S", seq=1000)))
    add(0.048, frame(SIGNAL, CLIENT, TCP(sport=443, dport=50500, flags="SA", seq=5000,
                                         ack=1001), out=False))
    add(0.049, frame(CLIENT, SIGNAL, TCP(sport=50500, dport=443, flags="A", seq=1001,
                                         ack=5001)))
    hello = bytes.fromhex("160301002d0100002903030000000000000000000000000000000000000000"
                          "00000000000000000000000000020a0a0100")
    add(0.050, frame(CLIENT, SIGNAL, TCP(sport=50500, dport=443, flags="PA", seq=1001,
                                         ack=5001) / hello))
    # STUN Binding request and success response (RFC 8489 header, magic cookie 0x2112A442).
    txid = bytes(range(12))
    add(0.100, frame(CLIENT, MEDIA, UDP(sport=40000, dport=3478) / (
        b"\x00\x01\x00\x00\x21\x12\xa4\x42" + txid)))
    add(0.131, frame(MEDIA, CLIENT, UDP(sport=3478, dport=40000) / (
        b"\x01\x01\x00\x0c\x21\x12\xa4\x42" + txid
        + b"\x00\x20\x00\x08\x00\x01\xbc\xb3\xe1\x12\xa6\x48"), out=False))
    for i in range(50):  # 20 ms audio frames, RTP version 2, payload type 111
        t = 0.2 + i * 0.02
        rtp = bytes([0x80, 111]) + (1000 + i).to_bytes(2, "big") + (960 * i).to_bytes(
            4, "big") + bytes.fromhex("11223344") + bytes((i * 7 + k) % 256 for k in range(80))
        add(t, frame(CLIENT, MEDIA, UDP(sport=40000, dport=3478) / rtp))
        reply = rtp[:8] + bytes.fromhex("55667788") + rtp[12:]  # the other side's SSRC
        add(t + 0.005, frame(MEDIA, CLIENT, UDP(sport=3478, dport=40000) / reply, out=False))
    wrpcap(str(Path(__file__).with_name("demo-call.pcap")), pkts)


if __name__ == "__main__":
    main()
