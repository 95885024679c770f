"""Spill files of the streaming path (rxrisk.engines.spool): compressed, read back to the same
rows and record batches, and the claim keys spill no hash."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.ipc as ipc

import rxrisk
from rxrisk.engines import stream
from rxrisk.engines.spool import Spool
from rxrisk.engines.stream import StreamOptions


def _uncompressed_size(table: pa.Table) -> int:
    """Bytes of ``table`` in an uncompressed Arrow IPC file, record batches as they are."""
    sink = pa.BufferOutputStream()
    with ipc.new_file(sink, table.schema) as w:
        w.write_table(table)
    return sink.getvalue().size


def _spill_files(root) -> list:
    return sorted(p for p in root.glob("*/*.arrow") if p.is_file())


def _spilled_rows(path) -> pa.Table:
    """The rows of a spill file, also one still being written (no footer yet: its record
    batches are an IPC stream after the 8-byte file magic)."""
    return ipc.open_stream(pa.BufferReader(path.read_bytes()[8:])).read_all()


def test_spill_files_are_compressed_and_read_back_unchanged(tmp_path):
    n = 20_000
    rows = np.arange(n, dtype=np.int64)
    table = pa.table(
        {
            "row": rows,
            "member_id": pa.array([f"M{i % 300:08d}" for i in range(n)]),
            "quantity": (rows % 90).astype(np.float64),
            "days_supply": rows % 30,
        }
    )
    part = (rows % 3).astype(np.intp)
    with Spool("t", 3, budget_bytes=0, spill_dir=str(tmp_path)) as s:
        s.add(table.slice(0, 12_000), part[:12_000])
        s.add(table.slice(12_000), part[12_000:])
        s.finish()
        files = _spill_files(tmp_path)
        assert len(files) == 3
        for p, path in enumerate(files):
            got = s.read(p)
            want = table.filter(pa.array(part == p))
            assert got.schema == table.schema
            assert got.equals(want)
            assert [len(c) for c in got.column("row").chunks] == [4000, 2667 - (p == 2)]
            assert path.stat().st_size < 0.6 * _uncompressed_size(got)
    assert list(tmp_path.iterdir()) == []


def test_spill_folder_at_its_fullest_holds_a_fraction_of_the_arrow_bytes(tmp_path, monkeypatch):
    """At claim-id matching the claim keys and every tracked fill are on disk (the spill
    folder's peak): compressed, and without the claim-id hashes, it holds well under the
    bytes of the same rows in uncompressed Arrow files."""
    from rxrisk.synthetic import generate_book

    generate_book(tmp_path, members=1500, seed=3)
    spill = tmp_path / "spill"
    spill.mkdir()
    seen = {}
    real = stream.match_claims

    def match_claims(claims, clock):
        files = _spill_files(spill)
        seen["claims_columns"] = claims.schema.names
        seen["on_disk"] = sum(p.stat().st_size for p in files)
        seen["arrow"] = sum(_uncompressed_size(_spilled_rows(p)) for p in files)
        seen["stores"] = {p.name.split("-")[0] for p in files}
        return real(claims, clock)

    monkeypatch.setattr(stream, "match_claims", match_claims)
    options = StreamOptions(
        batch_rows=5000, partitions=2, claim_partitions=2, memory_bytes=0, spill_dir=str(spill)
    )
    ph, md = tmp_path / "pharmacy.parquet", tmp_path / "medical.parquet"
    got = rxrisk.score(ph, md, as_of="2025-12-31", stream=options)
    assert got.audit["pharmacy"]["buckets"]["reversed"] > 0
    assert seen["stores"] == {"claims", "fills"}
    assert seen["claims_columns"] == ["row", "kind", "claim_id"]
    assert seen["on_disk"] < 0.7 * seen["arrow"]
    assert list(spill.iterdir()) == []
