"""Browser calls through Janus, a production SFU, inside the lab's namespaces.

Janus (Debian's janus, VideoRoom plugin, HTTP transport) runs in the "sfu" namespace with a
configuration the lab writes: host candidates on the lab interface only, no STUN server,
no other plugin or transport. A key-log shim (keylog_shim.c, built here with gcc, loaded
with LD_PRELOAD) makes Janus's OpenSSL write every leg's DTLS secrets. The call page (page/)
and janus.js (Debian's libjs-janus-gateway) are served by python's http.server in the same
namespace; headless Chromium participants in their own namespaces load it by IP address,
publish their fake camera and microphone, and subscribe to each other.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from flowscan.lab.netns import LabError, LabNetwork
from flowscan.lab.rewrite import short_term_key
from flowscan.lab.scenarios import (
    Scenario,
    _final_state,
    _Helper,
    _ice_credentials,
    _read,
    _stop,
    _tcpdump,
)

PAGE = Path(__file__).resolve().parent / "page"
SHIM = Path(__file__).resolve().parent / "keylog_shim.c"
JANUS_JS = Path("/usr/share/javascript/janus-gateway/janus.js")
HTTP_PORT, API_PORT, ROOM = 8000, 8088, 1234
RTP_PORTS = "20000-20100"
CALL_SECONDS = 4.0
# alice's plaintext RTP and RTCP before protection and after unprotection, as libwebrtc's
# RtpDump field trial logs it (direction, time, then the packet in hex).
RTP_DUMP = "rtp-dump-alice.txt"
SFRAME_KEY = "sframe-base-key.txt"  # hex; given to the pages in the URL fragment only


def _janus_lib() -> Path:
    found = sorted(glob.glob("/usr/lib/*/janus/plugins/libjanus_videoroom.so"))
    if not found:
        raise LabError("the Janus scenarios need janus (apt install janus)")
    return Path(found[0]).parent.parent


def build_shim(work: Path) -> Path:
    """Compile the key-log shim into the work folder; one line on failure."""
    if shutil.which("gcc") is None:
        raise LabError("the Janus scenarios need gcc to build the key-log shim (apt install gcc)")
    out = work / "keylog_shim.so"
    done = subprocess.run(["gcc", "-shared", "-fPIC", "-O2", "-o", str(out), str(SHIM), "-ldl",
                           "-lpthread"], capture_output=True, text=True)
    if done.returncode:
        raise LabError("building the key-log shim failed: "
                       + (done.stderr.strip().splitlines() or ["?"])[-1])
    return out


def write_config(folder: Path, interface: str, address: str, *, e2ee: bool) -> None:
    """janus.jcfg, the VideoRoom room and the HTTP transport; only those two modules are
    visible to Janus (folders of symlinks), so nothing else starts or listens."""
    lib = _janus_lib()
    for kind, module in (("plugins", "libjanus_videoroom.so"), ("transports", "libjanus_http.so")):
        (folder / kind).mkdir(parents=True, exist_ok=True)
        (folder / kind / module).symlink_to(lib / kind / module)
    for kind in ("events", "loggers"):
        (folder / kind).mkdir(parents=True, exist_ok=True)
    (folder / "janus.jcfg").write_text(f"""general: {{
  configs_folder = "{folder}"
  plugins_folder = "{folder / 'plugins'}"
  transports_folder = "{folder / 'transports'}"
  events_folder = "{folder / 'events'}"
  loggers_folder = "{folder / 'loggers'}"
  log_to_stdout = true
  debug_level = 4
  session_timeout = 30
}}
certificates: {{ dtls_accept_selfsigned = true }}
media: {{ ipv6 = false, rtp_port_range = "{RTP_PORTS}" }}
nat: {{
  ice_lite = false
  ice_tcp = false
  full_trickle = false
  ignore_mdns = true
  ice_enforce_list = "{interface}"
}}
plugins: {{}}
transports: {{}}
events: {{ broadcast = false }}
""")
    (folder / "janus.plugin.videoroom.jcfg").write_text(f"""general: {{ }}
room-{ROOM}: {{
  description = "flowscan lab"
  publishers = 4
  bitrate = 64000
  audiocodec = "opus"
  videocodec = "vp8"
  require_e2ee = {"true" if e2ee else "false"}
}}
""")
    (folder / "janus.transport.http.jcfg").write_text(f"""general: {{
  json = "indented"
  base_path = "/janus"
  http = true
  port = {API_PORT}
  ip = "{address}"
  https = false
}}
admin: {{ admin_http = false, admin_https = false }}
""")


def serve_page(net: LabNetwork, work: Path, host: str = "sfu") -> subprocess.Popen[bytes]:
    if not JANUS_JS.exists():
        raise LabError("the Janus scenarios need janus.js (apt install libjs-janus-gateway)")
    site = work / "site"
    shutil.copytree(PAGE, site)
    shutil.copyfile(JANUS_JS, site / "janus.js")
    address = net.host(host).address
    log = (work / "http.log").open("w")
    return subprocess.Popen([*net.exec_args(host), sys.executable, "-m", "http.server",
                             str(HTTP_PORT), "--bind", address, "--directory", str(site)],
                            stdout=log, stderr=subprocess.STDOUT)


def start_janus(net: LabNetwork, work: Path, keylog: Path, *, e2ee: bool
                ) -> subprocess.Popen[bytes]:
    if shutil.which("janus") is None:
        raise LabError("the Janus scenarios need janus (apt install janus)")
    shim = build_shim(work)
    sfu = net.host("sfu")
    config = work / "janus"
    write_config(config, sfu.interface, sfu.address, e2ee=e2ee)
    log = (work / "janus.log").open("w")
    proc = subprocess.Popen([*net.exec_args("sfu"), "env", f"LD_PRELOAD={shim}",
                             f"SSLKEYLOGFILE={keylog}", "janus", "-F", str(config),
                             "-C", str(config / "janus.jcfg")],
                            stdout=log, stderr=subprocess.STDOUT)
    _wait_for_api(net, proc)
    return proc


def _wait_for_api(net: LabNetwork, proc: subprocess.Popen[bytes]) -> None:
    """Janus answers its info request over HTTP once its transport listens."""
    url = f"http://{net.host('sfu').address}:{API_PORT}/janus/info"
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise LabError(f"janus exited early (code {proc.returncode})")
        done = subprocess.run([*net.exec_args("sfu"), sys.executable, "-c",
                               f"import urllib.request;urllib.request.urlopen({url!r},timeout=1)"],
                              capture_output=True)
        if done.returncode == 0:
            return
        time.sleep(0.3)
    raise LabError("janus did not answer on its HTTP transport within 15 s")


def _version(cmd: list[str]) -> str:
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return (done.stdout.strip().splitlines() or ["unknown"])[0]


def stack_versions(firefox: bool = False) -> dict[str, str]:
    """The real stacks' versions, for the manifest and the README's lab table."""
    return {"browser": _version(["chromium", "--version"]),
            **({"firefox": _version(["firefox-esr", "--version"])} if firefox else {}),
            "sfu": _version(["janus", "--version"]).replace("Janus version: ", "Janus "),
            "client": "janus.js (libjs-janus-gateway)"}


def page_url(net: LabNetwork, name: str, kid: int, key: str | None, browser: str) -> str:
    sfu = net.host("sfu").address
    url = (f"http://{sfu}:{HTTP_PORT}/room.html?server=http://{sfu}:{API_PORT}/janus"
           f"&room={ROOM}&name={name}&kid={kid}&browser={browser}")
    return url + (f"#{key}" if key else "")


def browser(net: LabNetwork, host: str, url: str, work: Path, kind: str, *extra: str
            ) -> _Helper:
    """A browser participant; Chromium logs its RTP dump, Firefox its DTLS secrets
    (NSS's SSLKEYLOGFILE) to a file of its own."""
    args = [*net.exec_args(host), "env", f"SSLKEYLOGFILE={work / f'keys-{host}.log'}",
            sys.executable, "-m", "flowscan.lab.browser", "--url", url, "--browser", kind,
            "--profile", str(work / f"{host}-profile"), "--log", str(work / f"{host}-driver.log"),
            "--seconds", str(CALL_SECONDS), *extra]
    if kind == "chromium":
        args.append("--rtp-dump")
    return _Helper(f"the browser at {host}", args, work / f"{host}.log")


def end(procs: Sequence[subprocess.Popen[Any]], *, terminate: bool) -> None:
    for proc in procs:
        if proc.poll() is None and terminate:
            proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


def write_rtp_dump(driver_log: Path, out: Path) -> Path:
    """The `# RTP_DUMP` lines of a Chromium log (WebRTC-Debugging-RtpDump): every RTP and
    RTCP packet before protection and after unprotection, in text2pcap's hex form."""
    with driver_log.open(errors="replace") as log:
        out.write_text("".join(line for line in log if line.rstrip().endswith("# RTP_DUMP")))
    return out


def _evidence_files(work: Path, firefox: tuple[str, ...], key: str | None) -> list[Path]:
    """What the scenario keeps beside its captures: alice's RTP dump (Chromium's only),
    Firefox's own key logs, and the participants' SFrame key (for tests of the inner
    layer; flowscan never uses it)."""
    files = []
    if "alice" not in firefox:
        files.append(write_rtp_dump(work / "alice-driver.log", work / RTP_DUMP))
    files += [work / f"keys-{name}.log" for name in firefox]  # beside Janus's in keys.log
    if key:
        files.append(work / SFRAME_KEY)
        files[-1].write_text(key + "\n")
    return files


def _frame_counts(pages: list[dict[str, Any]], e2ee: bool) -> list[dict[str, Any]]:
    """Frames each page protected, opened and failed; with e2ee, none may be missing."""
    counts = [{k: p.get(k) for k in ("protected", "unprotected", "failed")} for p in pages]
    if e2ee and not all(c["protected"] and c["unprotected"] for c in counts):
        raise LabError(f"the frames were not protected and opened end to end ({counts})")
    return counts


def janus_call(scenario: Scenario, net: LabNetwork, work: Path, *, e2ee: bool = False,
               firefox: tuple[str, ...] = ()) -> dict[str, Any]:
    """Two browser participants (Chromium, or Firefox for those named) publish to and
    subscribe from each other through Janus; with e2ee every frame is SFrame-protected in
    the page with a key Janus never sees."""
    keylog = work / "keys.log"
    participants = [n for n, p in scenario.hosts.items() if p.role == "participant"]
    janus = start_janus(net, work, keylog, e2ee=e2ee)
    site = serve_page(net, work)
    captures = [_tcpdump(net, "alice", work / "raw.pcap", "ip and udp"),
                _tcpdump(net, "sfu", work / "raw-sfu.pcap", "ip and udp")]
    key = os.urandom(16).hex() if e2ee else None
    browsers: list[_Helper] = []
    try:
        for kid, name in enumerate(participants, start=1):
            kind = "firefox" if name in firefox else "chromium"
            url = page_url(net, name, kid, key, "firefox" if name in firefox else "chrome")
            browsers.append(browser(net, name, url, work, kind))
            time.sleep(1.0)  # alice publishes first: bob finds her in the room when he joins
        states = [_final_state(b) for b in browsers]
        pages = [_read(b, "done", timeout=60)["page"] for b in browsers]
    finally:
        end(browsers, terminate=False)  # they close their browser and exit by themselves
        time.sleep(1.0)
        for capture in captures:
            _stop(capture)
        end([site, janus], terminate=True)
    files = _evidence_files(work, firefox, key)
    counts = _frame_counts(pages, e2ee)
    passwords = [p for page in pages for sdp in page.get("sdp", [])
                 for p in _ice_credentials(sdp)]
    manifest = {"stacks": stack_versions(bool(firefox)),
                "rtp_dump": RTP_DUMP if "alice" not in firefox else None,
                "frames": {name: c for name, c in zip(participants, counts, strict=True)}
                if e2ee else None}
    return {"keys": [short_term_key(p) for p in passwords], "ice_passwords": passwords,
            "manifest": manifest,
            "states": states, "keylog": keylog, "pages": pages,
            "captures": {"capture": "raw.pcap", "capture-sfu": "raw-sfu.pcap"},
            "files": files}
