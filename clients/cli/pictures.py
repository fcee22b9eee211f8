"""What every orbitq picture shares: a matplotlib figure on the Agg canvas, a size in pixels,
tenant colours, and writing the PNG whole.

Owns: `new_figure` (a `Figure` bound to `FigureCanvasAgg`: no pyplot, no global state, no
interactive backend, whatever MPLBACKEND says), `tenant_colours` and `save_png`.
Does not own: what is drawn (gantt, skymap).

matplotlib is imported by this module, and this module only by the commands that draw, inside
their handlers: `orbitq --help` and the SDK never load it (tests/cli/test_light_imports.py).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

DPI = 100
# Tenants get the ten tableau colours in name order, then twenty more; beyond thirty they repeat
# (the legend still names each one).
_PALETTE = (
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
    "#17becf",
    "#aec7e8",
    "#ffbb78",
    "#98df8a",
    "#ff9896",
    "#c5b0d5",
    "#c49c94",
    "#f7b6d2",
    "#c7c7c7",
    "#dbdb8d",
    "#9edae5",
    "#393b79",
    "#637939",
    "#8c6d31",
    "#843c39",
    "#7b4173",
    "#3182bd",
    "#e6550d",
    "#31a354",
    "#756bb1",
    "#636363",
)


def new_figure(size_px: tuple[int, int]) -> Figure:
    """A figure of exactly `size_px` pixels when saved at DPI, on the Agg canvas."""
    width, height = size_px
    figure = Figure(figsize=(width / DPI, height / DPI), dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def tenant_colours(tenants: Sequence[str]) -> dict[str, str]:
    """A colour per tenant, by sorted name, so the same tenants get the same colours."""
    return {name: _PALETTE[i % len(_PALETTE)] for i, name in enumerate(sorted(set(tenants)))}


def save_png(figure: Figure, out: Path) -> None:
    """Write the PNG whole (a partial file, then a rename): a reader never sees half an image.

    No software version in the metadata, so the same picture gives the same bytes."""
    partial = out.with_name(f".{out.name}.partial")
    try:
        figure.savefig(partial, format="png", dpi=DPI, metadata={"Software": None})
        os.replace(partial, out)
    finally:
        partial.unlink(missing_ok=True)
