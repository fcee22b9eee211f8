"""The demo workload's result, for people: its binary PGM parsed, and drawn as text.

Owns: reading "P5\\n<w> <h>\\n255\\n" + pixels (255 = cloud, 0..250 = (NDVI x1000 + 1000) / 8,
as services/demo/data/cloud_ndvi.wat writes them) and a character sketch of it. Does not own
fetching or checking the result (the story does, through the SDK).
"""

from __future__ import annotations

# How the picture is drawn: cloud, then NDVI from low to high.
CLOUD_MARK = "#"
NDVI_MARKS = " .:-=+*"
NDVI_TOP = 500  # NDVI x1000 drawn with the last mark: this scene's land spans about 0 to 0.5


def parse(pgm: bytes) -> tuple[int, int, bytes]:
    """(width, height, pixels) of the workload's binary PGM ("P5\\n<w> <h>\\n255\\n")."""
    magic, size, depth, pixels = pgm.split(b"\n", 3)
    width, height = (int(part) for part in size.split())
    if magic != b"P5" or depth != b"255" or len(pixels) != width * height:
        raise ValueError("the result is not the workload's picture")
    return width, height, pixels


def sketch(width: int, height: int, pixels: bytes) -> str:
    """Two pixels across and four down per character: cloud, else NDVI from low to high."""
    rows = []
    for y in range(0, height, 4):
        row = ""
        for x in range(0, width, 2):
            value = pixels[y * width + x]
            if value == 255:
                row += CLOUD_MARK
            else:  # 0..250 = (ndvi + 1000) / 8
                ndvi = value * 8 - 1000
                step = min(len(NDVI_MARKS) - 1, max(0, ndvi * len(NDVI_MARKS) // NDVI_TOP))
                row += NDVI_MARKS[step]
        rows.append(row)
    return "\n".join(rows)
