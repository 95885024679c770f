"""The DuckDB peer (bench/peer_duckdb.py) computes the same core metrics as the engine."""

import importlib.util
import math
import sys
from pathlib import Path

import pytest

pytest.importorskip("duckdb", reason="duckdb is not installed (pip install duckdb): peer check")

import rxrisk  # noqa: E402
from rxrisk.synthetic import generate_book  # noqa: E402

AS_OF = "2025-12-31"
_PEER_PATH = Path(__file__).resolve().parents[1] / "bench" / "peer_duckdb.py"


def _load_peer():
    # the bench scripts import their shared helpers as ``_common`` from their own folder
    if str(_PEER_PATH.parent) not in sys.path:
        sys.path.append(str(_PEER_PATH.parent))
    spec = importlib.util.spec_from_file_location("peer_duckdb", _PEER_PATH)
    mod = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("peer_duckdb", mod)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def scored(tmp_path_factory):
    book = tmp_path_factory.mktemp("peer-book")
    generate_book(book, members=3000, seed=11)
    ph, md = str(book / "pharmacy.parquet"), str(book / "medical.parquet")
    peer = _load_peer()
    fills = peer.used_fills(ph, md)
    return peer, peer.peer_metrics(fills, AS_OF), rxrisk.score(ph, md, as_of=AS_OF).members


def _rows(table):
    return {m: i for i, m in enumerate(table.column("member_id").to_pylist())}


def _active(table):
    """Members with any opioid or benzodiazepine activity in the longest window."""
    cols = {c: table.column(c).to_pylist() for c in ("opioid_fills_365d", "opioid_days_365d")}
    cols["benzo_fills_365d"] = table.column("benzo_fills_365d").to_pylist()
    ids = table.column("member_id").to_pylist()
    return {m for i, m in enumerate(ids) if any(v[i] for v in cols.values())}


def test_peer_metrics_equal_engine(scored):
    peer, got, engine = scored
    assert got.num_rows > 200  # the book has opioid and benzodiazepine users
    pr, er = _rows(got), _rows(engine)
    both = sorted(set(pr) & set(er))
    assert len(both) > 200
    mismatches = []
    for col in peer.PEER_COLUMNS:
        pv, ev = got.column(col).to_pylist(), engine.column(col).to_pylist()
        for m in both:
            x, y = pv[pr[m]], ev[er[m]]
            if isinstance(y, float):
                ok = math.isclose(x, y, rel_tol=1e-9, abs_tol=1e-9)
            else:
                ok = x == y
            if not ok:
                mismatches.append((col, m, x, y))
    assert not mismatches, mismatches[:10]


def test_peer_active_members_agree(scored):
    _, got, engine = scored
    active = _active(engine)
    assert active
    assert _active(got) == active
