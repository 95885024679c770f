"""Two installs of rxrisk compared run by run: warm start, and end to end against the read.

Timings on a shared machine drift by a third within minutes, so a before/after pair is only
fair when both run in one sitting, alternately. This script takes two ``rxrisk`` commands (the
console scripts of two installs, e.g. two wheel venvs), warms each one's numba cache (a folder
of its own), then:

- warm start: ``rxrisk score``, ``edits`` and ``measures`` on a generated 200-member book,
  ``--rounds`` rounds, each round running every command of both installs (the order of the
  installs alternates from round to round);
- with ``--book``: per round a pyarrow read of the engine's columns of both inputs, then
  ``rxrisk score`` of each install (order alternating), and the per-round ratio of each command
  to that round's read; the audits of the two installs' last runs are compared without
  ``seconds``;
- with ``--book --floor``: per round also the command's floor (``scan_floor.py`` run with the
  Python of the ``--after`` install: a process that reads both inputs as the command's engine
  reads them and does nothing else), its ratio to the read, and each command's ratio to it
  (what the engine's own work adds to its read);
- with ``--book --select-floor``: per round also the floor with selection (``scan_floor.py
  --select``: the floor plus finding and keeping the tracked rows with the engine's code, what
  comes before any check, claim-id match, score or write), its ratio to the read, and each
  command's ratio to it;
- with ``--book --read-command``: per round also the same pyarrow read as a command (a fresh
  process of the ``--after`` install's Python that reads the same columns of both inputs whole
  and exits), and each command's ratio to it. The read above runs in this process, again and
  again: from the second round on its 2 GB of tables land in memory the process already
  holds, where a fresh process first has the kernel clear every page it gets.

It prints medians (wall and CPU seconds: user + system of the child, from ``wait4``, and the
system part alone; the read's own system seconds too). On the 2-core machine this was written
on, system time (mostly the kernel clearing fresh pages) swung from 0.5 to 4.4 s between runs
of the same command, and the read's with it: compare ratios measured in one sitting only::

    python bench/bench_pair.py --before venv-old/bin/rxrisk --after venv-new/bin/rxrisk
    python bench/bench_pair.py --before A --after B --book /tmp/book1m --rounds 6 --json pair.json
    python bench/bench_pair.py --before A --after B --book /tmp/book1m --floor --read-command
    python bench/bench_pair.py --before A --after A --book /tmp/book1m --select-floor
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import tempfile
import time
from pathlib import Path

import pyarrow.parquet as pq
from _common import MEDICAL_COLUMNS, PHARMACY_COLUMNS, ensure_book
from bench_start import COMMANDS, _input, command_args

INSTALLS = ("before", "after")
#: the command's floor (see ``--floor``)
FLOOR_SCRIPT = Path(__file__).with_name("scan_floor.py")
#: the read as a command (see ``--read-command``): argv is pharmacy, medical and their columns
READ_COMMAND = (
    "import sys; import pyarrow.parquet as pq; "
    "pq.read_table(sys.argv[1], columns=sys.argv[3].split(',')); "
    "pq.read_table(sys.argv[2], columns=sys.argv[4].split(','))"
)


def _run(
    exe: str, args: list[str], env: dict[str, str], quiet: bool = False
) -> tuple[float, float, float]:
    """Wall, CPU (user + system) and system seconds of ``exe ARGS`` in a child process (which
    must succeed; ``quiet``: its standard output discarded)."""
    actions = [(os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0)] if quiet else []
    t = time.perf_counter()
    pid = os.posix_spawn(exe, [exe, *args], env, file_actions=actions)
    _, status, usage = os.wait4(pid, 0)
    wall = time.perf_counter() - t
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{exe} {' '.join(args)} failed ({os.waitstatus_to_exitcode(status)})")
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_stime


def _medians(runs: list[tuple[float, float, float]]) -> dict:
    return {
        "wall_s": round(statistics.median(r[0] for r in runs), 3),
        "cpu_s": round(statistics.median(r[1] for r in runs), 3),
        "sys_s": round(statistics.median(r[2] for r in runs), 3),
        "wall_min_s": round(min(r[0] for r in runs), 3),
    }


def _order(r: int) -> tuple[str, ...]:
    return INSTALLS if r % 2 == 0 else INSTALLS[::-1]


def warm_start(exes: dict, envs: dict, tmp: Path, opts) -> dict:
    """Warm start of every command of both installs, interleaved."""
    book = tmp / "start-book"
    ensure_book(book, 200, opts.seed)
    ph, md = _input(book, "pharmacy"), _input(book, "medical")
    args = {c: command_args(c, ph, md, tmp / f"{c}.parquet", opts, book) for c in COMMANDS}
    for k in INSTALLS:  # fill (or load) each install's cache once
        for c in COMMANDS:
            _run(exes[k], args[c], envs[k])
    runs = {k: {c: [] for c in COMMANDS} for k in INSTALLS}
    for r in range(opts.rounds):
        for c in COMMANDS:
            for k in _order(r):
                runs[k][c].append(_run(exes[k], args[c], envs[k]))
    return {k: {c: _medians(runs[k][c]) for c in COMMANDS} for k in INSTALLS}


def end_to_end(exes: dict, envs: dict, tmp: Path, opts) -> dict:
    """``rxrisk score`` of both installs on ``opts.book`` against a pyarrow read, per round."""
    ph, md = _input(opts.book, "pharmacy"), _input(opts.book, "medical")

    def read() -> tuple[float, float]:
        """Wall and system seconds of the read (in this process)."""
        t, sys0 = time.perf_counter(), resource.getrusage(resource.RUSAGE_SELF).ru_stime
        pq.read_table(ph, columns=PHARMACY_COLUMNS)
        pq.read_table(md, columns=MEDICAL_COLUMNS)
        return time.perf_counter() - t, resource.getrusage(resource.RUSAGE_SELF).ru_stime - sys0

    args = {k: command_args("score", ph, md, tmp / f"book-{k}.parquet", opts) for k in INSTALLS}
    for k in INSTALLS:
        _run(exes[k], args[k], envs[k])
    floor_run = select_run = read_run = None
    python = Path(exes["after"]).parent / "python"  # the --after install's, beside its command
    if (opts.floor or opts.select_floor or opts.read_command) and not python.exists():
        raise SystemExit(
            f"--floor / --select-floor / --read-command: no {python} beside the --after command"
        )
    if opts.floor:
        floor_run = (str(python), [str(FLOOR_SCRIPT), str(ph), str(md)], envs["after"], True)
        _run(*floor_run)
    if opts.select_floor:
        select_args = [str(FLOOR_SCRIPT), str(ph), str(md), "--select"]
        select_run = (str(python), select_args, envs["after"], True)
        _run(*select_run)
    if opts.read_command:
        columns = [",".join(PHARMACY_COLUMNS), ",".join(MEDICAL_COLUMNS)]
        read_run = (str(python), ["-c", READ_COMMAND, str(ph), str(md), *columns], envs["after"])
        _run(*read_run)
    read()  # page cache
    reads, read_sys, floors, selects, read_cmds = [], [], [], [], []
    runs: dict = {k: [] for k in INSTALLS}
    for r in range(opts.rounds):
        wall, sys_s = read()
        reads.append(wall)
        read_sys.append(sys_s)
        if read_run is not None:
            read_cmds.append(_run(*read_run))
        if floor_run is not None:
            floors.append(_run(*floor_run))
        if select_run is not None:
            selects.append(_run(*select_run))
        for k in _order(r):
            runs[k].append(_run(exes[k], args[k], envs[k]))
        extra = f"read as a command {read_cmds[-1][0]:.2f} s, " if read_cmds else ""
        extra += f"floor {floors[-1][0]:.2f} s, " if floors else ""
        extra += f"floor with selection {selects[-1][0]:.2f} s, " if selects else ""
        print(
            f"round {r + 1}: read {wall:.2f} s (system {sys_s:.2f}), {extra}"
            + ", ".join(
                f"{k} {runs[k][-1][0]:.2f} s (system {runs[k][-1][2]:.2f})" for k in INSTALLS
            ),
            flush=True,
        )
    audits = []
    for k in INSTALLS:
        audit = json.loads((tmp / f"book-{k}.json").read_text())
        audit.pop("seconds", None)
        audits.append(audit)
    out = {
        "read_s": round(statistics.median(reads), 3),
        "read_sys_s": round(statistics.median(read_sys), 3),
        "audits_equal": audits[0] == audits[1],
    }
    reads_as_runs = [(rd,) for rd in reads]
    if floors:
        out["floor"] = {**_medians(floors), "over_read": _over(floors, reads_as_runs)}
    if selects:
        out["select_floor"] = {**_medians(selects), "over_read": _over(selects, reads_as_runs)}
    if read_cmds:
        out["read_command"] = {**_medians(read_cmds), "over_read": _over(read_cmds, reads_as_runs)}
    for k in INSTALLS:
        out[k] = {**_medians(runs[k]), "over_read": _over(runs[k], reads_as_runs)}
        if floors:
            out[k]["over_floor"] = _over(runs[k], floors)
        if selects:
            out[k]["over_select_floor"] = _over(runs[k], selects)
        if read_cmds:
            out[k]["over_read_command"] = _over(runs[k], read_cmds)
    return out


def _over(runs: list[tuple], references: list[tuple]) -> float:
    """Median over the rounds of each run's wall time / its round's reference's."""
    return round(statistics.median(a[0] / b[0] for a, b in zip(runs, references, strict=True)), 2)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--before", required=True, help="the rxrisk command of the old install")
    p.add_argument("--after", required=True, help="the rxrisk command of the new install")
    p.add_argument("--book", type=Path, default=None, help="book for end to end / read")
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--as-of", default="2025-12-31")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument(
        "--floor",
        action="store_true",
        help="with --book: also time the command's floor (bench/scan_floor.py) each round",
    )
    p.add_argument(
        "--select-floor",
        action="store_true",
        help="with --book: also time the floor with selection (scan_floor.py --select) each round",
    )
    p.add_argument(
        "--read-command",
        action="store_true",
        help="with --book: also time the read as a command (a fresh process) each round",
    )
    p.add_argument("--json", type=Path, default=None, help="also write the figures here")
    opts = p.parse_args(argv)
    opts.rounds = max(1, opts.rounds)
    exes = {"before": os.path.abspath(opts.before), "after": os.path.abspath(opts.after)}
    figures: dict = {"installs": exes, "load_before": os.getloadavg()[0]}
    with tempfile.TemporaryDirectory(prefix="rxrisk-bench-pair-") as tmp:
        tmp = Path(tmp)
        envs = {k: dict(os.environ, NUMBA_CACHE_DIR=str(tmp / f"cache-{k}")) for k in INSTALLS}
        figures["warm"] = warm_start(exes, envs, tmp, opts)
        for c in COMMANDS:
            print(
                f"warm {c:9}"
                + "".join(
                    f"  {k} {figures['warm'][k][c]['wall_s']:.3f} s"
                    f" (CPU {figures['warm'][k][c]['cpu_s']:.3f},"
                    f" system {figures['warm'][k][c]['sys_s']:.3f})"
                    for k in INSTALLS
                )
            )
        if opts.book is not None:
            e2e = end_to_end(exes, envs, tmp, opts)
            figures["end_to_end"] = e2e
            print(
                f"read {e2e['read_s']:.2f} s (system {e2e['read_sys_s']:.2f}); "
                f"audits equal without seconds: {e2e['audits_equal']}"
            )
            if "read_command" in e2e:
                f = e2e["read_command"]
                print(
                    f"read as a command {f['wall_s']:.2f} s (CPU {f['cpu_s']:.2f}, "
                    f"system {f['sys_s']:.2f}), {f['over_read']:.2f}x the read"
                )
            for key, name in (("floor", "floor"), ("select_floor", "floor with selection")):
                if key in e2e:
                    f = e2e[key]
                    print(
                        f"{name} {f['wall_s']:.2f} s (CPU {f['cpu_s']:.2f}, "
                        f"system {f['sys_s']:.2f}), {f['over_read']:.2f}x the read"
                    )
            for k in INSTALLS:
                f = e2e[k]
                extra = f", {f['over_floor']:.2f}x the floor" if "over_floor" in f else ""
                if "over_select_floor" in f:
                    extra += f", {f['over_select_floor']:.2f}x the floor with selection"
                if "over_read_command" in f:
                    extra += f", {f['over_read_command']:.2f}x the read as a command"
                print(
                    f"score {k:6} {f['wall_s']:.2f} s (CPU {f['cpu_s']:.2f}, "
                    f"system {f['sys_s']:.2f}), "
                    f"{f['over_read']:.2f}x the read{extra}"
                )
    figures["load_after"] = os.getloadavg()[0]
    print(f"load average {figures['load_before']:.2f} -> {figures['load_after']:.2f}")
    if opts.json:
        opts.json.write_text(json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
