"""The demo's pieces that need no broker: the converter that made the bundled tile reads the
TIFF layouts it claims to (strips and tiles, either byte order), and the result's picture is
parsed and drawn as the workload defines it."""

from __future__ import annotations

import gzip
import importlib.util
import struct
from pathlib import Path
from types import ModuleType

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orbitq.services.demo import picture, story

ROOT = Path(__file__).parents[2]


def _converter() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "landsat_tile", ROOT / "scripts" / "landsat_tile.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _tiff(order: str, width: int, height: int, pixels: list[int], tile: int | None) -> bytes:
    """A baseline single-band 16-bit TIFF, uncompressed, in strips of 2 rows or square tiles."""
    entries: list[tuple[int, int, list[int]]] = [(256, 4, [width]), (257, 4, [height])]
    entries += [(258, 3, [16]), (259, 3, [1]), (277, 3, [1])]
    chunks: list[bytes] = []
    if tile is None:
        for y in range(0, height, 2):
            rows = pixels[y * width : min(height, y + 2) * width]
            chunks.append(struct.pack(order + "H" * len(rows), *rows))
    else:
        for ty in range(0, height, tile):
            for tx in range(0, width, tile):
                values = [
                    pixels[(ty + y) * width + tx + x] if ty + y < height and tx + x < width else 0
                    for y in range(tile)
                    for x in range(tile)
                ]
                chunks.append(struct.pack(order + "H" * len(values), *values))
    data_at = 8
    offsets = []
    for chunk in chunks:
        offsets.append(data_at)
        data_at += len(chunk)
    if tile is None:
        entries += [(278, 3, [2]), (273, 4, offsets), (279, 4, [len(c) for c in chunks])]
    else:
        entries += [(322, 3, [tile]), (323, 3, [tile])]
        entries += [(324, 4, offsets), (325, 4, [len(c) for c in chunks])]
    entries.sort()
    ifd = data_at
    extra_at = ifd + 2 + 12 * len(entries) + 4
    head, extra = b"", b""
    for tag, kind, values in entries:
        code = "H" if kind == 3 else "I"
        packed = struct.pack(order + code * len(values), *values)
        if len(packed) <= 4:
            field = packed.ljust(4, b"\0")
        else:
            field = struct.pack(order + "I", extra_at + len(extra))
            extra += packed
        head += struct.pack(order + "HHI", tag, kind, len(values)) + field
    magic = b"II" if order == "<" else b"MM"
    return (
        magic
        + struct.pack(order + "HI", 42, ifd)
        + b"".join(chunks)
        + struct.pack(order + "H", len(entries))
        + head
        + b"\0\0\0\0"
        + extra
    )


@given(
    order=st.sampled_from("<>"),
    width=st.integers(1, 9),
    height=st.integers(1, 9),
    tile=st.sampled_from([None, 16]),
    data=st.data(),
)
def test_the_converter_reads_strips_and_tiles(
    order: str,
    width: int,
    height: int,
    tile: int | None,
    data: st.DataObject,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    pixels = data.draw(
        st.lists(st.integers(0, 65535), min_size=width * height, max_size=width * height)
    )
    path = tmp_path_factory.mktemp("tiff") / "band.tif"
    path.write_bytes(_tiff(order, width, height, pixels, tile))
    assert _converter().read_band(path) == (width, height, pixels)


def test_the_converter_refuses_a_compressed_tiff(tmp_path: Path) -> None:
    made = bytearray(_tiff("<", 2, 2, [1, 2, 3, 4], None))
    at = made.index(struct.pack("<HHI", 259, 3, 1))
    made[at + 8 : at + 10] = struct.pack("<H", 5)  # LZW
    path = tmp_path / "band.tif"
    path.write_bytes(bytes(made))
    with pytest.raises(SystemExit, match="only uncompressed"):
        _converter().read_band(path)


def test_the_bundled_tile_is_oqt1_with_cloud_and_land() -> None:
    tile = gzip.decompress(story.TILE.read_bytes())
    width, height, bands, bits = struct.unpack("<IIHH", tile[4:16])
    assert (tile[:4], width, height, bands, bits) == (b"OQT1", 64, 64, 4, 16)
    assert len(tile) == 16 + width * height * bands * 2
    pixels = list(struct.iter_unpack("<4H", tile[16:]))
    # the workload's cloud test, done here independently: bright in blue and NDVI below 0.4
    cloud = sum(
        1
        for blue, _, red, nir in pixels
        if blue > 11_750 and (nir - red) * 1000 // max(nir + red, 1) < 400
    )
    assert cloud * 1000 // len(pixels) == 270  # what the module prints for this tile


def test_a_picture_is_parsed_and_drawn() -> None:
    # 4x4: top-left 2x2 cloud, NDVI 0 (value 125) and NDVI 0.5 (value 187) elsewhere
    pixels = bytes([255, 255, 125, 125, 255, 255, 125, 125, 187, 187, 187, 187, 0, 0, 0, 0])
    width, height, body = picture.parse(b"P5\n4 4\n255\n" + pixels)
    assert (width, height, body) == (4, 4, pixels)
    assert picture.sketch(width, height, body) == picture.CLOUD_MARK + picture.NDVI_MARKS[0]
    with pytest.raises(ValueError, match="not the workload's picture"):
        picture.parse(b"P5\n4 4\n255\n" + pixels[:-1])
