"""Helpers shared by the benchmark scripts in bench/ (run as ``python bench/<script>.py``)."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from rxrisk.ingest.sources import MEDICAL_REQUIRED, PHARMACY_OPTIONAL, PHARMACY_REQUIRED

#: The columns the engine reads: what a fair "pyarrow read" baseline reads too.
PHARMACY_COLUMNS = [*PHARMACY_REQUIRED, *PHARMACY_OPTIONAL]
MEDICAL_COLUMNS = list(MEDICAL_REQUIRED)


def ensure_book(path: Path, members: int, seed: int) -> None:
    """Generate ``pharmacy.parquet`` / ``medical.parquet`` in ``path`` unless both exist."""
    if (path / "pharmacy.parquet").exists() and (path / "medical.parquet").exists():
        return
    from rxrisk.synthetic import generate_book

    path.mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    generate_book(path, members=members, seed=seed)
    print(f"generated {members:,} members in {time.perf_counter() - t:.1f}s", file=sys.stderr)


def best(fn, repeat: int):
    """Best time of ``repeat`` calls (at least one), and the output of that fastest call."""
    fastest, out = float("inf"), None
    for _ in range(max(1, repeat)):
        t = time.perf_counter()
        value = fn()
        seconds = time.perf_counter() - t
        if seconds < fastest:
            fastest, out = seconds, value
    return fastest, out
