"""The allocator a claims command picks for its process (rxrisk.cli.allocator)."""

import argparse
import ctypes
import json
import os
import subprocess
import sys

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from rxrisk.cli import allocator
from rxrisk.engines.batches import input_rows, should_stream
from rxrisk.engines.stream import StreamOptions

GLIBC = allocator._glibc() is not None


def _args(**kw) -> argparse.Namespace:
    base = {"pharmacy": None, "medical": None, "partitions": None, "memory_budget": None}
    return argparse.Namespace(**{**base, **kw})


def _book(small_book, tmp_path) -> tuple[str, str]:
    ph, md = small_book
    pq.write_table(ph, tmp_path / "ph.parquet")
    pq.write_table(md, tmp_path / "md.parquet")
    return str(tmp_path / "ph.parquet"), str(tmp_path / "md.parquet")


def test_input_rows_from_metadata(tmp_path):
    table = pa.table({"a": list(range(7))})
    pq.write_table(table, tmp_path / "one.parquet")
    (tmp_path / "dir").mkdir()
    pq.write_table(table, tmp_path / "dir" / "p0.parquet")
    pq.write_table(table.slice(0, 3), tmp_path / "dir" / "p1.parquet")
    with pa.ipc.new_file(str(tmp_path / "t.arrow"), table.schema) as w:
        w.write_table(table)
    (tmp_path / "t.csv").write_text("a\n1\n")
    (tmp_path / "broken.parquet").write_bytes(b"not parquet")
    assert input_rows(tmp_path / "one.parquet") == 7
    assert input_rows(str(tmp_path / "dir")) == 10
    assert input_rows(tmp_path / "t.arrow") == 7
    assert input_rows(table) == 7
    assert input_rows(tmp_path / "t.csv") is None  # no row count before reading
    assert input_rows(tmp_path / "broken.parquet") is None
    assert input_rows(tmp_path / "missing.parquet") is None
    assert not should_stream(tmp_path / "one.parquet")


def test_a_book_of_one_partition_is_held_at_once(small_book, tmp_path, monkeypatch):
    ph, md = _book(small_book, tmp_path)
    rows = pq.read_metadata(ph).num_rows + pq.read_metadata(md).num_rows
    assert allocator.book_rows(_args(pharmacy=ph, medical=md)) == rows
    assert allocator.book_rows(_args(pharmacy=ph)) == pq.read_metadata(ph).num_rows
    assert allocator.single_partition(_args(pharmacy=ph, medical=md))
    # a run asked to bound its memory, or whose size is unknown, keeps Arrow's allocator
    assert not allocator.single_partition(_args(pharmacy=ph, medical=md, partitions=1))
    assert not allocator.single_partition(_args(pharmacy=ph, memory_budget=1 << 20))
    (tmp_path / "ph.csv").write_text("member_id\n1\n")
    assert not allocator.single_partition(_args(pharmacy=str(tmp_path / "ph.csv"), medical=md))
    # a book of more than one partition's rows keeps it too
    monkeypatch.setattr(StreamOptions, "rows_per_partition", rows - 1)
    assert not allocator.single_partition(_args(pharmacy=ph, medical=md))
    monkeypatch.setattr(StreamOptions, "rows_per_partition", rows)
    assert allocator.single_partition(_args(pharmacy=ph, medical=md))


# In a child: glibc's statistics of memory in blocks of their own (mmap) before and after a
# 16 MiB block is allocated, then the Arrow pool.
MALLOC_CHILD = """
import ctypes, json, sys
from rxrisk.cli import main

class MallInfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in
                "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost".split()]

libc = ctypes.CDLL(None)
libc.mallinfo2.restype = MallInfo2
libc.malloc.restype = ctypes.c_void_p
sys.argv = ["rxrisk", *sys.argv[1:]]
code = main()  # as the command
before = libc.mallinfo2().hblkhd
block = libc.malloc(16 << 20)
after = libc.mallinfo2().hblkhd
import pyarrow as pa
print(json.dumps({"code": code, "pool": pa.default_memory_pool().backend_name,
                  "own_blocks_grew": after > before}))
"""


def _run_command(args: list[str], **env_extra) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "ARROW_DEFAULT_MEMORY_POOL"}
    env.update(NUMBA_DISABLE_JIT="1", **env_extra)  # nothing compiles
    done = subprocess.run(
        [sys.executable, "-c", MALLOC_CHILD, *args],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    return json.loads(done.stdout.splitlines()[-1])


@pytest.mark.skipif(not GLIBC or not hasattr(ctypes.CDLL(None), "mallinfo2"), reason="glibc")
@pytest.mark.parametrize("command", ["score", "edits"])
def test_the_command_of_a_book_held_at_once_uses_the_heap_allocator(small_book, tmp_path, command):
    ph, md = _book(small_book, tmp_path)
    args = [command, ph, "--medical", md, "--out", str(tmp_path / "out.parquet"), "--quiet"]
    if command == "score":
        args += ["--as-of", "2025-12-31"]
    out = _run_command(args)
    assert out["code"] == 0 and (tmp_path / "out.parquet").exists()
    assert out["pool"] == "system"
    assert out["own_blocks_grew"] is False  # 16 MiB now comes from the heap
    # the user's choice of Arrow pool is kept, and glibc's settings are left alone
    out = _run_command(args, ARROW_DEFAULT_MEMORY_POOL="jemalloc")
    assert out["code"] == 0
    assert out["pool"] in ("jemalloc", pa.default_memory_pool().backend_name)
    assert out["own_blocks_grew"] is True  # glibc's default: a block this size is mmapped
    # so is a run asked for a memory bound
    out = _run_command([*args, "--memory-budget", "64M"])
    assert out["code"] == 0 and out["pool"] != "system" and out["own_blocks_grew"]


def test_another_c_library_changes_nothing(monkeypatch):
    pool = pa.default_memory_pool().backend_name
    monkeypatch.setattr(allocator, "_glibc", lambda: None)
    assert allocator.use_heap_allocator() is False
    assert pa.default_memory_pool().backend_name == pool


@pytest.mark.skipif(not GLIBC, reason="glibc")
def test_a_refused_setting_leaves_arrow_alone(monkeypatch):
    class Refusing:
        def mallopt(self, param, value):
            return 0

        gnu_get_libc_version = None

    pool = pa.default_memory_pool().backend_name
    monkeypatch.setattr(allocator, "_glibc", lambda: Refusing())
    assert allocator.use_heap_allocator() is False
    assert pa.default_memory_pool().backend_name == pool
