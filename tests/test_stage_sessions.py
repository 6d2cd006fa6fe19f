"""The sessions stage on crafted judged flows: sessions.build_sessions groups media flows
(a SIP call by its SDP, else one local socket), and sessions.findings reads them."""

from __future__ import annotations

import dataclasses
import pickle
import sys
import tracemalloc

import pytest
from stagekit import LOCAL, app_label, encryption, flow, sip_facts

from flowscan import sessions
from flowscan.identify import FlowFacts
from flowscan.report.model import Decryption, Encryption, EvidenceItem, Flow
from flowscan.sessions import Sessions, build_sessions, findings

ALICE = ("192.0.2.10", 49170)  # the media addresses the SDP offer and answer name
BOB = ("192.0.2.20", 30000)
SFU = ("203.0.113.30", 3478)


def sessions_of(flows: list[Flow], sip: list[FlowFacts] | None = None) -> Sessions:
    """The stage's input: every flow with its facts (media flows carry none needed here)."""
    signalling = [(flow(100 + i, (LOCAL, 5060 + i), ("198.51.100.7", 5060)), facts)
                  for i, facts in enumerate(sip or [])]
    return build_sessions(signalling + [(f, FlowFacts()) for f in flows])


def kinds(flows: list[Flow], sessions: Sessions) -> dict[str, list[int]]:
    return {f.kind: f.flows for f in findings(flows, sessions)}


def test_a_sip_call_binds_its_media_flows() -> None:
    """The SDP offer/answer (RFC 3264) names each party's RTP address, RTCP on the next
    port (RFC 3550 section 11): both legs of the call are one session, whichever end of
    the flow the address is; other media is a session of its own."""
    rtp = flow(1, ALICE, BOB, encryption=encryption("plaintext", key_exchange="none"))
    rtcp = flow(2, (ALICE[0], ALICE[1] + 1), (BOB[0], BOB[1] + 1),
                encryption=encryption("plaintext", key_exchange="none"))
    reverse = flow(3, (LOCAL, 40000), BOB, encryption=encryption("plaintext"))
    other = flow(4, (LOCAL, 50000), SFU, encryption=encryption("hop-by-hop", "server"))
    sessions = sessions_of([rtp, rtcp, reverse, other],
                           [sip_facts("call-1", [ALICE]), sip_facts("call-1", [BOB])])
    assert [s.flows for s in sessions] == [(1, 2, 3), (4,)]
    assert [s.id for s in sessions] == [1, 2]
    assert [f.encryption.session for f in (rtp, rtcp, reverse, other)  # type: ignore[union-attr]
            ] == [1, 1, 1, 2]
    assert sessions[0].verdicts == ("plaintext",)
    assert "not encrypted" in sessions[0].summary


def test_without_signalling_one_local_socket_is_one_session() -> None:
    """ICE checks to several candidates and the media share the local socket (RFC 8445
    section 5.1.1); another local port or transport is another session."""
    flows = [flow(1, (LOCAL, 50000), SFU, encryption=encryption("hop-by-hop", "server")),
             flow(2, (LOCAL, 50000), ("203.0.113.31", 3478),
                  encryption=encryption("unknown", signal="handshake-only")),
             flow(3, (LOCAL, 50001), SFU, encryption=encryption("hop-by-hop", "server")),
             flow(4, (LOCAL, 50000), SFU, transport="tcp",
                  encryption=encryption("hop-by-hop", "server")),
             flow(5, (LOCAL, 50002), ("203.0.113.9", 443))]  # no verdict: not media
    sessions = sessions_of(flows)
    assert [s.flows for s in sessions] == [(1, 2), (3,), (4,)]
    assert flows[4].encryption is None


def test_the_session_takes_its_apps_name() -> None:
    zoom = app_label("zoom", "zoom-encapsulation")
    flows = [flow(1, (LOCAL, 50000), SFU, app=zoom, encryption=encryption("hop-by-hop"))]
    (session,) = sessions_of(flows)
    # No remote decided on the crafted flow: the line names both ends (issue 17, class 9).
    assert session.app == "zoom" and session.summary.startswith("zoom: media between ")
    assert f"{SFU[0]}:{SFU[1]}" in session.summary


def test_a_session_of_handshakes_says_there_was_no_media() -> None:
    flows = [flow(1, (LOCAL, 50000), SFU,
                  encryption=encryption("unknown", signal="handshake-only"))]
    (session,) = sessions_of(flows)
    assert "no media" in session.summary and session.verdicts == ("unknown",)


def test_plaintext_and_exposed_keys_are_high_findings() -> None:
    flows = [flow(1, ALICE, BOB, packets=10, size=1000, encryption=encryption("plaintext")),
             flow(2, (LOCAL, 40000), BOB, packets=5, size=200,
                  encryption=encryption("plaintext")),
             flow(3, (LOCAL, 40002), BOB, encryption=encryption("keys-exposed", "peer",
                                                                 "sdes")),
             flow(4, (LOCAL, 50000), SFU, encryption=encryption("hop-by-hop", "server")),
             flow(5, (LOCAL, 50002), ("203.0.113.9", 443))]
    found = {f.kind: f for f in findings(flows, sessions_of(flows))}
    plain = found["plaintext-media"]
    assert (plain.severity, plain.flows) == ("high", [1, 2])
    assert "2 media flow(s), 2400 bytes" in plain.detail  # both directions of both
    exposed = found["keys-exposed-media"]
    assert (exposed.severity, exposed.flows) == ("high", [3])
    assert set(found) == {"plaintext-media", "keys-exposed-media"}


def test_encrypted_media_alone_has_no_findings() -> None:
    flows = [flow(1, (LOCAL, 50000), SFU, encryption=encryption("hop-by-hop", "server")),
             flow(2, (LOCAL, 50002), ("203.0.113.9", 443))]
    assert findings(flows, sessions_of(flows)) == []


def test_mixed_protection_within_one_session() -> None:
    """A call where some legs are end to end and others are not is worth a finding."""
    flows = [flow(1, (LOCAL, 50000), ("198.51.100.40", 61000),
                  encryption=encryption("end-to-end", "peer", "dtls-srtp")),
             flow(2, (LOCAL, 50000), SFU, encryption=encryption("hop-by-hop", "server"))]
    sessions = sessions_of(flows)
    assert len(sessions) == 1 and sessions[0].verdicts == ("end-to-end", "hop-by-hop")
    (mixed,) = findings(flows, sessions)
    assert (mixed.kind, mixed.severity, mixed.flows) == ("mixed-protection", "medium", [1, 2])
    assert "hop-by-hop" in mixed.detail


def test_an_unknown_leg_is_no_mix() -> None:
    """A handshake without media protects nothing less than the end-to-end leg."""
    flows = [flow(1, (LOCAL, 50000), ("198.51.100.40", 61000),
                  encryption=encryption("end-to-end", "peer", "dtls-srtp")),
             flow(2, (LOCAL, 50000), SFU,
                  encryption=encryption("unknown", signal="handshake-only"))]
    assert "mixed-protection" not in kinds(flows, sessions_of(flows))


def test_rtcp_sent_unprotected_beside_srtp_is_a_finding() -> None:
    """RTCP that parses to its last byte carries no SRTCP index or tag (RFC 3711 3.4)."""
    enc = encryption("hop-by-hop", "server", "dtls-srtp")
    enc.evidence = (*enc.evidence, EvidenceItem("rtcp-partly-clear", "3 of 9 RTCP packets ..."))
    flows = [flow(1, (LOCAL, 50000), SFU, encryption=enc)]
    found = findings(flows, sessions_of(flows))
    assert [(f.kind, f.severity, f.flows) for f in found] == [("rtcp-in-clear", "medium", [1])]


def test_a_sessions_flows_judged_alike_share_one_verdict() -> None:
    """A socket used again and again after the idle timeout: once numbered, its flows'
    verdicts alike in every field (the same words and evidence objects) are one
    Encryption; a flow judged otherwise keeps its own, and another session's flow never
    shares one (its number differs)."""
    first = encryption("unknown", signal="insufficient")

    def alike() -> Encryption:
        return Encryption(first.verdict, first.termination, first.key_exchange, first.basis,
                          first.confidence, first.evidence)

    flows = [flow(1, (LOCAL, 50000), SFU, encryption=first),
             flow(2, (LOCAL, 50000), SFU, encryption=alike()),
             flow(3, (LOCAL, 50000), SFU, encryption=encryption("unknown", signal="other")),
             flow(4, (LOCAL, 50001), SFU, encryption=alike())]
    sessions = sessions_of(flows)
    assert [s.flows for s in sessions] == [(1, 2, 3), (4,)]
    verdicts = [f.encryption for f in flows]
    assert verdicts[0] is verdicts[1] and verdicts[2] is not verdicts[0]
    assert verdicts[3] is not verdicts[0]
    assert [v.session for v in verdicts if v is not None] == [1, 1, 1, 2]


def test_the_kinds_of_verdict_remembered_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    """Past ALIKE_KEPT kinds of verdict in a session the memory starts afresh: every
    flow still gets its own verdict's words with the session's number."""
    monkeypatch.setattr(sessions, "ALIKE_KEPT", 2)
    kinds = [encryption(verdict) for verdict in ("plaintext", "hop-by-hop", "unknown")]
    flows = [flow(n, (LOCAL, 50000), SFU, encryption=kinds[n % 3]) for n in range(1, 10)]
    assert [s.flows for s in sessions_of(flows)] == [tuple(range(1, 10))]
    assert [(f.encryption.verdict, f.encryption.session) for f in flows  # type: ignore[union-attr]
            ] == [(kinds[n % 3].verdict, 1) for n in range(1, 10)]
    assert flows[0].encryption is not flows[3].encryption  # forgotten in between


def test_numbering_copies_the_verdict_whole() -> None:
    """A session's number goes on a copy of the verdict (Encryption.in_session): equal to
    the judged one in every other field, with the very same evidence and decryption
    objects; the judged verdict, which flows of other sessions may share, keeps none."""
    judged = encryption("hop-by-hop", "server", "dtls-srtp")
    judged.basis = "decrypted"
    judged.decryption = Decryption(12, 0, "key log", "ab12", "codec", "VP8 frames")
    shared = [flow(1, (LOCAL, 50000), SFU, encryption=judged),
              flow(2, (LOCAL, 50001), SFU, encryption=judged)]
    assert [s.flows for s in sessions_of(shared)] == [(1,), (2,)]
    first, second = (f.encryption for f in shared)
    assert first is not None and second is not None and judged.session is None
    assert (first.session, second.session) == (1, 2)
    assert first == dataclasses.replace(judged, session=1)
    assert first.evidence is judged.evidence and first.decryption is judged.decryption


def test_sessions_are_made_as_they_are_read() -> None:
    """sessions.Sessions keeps what makes each session and writes its summary when it is
    read: read in any way (by index from either end, by slice, in turn, pickled), it
    gives the same sessions, and a session read is the reader's own."""
    flows = [flow(1, (LOCAL, 50000), SFU, encryption=encryption("hop-by-hop", "server")),
             flow(2, (LOCAL, 50000), ("203.0.113.31", 3478),
                  encryption=encryption("unknown", signal="handshake-only")),
             flow(3, (LOCAL, 50001), SFU, encryption=encryption("plaintext", "server"))]
    made = sessions_of(flows)
    listed = list(made)
    assert [(s.id, s.flows, s.verdicts) for s in listed] == [
        (1, (1, 2), ("hop-by-hop", "unknown")), (2, (3,), ("plaintext",))]
    assert "(+1 more flows)" in listed[0].summary and "not encrypted" in listed[1].summary
    assert len(made) == 2 and made[-1] == listed[1] and made[0:5] == listed
    assert made == listed and listed == made and made != listed[:1]
    assert pickle.loads(pickle.dumps(made)) == listed
    made[0].summary = "changed"
    assert made[0].summary == listed[0].summary
    with pytest.raises(IndexError):
        made[2]


def test_a_one_flow_session_holds_no_line_of_its_own() -> None:
    """A million media sockets used once are a million sessions: what each holds is a
    few references, not its summary line (which names the remote, so is its own)."""
    count = 20000
    flows = [flow(n, (LOCAL, 10000 + n), SFU, encryption=encryption("hop-by-hop", "server"))
             for n in range(1, count + 1)]
    pairs = [(f, FlowFacts()) for f in flows]
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        made = build_sessions(pairs)
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert len(made) == count
    # The numbered verdict (Encryption.in_session) and its number are each session's;
    # besides them, a few references: under 64 bytes a session (its line alone is over
    # 100, and a MediaSession with its tuple of ids 120).
    numbered = sys.getsizeof(flows[0].encryption) + sys.getsizeof(count)
    assert held / count < numbered + 64, held / count
    assert len(made[count - 1].summary) > 100
