"""The identify stage on crafted payload samples: bytes in, FlowFacts out.

identify.identify_samples reads one closed flow's samples (side 0 is the flow's client);
identify.identify does the same from a FlowState and says whether media went unread.
"""

from __future__ import annotations

import pickle
import random
import struct

import orjson
import pytest
from packets import (
    MAGIC,
    dtls_client_hello,
    dtls_encrypted,
    dtls_server_hello,
    ice_check,
    srtp_like,
    stun_message,
)
from stagekit import (
    LOCAL,
    SDES_KEY,
    TCP,
    UDP,
    facts_of,
    pcmu_stream,
    raw_key,
    sdp_offer,
    sip_invite,
)

from flowscan.flows import CLASS_BUDGET, RTP_CLASS, FlowState, pack_samples
from flowscan.identify import facts_to_details, fields_map, identify
from flowscan.report.sanitize import json_safe_tree

NOISE = random.Random(13)  # seeded: the same bytes every run
TXID = bytes(range(1, 13))  # RFC 8489 section 5: a 96-bit transaction ID
MEDIA = ("203.0.113.5", 40000)


def binding_success(txid: bytes, address: str, port: int) -> bytes:
    """A Binding success response (class 0b10, RFC 8489 section 5) carrying
    XOR-MAPPED-ADDRESS (section 14.2): port and IPv4 address XORed with the magic cookie."""
    ip = int.from_bytes(bytes(int(b) for b in address.split(".")), "big")
    value = struct.pack(">BBHI", 0, 0x01, port ^ (MAGIC >> 16), ip ^ MAGIC)
    return stun_message(0x0101, txid, [(0x0020, value)])


# -- STUN (RFC 8489) and ICE (RFC 8445) ---------------------------------------------------

def test_stun_binding_request_and_response() -> None:
    facts = facts_of([(0, ice_check(TXID, controlling=True)),
                      (1, binding_success(TXID, "198.51.100.20", 54321))])
    assert facts.protocols == ["stun"]
    stun = facts.stun
    assert stun is not None and stun.messages == 2 and not stun.classic
    assert stun.methods == {"binding-request": 1, "binding-success": 1}
    assert stun.requests_from == ["client"]
    assert stun.usernames == ["abcd:efgh"]  # USERNAME, section 14.3
    assert stun.ice_roles == {"client": "controlling"}  # ICE-CONTROLLING, RFC 8445 16.1
    # XOR-MAPPED-ADDRESS decoded back to the address the server saw (section 14.2).
    assert stun.mapped_addresses == ["198.51.100.20:54321"]
    assert stun.rtt_ms == 20.0  # the samples are 20 ms apart
    # The remote only answered: ICE-lite or a STUN server (RFC 8445 section 2.5).
    assert stun.ice == "lite-or-server"


def test_ice_checks_both_ways_are_full_ice() -> None:
    facts = facts_of([(0, ice_check(TXID, controlling=True)),
                      (1, ice_check(bytes(12), controlling=False))])
    assert facts.stun is not None and facts.stun.ice == "full"
    assert facts.stun.ice_roles == {"client": "controlling", "server": "controlled"}


def test_unanswered_checks_say_nothing_of_the_other_side() -> None:
    facts = facts_of([(0, ice_check(TXID, controlling=True))])
    assert facts.stun is not None and facts.stun.ice == "one-direction"
    assert facts.stun.rtt_ms is None


def test_a_stun_header_with_a_wrong_length_is_not_stun() -> None:
    message = bytearray(ice_check(TXID, controlling=True))
    message[3] += 4  # the length field (section 5) now runs past the datagram
    assert facts_of([(0, bytes(message))]).stun is None


# -- DTLS-SRTP (RFC 5764) -----------------------------------------------------------------

def dtls_srtp_handshake() -> list[tuple[int, bytes]]:
    return [(0, dtls_client_hello(b"")), (1, dtls_server_hello()),
            (0, dtls_encrypted(2)), (1, dtls_encrypted(3))]


def test_dtls_client_hello_with_use_srtp() -> None:
    facts = facts_of(dtls_srtp_handshake(), server=MEDIA)
    assert facts.protocols == ["dtls"]
    dtls = facts.dtls
    assert dtls is not None and dtls.version == "DTLS 1.2"
    # use_srtp (RFC 5764 section 4.1.1): the profiles the client offers, in its order
    # (RFC 7714 section 14.2 for the AEAD one), and the one the server chose.
    assert dtls.srtp_profiles_offered == ["SRTP_AEAD_AES_128_GCM", "SRTP_AES128_CM_HMAC_SHA1_80"]
    assert dtls.srtp_profile == "SRTP_AES128_CM_HMAC_SHA1_80"
    assert dtls.srtp_mki is None  # an empty MKI
    assert dtls.sni is None  # WebRTC endpoints send no SNI
    assert dtls.client_random == "11" * 32 and dtls.server_random == "22" * 32
    assert dtls.encrypted_records == {"client": 1, "server": 1} and dtls.complete
    assert dtls.dtls_client == "client"


def test_dtls_without_encrypted_records_both_ways_is_not_complete() -> None:
    facts = facts_of(dtls_srtp_handshake()[:3], server=MEDIA)
    assert facts.dtls is not None and not facts.dtls.complete


def test_the_dtls_client_may_be_the_flow_server() -> None:
    """ICE decides the DTLS roles (RFC 5763 section 5, a=setup), not who sent first."""
    swapped = [(1 - side, data) for side, data in dtls_srtp_handshake()]
    facts = facts_of(swapped, server=MEDIA)
    assert facts.dtls is not None and facts.dtls.dtls_client == "server"
    assert facts.dtls.srtp_profile == "SRTP_AES128_CM_HMAC_SHA1_80"


def test_rtp_after_a_dtls_srtp_handshake_is_srtp() -> None:
    media = [(0, srtp_like(500 + i, 0xCAFE0001)) for i in range(8)]
    facts = facts_of(dtls_srtp_handshake() + media, server=MEDIA)
    assert {"dtls", "rtp", "srtp"} <= set(facts.protocols)
    assert facts.rtp is not None and facts.rtp.ssrcs == {"client": ("0xcafe0001",)}


# -- RTP (RFC 3550) -----------------------------------------------------------------------

def test_pcmu_rtp_is_a_valid_stream_with_codec_frames_in_the_clear() -> None:
    facts = facts_of([(0, p) for p in pcmu_stream()], server=MEDIA, ssrcs=(1, 0))
    assert facts.protocols == ["rtp"]
    rtp = facts.rtp
    assert rtp is not None
    assert rtp.packets == {"client": 12} and rtp.ssrcs == {"client": ("0x1234abcd",)}
    assert rtp.payload_types == {"client": (0,)} and rtp.sequence_ok
    assert rtp.streams == {"client": "valid"}  # RFC 3550 appendix A.1
    assert rtp.ssrc_count == {"client": 1} and rtp.source_groups == {"client": 1}
    # 160 bytes per 160 ticks is exactly G.711 (RFC 3551 section 4.5.14): no room for an
    # SRTP tag (RFC 3711 section 3.1).
    assert "G.711 u-law" in rtp.frame_sizes["client"]
    assert rtp.payload["client"].looks in ("skewed", "codec-structure")


def test_bytes_that_only_resemble_rtp_are_not_rtp() -> None:
    """Sequence numbers that jump at random are no stream (RFC 3550 appendix A.1)."""
    jumbled = [(0, p[:2] + NOISE.randbytes(2) + p[4:]) for p in pcmu_stream()]
    facts = facts_of(jumbled, server=MEDIA)
    assert facts.rtp is not None and facts.rtp.streams == {"client": "invalid"}
    assert "rtp" not in facts.protocols
    assert not facts.rtp.frame_sizes and not facts.rtp.payload


def test_media_unread_when_the_rtp_sample_budget_ran_out() -> None:
    key = raw_key((LOCAL, 50000), MEDIA)
    state = FlowState(1, UDP, key, 1.0, CLASS_BUDGET, None, "first-packet")
    state.samples = pack_samples([(1.0 + i * 0.02, 0, p) for i, p in enumerate(pcmu_stream())])
    assert identify(state).media_unread is False
    state.budget[RTP_CLASS] = 0  # the client's RTP budget, direction 0
    facts = identify(state)
    assert facts.media_unread is True and facts.rtp is not None


# -- SIP (RFC 3261) with SDP (RFC 4566) and SDES (RFC 4568) -------------------------------

def test_sip_invite_with_sdp_and_a_crypto_line() -> None:
    invite = sip_invite(sdp_offer("192.0.2.10", 49170))
    facts = facts_of([(0, invite)], server=("198.51.100.7", 5060))
    assert facts.protocols == ["sip", "sdp"]
    sip = facts.sip
    assert sip is not None and sip.messages == ["INVITE"]
    assert sip.call_ids == ["a84b4c76e66710@pc33.example.com"]
    (media,) = sip.media
    assert (media["media"], media["address"], media["port"], media["protocol"]) == (
        "audio", "192.0.2.10", 49170, "RTP/SAVP")
    assert media["codecs"] == ["PCMU/8000"]
    offered = media["sdes"]
    assert isinstance(offered, list)
    (sdes,) = offered
    assert sdes["tag"] == "1" and sdes["suite"] == "AES_CM_128_HMAC_SHA1_80"
    assert len(sdes["key_sha256"]) == 16
    # The key is kept for decryption, never in what the report carries.
    (parsed,) = facts.sdp_media
    assert parsed.crypto[0].key_params.startswith(f"inline:{SDES_KEY}")
    assert SDES_KEY not in repr(facts_to_details(facts)) and SDES_KEY not in repr(facts)


def test_sip_over_tcp_is_read_from_the_stream() -> None:
    invite = sip_invite(sdp_offer("192.0.2.10", 49170, crypto=False))
    facts = facts_of([(0, invite[:40]), (0, invite[40:])], proto=TCP,
                     server=("198.51.100.7", 5060))
    assert facts.sip is not None and facts.sip.messages == ["INVITE"]
    assert facts.sip.media[0]["protocol"] == "RTP/AVP" and facts.sip.media[0]["sdes"] == []


def test_random_bytes_identify_as_nothing() -> None:
    payloads = [(i % 2, bytes([0x17]) + NOISE.randbytes(99)) for i in range(6)]
    facts = facts_of(payloads, server=("203.0.113.5", 41000))
    assert facts.protocols == [] and facts_to_details(facts) == {}


def test_one_packet_rtp_flows_share_their_side_maps_which_refuse_changes() -> None:
    """A flow of one RTP packet (too few to validate, RFC 3550 appendix A.1) holds the
    counts, payload types and stream state of every other such flow: one map each, shared,
    read-only, and shared again after a worker process pickles it back."""
    one, two = (facts_of([(0, srtp_like(7, ssrc))], server=MEDIA).rtp
                for ssrc in (0xAB01, 0xAB02))
    assert one is not None and two is not None
    assert one.streams == {"client": "unconfirmed"} and one.packets == {"client": 1}
    assert one.ssrcs == {"client": ("0x0000ab01",)} != two.ssrcs
    for name in ("packets", "payload_types", "streams", "stream_check"):
        assert getattr(one, name) is getattr(two, name), name
    with pytest.raises(TypeError):
        one.packets["client"] = 2  # type: ignore[index]
    with pytest.raises(TypeError):
        one.streams.setdefault("server", "valid")  # type: ignore[attr-defined]
    back = pickle.loads(pickle.dumps(one))
    assert back.streams is one.streams and back.packets == {"client": 1}
    assert back.sources is one.sources  # NO_SIDES, by name
    assert back.ssrcs == {"client": ("0x0000ab01",)} and not isinstance(back.ssrcs, dict)


def test_compact_details_serialise_as_the_dict_they_stand_for() -> None:
    """A flow's details (and its RTP SSRCs) are a slots dataclass per key order, not a dict:
    the JSON, the plain containers and the mapping reads must not tell them apart."""
    facts = facts_of([(0, p) for p in pcmu_stream()], server=MEDIA, ssrcs=(1, 0))
    details = facts_to_details(facts)
    plain = {"rtp": facts.rtp}
    assert not isinstance(details, dict) and details == plain and dict(details) == plain
    assert orjson.dumps(details) == orjson.dumps(plain)
    assert json_safe_tree(details) == json_safe_tree(plain)
    assert list(details) == ["rtp"] and details.get("dns") is None and "rtp" in details
    with pytest.raises(KeyError):
        details["keys"]
    assert pickle.loads(pickle.dumps(details)) == plain
    assert type(facts_to_details(facts)) is type(details)  # one class per key order
    assert fields_map([("items", 1)]) == {"items": 1}  # a method's name stays a dict key
