"""A warm start of ``rxrisk score``, structurally: in a process of its own it imports nothing
of the commands, engines and readers it does not use (a module never imported costs no time),
the reader of one Parquet file that keeps ``pyarrow.dataset`` out gives the dataset reader's
table, and only the command (not a library call of ``main``) freezes its objects for the exit,
a claims command leaves pandas unimported and collects garbage less often, and the command
starts no OpenBLAS threads."""

import importlib.util
import json
import os
import subprocess
import sys

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from rxrisk.cli.main import BLAS_THREAD_VARIABLES, GC_YOUNG_OBJECTS
from rxrisk.ingest import sources

#: modules ``rxrisk score`` (local engine, in memory, Parquet files) must not import
NOT_FOR_SCORE = (
    "pyarrow.dataset",
    "pyspark",
    "rxrisk.spark",
    "rxrisk.engines.spark",
    "rxrisk.edits",
    "rxrisk.kernels.edits",
    "rxrisk.reports",
    "rxrisk.synthetic",
)

CHILD = """
import json, sys
from rxrisk.cli import main
code = main(sys.argv[1:])
print(json.dumps({"code": code, "modules": sorted(sys.modules)}))
"""


def _loaded(modules: list[str], names) -> list[str]:
    return sorted(m for m in modules if any(m == n or m.startswith(n + ".") for n in names))


def test_score_imports_nothing_it_does_not_use(small_book, tmp_path):
    ph, md = small_book
    pq.write_table(ph, tmp_path / "ph.parquet")
    pq.write_table(md, tmp_path / "md.parquet")
    args = ["score", str(tmp_path / "ph.parquet"), "--medical", str(tmp_path / "md.parquet")]
    args += ["--as-of", "2025-12-31", "--out", str(tmp_path / "m.parquet"), "--quiet"]
    env = dict(os.environ, NUMBA_DISABLE_JIT="1")  # the same modules load; nothing compiles
    done = subprocess.run(
        [sys.executable, "-c", CHILD, *args], capture_output=True, text=True, env=env, check=True
    )
    out = json.loads(done.stdout.splitlines()[-1])
    assert out["code"] == 0 and (tmp_path / "m.parquet").exists()
    assert _loaded(out["modules"], NOT_FOR_SCORE) == []


FREEZE_CHILD = """
import gc, sys
from rxrisk.cli import main
called = main(sys.argv[1:])  # as a library call (the tests' way): nothing frozen
frozen_by_call = gc.get_freeze_count()
command = main()  # as the command: the process exits next
print(called, command, frozen_by_call, gc.get_freeze_count() > 0)
"""


def test_only_the_command_freezes_its_objects_for_the_exit(small_book, tmp_path):
    ph, md = small_book
    pq.write_table(ph, tmp_path / "ph.parquet")
    pq.write_table(md, tmp_path / "md.parquet")
    args = ["score", str(tmp_path / "ph.parquet"), "--medical", str(tmp_path / "md.parquet")]
    args += ["--as-of", "2025-12-31", "--out", str(tmp_path / "m.parquet"), "--quiet"]
    env = dict(os.environ, NUMBA_DISABLE_JIT="1")
    done = subprocess.run(
        [sys.executable, "-c", FREEZE_CHILD, *args],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    assert done.stdout.split() == ["0", "0", "0", "True"]


COMMAND_CHILD = """
import gc, json, sys
from rxrisk.cli import main
young = gc.get_threshold()[0]
sys.argv = ["rxrisk", *sys.argv[1:]]
code = main()  # as the command
loaded = "pandas" in sys.modules
import pandas, pyarrow  # pandas is still there for code that asks for it
frame = pyarrow.Table.from_pandas(pandas.DataFrame({"a": [1, 2]}))
print(json.dumps({"code": code, "pandas": loaded, "frame_rows": frame.num_rows,
                  "young": [young, gc.get_threshold()[0]]}))
"""


def _command_args(command: str, small_book, tmp_path) -> list[str]:
    ph, md = small_book
    pq.write_table(ph, tmp_path / "ph.parquet")
    pq.write_table(md, tmp_path / "md.parquet")
    args = [command, str(tmp_path / "ph.parquet"), "--medical", str(tmp_path / "md.parquet")]
    if command == "score":
        args += ["--as-of", "2025-12-31"]
    return [*args, "--out", str(tmp_path / "out.parquet"), "--quiet"]


@pytest.mark.skipif(importlib.util.find_spec("pandas") is None, reason="needs pandas installed")
@pytest.mark.parametrize("command", ["score", "edits"])
def test_a_claims_command_readies_its_process(small_book, tmp_path, command):
    # pyarrow imports pandas (when installed) the first time it converts Python values; the
    # command settles that check without pandas, which stays importable; and it collects
    # garbage less often than Python's default
    args = _command_args(command, small_book, tmp_path)
    env = dict(os.environ, NUMBA_DISABLE_JIT="1")  # the same modules load; nothing compiles
    done = subprocess.run(
        [sys.executable, "-c", COMMAND_CHILD, *args],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    out = json.loads(done.stdout.splitlines()[-1])
    assert out["code"] == 0 and (tmp_path / "out.parquet").exists()
    assert out["pandas"] is False
    assert out["frame_rows"] == 2
    assert out["young"] == [700, GC_YOUNG_OBJECTS]


BLAS_CHILD = """
import os, sys
from rxrisk.cli.main import main, one_blas_thread
if sys.argv[1] in ("helper", "numpy"):  # numpy imported, after the helper or not
    done = one_blas_thread() if sys.argv[1] == "helper" else None
    import numpy
    print(done, len(os.listdir("/proc/self/task")))
elif sys.argv[1] == "library":  # a library call of main leaves the process as it is
    print(main(sys.argv[2:]), os.environ.get("OPENBLAS_NUM_THREADS"))
else:  # the command
    sys.argv = ["rxrisk", *sys.argv[2:]]
    print(main(), os.environ.get("OPENBLAS_NUM_THREADS"))
"""


def _child(script: str, unset, mode: str, args=(), **env) -> list[str]:
    """The words a child process running ``script`` with ``mode`` and ``args`` prints, with
    the variables ``unset`` removed from its environment and ``env`` added (kernels in
    Python)."""
    base = {k: v for k, v in os.environ.items() if k not in unset}
    done = subprocess.run(
        [sys.executable, "-c", script, mode, *args],
        capture_output=True,
        text=True,
        env={**base, "NUMBA_DISABLE_JIT": "1", **env},
        check=True,
    )
    return done.stdout.split()


def _blas_child(mode: str, args=(), **env) -> list[str]:
    return _child(BLAS_CHILD, BLAS_THREAD_VARIABLES, mode, args, **env)


@pytest.mark.skipif(not os.path.isdir("/proc/self/task"), reason="counts threads in /proc")
def test_numpy_starts_no_blas_threads_after_one_blas_thread():
    if _blas_child("numpy")[1] == "1":
        pytest.skip("this numpy starts no BLAS threads at import")
    assert _blas_child("helper") == ["True", "1"]  # the main thread only
    assert _blas_child("helper", OMP_NUM_THREADS="2")[0] == "False"  # the user's choice


def test_only_the_command_gives_openblas_one_thread(small_book, tmp_path):
    args = _command_args("score", small_book, tmp_path)
    assert _blas_child("command", args) == ["0", "1"]
    assert _blas_child("command", args, OPENBLAS_NUM_THREADS="3") == ["0", "3"]
    assert _blas_child("library", args) == ["0", "None"]


HUGEPAGE_CHILD = """
import sys
from rxrisk.cli.main import main
if sys.argv[1] == "numpy":  # numpy's own default here
    code = 0
elif sys.argv[1] == "library":  # a library call of main leaves numpy's default alone
    code = main(sys.argv[2:])
else:  # the command
    sys.argv = ["rxrisk", *sys.argv[2:]]
    code = main()
from numpy._core.multiarray import _set_madvise_hugepage
print(code, _set_madvise_hugepage(True))  # the setting numpy was using
"""


def _hugepage_child(mode: str, args=(), **env) -> list[str]:
    return _child(HUGEPAGE_CHILD, ("NUMPY_MADVISE_HUGEPAGE",), mode, args, **env)


def test_only_the_command_asks_numpy_for_no_huge_pages(small_book, tmp_path):
    if _hugepage_child("numpy") != ["0", "True"]:
        pytest.skip("numpy advises no huge pages here anyway (kernel before 4.6)")
    args = _command_args("score", small_book, tmp_path)
    assert _hugepage_child("command", args) == ["0", "False"]
    assert _hugepage_child("command", args, NUMPY_MADVISE_HUGEPAGE="1") == ["0", "True"]
    assert _hugepage_child("library", args) == ["0", "True"]


def _ipc_bytes(table: pa.Table) -> bytes:
    """The table as an Arrow IPC stream: schema and metadata, chunk layout and values."""
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def _claims(n: int) -> pa.Table:
    i = np.arange(n)
    table = pa.table(
        {
            "member_id": pa.array((i % 977).astype(str)),
            "ndc": pa.array([f"{k:011d}" if k % 3 else None for k in range(n)]),
            "claim_status": pa.array(np.where(i % 7 == 0, "R", "P")).dictionary_encode(),
            "quantity": pa.array(np.where(i % 13 == 0, np.nan, i / 4.0)),
            "fill_date": pa.array(i.astype("int64"), pa.timestamp("ns", "UTC")),
        }
    )
    return table.replace_schema_metadata({"written by": "test"})


@pytest.mark.parametrize(
    ("rows", "options"),
    [
        (1_000, {}),
        (0, {}),
        (300_000, {"row_group_size": 1_000_000}),  # one row group cut into scanner batches
        (300_000, {"row_group_size": 140_000}),  # row groups just over a scanner batch
        (30_000, {"row_group_size": 7_000, "dictionary_pagesize_limit": 10_000}),
        (10_000, {"row_group_size": 4_000, "use_deprecated_int96_timestamps": True}),
    ],
)
def test_one_parquet_file_reads_as_the_dataset_reader_reads_it(tmp_path, rows, options):
    path = tmp_path / "pharmacy.parquet"
    pq.write_table(_claims(rows), path, **options)
    fast = sources.parquet_file_table(path)
    dataset = sources.parquet_dataset(path, "pharmacy").to_table()
    assert fast is not None
    assert fast.schema.equals(dataset.schema, check_metadata=True)
    assert [c.num_chunks for c in fast.columns] == [c.num_chunks for c in dataset.columns]
    assert _ipc_bytes(fast) == _ipc_bytes(dataset)


def test_an_unusual_parquet_file_is_left_to_the_dataset_reader(tmp_path):
    twice = tmp_path / "twice.parquet"
    pq.write_table(pa.Table.from_arrays([pa.array([1]), pa.array([2])], names=["a", "a"]), twice)
    broken = tmp_path / "broken.parquet"
    broken.write_bytes(b"not parquet")
    assert sources.parquet_file_table(twice) is None
    assert sources.parquet_file_table(broken) is None
    with pytest.raises(sources.InputError, match="appears more than once"):
        sources.read_source(twice, label="pharmacy")
    with pytest.raises(sources.InputError, match="cannot be read as Parquet"):
        sources.read_source(broken, label="pharmacy")


def test_the_packaged_reference_skips_its_sort_only_when_it_would_change_nothing():
    from rxrisk.config import reference

    for edition in reference.EDITIONS:
        table = reference._default_reference(edition)
        assert table.equals(table.sort_by("ndc").combine_chunks())
    sorted_ = reference._sorted_without_nulls
    assert sorted_(pa.chunked_array([["a", "b"], ["b", "c"]]))  # across chunks, ties kept
    assert not sorted_(pa.chunked_array([["a", "c"], ["b"]]))
    assert not sorted_(pa.chunked_array([["a", None, "c"]]))  # a sort moves nulls last
    assert not sorted_(pa.chunked_array([[None]], pa.string()))
    assert sorted_(pa.chunked_array([], pa.string()))
