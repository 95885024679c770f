"""Write every output of a release on one book, or compare two such folders byte for byte.

A restructuring must leave every output unchanged. Run this once on the old release and once on
the new one (each in its own checkout or install), then compare::

    python bench/compare_outputs.py write --book BOOK --out OLD      # with the old release
    python bench/compare_outputs.py write --book BOOK --out NEW      # with the new release
    python bench/compare_outputs.py compare OLD NEW

``write`` runs the installed ``rxrisk`` command (``python -m rxrisk``) for: a score in memory
(two as-of dates, medical events, quarantine, audit), the same score streamed over three member
partitions, ``--all-members``, the edit replay, and the report folder of the first score.
``compare`` checks that both folders hold the same files with the same bytes; audits (JSON) are
compared after dropping every ``seconds`` key, the one value that differs between runs. It exits 1
and lists the differing files when anything differs.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

AS_OF = "2025-06-30,2025-12-31"


def _run(*args: str) -> None:
    command = [sys.executable, "-m", "rxrisk", *args, "--quiet"]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} exited {done.returncode}: {done.stderr.strip()}")


def write(book: Path, out: Path) -> None:
    """Run every command of the release on ``book``, writing into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    pharmacy, medical = str(book / "pharmacy.parquet"), str(book / "medical.parquet")
    common = [pharmacy, "--medical", medical, "--as-of", AS_OF]
    _run("score", *common, "--in-memory", "--out", str(out / "members.parquet"),
         "--quarantine", str(out / "quarantine.parquet"), "--audit", str(out / "audit.json"))  # fmt: skip
    _run("score", *common, "--stream", "--partitions", "3", "--out",
         str(out / "members_stream.parquet"), "--audit", str(out / "audit_stream.json"))  # fmt: skip
    _run("score", *common, "--all-members", "--out", str(out / "members_all.csv"))
    _run("edits", pharmacy, "--medical", medical, "--out", str(out / "edits.parquet"),
         "--audit", str(out / "audit_edits.json"))  # fmt: skip
    _run("report", str(out / "members.parquet"), "--pharmacy", pharmacy, "--medical", medical,
         "--out", str(out / "report"))  # fmt: skip


def _without_seconds(value):
    if isinstance(value, dict):
        return {k: _without_seconds(v) for k, v in value.items() if k != "seconds"}
    if isinstance(value, list):
        return [_without_seconds(v) for v in value]
    return value


def compare(left: Path, right: Path) -> list[str]:
    """Names of the files that differ between the two output folders (empty when identical)."""
    names = {p.relative_to(left) for p in left.rglob("*") if p.is_file()}
    others = {p.relative_to(right) for p in right.rglob("*") if p.is_file()}
    differ = sorted(str(n) + " (only on one side)" for n in names ^ others)
    for name in sorted(names & others):
        a, b = (left / name).read_bytes(), (right / name).read_bytes()
        if name.suffix == ".json":
            same = _without_seconds(json.loads(a)) == _without_seconds(json.loads(b))
        else:
            same = a == b
        if not same:
            differ.append(str(name))
    return differ


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    w = sub.add_parser("write", help="run every command on a book")
    w.add_argument("--book", type=Path, required=True, help="folder with pharmacy/medical.parquet")
    w.add_argument("--out", type=Path, required=True, help="folder for the outputs")
    c = sub.add_parser("compare", help="compare two output folders")
    c.add_argument("left", type=Path)
    c.add_argument("right", type=Path)
    args = parser.parse_args(argv)
    if args.command == "write":
        write(args.book, args.out)
        print(f"wrote {sum(1 for p in args.out.rglob('*') if p.is_file())} files to {args.out}")
        return 0
    differ = compare(args.left, args.right)
    total = sum(1 for p in args.left.rglob("*") if p.is_file())
    if differ:
        print(f"{len(differ)} of {total} files differ:", *differ, sep="\n  ")
        return 1
    print(f"identical: {total} files (audits compared without 'seconds')")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
