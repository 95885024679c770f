"""What a new user meets first: help, ``python -m rxrisk``, ``config show``, ``show``,
``generate`` into a used folder, summaries in rows and members, and the first-run notice
while numba compiles."""

import hashlib
import os
import pickle
import subprocess
import sys
from importlib.metadata import version

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from rxrisk.cli import main, options, progress
from rxrisk.config.resources import data_path
from rxrisk.config.rules import load_rules
from rxrisk.kernels import _cache_files as cache_files
from rxrisk.kernels._cache_files import source_stamp

AS_OF = "2025-06-30,2025-12-31"


@pytest.fixture
def book(small_book, tmp_path):
    ph, md = small_book
    pq.write_table(ph, tmp_path / "ph.parquet")
    pq.write_table(md, tmp_path / "md.parquet")
    return tmp_path


def _score(tmp, out, *extra):
    argv = ["score", str(tmp / "ph.parquet"), "--medical", str(tmp / "md.parquet")]
    return main([*argv, "--as-of", AS_OF, "--out", str(out), *extra])


def _python(*args, env=None, **kw):
    return subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, env=env, timeout=600, **kw
    )


# ------------------------------------------------------------------ help and python -m


def test_no_arguments_prints_help_and_exits_0(capsys):
    assert main([]) == 0
    captured = capsys.readouterr()
    assert captured.out.startswith("usage: rxrisk")
    assert "first steps:" in captured.out and "rxrisk config show rules" in captured.out
    assert captured.err == ""


def test_python_dash_m():
    done = _python("-m", "rxrisk")
    assert done.returncode == 0 and done.stdout.startswith("usage: rxrisk") and not done.stderr
    done = _python("-m", "rxrisk", "--version")
    assert done.returncode == 0 and done.stdout.strip().startswith("rxrisk ")
    done = _python("-m", "rxrisk", "score")
    assert done.returncode == 2 and done.stderr.count("\n") == 1
    assert done.stderr.startswith("rxrisk score: error: the following arguments are required")


@pytest.mark.parametrize("argv", [["--help"], [], ["score", "--help"], ["config", "show", "-h"]])
def test_help_imports_no_numba_nor_pyarrow_compute(argv):
    code = (
        "import sys; from rxrisk.cli import main; rc = main(sys.argv[1:]); "
        "print(rc, [m for m in ('numba', 'pyarrow.compute', 'rxrisk.kernels') if m in sys.modules])"
    )
    done = _python("-c", code, *argv)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "0 []"


def test_help_texts_cite_no_spec():
    parser = options.build_parser()
    texts = [parser.format_help()]
    for action in parser._actions:
        for sub in getattr(action, "choices", None) or {}:
            texts.append(action.choices[sub].format_help())
    assert len(texts) > 5 and not [t for t in texts if "SPEC" in t]


# ------------------------------------------------------------------ config show


@pytest.mark.parametrize(
    ("name", "parts"),
    [
        ("rules", ("rules", "default.toml")),
        ("codesets", ("codesets", "default.toml")),
        ("edits", ("rules", "edits.toml")),
    ],
)
def test_config_show_prints_the_packaged_file(capsys, name, parts):
    assert main(["config", "show", name]) == 0
    captured = capsys.readouterr()
    assert captured.out == data_path(*parts).read_text() and captured.err == ""
    assert "SPEC" not in captured.out  # user-facing text cites no internal contract


def test_config_show_rules_is_a_valid_rule_file(capsys, tmp_path):
    assert main(["config", "show", "rules"]) == 0
    (tmp_path / "mine.toml").write_text(capsys.readouterr().out)
    assert load_rules(tmp_path / "mine.toml").digest() == load_rules().digest()


def test_config_show_unknown_name(capsys):
    assert main(["config", "show", "rulez"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "invalid choice: 'rulez' (choose from 'rules', 'codesets', 'edits', 'measures')" in err


# ------------------------------------------------------------------ show


def _show(capsys, *argv):
    rc = main(["show", *argv])
    captured = capsys.readouterr()
    return rc, captured.out, captured.err


def test_show_reads_every_member_table_format(book, capsys):
    outs = {}
    for ext in (".parquet", ".csv", ".arrow"):
        assert _score(book, book / f"m{ext}", "--quiet") == 0
        rc, out, err = _show(capsys, str(book / f"m{ext}"), "--flag", "high_dose")
        assert rc == 0 and err == "", err
        outs[ext] = out
    assert outs[".csv"] == outs[".parquet"] == outs[".arrow"]
    assert "\nA " in outs[".csv"] and "high_dose" in outs[".csv"]
    # the CSV's reasons (joined with ';') are split back into the list the others hold
    members = pq.read_table(book / "m.parquet")
    reasons = ",".join(members.filter(members["high_dose"])["reasons"][0].as_py())
    assert "," in reasons and reasons in outs[".csv"]


def test_show_counts_rows_and_members_and_filters_one_as_of(book, capsys):
    out = book / "m.parquet"
    assert _score(book, out, "--quiet") == 0
    table = pq.read_table(out)
    n_members = pc.count_distinct(table["member_id"]).as_py()
    assert table.num_rows > n_members  # two as-of dates: rows are not members
    rc, text, _ = _show(capsys, str(out))
    assert rc == 0
    first = text.splitlines()[0]
    assert first.startswith(
        f"{table.num_rows} rows ({n_members} members, 2 as-of dates, 2025-06-30 to 2025-12-31); "
        "flagged rows: "
    )
    at_risk = int(pc.sum(table["at_risk"]).as_py())
    assert f"at_risk={at_risk}" in first and f"of {at_risk} rows with at_risk:" in text

    june = table.filter(pc.equal(table["as_of"], pa.scalar(20269, pa.date32())))
    flags = [f.name for f in june.schema if f.type == pa.bool_() and not f.name.endswith("_dx")]
    flag = max(flags, key=lambda f: pc.sum(june[f]).as_py() or 0)
    n_flagged = int(pc.sum(june[flag]).as_py())
    assert 0 < n_flagged < int(pc.sum(table[flag]).as_py())  # December has rows too
    rc, text, _ = _show(capsys, str(out), "--as-of", "2025-06-30", "--flag", flag)
    assert rc == 0
    assert text.splitlines()[0].startswith(
        f"{june.num_rows} rows ({june.num_rows} members, as of 2025-06-30); flagged rows: "
    )
    listed = [line for line in text.splitlines()[4:] if line.strip()]
    assert len(listed) == n_flagged and all(" 2025-06-30 " in line for line in listed)


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (
            ["--as-of", "2024-01-01"],
            "--as-of 2024-01-01: {m} has no rows for it (as-of dates: 2025-06-30, 2025-12-31)",
        ),
        (["--as-of", "2025-06-30,2025-12-31"], "give one date"),
        (["--as-of", "June"], "is not a date"),
        (["--flag", "nope"], "--flag nope: no such flag column"),
        (["--limit", "-1"], "--limit -1: give 0 or more rows"),
    ],
)
def test_show_usage_errors(book, capsys, args, needle):
    out = book / "m.parquet"
    assert _score(book, out, "--quiet") == 0
    rc, _, err = _show(capsys, str(out), *args)
    assert rc == 2 and err.count("\n") == 1 and needle.format(m=out) in err


@pytest.mark.parametrize("kind", ["parquet", "csv", "garbage"])
def test_show_refuses_a_file_that_is_not_a_member_table(book, capsys, small_book, kind):
    ph, _ = small_book
    path = book / f"claims.{'csv' if kind == 'csv' else 'parquet'}"
    if kind == "parquet":
        pq.write_table(ph, path)
    elif kind == "csv":
        path.write_text("member_id,fill_date\nA,2025-01-01\n")
    else:
        path.write_bytes(b"not parquet at all")
    rc, out, err = _show(capsys, str(path))
    assert rc == 2 and err.count("\n") == 1 and "Traceback" not in err and out == ""
    assert str(path) in err
    if kind != "garbage":
        assert "not a member table" in err and "'as_of'" in err


# ------------------------------------------------------------------ summaries


def test_score_summary_says_rows_and_members(book, capsys):
    assert _score(book, book / "m.parquet") == 0
    table = pq.read_table(book / "m.parquet")
    n_members = pc.count_distinct(table["member_id"]).as_py()
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith(f"rxrisk: scored {n_members} members ({table.num_rows} rows) ")
    assert lines[1].startswith("rxrisk: flagged rows: ")
    assert f"at_risk={int(pc.sum(table['at_risk']).as_py())}" in lines[1]


# ------------------------------------------------------------------ generate into a used folder


def test_generate_refuses_a_used_folder_or_a_file(tmp_path, capsys):
    used = tmp_path / "used"
    used.mkdir()
    (used / "notes.txt").write_text("mine")
    argv = ["generate", "--members", "20", "--seed", "1", "--quiet", "--out"]
    assert main([*argv, str(used)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(used) in err and "--force" in err
    assert sorted(os.listdir(used)) == ["notes.txt"]

    afile = tmp_path / "book.parquet"
    afile.write_text("x")
    assert main([*argv, str(afile)]) == 2
    assert str(afile) in capsys.readouterr().err and afile.read_text() == "x"

    assert main([*argv, str(used), "--force"]) == 0
    assert sorted(os.listdir(used)) == [
        "eligibility.parquet", "medical.parquet", "members.parquet", "notes.txt", "pharmacy.parquet"
    ]  # fmt: skip
    first = (used / "pharmacy.parquet").read_bytes()
    assert main([*argv, str(used)]) == 2  # a finished book is a used folder too
    assert main([*argv, str(used), "--force"]) == 0
    assert (used / "pharmacy.parquet").read_bytes() == first
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main([*argv, str(empty)]) == 0 and main([*argv, str(tmp_path / "new" / "b")]) == 0


# ------------------------------------------------------------------ first-run compile notice


def _fake_index(cache_dir, module: str, *, numba_version: str, stamp=None, payload=None):
    """An index file named and laid out the way numba writes them: its version, then the
    pickled (source stamp, overloads)."""
    os.makedirs(cache_dir, exist_ok=True)
    tag = f"py{sys.version_info[0]}{sys.version_info[1]}"
    path = os.path.join(cache_dir, f"{module}.some_kernel-12.{tag}.nbi")
    with open(path, "wb") as f:
        pickle.dump(numba_version, f, protocol=-1)
        f.write(payload if payload is not None else pickle.dumps((stamp, {"sig": "x.1.nbc"})))
    return path


def _source(module: str) -> str:
    import importlib.util

    folder = list(importlib.util.find_spec("rxrisk.kernels").submodule_search_locations)[0]
    return os.path.join(folder, f"{module}.py")


def _digest(module: str) -> bytes:
    with open(_source(module), "rb") as f:
        return hashlib.sha256(f.read()).digest()


def test_compile_decision(tmp_path, monkeypatch):
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("NUMBA_DISABLE_JIT", raising=False)
    cache = progress.kernel_cache_dir()
    assert cache.startswith(str(tmp_path / "cache"))
    report = list(progress.COMMAND_KERNELS["report"])
    assert progress.kernels_to_compile("report") == report and "strings" in report
    assert "grouping" in progress.kernels_to_compile("score")
    assert progress.kernels_to_compile("generate") == [] and progress.compile_notice("show") is None
    for command in ("score", "edits", "report", "measures"):
        notice = progress.compile_notice(command)
        assert notice.startswith("compiling kernels (first run only, about ") and " s" in notice
    assert "measures" in progress.kernels_to_compile("measures")

    numba = version("numba")
    stamp = source_stamp()  # of every kernel source, whichever module the index is for
    for module in report:  # from here on, report's decision hangs on its strings kernels alone
        if module != "strings":
            _fake_index(cache, module, numba_version=numba, stamp=stamp)
    _fake_index(cache, "strings", numba_version=numba, stamp=stamp)
    assert progress.kernels_to_compile("report") == [] and progress.compile_notice("report") is None
    assert "strings" not in progress.kernels_to_compile("score")
    _fake_index(cache, "strings", numba_version=numba, stamp=_digest("strings"))
    assert progress.kernels_to_compile("report") == ["strings"]  # numba's own per-file stamp
    _fake_index(cache, "strings", numba_version=numba, stamp=hashlib.sha256(b"old").digest())
    assert progress.kernels_to_compile("report") == ["strings"]  # the sources changed since
    _fake_index(cache, "strings", numba_version="0.0.1", stamp=stamp)  # another numba
    assert progress.kernels_to_compile("report") == ["strings"]
    _fake_index(cache, "strings", numba_version=numba, payload=b"not a pickle")
    assert progress.kernels_to_compile("report") == ["strings"]
    shipped = tmp_path / "shipped"  # the cache shipped in the package counts too
    monkeypatch.setattr(cache_files, "SHIPPED_DIR", shipped)
    _fake_index(str(shipped), "strings", numba_version=numba, stamp=stamp)
    assert progress.kernels_to_compile("report") == []
    monkeypatch.setattr(cache_files, "SHIPPED_DIR", tmp_path / "no-shipped-cache")
    assert progress.kernels_to_compile("report") == ["strings"]

    real_access = os.access
    monkeypatch.setattr(
        progress.os, "access", lambda p, mode: False if p == cache else real_access(p, mode)
    )
    notice = progress.compile_notice("report")
    assert "on every run" in notice and cache in notice and "NUMBA_CACHE_DIR" in notice

    monkeypatch.setenv("NUMBA_DISABLE_JIT", "1")
    assert progress.kernels_to_compile("score") == []


def test_reading_an_index_runs_nothing(tmp_path, monkeypatch):
    """Index files are read without importing numba and without running what they name."""
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("NUMBA_DISABLE_JIT", raising=False)

    class Boom:
        def __reduce__(self):
            return (os.system, ("touch " + str(tmp_path / "ran"),))

    _fake_index(
        progress.kernel_cache_dir(),
        "strings",
        numba_version=version("numba"),
        payload=pickle.dumps((b"x" * 32, {Boom(): "x.1.nbc"})),
    )
    assert "strings" in progress.kernels_to_compile("report")
    assert not (tmp_path / "ran").exists()


def test_compile_decision_default_cache_folder(tmp_path, monkeypatch):
    monkeypatch.delenv("NUMBA_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert progress.kernel_cache_dir().startswith(str(tmp_path / "rxrisk" / "numba" / "kernels_"))


def test_notice_shows_only_with_progress(monkeypatch, capsys):
    monkeypatch.setattr(progress, "compile_notice", lambda command: "compiling kernels (test)")
    assert progress.with_notice(None, "score") is None  # no progress shown: no notice
    shown = progress.with_notice(progress.Progress(), "score")
    shown("read")
    shown("validate")
    shown.tick("pharmacy rows read", 5)
    err = capsys.readouterr().err.splitlines()
    assert (
        err[0].startswith("rxrisk: read done at") and err[1] == "rxrisk: compiling kernels (test)"
    )
    assert len([line for line in err if "compiling" in line]) == 1
    monkeypatch.setattr(progress, "compile_notice", lambda command: None)
    plain = progress.Progress()
    assert progress.with_notice(plain, "score") is plain


def test_no_notice_when_the_kernels_run_as_python(monkeypatch, capsys):
    """A small book's run picks the python tier when its read ends: nothing compiles, so the
    notice (due when the first stage ends) is not printed."""
    import contextvars

    from rxrisk.kernels._jit import use_python_tier

    monkeypatch.setattr(progress, "compile_notice", lambda command: "compiling kernels (test)")

    def run(python: bool) -> list[str]:
        shown = progress.with_notice(progress.Progress(), "score")
        use_python_tier(python)  # what the run does when its read ends
        shown("read")
        shown("validate")
        return capsys.readouterr().err.splitlines()

    assert not any("compiling" in line for line in contextvars.copy_context().run(run, True))
    assert "rxrisk: compiling kernels (test)" in contextvars.copy_context().run(run, False)


def _pty_run(argv, env):
    """Run the CLI with stderr on a terminal; return (exit code, stderr text)."""
    import pty

    master, slave = pty.openpty()
    try:
        done = subprocess.run(
            [sys.executable, "-m", "rxrisk", *argv],
            stdout=subprocess.DEVNULL,
            stderr=slave,
            env=env,
            timeout=900,
        )
        os.close(slave)
        chunks = []
        while True:
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: no more output
                break
            if not data:
                break
            chunks.append(data)
    finally:
        os.close(master)
    return done.returncode, b"".join(chunks).decode(errors="replace")


def _cached_modules() -> set[str]:
    """The kernel modules numba has written index files for in the cache of NUMBA_CACHE_DIR."""
    folder = progress.kernel_cache_dir()
    return {name.split(".")[0] for name in os.listdir(folder) if name.endswith(".nbi")}


@pytest.mark.slow
@pytest.mark.skipif(
    os.environ.get("NUMBA_DISABLE_JIT", "0") not in ("", "0"), reason="nothing compiles"
)
def test_first_run_notice_end_to_end(tmp_path, monkeypatch):
    """A fresh cache: the first ``report`` says it is compiling, numba then caches exactly the
    kernel modules the notice counts for ``report``, and the second run says nothing; then the
    same for ``measures`` in that cache (its own kernels compile, the shared ones are cached)."""
    from rxrisk.synthetic import generate_book

    book = tmp_path / "book"
    generate_book(book, members=50, seed=1)
    scored = tmp_path / "members.parquet"
    inputs = [str(book / "pharmacy.parquet"), "--medical", str(book / "medical.parquet")]
    assert main(["score", *inputs, "--as-of", AS_OF, "--out", str(scored), "--quiet"]) == 0
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path / "fresh-cache"))  # for the children
    env = dict(os.environ)
    report = ["report", str(scored), "--pharmacy", *inputs, "--out"]
    measures = ["measures", *inputs, "--eligibility", str(book / "eligibility.parquet")]
    measures += ["--members", str(book / "members.parquet"), "--year", "2025", "--out"]
    expected = set()
    for command, argv, suffix in (("report", report, ""), ("measures", measures, ".parquet")):
        rc, err = _pty_run([*argv, str(tmp_path / f"{command}-1{suffix}")], env)
        assert rc == 0, err
        assert "rxrisk: compiling kernels (first run only, about " in err, err
        expected |= set(progress.COMMAND_KERNELS[command])
        assert _cached_modules() == expected, command  # what the notice counts, no more
        assert progress.kernels_to_compile(command) == []
        rc, err = _pty_run([*argv, str(tmp_path / f"{command}-2{suffix}")], env)
        assert rc == 0 and "done at" in err and "compiling" not in err, err
