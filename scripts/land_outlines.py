"""Write services/orbits/data/land-110m.json from Natural Earth's 1:110m countries shapefile.

The map under `orbitq contacts plot` is drawn from that file, so no map data is downloaded at
run time. Its source is Natural Earth's "Admin 0 - Countries" at 1:110m (public domain), as
shipped in the geopandas 0.14.4 wheel (`geopandas/datasets/naturalearth_lowres/*.shp`; newer
geopandas releases no longer ship it):

    pip download --no-deps -d /tmp/ne geopandas==0.14.4
    unzip -o /tmp/ne/geopandas-0.14.4-py3-none-any.whl \
        'geopandas/datasets/naturalearth_lowres/*' -d /tmp/ne
    python scripts/land_outlines.py \
        /tmp/ne/geopandas/datasets/naturalearth_lowres/naturalearth_lowres.shp

Every polygon ring becomes one list of whole tenths of a degree (longitude, latitude), the
first pair absolute and the rest as differences from the previous point, with repeated points
dropped: about 60 KB for 288 rings. The map fills every ring as land (a hole of a country is
another country), so borders vanish into the fill and only the coastline shows. This script
does not ship in the wheel; it reads the shapefile format (ESRI's 1998 white paper: a 100-byte
header, then records of big-endian number and length, little-endian polygons) with `struct`.
"""

from __future__ import annotations

import argparse
import itertools
import json
import struct
from pathlib import Path

OUT = Path(__file__).resolve().parent.parent / "services/orbits/data/land-110m.json"
SCALE = 10  # whole tenths of a degree: ~11 km, under a pixel of a 2,000-pixel-wide world map
SHAPE_POLYGON = 5
SHAPE_NULL = 0
HEADER_BYTES = 100
RECORDS_MAX = 100_000


def rings_of(shapefile: bytes) -> list[list[tuple[float, float]]]:
    """Every ring of every polygon record, as (longitude, latitude) pairs."""
    rings: list[list[tuple[float, float]]] = []
    at = HEADER_BYTES
    for _ in range(RECORDS_MAX):
        if at >= len(shapefile):
            return rings
        _number, words = struct.unpack(">2i", shapefile[at : at + 8])
        record = shapefile[at + 8 : at + 8 + 2 * words]
        at += 8 + 2 * words
        (shape,) = struct.unpack("<i", record[:4])
        if shape == SHAPE_NULL:
            continue
        if shape != SHAPE_POLYGON:
            raise ValueError(f"shape type {shape} is not a polygon")
        parts, points = struct.unpack("<2i", record[36:44])
        starts = [*struct.unpack(f"<{parts}i", record[44 : 44 + 4 * parts]), points]
        first = 44 + 4 * parts
        flat = struct.unpack(f"<{2 * points}d", record[first : first + 16 * points])
        pairs = list(zip(flat[0::2], flat[1::2], strict=True))
        rings.extend(pairs[starts[i] : starts[i + 1]] for i in range(parts))
    raise ValueError(f"more than {RECORDS_MAX} records")


def encode(ring: list[tuple[float, float]]) -> list[int]:
    """Whole tenths of a degree, the first point absolute and the rest as differences."""
    points: list[tuple[int, int]] = []
    for lon, lat in ring:
        point = (round(lon * SCALE), round(lat * SCALE))
        if not points or point != points[-1]:
            points.append(point)
    flat = [*points[0]]
    for (x0, y0), (x1, y1) in itertools.pairwise(points):
        flat.extend((x1 - x0, y1 - y0))
    return flat


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("shapefile", type=Path)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    rings = [encode(ring) for ring in rings_of(args.shapefile.read_bytes())]
    kept = [ring for ring in rings if len(ring) >= 6]  # three points at least
    document = {
        "source": "Natural Earth 1:110m Admin 0 - Countries (public domain), via geopandas "
        "0.14.4 naturalearth_lowres; scripts/land_outlines.py",
        "scale": SCALE,
        "encoding": "per ring: lon, lat of the first point, then differences; units 1/scale deg",
        "rings": kept,
    }
    args.out.write_text(json.dumps(document, separators=(",", ":")) + "\n", encoding="utf-8")
    print(f"wrote {args.out}: {len(kept)} rings, {args.out.stat().st_size:,} bytes")


if __name__ == "__main__":
    main()
