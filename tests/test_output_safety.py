"""No run destroys data or leaves files behind: output paths checked against every input and
every other output before anything is read, output targets checked up front, a run's outputs
committed together, and the temporary files of killed runs removed by the next run (only
files whose owner is provably dead)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

import rxrisk
import rxrisk.api
import rxrisk.config.rules
import rxrisk.edits
import rxrisk.reports.pages
from rxrisk.cli import main
from rxrisk.config.resources import data_path
from rxrisk.engines.spool import Spool
from rxrisk.errors import InputError
from rxrisk.io import outputs, runfiles
from rxrisk.io.outputs import Commit, check_collisions, prepare_outputs

AS_OF = "2025-12-31"


@pytest.fixture
def book(small_book, tmp_path):
    ph, md = small_book
    pq.write_table(ph, tmp_path / "ph.parquet")
    pq.write_table(md, tmp_path / "md.parquet")
    shutil.copy(data_path("rules", "default.toml"), tmp_path / "rules.toml")
    shutil.copy(data_path("rules", "edits.toml"), tmp_path / "edits.toml")
    parts = tmp_path / "parts"
    parts.mkdir()
    pq.write_table(ph, parts / "part-0.parquet")
    return tmp_path


def _snapshot(folder: Path) -> dict:
    """Every file under ``folder`` with its bytes."""
    return {p.relative_to(folder): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _no_read(monkeypatch):
    """Make any scoring, replay or report work fail loudly: a refused run must not start it."""

    def boom(*a, **k):
        raise AssertionError("the run read its inputs before refusing its outputs")

    monkeypatch.setattr(rxrisk.api, "score", boom)
    monkeypatch.setattr(rxrisk.edits, "replay_edits", boom)
    monkeypatch.setattr(rxrisk.edits, "load_edits", boom)
    monkeypatch.setattr(rxrisk.config.rules, "load_rules", boom)


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err and "SPEC" not in err, err
    return err


# ------------------------------------------------------------------------ path collisions


def _prepare(t: Path, case: str) -> None:
    if case == "hardlink":
        os.link(t / "ph.parquet", t / "hard.parquet")
    if case == "symlink":
        os.symlink(t / "ph.parquet", t / "link.parquet")
    if case == "dirlink":
        os.symlink(t / "parts", t / "partslink")


SCORE_CASES = [
    # (case id, extra arguments, the two names the message must hold)
    ("out-is-pharmacy", ["--out", "{t}/ph.parquet"], ("--out", "PHARMACY")),
    (
        "audit-is-pharmacy",
        ["--out", "{t}/m.parquet", "--audit", "{t}/ph.parquet"],
        ("--audit", "PHARMACY"),
    ),
    (
        "quarantine-is-medical",
        ["--out", "{t}/m.parquet", "--quarantine", "{t}/parts/../md.parquet"],
        ("--quarantine", "--medical"),
    ),
    (
        "quarantine-is-out",
        ["--out", "{t}/m.parquet", "--quarantine", "{t}/m.parquet"],
        ("--quarantine", "--out"),
    ),
    ("audit-is-out", ["--out", "{t}/m.csv", "--audit", "{t}/./m.csv"], ("--audit", "--out")),
    (
        "out-is-rules",
        ["--out", "{t}/m.parquet", "--audit", "{t}/rules.toml", "--rules", "{t}/rules.toml"],
        ("--audit", "--rules"),
    ),
    ("hardlink", ["--out", "{t}/hard.parquet"], ("--out", "PHARMACY")),
    ("symlink", ["--out", "{t}/link.parquet"], ("--out", "PHARMACY")),
    ("relative", ["--out", "ph.parquet"], ("--out", "PHARMACY")),
]


@pytest.mark.parametrize(("case", "extra", "names"), SCORE_CASES, ids=[c[0] for c in SCORE_CASES])
def test_score_refuses_an_output_on_an_input_or_another_output(
    book, capsys, monkeypatch, case, extra, names
):
    _prepare(book, case)
    before = _snapshot(book)
    _no_read(monkeypatch)
    monkeypatch.chdir(book)
    args = [a.replace("{t}", str(book)) for a in extra]
    rc = main(
        [
            "score",
            str(book / "ph.parquet"),
            "--medical",
            str(book / "md.parquet"),
            "--as-of",
            AS_OF,
            *args,
        ]
    )
    err = _one_line_error(capsys)
    assert rc == 2
    assert all(n in err for n in names), err
    assert _snapshot(book) == before  # nothing written, nothing destroyed


@pytest.mark.parametrize("pharmacy", ["parts", "partslink"])
def test_score_refuses_an_output_inside_a_parquet_input_folder(book, capsys, monkeypatch, pharmacy):
    _prepare(book, "dirlink")
    before = _snapshot(book)
    _no_read(monkeypatch)
    rc = main(
        [
            "score",
            str(book / pharmacy),
            "--as-of",
            AS_OF,
            "--out",
            str(book / "parts" / "m.parquet"),
        ]
    )
    err = _one_line_error(capsys)
    assert rc == 2 and "inside the PHARMACY folder" in err and "--out" in err
    assert _snapshot(book) == before


def test_score_refuses_output_inside_input_folder_reached_through_a_link(book, capsys, monkeypatch):
    _prepare(book, "dirlink")
    _no_read(monkeypatch)
    rc = main(
        [
            "score",
            str(book / "parts"),
            "--as-of",
            AS_OF,
            "--out",
            str(book / "partslink" / "m.parquet"),
        ]
    )
    assert rc == 2 and "inside the PHARMACY folder" in _one_line_error(capsys)
    assert sorted(os.listdir(book / "parts")) == ["part-0.parquet"]


@pytest.mark.parametrize(
    ("extra", "names"),
    [
        (["--out", "{t}/ph.parquet"], ("--out", "PHARMACY")),
        (
            ["--out", "{t}/c.parquet", "--audit", "{t}/edits.toml", "--edits", "{t}/edits.toml"],
            ("--audit", "--edits"),
        ),
        (["--out", "{t}/c.parquet", "--audit", "{t}/md.parquet"], ("--audit", "--medical")),
        (["--out", "{t}/c.csv", "--audit", "{t}/c.csv"], ("--audit", "--out")),
    ],
)
def test_edits_refuses_colliding_outputs(book, capsys, monkeypatch, extra, names):
    before = _snapshot(book)
    _no_read(monkeypatch)
    args = [a.replace("{t}", str(book)) for a in extra]
    rc = main(["edits", str(book / "ph.parquet"), "--medical", str(book / "md.parquet"), *args])
    err = _one_line_error(capsys)
    assert rc == 2 and all(n in err for n in names), err
    assert _snapshot(book) == before


@pytest.mark.parametrize(
    ("members", "pharmacy", "out", "names"),
    [
        # the member table is a list the report writes in its folder
        ("{t}/rep/outreach.parquet", "{t}/ph.parquet", "{t}/rep", ("--out", "MEMBERS")),
        # the other list format is removed by a run: an input there is refused too
        ("{t}/rep/lock_in.csv", "{t}/ph.parquet", "{t}/rep", ("--out", "MEMBERS")),
        # an input inside the page folders
        ("{t}/m.parquet", "{t}/rep/members/ph.parquet", "{t}/rep", ("--out", "--pharmacy")),
        # the report folder inside a Parquet input folder
        ("{t}/m.parquet", "{t}/parts", "{t}/parts/rep", ("--out", "--pharmacy")),
        # the report folder is the input folder
        ("{t}/m.parquet", "{t}/parts", "{t}/parts", ("--out", "--pharmacy")),
    ],
)
def test_report_refuses_inputs_among_its_files(
    book, capsys, monkeypatch, members, pharmacy, out, names
):
    (book / "rep" / "members").mkdir(parents=True)
    shutil.copy(book / "ph.parquet", book / "rep" / "members" / "ph.parquet")
    for name in ("m.parquet", "rep/outreach.parquet", "rep/lock_in.csv"):
        (book / name).write_bytes(b"member table stand-in")
    before = _snapshot(book)
    _no_read(monkeypatch)
    t = str(book)
    rc = main(
        [
            "report",
            members.replace("{t}", t),
            "--pharmacy",
            pharmacy.replace("{t}", t),
            "--out",
            out.replace("{t}", t),
        ]
    )
    err = _one_line_error(capsys)
    assert rc == 2 and all(n in err for n in names), err
    assert _snapshot(book) == before


def test_check_collisions_is_reusable(tmp_path):
    """The function a new command calls with its own labels (e.g. eligibility and members
    inputs, summary and detail outputs)."""
    (tmp_path / "elig.csv").write_text("member_id\n")
    os.link(tmp_path / "elig.csv", tmp_path / "same.csv")
    ins = [("--eligibility", tmp_path / "elig.csv"), ("--members", None), ("PHARMACY", object())]
    check_collisions(ins, [("--out", tmp_path / "s.parquet"), ("--detail", tmp_path / "d.parquet")])
    with pytest.raises(InputError, match=r"--detail .* and --eligibility .* are the same file"):
        check_collisions(
            ins, [("--out", tmp_path / "s.parquet"), ("--detail", tmp_path / "same.csv")]
        )
    with pytest.raises(InputError, match=r"--detail .* and --out .* are the same file"):
        check_collisions(
            ins, [("--out", tmp_path / "s.parquet"), ("--detail", f"{tmp_path}/x/../s.parquet")]
        )
    with pytest.raises(InputError, match="--eligibility .* is in the --out folder"):
        check_collisions(ins, [], [("--out", tmp_path)])
    # the whole up-front check of a command's output files
    dead = tmp_path / f".s.parquet.rxrisk-{runfiles._host()}-{_dead_pid()}-5-0.tmp"
    dead.write_bytes(b"x")
    got = prepare_outputs(ins, [("--out", tmp_path / "s.parquet"), ("--detail", None)])
    assert got == [tmp_path / "s.parquet", None] and not dead.exists()
    with pytest.raises(InputError, match="--detail .* same file"):
        prepare_outputs(
            ins, [("--out", tmp_path / "s.parquet"), ("--detail", tmp_path / "elig.csv")]
        )
    with pytest.raises(InputError, match="--out .*: unknown extension"):
        prepare_outputs(ins, [("--out", tmp_path / "s.xlsx")])


@pytest.mark.parametrize(
    ("sig", "code", "word"), [("SIGTERM", 143, "terminated"), ("SIGINT", 130, "interrupted")]
)
def test_signals_unwind_the_run(book, capsys, monkeypatch, sig, code, word):
    """SIGTERM is handled like SIGINT: the run unwinds (temporary outputs removed), exit
    128 + signal, one line; the caller's SIGTERM handler is back afterwards."""
    import signal
    import time

    signum = getattr(signal, sig)
    real_score = rxrisk.api.score

    def score_then_signal(*a, **k):
        real_score(*a, **k)
        os.kill(os.getpid(), signum)
        time.sleep(5)  # the handler raises here
        raise AssertionError("signal not delivered")

    monkeypatch.setattr(rxrisk.api, "score", score_then_signal)
    before = signal.getsignal(signal.SIGTERM)
    rc = main(
        [
            "score",
            str(book / "ph.parquet"),
            "--as-of",
            AS_OF,
            "--out",
            str(book / "m.parquet"),
            "--quiet",
        ]
    )
    err = _one_line_error(capsys)
    assert rc == code and word in err and "no output was written" in err
    assert signal.getsignal(signal.SIGTERM) is before
    assert not (book / "m.parquet").exists() and not [
        p for p in os.listdir(book) if ".rxrisk-" in p
    ]


# ------------------------------------------------------------------- targets checked up front


@pytest.mark.parametrize(
    ("flag", "target", "needle"),
    [
        ("--out", "{t}/folder.parquet", "is a folder"),
        ("--audit", "{t}/parts", "is a folder"),
        ("--quarantine", "{t}/ph.parquet/q.csv", "is not a folder"),
        ("--out", "{t}/nowhere/m.parquet", "does not exist"),
    ],
)
def test_score_output_targets_are_checked_before_scoring(
    book, capsys, monkeypatch, flag, target, needle
):
    _no_read(monkeypatch)
    (book / "folder.parquet").mkdir()
    target = target.replace("{t}", str(book))
    extra = ["--out", str(book / "m.parquet")] if flag != "--out" else []
    rc = main(["score", str(book / "ph.parquet"), "--as-of", AS_OF, *extra, flag, target])
    err = _one_line_error(capsys)
    assert rc == 2 and needle in err and flag in err, err


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs /proc")
def test_unwritable_output_folder_is_refused_even_for_root(book, capsys, monkeypatch):
    """/proc takes no new files, whoever asks (permission bits do not stop root)."""
    _no_read(monkeypatch)
    rc = main(["score", str(book / "ph.parquet"), "--as-of", AS_OF, "--out", "/proc/m.parquet"])
    err = _one_line_error(capsys)
    assert rc == 2 and "cannot write in /proc" in err


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root ignores permission bits")
def test_read_only_folders_are_refused(book, capsys, monkeypatch):
    _no_read(monkeypatch)
    ro = book / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        rc = main(
            ["score", str(book / "ph.parquet"), "--as-of", AS_OF, "--out", str(ro / "m.parquet")]
        )
        assert rc == 2 and "cannot write in" in _one_line_error(capsys)
        rc = main(
            ["score", str(book / "ph.parquet"), "--as-of", AS_OF, "--out", str(book / "m.parquet")]
            + ["--stream", "--spill-dir", str(ro)]
        )
        assert rc == 2 and "--spill-dir" in _one_line_error(capsys)
    finally:
        ro.chmod(0o700)


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs /proc")
def test_unwritable_spill_dir_is_refused_up_front(book, capsys, monkeypatch):
    _no_read(monkeypatch)
    rc = main(
        ["score", str(book / "ph.parquet"), "--as-of", AS_OF, "--out", str(book / "m.parquet")]
        + ["--stream", "--spill-dir", "/proc"]
    )
    err = _one_line_error(capsys)
    assert rc == 2 and "--spill-dir /proc" in err and "cannot write" in err


def test_report_and_generate_targets(book, capsys, monkeypatch):
    _no_read(monkeypatch)
    rc = main(
        [
            "report",
            str(book / "ph.parquet"),
            "--pharmacy",
            str(book / "ph.parquet"),
            "--out",
            "/proc/rep",
        ]
    )
    assert rc == 2 and "cannot write in /proc" in _one_line_error(capsys)
    rc = main(["generate", "--members", "10", "--out", str(book / "ph.parquet" / "b")])
    assert rc == 2 and "is not a folder" in _one_line_error(capsys)
    (book / "g" / "pharmacy.parquet").mkdir(parents=True)
    rc = main(["generate", "--members", "10", "--out", str(book / "g")])
    assert rc == 2 and "is in the way" in _one_line_error(capsys)
    assert not (book / "ph.parquet" / "b").exists()


# -------------------------------------------------------------------- outputs commit together


def test_failed_audit_write_leaves_no_member_table(book, capsys, monkeypatch):
    """All outputs are written under temporary names first: a failure writing the audit
    leaves the member table (and an earlier run's outputs) as they were."""
    out, audit = book / "m.parquet", book / "a.json"
    out.write_bytes(b"earlier member table")

    def fail(self, obj, final):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Commit, "json", fail)
    rc = main(
        [
            "score",
            str(book / "ph.parquet"),
            "--as-of",
            AS_OF,
            "--out",
            str(out),
            "--audit",
            str(audit),
        ]
    )
    assert rc == 1
    assert out.read_bytes() == b"earlier member table" and not audit.exists()
    assert not [p for p in os.listdir(book) if ".rxrisk-" in p]
    monkeypatch.undo()
    assert (
        main(
            [
                "score",
                str(book / "ph.parquet"),
                "--as-of",
                AS_OF,
                "--out",
                str(out),
                "--audit",
                str(audit),
                "--quiet",
            ]
        )
        == 0
    )
    assert pq.read_table(out).num_rows == json.loads(audit.read_text())["rows_out"] > 0


def test_failed_report_leaves_the_earlier_report(book, monkeypatch):
    members = rxrisk.score(
        pq.read_table(book / "ph.parquet"), pq.read_table(book / "md.parquet"), as_of=AS_OF
    ).members
    pq.write_table(members, book / "m.parquet")
    args = [
        "report",
        str(book / "m.parquet"),
        "--pharmacy",
        str(book / "ph.parquet"),
        "--out",
        str(book / "rep"),
        "--quiet",
    ]
    args += ["--flag", "at_risk", "--flag", "concurrent_benzo", "--flag", "high_dose"]
    assert main(args) == 0
    before = _snapshot(book / "rep")
    assert any(str(p).startswith("members/") for p in before)

    def fail(*a, **k):
        raise RuntimeError("renderer failed")

    monkeypatch.setattr(rxrisk.reports.pages, "index_page", fail)
    assert main([*args[:-6], "--flag", "concurrent_benzo"]) == 1
    assert _snapshot(book / "rep") == before
    assert not [p for p in (book / "rep").rglob("*") if ".rxrisk-" in p.name]
    # a first report that fails leaves no folder behind
    assert main([*args[:4], "--out", str(book / "rep2")]) == 1
    assert not (book / "rep2").exists()


def test_commit_helper(tmp_path):
    import pyarrow as pa

    (tmp_path / "a.csv").write_text("old\n")
    with pytest.raises(RuntimeError), Commit() as run:
        run.table(pa.table({"x": [1]}), tmp_path / "a.csv")
        run.folder(tmp_path / "sub")
        run.text("page", tmp_path / "sub" / "p.html")
        raise RuntimeError("late failure")
    assert sorted(os.listdir(tmp_path)) == ["a.csv"] and (tmp_path / "a.csv").read_text() == "old\n"
    before = outputs.committed_runs
    with Commit() as run:
        run.table(pa.table({"x": [1]}), tmp_path / "a.csv")
        run.json({"k": 1}, tmp_path / "b.json")
        assert not (tmp_path / "b.json").exists()  # nothing in place before the commit
    assert sorted(os.listdir(tmp_path)) == ["a.csv", "b.json"]
    assert outputs.committed_runs == before + 1


# -------------------------------------------------------------- leftovers of killed runs


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _leftovers(folder: Path, pid: int) -> dict[str, Path]:
    """Names a killed run ``pid`` would have left, and look-alikes that must survive."""
    host = runfiles._host()
    me = runfiles.owner()
    made = {
        "dead_tmp": folder / f".m.parquet.rxrisk-{host}-{pid}-123-0.tmp",
        "dead_parts": folder / f".pharmacy.rxrisk-{host}-{pid}-123-4.tmp",
        "live_tmp": folder / f".m.parquet.rxrisk-{me}-99.tmp",
        "other_host": folder / f".m.parquet.rxrisk-00000000-{pid}-123-0.tmp",
        "user_file": folder / f".m.parquet.{pid}.tmp",
        "dead_with_user_file": folder / f".medical.rxrisk-{host}-{pid}-123-5.tmp",
    }
    for key, path in made.items():
        if key in ("dead_parts", "dead_with_user_file"):
            path.mkdir()
            (path / "part-00000.parquet").write_bytes(b"x")
            if key == "dead_with_user_file":
                (path / "notes.txt").write_text("mine")
        else:
            path.write_bytes(b"x")
    return made


def test_next_run_removes_only_dead_runs_temporary_outputs(book):
    made = _leftovers(book, _dead_pid())
    rc = main(
        [
            "score",
            str(book / "ph.parquet"),
            "--as-of",
            AS_OF,
            "--out",
            str(book / "m.parquet"),
            "--quiet",
        ]
    )
    assert rc == 0
    assert not made["dead_tmp"].exists() and not made["dead_parts"].exists()
    for key in ("live_tmp", "other_host", "user_file"):
        assert made[key].exists(), key
    # a leftover folder holding a file the tool does not write keeps that file
    assert sorted(os.listdir(made["dead_with_user_file"])) == ["notes.txt"]


def test_next_spill_removes_only_dead_runs_spill_folders(tmp_path):
    import pyarrow as pa

    host, pid = runfiles._host(), _dead_pid()
    dead = tmp_path / f"rxrisk-spill-{host}-{pid}-123-0-fills"
    live = tmp_path / f"rxrisk-spill-{runfiles.owner()}-98-fills"
    foreign = tmp_path / "rxrisk-fills-abc123"  # not a name that carries its owner
    for folder in (dead, live, foreign):
        folder.mkdir()
        (folder / "fills-00000.arrow").write_bytes(b"x")
    with Spool("t", 2, budget_bytes=0, spill_dir=str(tmp_path)) as s:
        s.add(pa.table({"x": [1, 2]}), None)
        assert s.spilled
    assert not dead.exists()
    assert live.exists() and foreign.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([live.name, foreign.name])


def test_spill_in_the_default_place_removes_dead_runs_folders(tmp_path, monkeypatch):
    import tempfile

    import pyarrow as pa

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # the system temporary folder
    dead = tmp_path / f"rxrisk-spill-{runfiles._host()}-{_dead_pid()}-7-3-claims"
    dead.mkdir()
    (dead / "claims-00003.arrow").write_bytes(b"x")
    with Spool("t", 1, budget_bytes=0) as s:
        s.add(pa.table({"x": [1]}), None)
        assert s.spilled and not dead.exists()
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")
def test_owner_checks():
    host = runfiles._host()
    me = runfiles.owner().split("-")
    assert not runfiles.owner_is_dead(host, me[1], me[2])  # this process
    assert runfiles.owner_is_dead(host, me[1], str(int(me[2]) + 1))  # its id, another start
    assert runfiles.owner_is_dead(host, str(_dead_pid()), "0")
    assert not runfiles.owner_is_dead("00000000", str(_dead_pid()), "0")  # another host
    # a killed child not yet reaped (a zombie) is dead
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    try:
        os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOWAIT)
        assert runfiles.owner_is_dead(host, str(proc.pid), "0")
    finally:
        proc.wait()


def test_interrupt_between_stages_leaves_no_spill_folder(book, capsys, monkeypatch):
    """An interrupt at a point where no store is being closed by its own code (here while the
    quarantine table is built, after the passes that spilled) still leaves no spill file: the
    CLI removes the spill folders of stores still open when a run ends early."""
    spill = book / "spill"
    spill.mkdir()

    def interrupted(*a, **k):
        assert any(spill.iterdir())  # the stores have spilled and are open
        raise KeyboardInterrupt

    monkeypatch.setattr(outputs, "quarantine_table", interrupted)
    args = ["score", str(book / "ph.parquet"), "--medical", str(book / "md.parquet")]
    args += [
        "--as-of",
        AS_OF,
        "--out",
        str(book / "m.parquet"),
        "--quarantine",
        str(book / "q.csv"),
    ]
    args += ["--stream", "--memory-budget", "0", "--spill-dir", str(spill), "--quiet"]
    assert main(args) == 130
    assert "interrupted" in _one_line_error(capsys)
    assert list(spill.iterdir()) == []


def test_api_interrupt_while_building_the_quarantine_leaves_no_spill_file(book, monkeypatch):
    """The same interrupt through the Python API (no CLI safety net): the streaming ingest
    closes its own stores."""
    from rxrisk.engines.stream import StreamOptions

    spill = book / "spill-api"
    spill.mkdir()

    def interrupted(*a, **k):
        assert any(spill.iterdir())
        raise KeyboardInterrupt

    monkeypatch.setattr(outputs, "quarantine_table", interrupted)
    options = StreamOptions(memory_bytes=0, spill_dir=str(spill))
    with pytest.raises(KeyboardInterrupt):
        rxrisk.score(
            str(book / "ph.parquet"),
            str(book / "md.parquet"),
            as_of=AS_OF,
            quarantine=True,
            stream=options,
        )
    assert list(spill.iterdir()) == []
