"""Start-up benchmark: ``rxrisk score``, ``rxrisk edits`` and ``rxrisk measures`` as commands,
each run in a child process, with its wall time and CPU time (user + system of the child, from
``wait4``) and the 1-minute load average when it started.

    python bench/bench_start.py                                  # read ratio on a 100K book
    python bench/bench_start.py --book /tmp/book1m --repeat 5 --json start.json
    python bench/bench_start.py --skip-read --read-only-runs 0    # start-up figures only

Reports, all from this one run on this machine, for each kernel tier of ``--tiers`` (``auto``,
the default, runs a book under 10,000 claim rows as plain Python, so the start book compiles
and loads nothing; ``compiled`` holds every run to the numba kernels):
- cold start: ``score``, ``edits`` and ``measures`` (year 2025) on a generated 200-member book
  (``--start-members``, seed 1), each with an empty numba cache folder (a fresh ``NUMBA_CACHE_DIR``), and the numba
  compile seconds when the command's audit reports them ("over warm" is the cold wall time
  less the warm median: the price of the first run);
- read-only install: the same with no writable cache folder anywhere (``NUMBA_CACHE_DIR``
  unset, ``HOME`` missing, ``XDG_CACHE_HOME`` under /proc, as the wheel smoke test of .ci/run
  does), run twice: numba then compiles in memory on every run;
- warm start: the same commands again with their cache filled, median of ``--repeat`` runs;
- ``rxrisk --help``, median of ``--repeat`` runs;
- end to end / read: ``rxrisk score`` as a command (warm cache) on ``--book`` against a pyarrow
  read of the columns the engine reads of both inputs, in this process, in ``--repeat``
  interleaved rounds: the median of the per-round ratios (also for the audit's stage seconds,
  which leave out the start-up).

``--book`` holds ``pharmacy`` and ``medical`` (files or folders of Parquet parts); by default a
generated 100,000-member book under the temp folder (the same naming as bench/run_bench.py).
``--crossover 200,500,1000,2000`` adds warm ``score`` on generated books of those member
counts in both tiers (interleaved): where the python tier stops being the faster one.
Prints a table; ``--json FILE`` also writes the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyarrow.parquet as pq
from _common import MEDICAL_COLUMNS, PHARMACY_COLUMNS, ensure_book

COMMANDS = ("score", "edits", "measures")
TIERS = ("python", "compiled")


def rxrisk_command() -> list[str]:
    """How to run ``rxrisk``: the console script next to this Python, else ``-m rxrisk.cli``."""
    script = Path(os.path.normpath(os.path.abspath(sys.executable))).with_name("rxrisk")
    return [str(script)] if script.exists() else [sys.executable, "-m", "rxrisk.cli"]


def _input(book: Path, name: str) -> Path:
    for candidate in (book / f"{name}.parquet", book / name):
        if candidate.exists():
            return candidate
    raise SystemExit(f"{book}: no {name}.parquet or {name}")


def compile_seconds(audit: dict) -> float | None:
    """The numba compile seconds an audit reports (keys naming "compile" at its top level or in
    its ``seconds``), or None when it reports none."""
    found = [
        value
        for part in (audit, audit.get("seconds") or {})
        for key, value in part.items()
        if "compile" in key and isinstance(value, int | float)
    ]
    return round(sum(found), 3) if found else None


def run_cli(args: list[str], env: dict[str, str], audit: Path | None = None) -> dict:
    """Run ``rxrisk ARGS`` in a child process with ``env``.

    Returns
    -------
    dict
        ``wall_s``, ``cpu_s`` (user + system), ``peak_rss_mib`` of the child; with ``audit``
        (the file its ``--audit`` wrote) also ``stages_s`` and ``compile_s``.
    """
    load = os.getloadavg()[0]
    with tempfile.TemporaryFile() as err:
        t = time.perf_counter()
        proc = subprocess.Popen(
            [*rxrisk_command(), *args], env=env, stdout=subprocess.DEVNULL, stderr=err
        )
        _, status, usage = os.wait4(proc.pid, 0)  # this child's own rusage
        wall = time.perf_counter() - t
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            err.seek(0)
            raise SystemExit(f"rxrisk {' '.join(args)} failed:\n{err.read().decode()}")
    figures = {
        "wall_s": round(wall, 3),
        "cpu_s": round(usage.ru_utime + usage.ru_stime, 3),
        "peak_rss_mib": round(usage.ru_maxrss / 1024, 1),
        "load_1min": round(load, 2),
    }
    if audit is not None:
        report = json.loads(audit.read_text())
        figures["stages_s"] = report.get("seconds")
        figures["compile_s"] = compile_seconds(report)
    return figures


def command_args(
    command: str, ph: Path, md: Path, out: Path, opts, book: Path | None = None
) -> list[str]:
    """The arguments of ``rxrisk COMMAND`` on these inputs, writing ``out`` and its audit
    (``measures`` also reads ``eligibility`` and ``members`` of ``book``, for the year of
    ``opts.as_of``)."""
    args = [command, str(ph), "--medical", str(md)]
    if command == "score":
        args += ["--as-of", opts.as_of]
    if command == "measures":
        args += ["--eligibility", str(_input(book, "eligibility"))]
        args += ["--members", str(_input(book, "members")), "--year", opts.as_of[:4]]
    args += ["--out", str(out), "--audit", str(out.with_suffix(".json")), "--quiet"]
    if opts.threads:
        args += ["--threads", str(opts.threads)]
    return args


def read_only_env(base: dict[str, str], tmp: Path) -> dict[str, str]:
    """``base`` with no writable numba cache folder anywhere (like .ci/run's wheel smoke test)."""
    env = {k: v for k, v in base.items() if k != "NUMBA_CACHE_DIR"}
    env["HOME"] = str(tmp / "nonexistent-home")
    env["XDG_CACHE_HOME"] = "/proc/rxrisk-no-cache"
    return env


def median_of(runs: list[dict]) -> dict:
    """Median wall and CPU seconds (and load average) of ``runs``, and the runs."""
    return {
        "wall_s": round(statistics.median(r["wall_s"] for r in runs), 3),
        "cpu_s": round(statistics.median(r["cpu_s"] for r in runs), 3),
        "load_1min": round(statistics.median(r["load_1min"] for r in runs), 2),
        "runs": runs,
    }


def base_env(opts, tier: str) -> dict[str, str]:
    """This process's environment with the kernel tier ``tier`` (and .pyc files allowed with
    ``--bytecode``)."""
    base = dict(os.environ, RXRISK_KERNELS=tier)
    if opts.bytecode:  # .pyc files written and read, as in an installed package
        base.pop("PYTHONDONTWRITEBYTECODE", None)
    return base


def start_figures(tmp: Path, opts, tier: str) -> tuple[dict, dict[str, str]]:
    """Cold, read-only and warm start of each command, and ``--help``, on a small book, with
    the kernel tier ``tier``.

    Returns the figures and the environment whose cache the cold ``score`` filled.
    """
    book = tmp / "start-book"
    ensure_book(book, opts.start_members, opts.seed)
    ph, md = _input(book, "pharmacy"), _input(book, "medical")
    tmp = tmp / tier
    tmp.mkdir(exist_ok=True)
    base = base_env(opts, tier)
    envs = {c: dict(base, NUMBA_CACHE_DIR=str(tmp / f"cache-{c}")) for c in COMMANDS}

    def run(command: str, env: dict[str, str]) -> dict:
        out = tmp / f"{command}.parquet"
        args = command_args(command, ph, md, out, opts, book)
        return run_cli(args, env, out.with_suffix(".json"))

    figures: dict = {"tier": tier, "start_book_members": opts.start_members, "cold": {}}
    for command in COMMANDS:  # each into its own empty cache folder
        figures["cold"][command] = run(command, envs[command])
    ro_env = read_only_env(base, tmp)
    ro_runs = {c: [] for c in COMMANDS}
    for _ in range(opts.read_only_runs):
        for command in COMMANDS:
            ro_runs[command].append(run(command, ro_env))
    figures["read_only"] = ro_runs
    warm_runs = {c: [] for c in COMMANDS}
    for _ in range(opts.repeat):  # interleaved
        for command in COMMANDS:
            warm_runs[command].append(run(command, envs[command]))
    figures["warm"] = {c: median_of(warm_runs[c]) for c in COMMANDS}
    figures["help"] = median_of([run_cli(["--help"], envs["score"]) for _ in range(opts.repeat)])
    return figures, envs["score"]


def read_figures(tmp: Path, book: Path, env: dict[str, str], opts) -> dict:
    """``rxrisk score`` as a command on ``book`` against a pyarrow read of the same columns, in
    interleaved rounds (warm cache in ``env``)."""
    ph, md = _input(book, "pharmacy"), _input(book, "medical")

    def read() -> tuple[float, int]:
        t = time.perf_counter()
        rows = pq.read_table(ph, columns=PHARMACY_COLUMNS).num_rows
        rows += pq.read_table(md, columns=MEDICAL_COLUMNS).num_rows
        return time.perf_counter() - t, rows

    _, rows = read()  # page cache
    out = tmp / "book-members.parquet"
    args = command_args("score", ph, md, out, opts)
    reads, commands = [], []
    for _ in range(opts.repeat):
        reads.append(round(read()[0], 3))
        commands.append(run_cli(args, env, out.with_suffix(".json")))
        out.unlink(missing_ok=True)
    stages = [sum((c["stages_s"] or {}).values()) for c in commands]
    return {
        "book": str(book),
        "input_rows": rows,
        "pyarrow_read_s": round(statistics.median(reads), 3),
        "score_command": median_of(commands),
        "command_over_read": round(
            statistics.median(c["wall_s"] / r for c, r in zip(commands, reads, strict=True)), 2
        ),
        "stages_over_read": round(
            statistics.median(s / r for s, r in zip(stages, reads, strict=True)), 2
        ),
        "reads_s": reads,
    }


def crossover_figures(tmp: Path, opts) -> list[dict]:
    """Warm ``rxrisk score`` on generated books of ``opts.crossover`` members in both tiers,
    ``opts.repeat`` interleaved rounds each (one run per tier first fills the cache)."""
    rows = []
    for members in opts.crossover:
        book = tmp / f"crossover-{members}"
        ensure_book(book, members, opts.seed)
        ph, md = _input(book, "pharmacy"), _input(book, "medical")
        out = tmp / f"crossover-{members}.parquet"
        args = command_args("score", ph, md, out, opts)
        envs = {
            t: dict(base_env(opts, t), NUMBA_CACHE_DIR=str(tmp / "cache-crossover")) for t in TIERS
        }
        runs: dict = {t: [] for t in TIERS}
        for t in TIERS:
            run_cli(args, envs[t])
        for r in range(opts.repeat):
            for t in TIERS if r % 2 == 0 else TIERS[::-1]:
                runs[t].append(run_cli(args, envs[t]))
        claim_rows = pq.read_metadata(ph).num_rows + pq.read_metadata(md).num_rows
        rows.append(
            {"members": members, "claim_rows": claim_rows} | {t: median_of(runs[t]) for t in TIERS}
        )
    return rows


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def table(figures: dict) -> str:
    """The figures as a text table."""
    lines = []
    for start in figures["start"]:
        lines += start_table(start)
    if figures.get("crossover"):
        lines += ["", "warm score by book size (median wall s; python tier / compiled tier):"]
        for row in figures["crossover"]:
            py, co = row["python"]["wall_s"], row["compiled"]["wall_s"]
            lines.append(
                f"  {row['members']:>7,} members {row['claim_rows']:>9,} claim rows   "
                f"python {py:6.2f}   compiled {co:6.2f}   ({py / co:4.2f}x)"
            )
    book = figures.get("read")
    if book is not None:
        lines += read_table(book)
    return "\n".join(lines)


def start_table(figures: dict) -> list[str]:
    """The start-up figures of one tier as table lines."""
    lines = [
        f"{'rxrisk start-up, kernels ' + figures['tier']:47} {'wall s':>8} {'CPU s':>8} "
        f"{'compile s':>10} {'over warm s':>12} {'load':>6}"
    ]

    def row(label: str, fig: dict, warm: dict | None = None) -> None:
        over = None if warm is None else fig["wall_s"] - warm["wall_s"]
        lines.append(
            f"{label:47} {fig['wall_s']:8.2f} {fig['cpu_s']:8.2f} "
            f"{_seconds(fig.get('compile_s')):>10} {_seconds(over):>12} {fig['load_1min']:6.2f}"
        )

    members = figures["start_book_members"]
    for command in COMMANDS:
        warm = figures["warm"][command]
        row(f"{command}, cold (empty cache, {members} members)", figures["cold"][command], warm)
        for i, fig in enumerate(figures["read_only"][command], 1):
            row(f"{command}, read-only install, run {i}", fig, warm)
        row(f"{command}, warm (median of {len(warm['runs'])})", warm)
    row(f"rxrisk --help (median of {len(figures['help']['runs'])})", figures["help"])
    return lines + [""]


def read_table(book: dict) -> list[str]:
    """The end-to-end / read figures as table lines."""
    return [
        "",
        f"book {book['book']} ({book['input_rows']:,} input rows), median of "
        f"{len(book['reads_s'])} interleaved rounds:",
        f"  pyarrow read of the engine's columns   {book['pyarrow_read_s']:8.2f} s",
        f"  rxrisk score as a command (warm cache)  {book['score_command']['wall_s']:8.2f} s "
        f"(CPU {book['score_command']['cpu_s']:.2f} s)",
        f"  command / read                          {book['command_over_read']:8.2f}x",
        f"  audit stages / read (no start-up)       {book['stages_over_read']:8.2f}x",
    ]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--book", type=Path, default=None, help="book for the read ratio")
    p.add_argument("--members", type=int, default=100_000, help="members of the default book")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--start-members", type=int, default=200, help="members of the start book")
    p.add_argument("--as-of", default="2025-12-31")
    p.add_argument("--repeat", type=int, default=5, help="warm runs and read rounds")
    p.add_argument("--read-only-runs", type=int, default=2)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--json", type=Path, default=None, help="also write the figures here")
    p.add_argument(
        "--tiers",
        default="auto,compiled",
        help="kernel tiers (RXRISK_KERNELS) of the start-up figures, comma-separated",
    )
    p.add_argument(
        "--crossover",
        default="",
        help="member counts of books to time warm score on in both tiers, e.g. 200,500,1000",
    )
    p.add_argument(
        "--skip-read", action="store_true", help="leave out end to end / read (no large book)"
    )
    p.add_argument(
        "--bytecode",
        action="store_true",
        help="let the commands write and read .pyc files (drop PYTHONDONTWRITEBYTECODE), as an "
        "installed package does; otherwise they compile every source they import on every run",
    )
    args = p.parse_args(argv)
    args.repeat = max(1, args.repeat)
    args.crossover = [int(m) for m in args.crossover.split(",") if m.strip()]
    tiers = [t.strip() for t in args.tiers.split(",") if t.strip()]
    book = args.book
    if book is None and not args.skip_read:
        book = Path(tempfile.gettempdir()) / f"rxrisk-book-{args.members}-{args.seed}"
        ensure_book(book, args.members, args.seed)

    figures = {
        "command": " ".join(rxrisk_command()),
        "bytecode": args.bytecode or not os.environ.get("PYTHONDONTWRITEBYTECODE"),
        "cores": os.cpu_count(),
        "threads": args.threads,
        "load_average_before": [round(x, 2) for x in os.getloadavg()],
    }
    with tempfile.TemporaryDirectory(prefix="rxrisk-bench-start-") as tmp:
        figures["start"], env = [], None
        for tier in tiers:  # the read runs with the last tier's environment (its cache filled)
            start, env = start_figures(Path(tmp), args, tier)
            figures["start"].append(start)
        if args.crossover:
            figures["crossover"] = crossover_figures(Path(tmp), args)
        if not args.skip_read:
            figures["read"] = read_figures(Path(tmp), book, env, args)
    figures["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    print(table(figures))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
