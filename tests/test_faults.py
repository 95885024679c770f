"""Fault injection on a real child process (``python -m rxrisk.cli score``, streaming with a
zero memory budget so it spills): SIGTERM and SIGKILL mid-spill and mid-write.

SIGTERM: the child exits 143 with one line, leaves no temporary output, no spill folder and
an earlier output as it was. SIGKILL: the child leaves its temporary files; the next run that
uses the same folders removes them and writes correct outputs.

Both kinds of run go through the CLI's ``main`` in a child that holds the run at a fixed point
until the test signals it, so the signal never races the end of the (small) run. Mid-spill
runs have ``Spool.add`` wrapped to stop after the first batch that leaves a spill file on disk
(the spill files live from the first batch until scoring ends; no output is open yet).
Mid-write runs have ``pyarrow.parquet.write_table`` wrapped to stop after the member table's
temporary file is written (and before the commit), so the signal always lands between the
write and the rename.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from rxrisk.synthetic import generate_book

pytestmark = pytest.mark.slow

AS_OF = "2025-12-31"
TIMEOUT = 120.0

# the CLI held after the first batch that leaves a spill file in the spill folder (argv[2])
_HELD_SPILL = """
import sys, time, pathlib
from rxrisk.engines.spool import Spool
marker, spill_root = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
real = Spool.add
def held(self, *args, **kwargs):
    real(self, *args, **kwargs)
    files = sorted(str(p) for p in spill_root.glob("*/*") if p.is_file())
    if files:
        marker.with_name(marker.name + ".part").write_text("\\n".join(files))
        marker.with_name(marker.name + ".part").rename(marker)
        time.sleep(600)
Spool.add = held
from rxrisk.cli import main
sys.exit(main(sys.argv[3:]))
"""

# the CLI with the table writer held after writing (signalled there by the test)
_HELD_WRITER = """
import sys, time, pathlib
import pyarrow.parquet as pq
marker = pathlib.Path(sys.argv[1])
real = pq.write_table
def held(table, where, *args, **kwargs):
    real(table, where, *args, **kwargs)
    marker.with_name(marker.name + ".part").write_text(str(where))
    marker.with_name(marker.name + ".part").rename(marker)
    time.sleep(600)
pq.write_table = held
from rxrisk.cli import main
sys.exit(main(sys.argv[2:]))
"""


_children: list[subprocess.Popen] = []  # held children started by the running test


@pytest.fixture(autouse=True)
def _no_child_left():
    """Kill a held child that a failed check left sleeping."""
    yield
    while _children:
        proc = _children.pop()
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def _env() -> dict:
    env = dict(os.environ)
    env.setdefault("NUMBA_CACHE_DIR", "/tmp/numba-rxrisk-tests")
    return env


@pytest.fixture(scope="module")
def book(tmp_path_factory):
    """A generated book, its expected outputs (a clean run), and a warm numba cache."""
    root = tmp_path_factory.mktemp("faults")
    generate_book(root / "in", members=2000, seed=11)
    expected = root / "expected"
    expected.mkdir()
    args = _score_args(root / "in", expected, spill=None)
    done = subprocess.run(
        [sys.executable, "-m", "rxrisk.cli", *args], env=_env(), capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    return root


def _score_args(inputs: Path, out: Path, spill: Path | None) -> list[str]:
    args = [
        "score",
        str(inputs / "pharmacy.parquet"),
        "--medical",
        str(inputs / "medical.parquet"),
        "--as-of",
        AS_OF,
        "--out",
        str(out / "members.parquet"),
        "--audit",
        str(out / "audit.json"),
        "--quarantine",
        str(out / "rejected.csv"),
        "--stream",
        "--memory-budget",
        "0",
        "--batch-rows",
        "1000",
        "--quiet",
    ]
    return args + (["--spill-dir", str(spill)] if spill is not None else [])


def _wait_for(what, proc: subprocess.Popen, check) -> None:
    deadline = time.monotonic() + TIMEOUT
    while not check():
        if proc.poll() is not None:
            _, err = proc.communicate()
            raise AssertionError(f"child ended (rc {proc.returncode}) before {what}: {err}")
        if time.monotonic() > deadline:
            proc.kill()
            proc.communicate()
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.005)


def _held(proc: subprocess.Popen, what: str, marker: Path) -> str:
    """Wait until the child holds; what its marker says."""
    _wait_for(what, proc, marker.exists)
    return marker.read_text()


def _spill_files(folder: Path) -> list[Path]:
    """The files in the spill folders under ``folder`` (whatever their suffix)."""
    return [p for p in folder.glob("*/*") if p.is_file()]


def _start_mid_spill(book: Path, out: Path, spill_root: Path):
    marker = out.parent / f"{out.name}.held-spill"
    args = _score_args(book / "in", out, spill_root)
    proc = subprocess.Popen(
        [sys.executable, "-c", _HELD_SPILL, str(marker), str(spill_root), *args],
        env=_env(),
        stderr=subprocess.PIPE,
        text=True,
    )
    _children.append(proc)
    held = [Path(f) for f in _held(proc, "the held spill", marker).splitlines()]
    assert held and all(f.exists() for f in held), held  # the spill files are on disk
    return proc


def _start_mid_write(book: Path, out: Path, spill_root: Path):
    marker = out.parent / f"{out.name}.held-write"
    args = _score_args(book / "in", out, spill_root)
    proc = subprocess.Popen(
        [sys.executable, "-c", _HELD_WRITER, str(marker), *args],
        env=_env(),
        stderr=subprocess.PIPE,
        text=True,
    )
    _children.append(proc)
    written = _held(proc, "the held write", marker)
    assert written and Path(written).exists(), written  # the temporary member table is on disk
    return proc


def _assert_outputs_correct(book: Path, out: Path) -> None:
    expected = book / "expected"
    got = pq.read_table(out / "members.parquet")
    assert got.equals(pq.read_table(expected / "members.parquet"))
    a, b = (json.loads((d / "audit.json").read_text()) for d in (out, expected))
    a.pop("seconds"), b.pop("seconds")
    assert a == b
    assert (out / "rejected.csv").read_bytes() == (expected / "rejected.csv").read_bytes()


def _temporary(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


def _sigterm_checks(proc: subprocess.Popen, out: Path, spill_root: Path, before: dict) -> None:
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=TIMEOUT)
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert err.count("\n") == 1 and "terminated" in err and "no output was written" in err, err
    assert "Traceback" not in err
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # earlier outputs kept
    assert list(spill_root.iterdir()) == []  # no spill folder, no spill file


@pytest.mark.parametrize("where", ["mid-spill", "mid-write"])
def test_sigterm_leaves_nothing_behind(book, tmp_path, where):
    out, spill = tmp_path / "out", tmp_path / "spill"
    out.mkdir()
    spill.mkdir()
    (out / "members.parquet").write_bytes(b"an earlier run's member table")
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    start = _start_mid_spill if where == "mid-spill" else _start_mid_write
    proc = start(book, out, spill)
    if where == "mid-spill":  # held mid-spill: a spill file exists, no output yet
        assert _spill_files(spill)
        assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    else:
        assert _temporary(out)  # the temporary output exists while the write is held
    _sigterm_checks(proc, out, spill, before)


def test_sigkill_leftovers_are_removed_by_the_next_run(book, tmp_path):
    out, spill = tmp_path / "out", tmp_path / "spill"
    for d in (out, spill):
        d.mkdir()
    (spill / "mine.arrow").write_bytes(b"not the tool's")
    # killed while spilling, then killed while writing
    proc = _start_mid_spill(book, out, spill)
    proc.kill()
    proc.communicate(timeout=TIMEOUT)
    assert _spill_files(spill)  # a killed run cannot clean up
    proc = _start_mid_write(book, out, spill)
    proc.kill()
    proc.communicate(timeout=TIMEOUT)
    assert _temporary(out)  # its temporary outputs are still there
    assert not (out / "members.parquet").exists()
    # the next run using the same folders removes them, and only them
    done = subprocess.run(
        [sys.executable, "-m", "rxrisk.cli", *_score_args(book / "in", out, spill)],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in out.iterdir()) == [
        "audit.json",
        "members.parquet",
        "rejected.csv",
    ]
    assert sorted(p.name for p in spill.iterdir()) == ["mine.arrow"]
    _assert_outputs_correct(book, out)
