"""Issue 16 item 3: `scan --format html`, one self-contained page, tested as people see it.

Without a browser: the page is the same bytes for the same capture, fetches nothing (no
src, href or url() at all, a policy that forbids every request), and a hostile capture's
strings appear only escaped. In a real browser (Debian's chromium, driven by selenium
through the chromedriver path given, never a downloaded one): each lab capture's page and
zoom.pcap's load with the network off and no console error, fetch nothing, show one marker
per located remote of the JSON report (and the capture point with --vantage), sort the flow
table when a heading is clicked, and look like something in a screenshot; a capture whose
SNI, DNS names and SIP headers hold <script> and onerror runs none of it.
"""

from __future__ import annotations

import html.parser
import io
import json
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypedDict, Unpack, cast

import pytest
from capfiles import REAL_DIR, ether, pcap
from scapy.layers.inet import IP, TCP, UDP
from test_inert_output import capture as issue12_capture
from test_inert_output import client_hello, dns_message

from flowscan.api import scan
from flowscan.geo.plausibility import centroid
from flowscan.options import ScanOptions
from flowscan.report import html as html_report
from flowscan.report import json as json_report
from flowscan.report.model import Report

ROOT = Path(__file__).resolve().parent.parent
LAB = sorted((ROOT / "captures" / "lab").glob("*/capture.pcapng"))
ZOOM = REAL_DIR / "zoom.pcap"
CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--window-size=1280,1600", "--hide-scrollbars"]

# What a hostile capture tries to run: each sets a property of window if it ever runs.
PWN = ["pwned", "pwned_img", "pwned_dns", "pwned_sip", "pwned_path"]
SNI = b"<script>window.pwned=1</script><img src=x onerror=window.pwned_img=1>.example"
DNS_LABELS = [b"<img src=x onerror=window.pwned_dns=1>", b"<script>", b"example", b"com"]
SIP_HEADER = '"><svg onload=window.pwned_sip=1><script>window.pwned_sip=1</script>'
PATH_NAME = "<img src=x onerror=window.pwned_path=1>.pcap"


def hostile_capture() -> bytes:
    """The issue-12 builders, with payloads that set window properties: a TLS SNI, a DNS
    answer naming the address of a plain RTP flow, and a SIP INVITE's headers."""
    pkts: list[bytes] = []

    def udp(src: str, dst: str, sport: int, dport: int, payload: bytes) -> None:
        pkts.append(bytes(ether() / IP(src=src, dst=dst) / UDP(sport=sport, dport=dport)
                          / payload))

    udp("192.0.2.1", "192.0.2.53", 40001, 53, dns_message(1, DNS_LABELS, None))
    udp("192.0.2.53", "192.0.2.1", 53, 40001, dns_message(1, DNS_LABELS, "198.51.100.20"))
    c, s = ("192.0.2.1", 40002), ("203.0.113.10", 443)
    for (src, sport), (dst, dport), flags, seq, ack, payload in [
            (c, s, "S", 1000, 0, b""), (s, c, "SA", 5000, 1001, b""),
            (c, s, "A", 1001, 5001, b""), (c, s, "PA", 1001, 5001, client_hello(SNI))]:
        pkts.append(bytes(ether() / IP(src=src, dst=dst) / TCP(
            sport=sport, dport=dport, flags=flags, seq=seq, ack=ack) / payload))
    invite = ("INVITE sip:bob@198.51.100.20 SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1:5060\r\n"
              f"Call-ID: {SIP_HEADER}\r\nSubject: {SIP_HEADER}\r\nCSeq: 1 INVITE\r\n"
              "Content-Length: 0\r\n\r\n").encode()
    udp("192.0.2.1", "198.51.100.20", 5060, 5060, invite)
    for i in range(12):
        rtp = bytes([0x80, 0]) + (i + 1).to_bytes(2, "big") + (160 * i).to_bytes(4, "big")
        udp("192.0.2.1", "198.51.100.20", 30000, 40000, rtp + b"\xd5" * 160)
    return pcap([(1.0 + i / 100, p) for i, p in enumerate(pkts)])


@dataclass
class Page:
    """A capture's report as HTML, with its JSON twin for the expectations."""

    name: str
    path: Path
    report: dict
    vantage: bool = False
    hostile: bool = False


def located_remotes(report: dict) -> set[str]:
    """The distinct remote addresses the JSON report locates: public, with coordinates or a
    country that has a centre to draw it at, and known to be the far end (basis not
    unknown: else either end may be the user's own)."""
    out = set()
    for flow in report["flows"]:
        remote = flow.get("remote") or {}
        if remote.get("scope") != "public" or remote.get("basis") == "unknown":
            continue
        if remote.get("latitude") is not None or centroid(remote.get("country")):
            out.add(remote["ip"])
    return out


def foreign_remotes(report: dict) -> set[str]:
    return {f["remote"]["ip"] for f in report["flows"]
            if (f.get("jurisdiction") or {}).get("foreign") and f["remote"]["ip"]
            in located_remotes(report)}


class PageOptions(TypedDict, total=False):
    """The ScanOptions the pages are rendered with."""

    home: str
    vantage: str


def render(capture: Path, out: Path, **options: Unpack[PageOptions]) -> tuple[Report, bytes]:
    report = scan(str(capture), ScanOptions(**options))
    data = html_report.dumps_bytes([report])
    out.write_bytes(data)
    return report, data


def _page(name: str, capture: Path, folder: Path, *, hostile: bool = False,
          **options: Unpack[PageOptions]) -> Page:
    report, _ = render(capture, folder / f"{name}.html", **options)
    as_json = json.loads(json_report.dumps_bytes([report]))
    return Page(name, folder / f"{name}.html", as_json, "vantage" in options, hostile)


@pytest.fixture(scope="module")
def hostile_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("hostile") / PATH_NAME
    path.write_bytes(hostile_capture())
    return path


@pytest.fixture(scope="module")
def pages(tmp_path_factory: pytest.TempPathFactory, hostile_path: Path) -> list[Page]:
    folder = tmp_path_factory.mktemp("pages")
    out = [_page(p.parent.name, p, folder) for p in LAB]
    if ZOOM.is_file():
        out.append(_page("zoom", ZOOM, folder, home="EU", vantage="DE"))
    issue12 = folder / "issue12.pcap"
    issue12.write_bytes(issue12_capture())
    out.append(_page("issue12", issue12, folder, hostile=True))
    out.append(_page("hostile", hostile_path, folder, hostile=True, home="EU",
                     vantage="48.85,2.35"))
    return out


# -- Without a browser ----------------------------------------------------------------


class Tags(html.parser.HTMLParser):
    """Every element and attribute of a page, and the scripts' text."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.scripts: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        self._in_script = tag == "script"
        if self._in_script:
            self.scripts.append("")

    def handle_endtag(self, tag: str) -> None:
        self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script:
            self.scripts[-1] += data


def parse(data: bytes) -> Tags:
    tags = Tags()
    tags.feed(data.decode("utf-8"))
    return tags


def test_same_capture_same_page_byte_for_byte(tmp_path: Path) -> None:
    capture = LAB[0]
    _, first = render(capture, tmp_path / "a.html", home="EU", vantage="DE")
    _, second = render(capture, tmp_path / "b.html", home="EU", vantage="DE")
    assert first == second
    assert b"<svg" in first and b'id="flows"' in first


def test_the_page_fetches_nothing(pages: list[Page]) -> None:
    for page in pages:
        data = page.path.read_bytes()
        tags = parse(data)
        links = [(tag, name, value) for tag, attrs in tags.tags for name, value in
                 attrs.items() if name in ("src", "href", "xlink:href", "srcset", "action")]
        assert links == [], page.name
        assert not [t for t, _ in tags.tags if t in ("link", "iframe", "object", "embed",
                                                     "img", "image", "use", "base")]
        assert not re.search(rb"url\(|@import", data), page.name
        (policy,) = [a["content"] for t, a in tags.tags
                     if t == "meta" and a.get("http-equiv") == "Content-Security-Policy"]
        assert policy is not None and policy.startswith("default-src 'none';")
        assert "'unsafe-inline'" not in policy.split("script-src")[1].split(";")[0]


def test_hostile_strings_appear_only_escaped(pages: list[Page]) -> None:
    for page in (p for p in pages if p.hostile):
        data = page.path.read_bytes()
        tags = parse(data)
        # One script, ours; no element the capture named; no event handler attribute.
        assert len(tags.scripts) == 1
        assert tags.scripts[0] == html_report._template_text("report.js")
        assert not [t for t, _ in tags.tags if t in ("img", "iframe", "object")]
        assert not [(t, n) for t, attrs in tags.tags for n in attrs if n.startswith("on")]
        assert b"<script>window" not in data and b"<img" not in data
        assert b"<script>alert" not in data
    hostile = next(p for p in pages if p.name == "hostile").path.read_text()
    # Shown, as text: the SNI (whole), the DNS name, the SIP header and the file name.
    assert "&lt;script&gt;window.pwned=1&lt;/script&gt;&lt;img src=x onerror=" in hostile
    assert "&lt;img src=x onerror=window.pwned_path=1&gt;.pcap" in hostile
    assert "onerror=window.pwned_dns=1" in hostile


def test_format_html_from_the_extension_and_in_a_folder(tmp_path: Path) -> None:
    """-o r.html chooses HTML; -o DIR/ writes a page per capture and a summary page; several
    captures into one page are refused before any reading."""
    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "flowscan", "scan", *args],
                              capture_output=True, text=True, cwd=ROOT, timeout=120)

    one = tmp_path / "r.html"
    assert run(str(LAB[0]), "-o", str(one)).returncode == 0
    assert one.read_bytes() == html_report.dumps_bytes([scan(str(LAB[0]))])
    folder = tmp_path / "out"
    done = run(str(LAB[0]), str(LAB[1]), "--format", "html", "-o", f"{folder}/")
    assert done.returncode == 0, done.stderr
    pages = sorted(p.name for p in folder.glob("*.pcapng.html"))
    assert len(pages) == 2
    # The run's summary as a page too, linking to each capture's page by its name.
    summary = parse((folder / "summary.html").read_bytes())
    links = [cast(str, a["href"]) for t, a in summary.tags if t == "a"]
    assert sorted(links) == pages and not summary.scripts
    both = run(str(LAB[0]), str(LAB[1]), "-o", str(tmp_path / "both.html"))
    assert both.returncode == 2 and "one page per capture" in both.stderr
    assert both.stderr.count("\n") == 1 and not (tmp_path / "both.html").exists()


def test_every_marker_is_a_located_remote(pages: list[Page]) -> None:
    for page in pages:
        tags = parse(page.path.read_bytes())
        shown = {a["data-ip"] for t, a in tags.tags if t == "g" and a.get("class") == "remote"}
        assert shown == located_remotes(page.report), page.name
        assert any(a.get("id") == "vantage" for _, a in tags.tags) == page.vantage
    if ZOOM.is_file():
        zoom = next(p for p in pages if p.name == "zoom")
        assert len(located_remotes(zoom.report)) > 5 and foreign_remotes(zoom.report)


def test_the_vantage_point_is_in_the_json_report(pages: list[Page]) -> None:
    """The map starts its arcs at the report's vantage, which the JSON carries too."""
    import jsonschema

    schema = json.loads((ROOT / "flowscan" / "report" / "schema.json").read_text())
    hostile = next(p for p in pages if p.name == "hostile").report
    jsonschema.validate(hostile, schema)
    assert hostile["vantage"] == {"label": "48.85,2.35", "latitude": 48.85,
                                  "longitude": 2.35, "country": None}
    assert pages[0].report["vantage"] is None


def test_map_data_is_compact_and_credited() -> None:
    world = html_report.world()
    size = len((ROOT / "flowscan" / "report" / "worldmap.json").read_bytes())
    assert size < 150_000
    assert len(world["countries"]) > 150 and "Natural Earth" in world["attribution"]
    codes = {c["iso"] for c in world["countries"]}
    assert {"DE", "US", "NL", "BR", "JP", "PK", "AU"} <= codes


def test_every_country_shape_is_a_closed_path_that_stays_on_its_side() -> None:
    """Each subpath is 'Mx y' then relative steps in pairs then 'z'; no ring spans more than
    half the world (a ring across the antimeridian drawn flat stripes the whole map)."""
    for country in html_report.world()["countries"]:
        rings = re.findall(r"M[^M]*", country["d"])
        assert rings and "".join(rings) == country["d"], country["name"]
        for ring in rings:
            match = re.fullmatch(r"M(-?\d+) (-?\d+)l([-\d ]+)z", ring)
            assert match, (country["name"], ring[:60])
            steps = [int(n) for n in re.findall(r"-?\d+", match[3])]
            assert len(steps) % 2 == 0 and len(steps) >= 4
            xs, x = [int(match[1])], int(match[1])
            for dx in steps[::2]:
                x += dx
                xs.append(x)
            assert max(xs) - min(xs) <= 180 * html_report.SCALE, country["name"]


def test_worldmap_converter_unwraps_the_antimeridian() -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location("worldmap", ROOT / "geodata" / "worldmap.py")
    assert spec is not None and spec.loader is not None
    worldmap = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(worldmap)
    fiji = [(179.0, -16.0), (180.0, -16.5), (-179.9, -16.8), (-180.0, -17.0), (179.2, -17.0)]
    assert worldmap.seam(fiji) == [(179.0, -16.0), (180.0, -16.5), (180.1, -16.8),
                                   (180.0, -17.0), (179.2, -17.0)]
    line = [(0.0, 0.0), (1.0, 0.01), (2.0, 0.0), (3.0, 5.0)]
    assert worldmap.simplify(line, 0.5) == [(0.0, 0.0), (2.0, 0.0), (3.0, 5.0)]


def test_the_timeline_cuts_long_silences_out() -> None:
    """zoom.pcap's flows span 7 s in 2019 and one flow 2.5 min in 2023: two stretches, the
    busy one as wide as half the flows and time make it, not a hair at the left."""
    spans = [(float(i), i + 1.0) for i in range(33)] + [(1e8, 1e8 + 150)]
    first, second = html_report.segments(spans, 0.0, 1e8 + 150, 1000.0)
    assert (first.start, first.end, second.start, second.end) == (0, 33, 1e8, 1e8 + 150)
    assert first.x == 0 and second.x == first.width + html_report.BREAK_GAP
    assert 400 < first.width < 600 and first.width + second.width == pytest.approx(976, 0.2)
    (whole,) = html_report.segments([(0.0, 5.0), (6.0, 9.0)], 0.0, 10.0, 1000.0)
    assert (whole.start, whole.end, whole.x, whole.width) == (0, 10, 0, 1000)


# -- In a real browser ----------------------------------------------------------------


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """One headless chromium for the module, with the network off. Selenium Manager (which
    would download a driver or a browser) is made to fail if it were ever asked."""
    if not (CHROMIUM.is_file() and CHROMEDRIVER.exists() and shutil.which(str(CHROMEDRIVER))):
        pytest.skip("Debian's chromium and chromium-driver are not installed "
                    "(apt-get install chromium chromium-driver; .ci/run does)")
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.selenium_manager import SeleniumManager

    def refuse(self: object, args: list[str]) -> dict[str, str]:
        raise AssertionError("selenium-manager must not be used: the driver path is given")

    original = SeleniumManager.binary_paths
    SeleniumManager.binary_paths = refuse  # type: ignore[method-assign]
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path_factory.mktemp('chromium')}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options,
                              service=Service(executable_path=str(CHROMEDRIVER)))
    try:
        driver.set_network_conditions(offline=True, latency=0, download_throughput=0,
                                      upload_throughput=0)
        yield driver
    finally:
        driver.quit()
        SeleniumManager.binary_paths = original  # type: ignore[method-assign]


def _open(driver: object, page: Page) -> list[dict]:
    """Load the page; the console's messages while it loaded."""
    driver.get_log("browser")  # type: ignore[attr-defined]  # drop what came before
    driver.get(page.path.as_uri())  # type: ignore[attr-defined]
    return driver.get_log("browser")  # type: ignore[attr-defined]


def _distinct_colours(png: bytes) -> int:
    from PIL import Image

    image = Image.open(io.BytesIO(png)).convert("RGB")
    return len(image.getcolors(maxcolors=1 << 20) or [])


def test_pages_in_a_browser(browser: object, pages: list[Page]) -> None:
    from selenium.common.exceptions import NoAlertPresentException
    from selenium.webdriver.common.by import By

    driver = browser
    for page in pages:
        logs = _open(driver, page)
        assert [entry for entry in logs if entry["level"] == "SEVERE"] == [], page.name
        resources = driver.execute_script(  # type: ignore[attr-defined]
            "return performance.getEntriesByType('resource').map(e => e.name)")
        assert resources == [], page.name
        assert driver.title.startswith("flowscan: ")  # type: ignore[attr-defined]
        markers = driver.find_elements(By.CSS_SELECTOR, "#map g.remote")  # type: ignore[attr-defined]
        assert len(markers) == len(located_remotes(page.report)), page.name
        vantage = driver.find_elements(By.ID, "vantage")  # type: ignore[attr-defined]
        assert len(vantage) == (1 if page.vantage else 0), page.name
        rings = driver.find_elements(By.CSS_SELECTOR, "#map g.remote circle.ring")  # type: ignore[attr-defined]
        assert len(rings) == len(foreign_remotes(page.report)), page.name
        ran = driver.execute_script(  # type: ignore[attr-defined]
            f"return [{', '.join(f'window.{name}' for name in PWN)}]")
        assert ran == [None] * len(PWN), page.name
        with pytest.raises(NoAlertPresentException):
            driver.switch_to.alert.text  # type: ignore[attr-defined]  # noqa: B018


def test_the_flow_table_sorts_when_a_heading_is_clicked(browser: object,
                                                        pages: list[Page]) -> None:
    from selenium.webdriver.common.by import By

    driver = browser
    page = max(pages, key=lambda p: (len(p.report["flows"]), p.name))  # zoom.pcap's 34
    flows = page.report["flows"]
    _open(driver, page)

    def ids() -> list[int]:
        return [int(c.text) for c in driver.find_elements(  # type: ignore[attr-defined]
            By.CSS_SELECTOR, "#flows tbody tr td:nth-child(1)")]

    assert ids() == sorted(f["id"] for f in flows) and len(flows) > 2
    by_bytes = [f["id"] for f in sorted(flows, key=lambda f: (
        f["to_server"]["bytes"] + f["to_client"]["bytes"], f["id"]))]
    heading = driver.find_element(By.CSS_SELECTOR, "#flows thead th:nth-child(6) button")  # type: ignore[attr-defined]
    heading.click()
    assert ids() == by_bytes
    heading.click()
    assert ids() == by_bytes[::-1]
    assert driver.find_element(  # type: ignore[attr-defined]
        By.CSS_SELECTOR, "#flows thead th:nth-child(6)").get_attribute("aria-sort") == \
        "descending"


def test_a_screenshot_shows_the_page(browser: object, pages: list[Page]) -> None:
    driver = browser
    for page in pages[:1] + [p for p in pages if p.name == "zoom"]:
        _open(driver, page)
        png = driver.get_screenshot_as_png()  # type: ignore[attr-defined]
        assert png.startswith(b"\x89PNG")
        # A blank page has one colour; the answers, the map and its markers, dozens.
        assert _distinct_colours(png) > 50, page.name


def test_hostile_text_is_shown_not_run(browser: object, pages: list[Page]) -> None:
    """The SNI is on the page as the characters the capture holds, in the flow table."""
    from selenium.webdriver.common.by import By

    driver = browser
    page = next(p for p in pages if p.name == "hostile")
    _open(driver, page)
    names = [c.text for c in driver.find_elements(  # type: ignore[attr-defined]
        By.CSS_SELECTOR, "#flows tbody td:nth-child(5)")]
    assert SNI.decode() in names
    assert PATH_NAME in driver.find_element(By.ID, "evidence").text  # type: ignore[attr-defined]
