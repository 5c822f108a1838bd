"""A second, independent simulator of a district, built from published facts (facts.py), for
back-testing the population estimates on regimes the model was not tuned on.

A measuring instrument, not a pipeline stage: nothing in pipeline/ imports it.

    from benchmarks.regimes import RegimeSettings, generate
    generate(RegimeSettings(regime="students", seed=9001, n_lsoas=40), "/tmp/d", mode="snapshots")
"""

from __future__ import annotations

from pathlib import Path

from .extracts import MODES, write_raw
from .streams import COMPONENTS, Streams
from .world import REGIMES, RegimeSettings, World, simulate

__all__ = ["COMPONENTS", "MODES", "REGIMES", "RegimeSettings", "Streams", "World", "generate", "simulate", "write_raw"]


def generate(settings: RegimeSettings, data_dir: str | Path, mode: str = "movements") -> World:
    """Simulate the district and write raw/ (for the data mode) and truth/ under data_dir."""
    world = simulate(settings)
    write_raw(world, Path(data_dir), mode)
    return world
