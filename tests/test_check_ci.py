"""`flowscan check` as a CI gate (issue 14): several captures and folders, key options,
--strict, exit codes 0/1/2/3, JUnit XML read back with junitparser, SARIF validated against
the OASIS schema, hostile file names inert, and no key material in any output.

Everything runs the real command on the lab's reference calls (and zoom.pcap where the
shared captures are present):

- sip-sdes-srtp: SDES keys in clear SIP, so media is keys-exposed.
- p2p-webrtc: a direct DTLS-SRTP call, end-to-end (with its key log: decrypted, still so).
- sfu-webrtc / sfu-webrtc-e2ee: DTLS-SRTP to a media server. From the wire alone
  hop-by-hop, so an end-to-end claim is unverifiable; with the key log the inner layer
  decides: codec frames (contradicted) or SFrame (holds).
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import jsonschema
import yaml
from conftest import real_capture
from junitparser import Error, Failure, JUnitXml, Skipped

ROOT = Path(__file__).resolve().parent.parent
LAB = ROOT / "captures" / "lab"
SCHEMA = Path(__file__).resolve().parent / "data" / "sarif-schema-2.1.0.json"

SDES = "captures/lab/sip-sdes-srtp/capture.pcapng"
P2P = "captures/lab/p2p-webrtc/capture.pcapng"
SFU = "captures/lab/sfu-webrtc/capture.pcapng"
E2EE = "captures/lab/sfu-webrtc-e2ee/capture.pcapng"
E2E_CLAIMS = "[claims]\nmedia_end_to_end = true\nno_plaintext_media = true\n"
# What XML 1.0 forbids, and what a terminal or a viewer would act on.
RAW_CONTROLS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e"
                          "\u2066-\u2069\ufeff\ufffe\uffff\ud800-\udfff]")


def check(*args: str | bytes, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    """The real command, from the checkout (so capture paths are relative, as in CI)."""
    return subprocess.run([sys.executable, "-m", "flowscan", "check", *args], cwd=cwd,
                          capture_output=True, text=True, errors="surrogateescape",
                          timeout=300)


def claims(tmp_path: Path, text: str = E2E_CLAIMS, name: str = "claims.toml") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def one_error_line(done: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert done.returncode == 2, (done.stdout, done.stderr)
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("flowscan: error: "), done.stderr
    assert "Traceback" not in done.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


def as_json(done: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(done.stdout)
    return data


def combined(data: dict[str, Any], claim: str) -> dict[str, Any]:
    return next(c for c in data["claims"] if c["claim"] == claim)


def per_capture(data: dict[str, Any], capture: str, claim: str) -> str:
    entry = next(c for c in data["captures"] if c["capture"] == capture)
    return str(next(r["status"] for r in entry["claims"] if r["claim"] == claim))


def not_a_capture(tmp_path: Path) -> str:
    bad = tmp_path / "broken.pcap"
    bad.write_bytes(b"this is not a capture file at all, only some text\n" * 4)
    return str(bad)


# --- several captures, keys, and the exit codes -------------------------------------------

def test_sdes_keys_exposed_contradicts_where_the_webrtc_call_holds(tmp_path: Path) -> None:
    done = check(P2P, SDES, "--claims", claims(tmp_path), "--format", "json")
    assert done.returncode == 1, done.stderr
    data = as_json(done)
    assert data["exit_code"] == 1 and [c["capture"] for c in data["captures"]] == [P2P, SDES]
    for claim in ("media_end_to_end", "no_plaintext_media"):
        both = combined(data, claim)
        assert both["status"] == "contradicted"
        assert both["contradicted_in"] == [SDES] and both["holds_in"] == [P2P]
        assert SDES in both["why"]
    sdes = next(c for c in data["captures"] if c["capture"] == SDES)
    assert sdes["sha256"] == hashlib.sha256((ROOT / SDES).read_bytes()).hexdigest()
    e2e = next(r for r in sdes["claims"] if r["claim"] == "media_end_to_end")
    assert "keys-exposed" in e2e["why"] and e2e["flows"]
    # The text output says the same: which capture contradicts, claim by claim.
    text = check(P2P, SDES, "--claims", claims(tmp_path))
    assert text.returncode == 1
    assert f"contradicted  media_end_to_end = True: contradicted in {SDES}" in text.stdout
    assert f"holds in {P2P}" in text.stdout


def test_keylog_turns_unverifiable_end_to_end_into_a_verdict(tmp_path: Path) -> None:
    toml = claims(tmp_path)
    wire = as_json(check(SFU, E2EE, "--claims", toml, "--format", "json"))
    assert wire["exit_code"] == 0  # unverifiable passes without --strict ...
    assert combined(wire, "media_end_to_end")["status"] == "unverifiable"
    assert combined(wire, "media_end_to_end")["unverifiable_in"] == [SFU, E2EE]
    why = next(c for c in wire["captures"] if c["capture"] == SFU)["claims"][0]["why"]
    assert "--keylog" in why  # ... and names the option that settles it, which check takes
    strict = check(SFU, E2EE, "--claims", toml, "--strict")
    assert strict.returncode == 3, strict.stderr
    # Both calls' key logs at once: each capture finds its own secrets by client random.
    keyed = check(SFU, E2EE, "--claims", toml, "--format", "json", "--strict",
                  "--keylog", str(LAB / "sfu-webrtc" / "keys.log"),
                  "--keylog", str(LAB / "sfu-webrtc-e2ee" / "keys.log"))
    assert keyed.returncode == 1, keyed.stderr
    data = as_json(keyed)
    assert per_capture(data, SFU, "media_end_to_end") == "contradicted"  # codec frames inside
    assert per_capture(data, E2EE, "media_end_to_end") == "holds"  # SFrame inside
    assert combined(data, "media_end_to_end")["contradicted_in"] == [SFU]
    e2ee = check(E2EE, "--claims", toml, "--strict",
                 "--keylog", str(LAB / "sfu-webrtc-e2ee" / "keys.log"))
    assert e2ee.returncode == 0, e2ee.stdout
    # The direct call holds with or without its keys; with them, from decrypted media.
    p2p = check(P2P, "--claims", toml, "--strict", "--keylog",
                str(LAB / "p2p-webrtc" / "keys.log"))
    assert p2p.returncode == 0 and "holds         media_end_to_end" in p2p.stdout


def test_srtp_key_and_sdp_reach_the_scan(tmp_path: Path) -> None:
    """--srtp-key and --sdp are used, not ignored: the SDES call with its SIP removed is
    judged from the wire alone without them, and from decrypted media with either; a
    malformed one is refused before any capture is read."""
    from test_decrypt import _inline_keys, _without_sip

    media_only, bodies = _without_sip(tmp_path)
    sdp = tmp_path / "call.sdp"
    sdp.write_text("\r\n".join(bodies))
    keys = [f"{address}:{port}={key}" for address, port, key in _inline_keys(bodies)]
    toml = claims(tmp_path, "[claims]\nmedia_end_to_end = true\n")
    wire = check(str(media_only), "--claims", toml)
    assert "from the wire alone" in wire.stdout and "even with its keys" not in wire.stdout
    for options in (["--sdp", str(sdp)], [arg for k in keys for arg in ("--srtp-key", k)]):
        keyed = check(str(media_only), "--claims", toml, "--strict", *options)
        assert keyed.returncode == 3, keyed.stderr  # keys exposed only the codec frames ...
        assert "even with its keys (decrypted, flows " in keyed.stdout  # ... but were used
        assert not any(k.split("inline:")[1] in keyed.stdout for k in keys)
    bad = check(SFU, P2P, "--claims", claims(tmp_path), "--srtp-key", "0x1=NOPE:inline:QUJD")
    one_error_line(bad, "--srtp-key")
    offer = tmp_path / "offer.sdp"
    offer.write_bytes(b"\xff\xfe not utf-8\n")
    one_error_line(check(SFU, "--claims", claims(tmp_path), "--sdp", str(offer)), "offer.sdp")
    missing = check(SFU, P2P, "--claims", claims(tmp_path), "--keylog",
                    str(tmp_path / "nope.log"))
    one_error_line(missing, "nope.log", "key log")


def test_exit_codes_strict_and_which_wins(tmp_path: Path) -> None:
    toml = claims(tmp_path)
    assert check(P2P, "--claims", toml, "--strict").returncode == 0
    assert check(SFU, "--claims", toml).returncode == 0
    assert check(SFU, "--claims", toml, "--strict").returncode == 3
    assert check(SDES, "--claims", toml).returncode == 1
    # A contradiction wins over an unverifiable claim under --strict.
    assert check(SFU, SDES, "--claims", toml, "--strict").returncode == 1
    # A capture that cannot be read: the others are still checked and shown, then exit 2,
    # over a contradiction too (the answer is incomplete).
    bad = not_a_capture(tmp_path)
    done = check(SDES, bad, P2P, "--claims", toml, "--format", "json")
    one_error_line(done, "broken.pcap")
    data = as_json(done)
    assert [c["capture"] for c in data["captures"]] == [SDES, bad, P2P]
    assert data["captures"][1]["error"] and not data["captures"][1]["claims"]
    assert per_capture(data, P2P, "media_end_to_end") == "holds"
    assert combined(data, "no_plaintext_media")["unread"] == [bad]
    assert combined(data, "no_plaintext_media")["contradicted_in"] == [SDES]


def test_folders_are_searched_recursively_sorted_and_once(tmp_path: Path) -> None:
    tree = tmp_path / "captures"
    (tree / "b" / "deep").mkdir(parents=True)
    (tree / "a").mkdir()
    shutil.copy(ROOT / SDES, tree / "b" / "deep" / "sdes.pcapng")
    shutil.copy(ROOT / P2P, tree / "a" / "p2p.PCAPNG")
    with gzip.open(tree / "b" / "sfu.pcapng.gz", "wb") as out:
        out.write((ROOT / SFU).read_bytes())
    (tree / "notes.txt").write_text("not a capture")
    (tree / "b" / "keys.log").write_text("")
    toml = claims(tmp_path)
    done = check(str(tree), str(tree / "a" / "p2p.PCAPNG"), "--claims", toml,
                 "--format", "json")
    assert done.returncode == 1, done.stderr
    names = [c["capture"] for c in as_json(done)["captures"]]
    assert names == [str(tree / "a" / "p2p.PCAPNG"), str(tree / "b" / "deep" / "sdes.pcapng"),
                     str(tree / "b" / "sfu.pcapng.gz")]  # sorted, the p2p file once
    assert combined(as_json(done), "media_end_to_end")["contradicted_in"] == [names[1]]
    # A dangling link in the folder is a capture that cannot be read, not one passed over.
    (tree / "b" / "gone.pcap").symlink_to(tmp_path / "deleted.pcap")
    gone = check(str(tree), "--claims", toml, "--format", "json")
    one_error_line(gone, "gone.pcap")
    assert as_json(gone)["captures"][2]["capture"] == str(tree / "b" / "gone.pcap")
    empty = tmp_path / "empty"
    (empty / "sub").mkdir(parents=True)
    one_error_line(check(str(empty), "--claims", toml), "empty", "no capture")


# --- JUnit ----------------------------------------------------------------------------------

def junit_cases(path: Path) -> dict[tuple[str, str], Any]:
    xml = JUnitXml.fromfile(str(path))
    suites = list(xml)
    assert len(suites) == 1
    return {(case.classname, case.name): case for case in suites[0]}


def test_junit_counts_failures_skips_and_errors(tmp_path: Path) -> None:
    bad = not_a_capture(tmp_path)
    report = tmp_path / "report.xml"
    done = check(SDES, SFU, P2P, bad, "--claims", claims(tmp_path), "--junit", str(report))
    assert done.returncode == 2
    xml = JUnitXml.fromfile(str(report))
    (suite,) = list(xml)
    assert (suite.tests, suite.failures, suite.skipped, suite.errors) == (8, 2, 1, 2)
    cases = junit_cases(report)
    assert len(cases) == 8
    (failure,) = cases[(SDES, "media_end_to_end")].result
    assert isinstance(failure, Failure) and failure.type == "contradicted"
    assert "keys-exposed" in failure.message and "flows 2, 3" in failure.message
    # The body names each flow: endpoints and verdict, for a reader without the report.
    assert re.search(r"^flow 2 udp [\d.]+:\d+ <-> [\d.]+:\d+, keys-exposed", failure.text, re.M)
    assert re.search(r"^flow 3 udp ", failure.text, re.M)
    (skip,) = cases[(SFU, "media_end_to_end")].result
    assert isinstance(skip, Skipped) and "--keylog" in skip.message
    assert cases[(P2P, "media_end_to_end")].result == []
    assert cases[(SFU, "no_plaintext_media")].result == []
    for claim in ("media_end_to_end", "no_plaintext_media"):
        (error,) = cases[(bad, claim)].result
        assert isinstance(error, Error) and "broken.pcap" in error.message
    # Under --strict the unverifiable claim is a failure, no longer a skip.
    strict = tmp_path / "strict.xml"
    assert check(SDES, SFU, P2P, "--claims", claims(tmp_path), "--strict", "--junit",
                 str(strict)).returncode == 1
    (suite,) = list(JUnitXml.fromfile(str(strict)))
    assert (suite.tests, suite.failures, suite.skipped, suite.errors) == (6, 3, 0, 0)
    (failure,) = junit_cases(strict)[(SFU, "media_end_to_end")].result
    assert isinstance(failure, Failure) and failure.type == "unverifiable"


# --- SARIF ----------------------------------------------------------------------------------

def validate_sarif(path: Path) -> dict[str, Any]:
    schema = json.loads(SCHEMA.read_text())
    log: dict[str, Any] = json.loads(path.read_text())
    validator = jsonschema.Draft4Validator(schema,
                                           format_checker=jsonschema.Draft4Validator.FORMAT_CHECKER)
    errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
              for e in validator.iter_errors(log)]
    assert not errors, errors
    return log


def test_sarif_is_valid_and_names_each_contradiction(tmp_path: Path) -> None:
    out = tmp_path / "flowscan.sarif"
    bad = not_a_capture(tmp_path)
    toml = claims(tmp_path, E2E_CLAIMS + 'media_stays_in = "EU"\n')
    done = check(SDES, SFU, bad, "--claims", toml, "--sarif", str(out))
    assert done.returncode == 2
    log = validate_sarif(out)
    assert log["version"] == "2.1.0"
    (run,) = log["runs"]
    driver = run["tool"]["driver"]
    assert driver["name"] == "flowscan" and driver["version"]
    rules = {r["id"]: r for r in driver["rules"]}
    assert set(rules) == {"media_end_to_end", "no_plaintext_media", "media_stays_in",
                          "signalling_stays_in", "allowed_operators"}
    assert all(r["shortDescription"]["text"] for r in rules.values())
    artifacts = run["artifacts"]
    assert [a["location"]["uri"] for a in artifacts] == [SDES, SFU, "file://" + bad]
    for artifact, capture in zip(artifacts[:2], (SDES, SFU), strict=True):
        assert artifact["hashes"] == {
            "sha-256": hashlib.sha256((ROOT / capture).read_bytes()).hexdigest()}
    assert "hashes" not in artifacts[2]
    found = {(r["ruleId"], r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]):
             r for r in run["results"]}
    # SDES: both encryption claims contradicted, and media leaves the EU; SFU: end-to-end
    # unverifiable (a warning), media outside the EU too.
    assert {k for k, r in found.items() if r["level"] == "error"} == {
        ("media_end_to_end", SDES), ("no_plaintext_media", SDES), ("media_stays_in", SDES),
        ("media_stays_in", SFU)}
    assert {k for k, r in found.items() if r["level"] == "warning"} == {
        ("media_end_to_end", SFU)}
    result = found[("media_end_to_end", SDES)]
    assert "keys-exposed" in result["message"]["text"]
    assert result["properties"]["flows"] == [2, 3]
    assert [d.split(" ")[1] for d in result["properties"]["flowDetails"]] == ["2", "3"]
    assert rules[result["ruleId"]] == driver["rules"][result["ruleIndex"]]
    (invocation,) = run["invocations"]
    assert invocation["executionSuccessful"] is False and invocation["exitCode"] == 2
    (note,) = invocation["toolExecutionNotifications"]
    assert note["level"] == "error" and "broken.pcap" in note["message"]["text"]
    # Under --strict an unverifiable claim is an error.
    strict = tmp_path / "strict.sarif"
    check(SFU, "--claims", claims(tmp_path), "--strict", "--sarif", str(strict))
    (result,) = validate_sarif(strict)["runs"][0]["results"]
    assert result["ruleId"] == "media_end_to_end" and result["level"] == "error"


def test_home_adds_transfer_findings_that_fail_nothing(tmp_path: Path) -> None:
    out = tmp_path / "home.sarif"
    done = check(SFU, "--claims", claims(tmp_path), "--home", "EU", "--sarif", str(out),
                 "--format", "json")
    assert done.returncode == 0, done.stderr
    (finding,) = as_json(done)["captures"][0]["findings"]
    assert finding["kind"] == "foreign-media-hop-by-hop"
    notes = [r for r in validate_sarif(out)["runs"][0]["results"] if r["level"] == "note"]
    assert [r["ruleId"] for r in notes] == ["foreign-media"]
    text = check(SFU, "--claims", claims(tmp_path), "--home", "EU")
    assert "finding high foreign-media-hop-by-hop" in text.stdout
    one_error_line(check(SFU, "--claims", claims(tmp_path), "--home", "Atlantis"))


# --- inert output, no keys, no overwritten evidence -----------------------------------------

HOSTILE = "evil\x1b[2J<testcase name=\"x\">&amp;\u202egpj.\x01\x7f\u2028 ]]>"


def test_hostile_capture_names_stay_inert_in_every_output(tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    shutil.copy(ROOT / SDES, folder / f"{HOSTILE}.pcapng")
    # A name that is not UTF-8 at all.
    shutil.copy(os.fsencode(ROOT / SFU), os.fsencode(folder) + b"/bad\xff\xfename.pcap")
    junit, sarif = tmp_path / "r.xml", tmp_path / "r.sarif"
    done = check(str(folder), "--claims", claims(tmp_path), "--strict", "--junit", str(junit),
                 "--sarif", str(sarif))
    assert done.returncode == 1, done.stderr
    for output in (done.stdout, done.stderr, junit.read_text(), sarif.read_text()):
        assert not RAW_CONTROLS.search(output), RAW_CONTROLS.findall(output)
    assert "\\x1b[2J" in done.stdout and "\\u202e" in done.stdout
    # The XML parses, and the name added no element: exactly the test cases expected.
    root = ET.parse(junit).getroot()
    assert len(root.findall(".//testcase")) == 4
    classnames = {case.get("classname") for case in root.iter("testcase")}
    assert any(c and "<testcase" in c and "\\x1b" in c for c in classnames)
    assert len(junit_cases(junit)) == 4  # junitparser reads it too
    # SARIF: ASCII JSON, valid, URIs percent-encoded with nothing raw in them.
    raw = sarif.read_bytes()
    assert raw.isascii()
    log = validate_sarif(sarif)
    uris = [a["location"]["uri"] for a in log["runs"][0]["artifacts"]]
    assert len(uris) == 2
    assert all(re.fullmatch(r"file:///[A-Za-z0-9._~%/!$&'()*+,;=:@-]+", u) for u in uris), uris
    assert any("%1B%5B2J%3Ctestcase" in u for u in uris) and any("%FF%FE" in u for u in uris)
    json_out = check(str(folder), "--claims", claims(tmp_path), "--format", "json")
    assert json_out.stdout.isascii() and not RAW_CONTROLS.search(json_out.stdout)
    assert HOSTILE + ".pcapng" in {Path(c["capture"]).name
                                   for c in as_json(json_out)["captures"]}


def test_no_key_material_in_any_output(tmp_path: Path) -> None:
    secrets: set[str] = set()
    for log in ("sfu-webrtc", "sfu-webrtc-e2ee"):
        for line in (LAB / log / "keys.log").read_text().splitlines():
            if line.strip():
                _label, _random, secret = line.split()
                secrets |= {secret.lower(), secret.upper()}
    sdes = set(re.findall(rb"inline:([A-Za-z0-9+/=]{40})", (ROOT / SDES).read_bytes()))
    assert len(secrets) >= 4 and sdes
    secrets |= {k.decode() for k in sdes}
    explicit = "0x1234abcd=AES_CM_128_HMAC_SHA1_80:inline:" + "S3cr3tKeyMaterialXYZ" * 2
    secrets.add(explicit.rsplit(":", 1)[1])
    junit, sarif = tmp_path / "k.xml", tmp_path / "k.sarif"
    args = [SFU, E2EE, SDES, "--claims", claims(tmp_path), "--strict", "--home", "EU",
            "--keylog", str(LAB / "sfu-webrtc" / "keys.log"),
            "--keylog", str(LAB / "sfu-webrtc-e2ee" / "keys.log"),
            "--srtp-key", explicit, "--junit", str(junit), "--sarif", str(sarif)]
    text, as_js = check(*args), check(*args, "--format", "json")
    assert text.returncode == as_js.returncode == 1
    outputs = [text.stdout, text.stderr, as_js.stdout, as_js.stderr, junit.read_text(),
               sarif.read_text()]
    for output in outputs:
        for secret in secrets:
            assert secret not in output
    # A malformed key is refused without being quoted.
    bad = "0x1=AES_CM_128_HMAC_SHA1_80:inline:" + "Qm9ndXNLZXk" * 3 + "!!"
    refused = check(SFU, "--claims", claims(tmp_path), "--srtp-key", bad)
    one_error_line(refused)
    assert "Qm9ndXNLZXk" not in refused.stderr


def test_reports_never_overwrite_the_evidence(tmp_path: Path) -> None:
    capture = tmp_path / "call.pcapng"
    shutil.copy(ROOT / SDES, capture)
    before = capture.read_bytes()
    toml = claims(tmp_path)
    one_error_line(check(str(capture), "--claims", toml, "--junit", str(capture)), "--junit")
    one_error_line(check(str(capture), "--claims", toml, "--sarif", toml), "--sarif")
    keylog = tmp_path / "keys.log"
    shutil.copy(LAB / "sfu-webrtc" / "keys.log", keylog)
    one_error_line(check(str(capture), "--claims", toml, "--keylog", str(keylog), "--junit",
                         str(keylog)), "--junit")
    assert keylog.read_bytes() == (LAB / "sfu-webrtc" / "keys.log").read_bytes()
    assert capture.read_bytes() == before
    one_error_line(check(str(capture), "--claims", toml, "--junit", "r", "--sarif", "./r"),
                   "name the same file")
    one_error_line(check(str(capture), "--claims", toml, "--junit", "-"), "file name")
    unwritable = tmp_path / "no" / "such" / "dir" / "r.xml"
    one_error_line(check(str(capture), "--claims", toml, "--junit", str(unwritable)),
                   "cannot write JUnit report")


def test_a_real_zoom_call_and_a_lab_call_together(tmp_path: Path) -> None:
    zoom = str(real_capture("zoom.pcap"))
    toml = claims(tmp_path, '[claims]\nmedia_stays_in = "EU"\nno_plaintext_media = true\n')
    data = as_json(check(zoom, P2P, "--claims", toml, "--format", "json"))
    assert data["exit_code"] == 1
    stays = combined(data, "media_stays_in")
    assert stays["holds_in"] == [zoom] and stays["contradicted_in"] == [P2P]
    assert combined(data, "no_plaintext_media")["status"] == "holds"


# --- the README's CI examples ---------------------------------------------------------------

def readme_yaml() -> list[dict[str, Any]]:
    text = (ROOT / "README.md").read_text()
    return [yaml.safe_load(block) for block in re.findall(r"```yaml\n(.*?)```", text, re.S)]


def test_readme_ci_examples_run_the_documented_command(tmp_path: Path) -> None:
    github, gitlab = readme_yaml()
    command = "flowscan check --strict --junit report.xml --sarif flowscan.sarif"
    steps = next(iter(github["jobs"].values()))["steps"]
    (run_line,) = [s["run"] for s in steps if command in str(s.get("run", ""))]
    upload = next(s for s in steps if "upload-sarif" in str(s.get("uses", "")))
    assert upload["uses"].startswith("github/codeql-action/upload-sarif")
    assert upload["with"]["sarif_file"] == "flowscan.sarif"
    assert upload.get("if") == "always()"  # uploaded when the gate fails, too
    job = next(v for v in gitlab.values() if isinstance(v, dict) and "script" in v)
    assert [line for line in job["script"] if command in line] == [run_line]
    assert job["artifacts"]["reports"]["junit"] == "report.xml"
    assert job["artifacts"]["when"] == "always"
    # The command itself, word for word, in a repository with a captures/ folder.
    folder = tmp_path / "captures"
    folder.mkdir()
    shutil.copy(ROOT / SFU, folder / "call.pcapng")
    shutil.copy(ROOT / P2P, folder / "p2p.pcapng")
    (tmp_path / "claims.toml").write_text(E2E_CLAIMS)
    words = shlex.split(run_line)
    assert words[0] == "flowscan"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}  # this checkout's flowscan, from elsewhere
    done = subprocess.run([sys.executable, "-m", "flowscan", *words[1:]], cwd=tmp_path,
                          capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 3, done.stderr  # the SFU call's end-to-end claim: unverifiable
    validate_sarif(tmp_path / "flowscan.sarif")
    assert len(junit_cases(tmp_path / "report.xml")) == 4


def test_standard_input_once_and_a_claims_file_that_states_something(tmp_path: Path) -> None:
    toml = claims(tmp_path)
    with open(ROOT / SDES, "rb") as stdin:
        done = subprocess.run([sys.executable, "-m", "flowscan", "check", "-", P2P,
                               "--claims", toml], cwd=ROOT, stdin=stdin, capture_output=True,
                              text=True, timeout=300)
    assert done.returncode == 1 and "<stdin>" in done.stdout
    one_error_line(check("-", "-", "--claims", toml), "standard input")
    one_error_line(check(P2P, "--claims", claims(tmp_path, "[claims]\n", "none.toml")),
                   "none.toml", "states no claim")
