"""Rebuild flowscan/report/worldmap.json, the country shapes the HTML report draws its map with.

The shapes are Natural Earth's Admin 0 countries at 1:110m (public domain), as the npm
package world-atlas 2 ships them (TopoJSON, ISC licence). This script decodes the TopoJSON
(quantised, delta-encoded arcs; https://github.com/topojson/topojson-specification),
projects it equirectangularly (x = longitude, y = -latitude, SCALE units a degree),
simplifies each ring (Ramer-Douglas-Peucker, TOLERANCE units) and writes one SVG path a
country, with integer coordinates and relative moves, so the map costs a report well under
100 kB. Antarctica is left out: no video call is routed there, and it would take a third
of the map's height.

    npm pack world-atlas@2            # world-atlas-2.0.2.tgz
    python3 geodata/worldmap.py world-atlas-2.0.2.tgz

Same tarball, same bytes: the output is sorted and holds no date of its own making.
"""

from __future__ import annotations

import hashlib
import json
import sys
import tarfile
from pathlib import Path

import pycountry

SCALE = 4  # units per degree: a 1440 x 720 world
TOLERANCE = 0.6  # units a simplified ring may stray from the original
MEMBER = "package/countries-110m.json"
LEFT_OUT = {"010"}  # Antarctica (ISO 3166-1 numeric)
# Natural Earth's own codes for places ISO 3166 gives none (Kosovo: XK, used by the EU).
NO_ISO = {"Kosovo": "XK"}
# Package data of the renderer that draws it (pyproject.toml lists it), not of geodata/:
# the report draws the map, whatever databases located the addresses.
OUT = Path(__file__).resolve().parent.parent / "flowscan" / "report" / "worldmap.json"

Point = tuple[float, float]


def decode_arcs(topo: dict) -> list[list[Point]]:
    """Each arc as absolute longitude, latitude pairs (TopoJSON 2.1.2 and 2.2)."""
    (sx, sy), (tx, ty) = topo["transform"]["scale"], topo["transform"]["translate"]
    arcs = []
    for arc in topo["arcs"]:
        x = y = 0
        points = []
        for dx, dy in arc:
            x, y = x + dx, y + dy
            points.append((x * sx + tx, y * sy + ty))
        arcs.append(points)
    return arcs


def ring(indices: list[int], arcs: list[list[Point]]) -> list[Point]:
    """A ring from its arcs: ~i is arc i reversed; each arc's first point repeats the last."""
    out: list[Point] = []
    for index in indices:
        arc = arcs[index] if index >= 0 else arcs[~index][::-1]
        out.extend(arc[1:] if out else arc)
    return out


def seam(points: list[Point]) -> list[Point]:
    """A ring that crosses the antimeridian (Natural Earth's Russia and Fiji) made
    continuous: each step of more than 180 degrees of longitude is taken the short way
    round, so the ring runs a little past the map's edge (clipped there) instead of
    striping across the whole map."""
    out: list[Point] = []
    shift = 0.0
    for i, (lon, lat) in enumerate(points):
        if i:
            step = lon + shift - out[-1][0]
            if step > 180:
                shift -= 360
            elif step < -180:
                shift += 360
        out.append((lon + shift, lat))
    mean = sum(lon for lon, _ in out) / len(out)
    if mean > 180 or mean < -180:
        out = [(lon - 360 if mean > 180 else lon + 360, lat) for lon, lat in out]
    return out


def _distance(p: Point, a: Point, b: Point) -> float:
    (px, py), (ax, ay), (bx, by) = p, a, b
    dx, dy = bx - ax, by - ay
    if dx == dy == 0:
        return float(((px - ax) ** 2 + (py - ay) ** 2) ** 0.5)
    return float(abs(dy * px - dx * py + bx * ay - by * ax) / (dx * dx + dy * dy) ** 0.5)


def simplify(points: list[Point], tolerance: float) -> list[Point]:
    """Ramer-Douglas-Peucker, iterative: the points a line within tolerance needs."""
    if len(points) < 3:
        return points
    keep = {0, len(points) - 1}
    stack = [(0, len(points) - 1)]
    while stack:
        first, last = stack.pop()
        best, index = 0.0, None
        for i in range(first + 1, last):
            d = _distance(points[i], points[first], points[last])
            if d > best:
                best, index = d, i
        if index is not None and best > tolerance:
            keep.add(index)
            stack += [(first, index), (index, last)]
    return [points[i] for i in sorted(keep)]


def path(rings: list[list[Point]]) -> str:
    """The rings as SVG path data: integer units, relative lines, closed."""
    parts = []
    for points in rings:
        projected = [(round((lon + 180) * SCALE), round((90 - lat) * SCALE))
                     for lon, lat in points]
        simple = simplify([(float(x), float(y)) for x, y in projected], TOLERANCE)
        coords = [(int(x), int(y)) for x, y in simple]
        deduped = [p for i, p in enumerate(coords) if i == 0 or p != coords[i - 1]]
        if len(deduped) < 3:
            continue  # an islet smaller than the map's grain
        (x0, y0), rest = deduped[0], deduped[1:]
        steps, (px, py) = [], (x0, y0)
        for x, y in rest:
            steps.append(f"{x - px} {y - py}")
            px, py = x, y
        body = " ".join(steps).replace(" -", "-")
        parts.append(f"M{x0} {y0}l{body}z")
    return "".join(parts)


def iso2(numeric: str | None, name: str) -> str | None:
    if numeric is None:
        return NO_ISO.get(name)
    country = pycountry.countries.get(numeric=numeric)
    return country.alpha_2 if country is not None else NO_ISO.get(name)


def build(tarball: Path) -> dict:
    with tarfile.open(tarball) as tar:
        member = tar.extractfile(MEMBER)
        assert member is not None, MEMBER
        raw = member.read()
        package = json.loads(tar.extractfile("package/package.json").read())  # type: ignore[union-attr]
    topo = json.loads(raw)
    arcs = decode_arcs(topo)
    countries = []
    for geometry in topo["objects"]["countries"]["geometries"]:
        numeric, name = geometry.get("id"), geometry["properties"]["name"]
        if numeric in LEFT_OUT:
            continue
        polygons = (geometry["arcs"] if geometry["type"] == "MultiPolygon"
                    else [geometry["arcs"]])
        d = path([seam(ring(r, arcs)) for polygon in polygons for r in polygon])
        if d:
            countries.append({"iso": iso2(numeric, name), "name": name, "d": d})
    countries.sort(key=lambda c: (c["iso"] or "~", c["name"]))
    return {
        "source": f"world-atlas {package['version']} ({MEMBER.split('/')[-1]}, "
                  f"sha256 {hashlib.sha256(raw).hexdigest()})",
        "data": "Natural Earth Admin 0 countries, 1:110m",
        "license": "public domain (Natural Earth); world-atlas: ISC",
        "attribution": "Made with Natural Earth (naturalearthdata.com), via world-atlas "
                       "by Michael Bostock",
        "projection": "equirectangular",
        "scale": SCALE,
        "viewbox": [0, 6 * SCALE, 360 * SCALE, 144 * SCALE],  # 84 N to 60 S
        "countries": countries,
    }


def main() -> None:
    if len(sys.argv) != 2:
        sys.exit("usage: python3 geodata/worldmap.py world-atlas-2.x.y.tgz")
    data = build(Path(sys.argv[1]))
    OUT.write_text(json.dumps(data, indent=0, ensure_ascii=True, sort_keys=False) + "\n")
    print(f"{OUT}: {len(data['countries'])} countries, {OUT.stat().st_size} bytes")


if __name__ == "__main__":
    main()
