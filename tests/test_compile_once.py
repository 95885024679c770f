"""The first run's compile: every kernel of a score compiles one specialisation (literal ints,
uint64 loop indices or another dtype would each compile it again), and the grouping's own
stable sort orders like numpy's."""

import json
import os
import subprocess
import sys

import numpy as np
import pyarrow.parquet as pq
import pytest

from rxrisk.kernels.grouping import _stable_order

_CHILD = """
import json, sys
from rxrisk.kernels._jit import Kernel
import rxrisk
from rxrisk.kernels import (
    dictionary, distinct, events, fills, grouping, member_scores, strings, timeline, windows,
)

rxrisk.score(sys.argv[1], sys.argv[2], as_of="2025-06-30,2025-12-31")
found = {}
for module in (dictionary, distinct, events, fills, grouping, member_scores, strings,
               timeline, windows):
    for name, value in vars(module).items():
        if isinstance(value, Kernel) and value.signatures:
            found[module.__name__.rsplit(".", 1)[1] + "." + name] = [
                [str(t) for t in sig] for sig in value.signatures
            ]
print(json.dumps(found))
"""


@pytest.mark.skipif(os.environ.get("NUMBA_DISABLE_JIT") == "1", reason="no compilation")
def test_a_score_compiles_every_kernel_once(small_book, tmp_path):
    pharmacy, medical = small_book
    pq.write_table(pharmacy, tmp_path / "pharmacy.parquet")
    pq.write_table(medical, tmp_path / "medical.parquet")
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "cache"))  # empty: everything compiles
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, str(tmp_path / "pharmacy.parquet"),
         str(tmp_path / "medical.parquet")],
        capture_output=True, text=True, env=env, check=True,
    )  # fmt: skip
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert "grouping._sort_buckets" in found and "member_scores.score_chunk" in found
    # the strings' offsets come as int32 or int64 (Arrow string or large string): one
    # specialisation per offsets type, the row index always int64
    trimmed = found.pop("strings.trimmed_bounds")
    assert len({sig[0] for sig in trimmed}) == len(trimmed)
    assert {sig[3] for sig in trimmed} == {"int64"}
    twice = {name: sigs for name, sigs in found.items() if len(sigs) > 1}
    assert twice == {}


@pytest.mark.parametrize("n", [0, 1, 2, 15, 16, 17, 33, 100, 1000])
@pytest.mark.parametrize("spread", [3, 1000, 2**63])
def test_stable_order_sorts_like_numpy(n, spread):
    rng = np.random.default_rng(n + spread % 97)
    keys = rng.integers(0, min(spread, 2**62), n, dtype=np.int64).astype(np.uint64)
    if spread == 2**63:
        keys = keys * np.uint64(2) + np.uint64(1)  # values above 2**63
    assert _stable_order(keys).tolist() == np.argsort(keys, kind="stable").tolist()
