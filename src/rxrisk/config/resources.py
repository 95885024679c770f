"""Paths of the data files shipped inside the package (``data/`` in the source tree)."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path


def data_path(*parts: str) -> Path:
    """Return the path of a packaged data file, e.g. ``data_path("rules", "default.toml")``."""
    return Path(str(files("rxrisk.data").joinpath(*parts)))
