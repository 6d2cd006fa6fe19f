"""The plain answers (issue 16 part 1): end-to-end or not, and where the data went, on the
lab's ground truth and on a real Zoom capture; `scan --home` and `check` name the same
flows as leaving."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import real_capture

import flowscan
from flowscan.policy.claims import check_claims
from flowscan.report.json import report_to_dict

LAB = Path(__file__).resolve().parent.parent / "captures" / "lab"


def lab(name: str, capture: str = "capture.pcapng") -> str:
    return str(LAB / name / capture)


@pytest.mark.parametrize(("scenario", "capture", "answer"), [
    ("p2p-webrtc", "capture.pcapng", "yes"),  # DTLS-SRTP between the two peers
    ("p2p-webrtc-turn", "capture.pcapng", "yes"),  # relayed, still peer to peer
    ("sfu-webrtc-e2ee", "capture-sfu-dsb.pcapng", "yes"),  # keys show SFrame inside
    ("sfu-webrtc", "capture-sfu-dsb.pcapng", "no"),  # keys show the codec under DTLS-SRTP
    ("sfu-webrtc", "capture.pcapng", "cannot-tell"),  # hop-by-hop, no keys
    ("sip-rtp-plain", "capture.pcapng", "no"),
    ("sip-sdes-srtp", "capture.pcapng", "no"),  # keys in the SDP, in the clear
])
def test_end_to_end_answer_on_the_lab(scenario: str, capture: str, answer: str) -> None:
    enc = flowscan.scan(lab(scenario, capture)).answers.encryption  # type: ignore[union-attr]
    assert enc.answer == answer, enc.sentence
    assert enc.sentence.startswith({"yes": "Yes: ", "no": "No: ",
                                    "cannot-tell": "Cannot tell from this capture: "}[answer])
    # A cannot-tell says what would settle it; a settled answer does not.
    assert bool(enc.settle) == (answer == "cannot-tell")
    if answer == "cannot-tell":
        assert any("--keylog" in s and "--srtp-key" in s for s in enc.settle)
        assert any("other participant" in s for s in enc.settle)


def test_plaintext_is_said_plainly() -> None:
    report = flowscan.scan(lab("sip-rtp-plain"))
    enc = report.answers.encryption  # type: ignore[union-attr]
    assert enc.sentence == ("No: both media flows travel unencrypted, so anyone on the "
                            "network path can listen to the call.")
    assert [(v.verdict, v.flows) for v in enc.verdicts] == [("plaintext", 2)]
    # The call's summary no longer says where an encryption that does not exist "ends".
    (session,) = report.sessions
    assert "encryption ends" not in session.summary
    assert "not encrypted: anyone on the path can read it" in session.summary
    keys = flowscan.scan(lab("sip-sdes-srtp")).sessions[0].summary
    assert "encryption ends" not in keys and "keys crossed the network in the clear" in keys


def test_zoom_hop_by_hop_media_on_a_us_network_located_in_germany() -> None:
    report = flowscan.scan(str(real_capture("zoom.pcap")))
    answers = report.answers
    assert answers is not None
    assert answers.encryption.answer == "cannot-tell"
    assert "hop-by-hop" in answers.encryption.sentence
    (foreign,) = answers.data.foreign_operators
    assert (foreign.flow, foreign.verdict, foreign.located, foreign.registered,
            foreign.asn) == (34, "hop-by-hop", "DE", "US", 31898)
    assert foreign.sentence == ("Flow 34: hop-by-hop media to a server located in Germany "
                                "(DE) on AS31898 (Oracle Corporation), registered in United "
                                "States (US).")
    # Countries by bytes, media and signalling apart; unlocated last.
    countries = {d.key: d for d in answers.data.countries}
    assert [d.key for d in answers.data.countries][:2] == ["NL", "US"]
    assert answers.data.countries[-1].key == "unlocated"
    assert countries["DE"].media_flows == 1 and countries["US"].media_flows == 0
    assert countries["US"].signalling_flows == 3
    assert sum(d.bytes for d in answers.data.countries) == sum(f.bytes for f in report.flows)
    operators = {d.key: d for d in answers.data.operators}
    assert operators["AS31898"].registered_country == "US"
    assert operators["AS31898"].media_bytes == next(f.bytes for f in report.flows if f.id == 34)
    assert answers.data.leaving == [] and answers.data.home is None
    # Only the verdict words are explained, in plain words.
    assert {e.word for e in answers.legend} >= {"end-to-end", "hop-by-hop", "plaintext"}


def test_zoom_home_eu_lists_every_flow_leaving_as_check_does(tmp_path: Path) -> None:
    path = str(real_capture("zoom.pcap"))
    report = flowscan.scan(path, home="EU")
    data = report.answers.data  # type: ignore[union-attr]
    assert data.home == "EU"
    signalling = sorted(f.flow for f in data.leaving if f.kind == "signalling")
    assert signalling == [8, 19, 21]
    assert all(f.countries == ["US"] for f in data.leaving)
    # Media located at home is not leaving, but the US-registered network still is named.
    assert not [f for f in data.leaving if f.kind == "media"]
    assert [f.flow for f in data.foreign_operators] == [34]
    names = {f.flow: f.name for f in data.leaving}
    assert names[21] == "www3.zoom.us" and names[8] == "log.zoom.us"
    # Every flow with a located end in the US is listed, not only media and signalling.
    us = sorted(f.id for f in report.flows if f.jurisdiction and "US" in
                f.jurisdiction.countries)
    assert sorted(f.flow for f in data.leaving) == us and len(us) == 9
    # scan's finding and check's claim name the same signalling flows.
    (finding,) = [f for f in report.findings if f.kind == "foreign-signalling"]
    assert finding.flows == signalling and finding.severity == "medium"
    (claim,) = check_claims(flowscan.scan(path), {"signalling_stays_in": "EU"})
    assert claim.status == "contradicted" and claim.flows == signalling
    claims = tmp_path / "claims.toml"
    claims.write_text('[claims]\nsignalling_stays_in = "EU"\n')
    proc = subprocess.run([sys.executable, "-m", "flowscan", "check", path, "--claims",
                           str(claims), "--format", "json"], capture_output=True, text=True)
    assert proc.returncode == 1, proc.stderr
    assert json.loads(proc.stdout)["captures"][0]["claims"][0]["flows"] == signalling


def test_answers_in_json_match_the_schema_and_stay_reproducible() -> None:
    import jsonschema

    from flowscan.report.json import dumps

    schema = json.loads((Path(flowscan.__file__).parent / "report" / "schema.json")
                        .read_text())
    path = str(real_capture("zoom.pcap"))
    first = flowscan.scan(path, home="EU")
    data = report_to_dict(first)
    jsonschema.validate(data, schema)
    # Added at the end, older readers see the same; the vantage point after them (HTML map).
    assert list(data)[-2:] == ["answers", "vantage"]
    assert data["answers"]["encryption"]["answer"] == "cannot-tell"
    assert dumps([first]) == dumps([flowscan.scan(path, home="EU")])


def test_no_media_cannot_be_told() -> None:
    enc = flowscan.scan(str(real_capture("signal.pcap"))).answers.encryption  # type: ignore[union-attr]
    assert enc.answer == "cannot-tell" and "no call media" in enc.sentence
    assert enc.flows == []


def test_media_located_abroad_is_leaving_not_a_foreign_operator() -> None:
    # sip-rtp-plain's media goes to a US address on a US network: with --home DE it leaves
    # home (listed), and is no "registered abroad, located at home" case.
    data = flowscan.scan(lab("sip-rtp-plain"), home="DE").answers.data  # type: ignore[union-attr]
    assert sorted(f.flow for f in data.leaving if f.kind == "media") == [2, 3]
    assert data.foreign_operators == []


def test_with_keys_that_opened_the_media_the_answer_does_not_ask_for_keys() -> None:
    """turn_tcp_call.pcap decrypted with its SRTP keys (the shared folder's README): still
    cannot tell who else holds them, and what would settle it is no longer the keys."""
    keys = ("0x1C090D13=AES_CM_128_HMAC_SHA1_80:inline:ODQ3ODIxYTE1NTIxZDVhMGRmNjNiODMwN2M3ODdk",
            "0x1C090D15=AES_CM_128_HMAC_SHA1_80:inline:ZDExYzU2MjgxMDU1OGZhYzE2MTI4MTRlODZlMzlm")
    path = str(real_capture("turn_tcp_call.pcap"))
    wire = flowscan.scan(path).answers.encryption  # type: ignore[union-attr]
    keyed = flowscan.scan(path, srtp_key=keys).answers.encryption  # type: ignore[union-attr]
    assert wire.answer == keyed.answer == "cannot-tell"
    assert any("--keylog" in s for s in wire.settle)
    assert not any("--keylog" in s or "--srtp-key" in s for s in keyed.settle)
    assert "the keys given decrypted it" in keyed.sentence
