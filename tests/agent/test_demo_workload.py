"""The demo workload (services/demo/data/cloud_ndvi.wat) runs in the sandbox on a tiny
synthetic OQT1 tile with a deterministic fuel and result."""

from __future__ import annotations

import gzip
import hashlib
import struct
from pathlib import Path

import wasmtime

from orbitq.clients.agent.bundle import pack
from orbitq.clients.agent.isolate import run_isolated
from orbitq.clients.agent.sandbox import Outcome, check_module, make_engine
from tests.agent.conftest import MakeJob

WAT = Path(__file__).parents[2] / "services" / "demo" / "data" / "cloud_ndvi.wat"
WIDTH, HEIGHT = 6, 4
# Recorded under wasmtime 51.0.0 (see test_sandbox.GOLDEN_RUNTIME).
FUEL = 2_325
RESULT_SHA256 = "2da662e2c5cd60952868170489107e7b55c368d185cc4c72e17512e1dc020a2f"


def synthetic_tile() -> bytes:
    """OQT1: a header, then per pixel blue, green, red, NIR (u16 LE). Pixel (x, y): a bright
    cloud in the top-left corner, vegetation elsewhere, one pixel of zeros."""
    pixels = []
    for y in range(HEIGHT):
        for x in range(WIDTH):
            if x < 2 and y < 2:
                pixels.append((20_000, 19_000, 18_000, 19_500))  # bright, flat: cloud
            elif (x, y) == (5, 3):
                pixels.append((0, 0, 0, 0))  # nir + red = 0: ndvi 0
            else:
                pixels.append((8_000 + 10 * x, 8_500, 7_000 + 100 * y, 16_000 + 50 * x))
    header = b"OQT1" + struct.pack("<IIHH", WIDTH, HEIGHT, 4, 16)
    return header + b"".join(struct.pack("<4H", *p) for p in pixels)


def test_cloud_ndvi_runs_deterministically(make_job: MakeJob, tmp_path: Path) -> None:
    text = WAT.read_text()
    check_module(make_engine(), bytes(wasmtime.wat2wasm(text)))  # passes the import policy
    seen = set()
    for _ in range(2):
        job = make_job(text, input_bytes=synthetic_tile(), memory_bytes_max=32 << 20)
        execution = run_isolated(job, tmp_path / "modules")
        assert (execution.outcome, execution.exit_code) == (Outcome.OK, 0)
        packed = pack(job.run_dir / "out", job.run_dir / "result")
        assert packed.path is not None
        pgm = packed.path.read_bytes()
        assert pgm.startswith(b"P5\n6 4\n255\n")
        body = pgm[len(b"P5\n6 4\n255\n") :]
        assert len(body) == WIDTH * HEIGHT
        assert body[0] == body[1] == body[WIDTH] == 255  # the cloud
        assert body[WIDTH * HEIGHT - 1] == (0 + 1000) >> 3  # ndvi 0 → 125
        stdout = (job.run_dir / "stdout").read_bytes()
        assert stdout == b"pixels=24 cloud_permille=166 ndvi_mean_x1000=365\n"
        seen.add((execution.fuel, hashlib.sha256(pgm).hexdigest()))
    assert seen == {(FUEL, RESULT_SHA256)}


TILE = WAT.parent / "landsat8_tile.oqt.gz"
# The workload over the bundled Landsat 8 tile (services/demo/data/README.md): the picture the
# demo's agents must downlink, byte for byte (tests/demo/test_demo.py checks the demo's result).
TILE_RESULT_SHA256 = "8ac2ed982a5c58766079998848e4a5931563b3b1754e3bc50ff6cd14e7bca89e"
TILE_STDOUT = b"pixels=4096 cloud_permille=270 ndvi_mean_x1000=257\n"


def test_cloud_ndvi_over_the_bundled_landsat_tile(make_job: MakeJob, tmp_path: Path) -> None:
    tile = gzip.decompress(TILE.read_bytes())
    assert tile[:4] == b"OQT1"
    assert struct.unpack("<IIHH", tile[4:16]) == (64, 64, 4, 16)
    assert len(tile) == 16 + 64 * 64 * 4 * 2
    job = make_job(WAT.read_text(), input_bytes=tile, memory_bytes_max=32 << 20)
    execution = run_isolated(job, tmp_path / "modules")
    assert (execution.outcome, execution.exit_code) == (Outcome.OK, 0)
    packed = pack(job.run_dir / "out", job.run_dir / "result")
    assert packed.path is not None
    pgm = packed.path.read_bytes()
    assert pgm.startswith(b"P5\n64 64\n255\n")
    assert (job.run_dir / "stdout").read_bytes() == TILE_STDOUT
    assert hashlib.sha256(pgm).hexdigest() == TILE_RESULT_SHA256
