"""The one SDP model (flowscan.protocols.sdp) on crafted descriptions after RFC 8866 (and RFC
4566 before it), RFC 4568 (a=crypto), RFC 8122 (a=fingerprint) and RFC 6189 (a=zrtp-hash):
what each line gives the model, and that one malformed line, wherever it stands, is named by
its number and hides nothing else."""

from __future__ import annotations

import pytest

from flowscan.identify import SipFacts
from flowscan.protocols.sdp import (
    MEDIA_ONLY,
    SESSION_OR_MEDIA,
    SdesKey,
    SdpMedia,
    offers,
    parse_sdp,
    read_sdp,
)

KEY = "inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR|2^20|1:32"  # RFC 4568 section 9.1

# RFC 8866 section 5's example description, as printed there.
RFC_EXAMPLE = """v=0
o=jdoe 3724394400 3724394405 IN IP4 198.51.100.1
s=Call to John Smith
i=SDP Offer #1
u=http://www.jdoe.example.com/home.html
e=Jane Doe <jane@jdoe.example.com>
p=+1 617 555-6011
c=IN IP4 198.51.100.1
t=0 0
m=audio 49170 RTP/AVP 0
m=audio 49180 RTP/AVP 0
m=video 51372 RTP/AVP 99
c=IN IP6 2001:db8::2
a=rtpmap:99 h263-1998/90000
"""

# A description using every attribute the model reads, CRLF-terminated (RFC 8866 section 5).
GOOD = ["v=0", "o=- 20518 0 IN IP4 203.0.113.1", "s=-", "c=IN IP4 203.0.113.1", "t=0 0",
        "a=fingerprint:sha-256 4A:AD:B9", "a=zrtp-hash:1.10 fe30efd0",
        "m=audio 49170 RTP/SAVP 0 8", "a=rtpmap:0 PCMU/8000", "a=rtpmap:8 PCMA/8000",
        f"a=crypto:1 AES_CM_128_HMAC_SHA1_80 {KEY}", "a=setup:actpass",
        "a=candidate:1 1 UDP 2130706431 203.0.113.1 49170 typ host",
        "m=video 51372 RTP/SAVP 96", "c=IN IP4 198.51.100.7/127", "a=rtpmap:96 VP8/90000",
        "a=fingerprint:sha-256 0F:0F"]


def text(lines: list[str]) -> bytes:
    return ("\r\n".join(lines) + "\r\n").encode()


def test_the_rfc_example_is_read_section_by_section() -> None:
    sdp = read_sdp(RFC_EXAMPLE)
    assert sdp.malformed == []
    audio1, audio2, video = sdp.media
    assert (audio1.media, audio1.port, audio1.protocol, audio1.formats, audio1.address) == (
        "audio", 49170, "RTP/AVP", ["0"], "198.51.100.1")
    assert (audio2.port, audio2.address) == (49180, "198.51.100.1")
    # A media-level c= overrides the session's (RFC 8866 section 5.7).
    assert (video.media, video.port, video.formats, video.address, video.rtpmap) == (
        "video", 51372, ["99"], "2001:db8::2", {99: "h263-1998/90000"})


def test_every_attribute_read_lands_in_its_section() -> None:
    sdp = read_sdp(text(GOOD))
    assert sdp.malformed == []
    audio, video = sdp.media
    assert audio.rtpmap == {0: "PCMU/8000", 8: "PCMA/8000"} and audio.setup == "actpass"
    assert audio.crypto == [SdesKey("1", "AES_CM_128_HMAC_SHA1_80", KEY)]
    assert audio.candidates == ["1 1 UDP 2130706431 203.0.113.1 49170 typ host"]
    # Session-level fingerprint and zrtp-hash are every section's default; a section's own
    # fingerprint wins (RFC 8122 section 5; RFC 6189 section 8.1).
    assert (audio.fingerprint, video.fingerprint) == ("sha-256 4A:AD:B9", "sha-256 0F:0F")
    assert audio.zrtp_hash == video.zrtp_hash == "1.10 fe30efd0"
    # A multicast connection address loses its /ttl (RFC 8866 section 5.7).
    assert (video.address, video.rtpmap, video.crypto) == ("198.51.100.7", {96: "VP8/90000"}, [])


def test_bare_lf_and_text_input_read_alike() -> None:
    crlf = read_sdp(text(GOOD))
    assert read_sdp("\n".join(GOOD)) == crlf
    assert read_sdp("\n".join(GOOD).encode()) == crlf
    assert parse_sdp(text(GOOD)) == crlf.media


def test_each_v_line_starts_a_description_of_its_own() -> None:
    """An offer and its answer in one text: the second's media do not take the first's
    session address, fingerprint or zrtp-hash."""
    answer = ["v=0", "o=- 1 1 IN IP4 192.0.2.9", "s=-", "t=0 0", "m=audio 5004 RTP/AVP 0"]
    first_audio, first_video, second = read_sdp(text(GOOD + answer)).media
    assert first_audio.fingerprint == "sha-256 4A:AD:B9" and first_video.address
    assert (second.port, second.address, second.fingerprint, second.zrtp_hash) == (
        5004, None, None, None)


def test_media_attributes_at_session_level_are_ignored() -> None:
    lines = ["v=0", "s=-", f"a=crypto:1 AES_CM_128_HMAC_SHA1_80 {KEY}", "a=rtpmap:0 PCMU/8000",
             "a=setup:active", "m=audio 4000 RTP/SAVP 0"]
    (audio,) = read_sdp(text(lines)).media
    assert (audio.crypto, audio.rtpmap, audio.setup, audio.address) == ([], {}, None, None)


def test_the_attribute_tables_are_disjoint() -> None:
    assert not set(SESSION_OR_MEDIA) & set(MEDIA_ONLY)


def test_keys_are_never_in_a_repr() -> None:
    sdp = read_sdp(text(GOOD))
    assert "PS1uQCVee" not in repr(sdp)
    assert sdp.media[0].crypto[0].fingerprint == "c8fafd8338b8d1d2"


# One malformed line, each kind, at each place it can stand: the reason names its line
# number, and the model is what it is without it.
BAD_LINES = [
    ("x", "not <type>=<value>"),
    ("=0", "not <type>=<value>"),
    ("1=0", "not <type>=<value>"),
    ("\u00e9=0", "not <type>=<value>"),  # a type letter outside ASCII
    ("c=IN IP4", "c= has fewer than three fields"),
    ("a=rtpmap:128 x/8000", "a=rtpmap payload type is not ASCII digits from 0 to 127"),
    ("a=rtpmap:\u00b2 x/8000", "a=rtpmap payload type is not ASCII digits from 0 to 127"),
    ("a=crypto:1 AES_CM_128_HMAC_SHA1_80", "a=crypto is not <tag> <crypto-suite> <key-params>"),
    ("a=crypto:1234567890 AES_CM_128_HMAC_SHA1_80 " + KEY,
     "a=crypto is not <tag> <crypto-suite> <key-params>"),
]
INSIDE_MEDIA = [GOOD.index("m=audio 49170 RTP/SAVP 0 8") + 1, GOOD.index("a=setup:actpass"),
                len(GOOD)]


@pytest.mark.parametrize(("bad", "reason"), BAD_LINES)
@pytest.mark.parametrize("at", INSIDE_MEDIA)
def test_one_bad_line_in_a_media_section_hides_nothing_else(bad: str, reason: str, at: int
                                                           ) -> None:
    lines = [*GOOD[:at], bad, *GOOD[at:]]
    sdp = read_sdp(text(lines))
    assert sdp.malformed == [(at + 1, reason)]
    assert sdp.media == read_sdp(text(GOOD)).media


@pytest.mark.parametrize(("bad", "reason"), [
    ("x", "not <type>=<value>"), ("c=IN", "c= has fewer than three fields")])
@pytest.mark.parametrize("at", [1, GOOD.index("t=0 0")])
def test_one_bad_session_line_hides_nothing_else(bad: str, reason: str, at: int) -> None:
    lines = [*GOOD[:at], bad, *GOOD[at:]]
    sdp = read_sdp(text(lines))
    assert sdp.malformed == [(at + 1, reason)]
    assert sdp.media == read_sdp(text(GOOD)).media


def test_a_line_that_is_not_utf8_is_named_and_skipped() -> None:
    at = GOOD.index("a=setup:actpass")
    body = text(GOOD[:at]) + b"a=setup:\xff\xfe\r\n" + text(GOOD[at:])
    sdp = read_sdp(body)
    assert sdp.malformed == [(at + 1, "not UTF-8 text")]
    assert sdp.media == read_sdp(text(GOOD)).media


@pytest.mark.parametrize(("bad", "reason"), [
    ("m=audio", "m= has fewer than three fields"),
    ("m=audio 70000 RTP/AVP 0", "m= port is not ASCII digits from 0 to 65535"),
    ("m=audio 5\u0663 RTP/AVP 0", "m= port is not ASCII digits from 0 to 65535"),
    ("m=audio 5004/\u00b2 RTP/AVP 0", "m= port is not ASCII digits from 0 to 65535"),
])
def test_a_bad_m_line_skips_its_own_section_only(bad: str, reason: str) -> None:
    """RFC 8866 section 5: a media description runs to the next m=. The lines of a
    malformed one are not attached to the section above it, and the next is read."""
    at = GOOD.index("m=video 51372 RTP/SAVP 96")
    orphan = f"a=crypto:9 AES_CM_128_HMAC_SHA1_80 {KEY}"
    sdp = read_sdp(text([*GOOD[:at], bad, orphan, "c=IN", *GOOD[at:]]))
    assert sdp.malformed == [(at + 1, reason)]  # its c= is not read, so not named
    assert sdp.media == read_sdp(text(GOOD)).media


def test_a_port_with_a_count_is_read() -> None:
    (m,) = parse_sdp("v=0\nc=IN IP4 192.0.2.1\nm=video 49170/2 RTP/AVP 31\n")
    assert (m.port, m.endpoints) == (49170, (("192.0.2.1", 49170), ("192.0.2.1", 49171)))


def test_offers_are_the_sections_with_an_address_under_the_first_call() -> None:
    media = [SdpMedia("audio", 4000, "RTP/AVP", ["0"], "192.0.2.1"),
             SdpMedia("video", 4002, "RTP/AVP", ["96"])]  # no c= anywhere: nowhere to go
    (offer,) = offers(media, SipFacts(call_ids=["call-1", "call-2"]))
    assert (offer.call, offer.address, offer.media) == ("call-1", "192.0.2.1", media[0])
    assert offer.endpoints == (("192.0.2.1", 4000), ("192.0.2.1", 4001))
    for no_call in (None, SipFacts()):
        (unnamed,) = offers(media, no_call)
        assert unnamed.call is None and unnamed.endpoints == offer.endpoints
    assert media[1].endpoints is None
