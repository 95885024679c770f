"""The streaming reader of Parquet inputs: row group by row group, at most the next row group
decoded ahead of the caller, the rows and types of the whole-dataset read."""

from __future__ import annotations

import time

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from rxrisk.engines.batches import open_batches, row_group_runs
from rxrisk.ingest import sources

GROUP_ROWS = 20_000
GROUPS = 24


def _text_table(rows: int, seed: int) -> pa.Table:
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, 10**12, rows)
    return pa.table(
        {
            "member_id": pa.array([f"M{v:012d}" for v in ids]),
            "claim_id": pa.array([f"C{v:015d}-{i}" for i, v in enumerate(ids)]),
            "quantity": pa.array(rng.random(rows) * 90),
        }
    )


def test_reader_decodes_at_most_the_next_row_group_ahead(tmp_path):
    """A caller that holds its first batch and works slowly: Arrow's dataset scanner alone
    went on decoding the whole file into memory (24.6 row groups' bytes here); the reader
    keeps the batch held and the next row group (2 to 2.5 row groups' bytes in 10 runs,
    with the scans' working buffers)."""
    path = tmp_path / "many_groups.parquet"
    pq.write_table(_text_table(GROUP_ROWS * GROUPS, 1), path, row_group_size=GROUP_ROWS)
    assert pq.ParquetFile(path).metadata.num_row_groups == GROUPS
    pool = pa.default_memory_pool()
    before = pool.bytes_allocated()
    src = open_batches(str(path), label="pharmacy", batch_rows=GROUP_ROWS)
    it = iter(src.batches)
    first = next(it)
    unit = first.nbytes  # one decoded row group
    most = 0
    for _ in range(40):  # a slow caller: 1 s with the first batch in hand
        most = max(most, pool.bytes_allocated() - before)
        time.sleep(0.025)
    assert most <= 6 * unit, f"{most / unit:.1f} row groups decoded ahead"
    rest = sum(t.num_rows for t in it)
    assert first.num_rows + rest == GROUP_ROWS * GROUPS


@pytest.mark.parametrize("batch_rows", [1_000, 7_000, GROUP_ROWS, 10**6])
def test_batches_hold_the_datasets_rows_in_order_within_row_groups(tmp_path, batch_rows):
    """A folder of two parts of several row groups each (one part without ``claim_id``, read
    as nulls): the batches hold the dataset's rows and types in order, none longer than
    ``batch_rows`` or reaching over a row-group boundary."""
    folder = tmp_path / "parts"
    folder.mkdir()
    a = _text_table(3 * GROUP_ROWS + 500, 2)
    b = _text_table(2 * GROUP_ROWS, 3).drop_columns(["claim_id"])
    pq.write_table(a, folder / "a.parquet", row_group_size=GROUP_ROWS)
    pq.write_table(b, folder / "b.parquet", row_group_size=GROUP_ROWS)
    src = open_batches(str(folder), label="pharmacy", batch_rows=batch_rows)
    batches = list(src.batches)
    want = sources.parquet_dataset(folder, "pharmacy").to_table()
    got = pa.concat_tables(batches)
    assert got.schema == want.schema
    assert got.equals(want)
    assert src.rows == want.num_rows
    ends = np.cumsum([t.num_rows for t in batches])
    group_ends = np.cumsum([GROUP_ROWS] * 3 + [500] + [GROUP_ROWS] * 2)
    assert set(group_ends.tolist()) <= set(ends.tolist())
    assert max(t.num_rows for t in batches) <= batch_rows


@pytest.mark.parametrize("batch_rows", [1, 2_500, 3_000, 10**6])
def test_small_row_groups_are_scanned_in_runs_of_a_batch(tmp_path, batch_rows):
    """Row groups of 1,000 rows: each scan covers consecutive row groups of one part, at
    least ``batch_rows`` rows but for a part's last, every row group once, in order."""
    folder = tmp_path / "parts"
    folder.mkdir()
    pq.write_table(_text_table(7_500, 5), folder / "a.parquet", row_group_size=1_000)
    pq.write_table(_text_table(2_000, 6), folder / "b.parquet", row_group_size=1_000)
    dataset = sources.parquet_dataset(folder, "pharmacy")
    runs = list(row_group_runs(dataset, batch_rows))
    seen = [(run.path, g.id) for run in runs for g in run.row_groups]
    want = [(str(folder / "a.parquet"), i) for i in range(8)]
    want += [(str(folder / "b.parquet"), i) for i in range(2)]
    assert seen == want
    for i, run in enumerate(runs):
        rows = sum(g.num_rows for g in run.row_groups)
        last_of_part = i == len(runs) - 1 or runs[i + 1].path != run.path
        assert rows >= batch_rows or last_of_part
        assert rows - run.row_groups[-1].num_rows < batch_rows  # no group more than needed
    got = pa.concat_tables(
        open_batches(str(folder), label="pharmacy", batch_rows=batch_rows).batches
    )
    assert got.equals(dataset.to_table())


def test_a_file_without_row_groups_gives_no_batch(tmp_path):
    path = tmp_path / "empty.parquet"
    pq.write_table(_text_table(0, 4), path)
    src = open_batches(str(path), label="pharmacy", batch_rows=100)
    assert src.rows == 0
    assert sum(t.num_rows for t in src.batches) == 0
