"""The ``rxrisk`` commands but ``score``, ``edits``, ``measures`` and ``report``:
``generate``, ``show`` and ``config``, one function each (arguments in, exit code out), and
the output checks and flag counts the claims commands share. The library does the work; it
loads when a command runs."""

from __future__ import annotations

import os
import sys

from rxrisk.cli.progress import progress_printer
from rxrisk.config.resources import data_path
from rxrisk.days import date_of
from rxrisk.errors import InputError

#: Input options of the claims commands, as the user names them in messages.
INPUT_OPTIONS = (
    ("pharmacy", "PHARMACY"),
    ("medical", "--medical"),
    ("reference", "--reference"),
    ("rules", "--rules"),
    ("codesets", "--codesets"),
    ("edits", "--edits"),
)

#: The packaged default files ``rxrisk config show NAME`` prints: NAME -> (folder, file).
CONFIG_FILES = {
    "rules": ("rules", "default.toml"),
    "codesets": ("codesets", "default.toml"),
    "edits": ("rules", "edits.toml"),
    "measures": ("measures", "default.toml"),
}


def check_paths(args, outputs) -> list:
    """Check the output files before anything is read (none is an input or another output,
    each can be written), then remove temporary outputs that killed runs left in their
    folders. Returns the output paths (None where not given)."""
    from rxrisk.io.outputs import prepare_outputs  # lazy: pulls pyarrow.compute

    inputs = [(label, getattr(args, name, None)) for name, label in INPUT_OPTIONS]
    return prepare_outputs(inputs, outputs)


def flag_counts(table) -> dict:
    """Flag column name -> rows where it is true, for every boolean column but the ``*_dx``
    ones, in table order."""
    import pyarrow as pa  # lazy: --help stays fast
    import pyarrow.compute as pc  # lazy: --help stays fast

    out = {}
    for f in table.schema:
        if pa.types.is_boolean(f.type) and not f.name.endswith("_dx"):
            out[f.name] = int(pc.sum(table.column(f.name)).as_py() or 0)
    return out


# ----------------------------------------------------------------------- generate


def cmd_generate(args) -> int:
    """``rxrisk generate``: write a seeded synthetic book.

    Parameters
    ----------
    args : argparse.Namespace
        The parsed ``rxrisk generate`` arguments.

    Returns
    -------
    int
        The exit code, 0 (an input error raises :class:`~rxrisk.errors.InputError`).
    """
    from rxrisk.synthetic import generate_book  # lazy: pulls pyarrow.compute

    if args.members < 1:
        raise InputError(f"--members {args.members}: give at least 1")
    if args.part_members is not None and args.part_members < 1:
        raise InputError(f"--part-members {args.part_members}: give at least 1")
    _prepare_book_folder(args)
    show = progress_printer(not args.quiet and sys.stderr.isatty())
    summary = generate_book(
        args.out,
        members=args.members,
        seed=args.seed,
        progress=show,
        part_members=args.part_members,
    )
    if not args.quiet:
        parts = f" in {summary['parts']:,} parts" if summary["parts"] is not None else ""
        print(
            f"rxrisk: wrote {summary['pharmacy_rows']:,} pharmacy and {summary['medical_rows']:,} medical rows "
            f"for {args.members:,} members to {args.out}{parts} in {summary['seconds']:.1f}s"
        )
    return 0


def _prepare_book_folder(args) -> None:
    """Check the --out folder of ``generate`` (nothing in the way of the book's files, empty
    unless --force), remove what killed runs left there, and create it."""
    from rxrisk.io.outputs import (  # lazy: pulls pyarrow.compute
        check_target,
        sweep_leftovers,
    )

    check_target(args.out, "--out", folder=True, parents=True)
    names = ("pharmacy", "medical", "eligibility", "members")
    if not args.part_members:
        names = tuple(f"{name}.parquet" for name in names)
    for name in names:  # a file where a folder goes, or the other way round
        path = os.path.join(args.out, name)
        if os.path.exists(path) and os.path.isdir(path) != (args.part_members is not None):
            kind = "file" if args.part_members is None else "folder"
            raise InputError(
                f"--out {args.out}: {path} is in the way; the book writes a {kind} there"
            )
    sweep_leftovers(os.path.join(args.out, names[0]))
    if not args.force and os.path.isdir(args.out) and os.listdir(args.out):
        raise InputError(
            f"--out {args.out}: folder is not empty; give a new or empty folder, or add --force "
            "to write the book into it (its pharmacy, medical, eligibility and members files are "
            "replaced)"
        )
    os.makedirs(args.out, exist_ok=True)


# ----------------------------------------------------------------------- show

#: Count columns of a member table that come back as float64 from CSV.
_COUNT_COLUMNS = (
    "opioid_prescribers_180d",
    "opioid_pharmacies_180d",
    "benzo_overlap_days_365d",
    "days_since_emergency",
)
#: The columns ``show`` lists, where the table has them.
_SHOWN_COLUMNS = (
    "member_id",
    "as_of",
    "mme_avg_180d",
    *_COUNT_COLUMNS,
    "reasons",
)


def cmd_show(args) -> int:
    """``rxrisk show``: summarise a member table and list its rows with one flag.

    Parameters
    ----------
    args : argparse.Namespace
        The parsed ``rxrisk show`` arguments.

    Returns
    -------
    int
        The exit code, 0 (an input error raises :class:`~rxrisk.errors.InputError`).
    """
    import pyarrow as pa  # lazy: --help stays fast
    import pyarrow.compute as pc  # lazy: --help stays fast

    if args.limit < 0:
        raise InputError(f"--limit {args.limit}: give 0 or more rows")
    day = _one_as_of(args.as_of)
    table = _read_member_table(args.members)
    as_of = table.column("as_of").cast(pa.int32())
    have = sorted(pc.unique(pc.drop_null(as_of)).to_pylist())
    if day is not None:
        if day not in have:
            listed = ", ".join(_date(d) for d in have[-5:]) or "none"
            raise InputError(
                f"--as-of {_date(day)}: {args.members} has no rows for it (as-of dates: {listed})"
            )
        table = table.filter(pc.fill_null(pc.equal(as_of, day), False))
        have = [day]
    counts = flag_counts(table)
    _print_counts(table, have, counts)
    flag = args.flag
    if flag not in table.column_names or not pa.types.is_boolean(table.schema.field(flag).type):
        raise InputError(f"--flag {flag}: no such flag column; use one of {', '.join(counts)}")
    _print_flagged(table, flag, args.limit)
    return 0


def _date(day: int) -> str:
    """Day number -> YYYY-MM-DD."""
    return str(date_of(day))


def _one_as_of(text: str | None) -> int | None:
    """The day number of ``show --as-of`` (None when not given); one date only."""
    if text is None:
        return None
    from rxrisk.config.settings import parse_as_of  # lazy: pyarrow; --help stays fast

    days = parse_as_of(text)
    if len(days) != 1:
        raise InputError(f"--as-of {text}: give one date, YYYY-MM-DD")
    return int(days[0])


def _read_member_table(path):
    """The member table at ``path`` with the member-table types (CSV text and float counts
    converted back), or an InputError when it is not one."""
    import pyarrow as pa  # lazy: --help stays fast

    from rxrisk.ingest.sources import read_source  # lazy: pulls pyarrow.compute
    from rxrisk.reports.members import load_members  # lazy: pulls pyarrow.compute

    table = read_source(path, label="members").table
    missing = [c for c in ("member_id", "as_of", "reasons") if c not in table.column_names]
    if missing:
        raise InputError(
            f"{path}: not a member table (missing column{'s' if len(missing) > 1 else ''} "
            f"{', '.join(repr(c) for c in missing)}); give a member table written by 'rxrisk "
            "score' (.parquet, .csv or .arrow)"
        )
    table = load_members(table)  # CSV text back to the member-table types
    for name in _COUNT_COLUMNS:  # counts of a CSV table come back as float64
        if name in table.column_names and pa.types.is_floating(table.schema.field(name).type):
            i = table.column_names.index(name)
            table = table.set_column(i, name, table.column(name).cast(pa.int64()))
    return table


def _print_counts(table, have: list[int], counts: dict) -> None:
    """The first line of ``show``: rows, members, as-of dates and flagged-row counts."""
    import pyarrow.compute as pc  # lazy: --help stays fast

    members = pc.count_distinct(table.column("member_id")).as_py() if table.num_rows else 0
    if len(have) == 1:
        dates = f"as of {_date(have[0])}"
    elif have:
        dates = f"{len(have)} as-of dates, {_date(have[0])} to {_date(have[-1])}"
    else:
        dates = "no as-of dates"
    print(
        f"{table.num_rows:,} rows ({members:,} members, {dates}); flagged rows: "
        + ", ".join(f"{k}={v:,}" for k, v in counts.items())
    )


def _print_flagged(table, flag: str, limit: int) -> None:
    """The rows with ``flag``, highest average MME first: the first ``limit`` of them."""
    import pyarrow.compute as pc  # lazy: --help stays fast

    hits = table.filter(pc.fill_null(table.column(flag), False))
    if "mme_avg_180d" in hits.column_names:
        hits = hits.sort_by(
            [("mme_avg_180d", "descending"), ("member_id", "ascending"), ("as_of", "ascending")]
        )
    cols = [c for c in _SHOWN_COLUMNS if c in hits.column_names]
    shown = hits.select(cols).slice(0, limit)
    print(f"\nfirst {shown.num_rows} of {hits.num_rows:,} rows with {flag}:")
    widths = [max(len(c), 12) for c in cols]
    print("  ".join(c.ljust(w) for c, w in zip(cols, widths, strict=True)))
    for row in shown.to_pylist():
        cells = []
        for c, w in zip(cols, widths, strict=True):
            v = row[c]
            if isinstance(v, float):
                v = f"{v:.1f}"
            elif isinstance(v, list):
                v = ",".join(v)
            cells.append(str("" if v is None else v).ljust(w))
        print("  ".join(cells))


# ----------------------------------------------------------------------- config


def cmd_config(args) -> int:
    """``rxrisk config show NAME``: print a packaged default file.

    Parameters
    ----------
    args : argparse.Namespace
        The parsed ``rxrisk config show`` arguments.

    Returns
    -------
    int
        The exit code, 0 (an input error raises :class:`~rxrisk.errors.InputError`).
    """
    sys.stdout.write(data_path(*CONFIG_FILES[args.name]).read_text(encoding="utf-8"))
    sys.stdout.flush()
    return 0
