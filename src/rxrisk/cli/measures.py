"""The ``rxrisk measures`` command: checks of its options and outputs, the run, the outputs
committed together and the lines it prints. The library loads when it runs."""

from __future__ import annotations

import sys
import time

from rxrisk.cli.progress import command_progress, one_line
from rxrisk.cli.score import stream_options

#: Input options of ``measures``, as the user names them in messages.
MEASURES_INPUTS = (
    ("pharmacy", "PHARMACY"),
    ("medical", "--medical"),
    ("eligibility", "--eligibility"),
    ("members", "--members"),
    ("reference", "--reference"),
    ("rules", "--rules"),
    ("codesets", "--codesets"),
    ("config", "--config"),
)


def cmd_measures(args) -> int:
    """``rxrisk measures``: the standard opioid measures per period and product.

    Parameters
    ----------
    args : argparse.Namespace
        The parsed ``rxrisk measures`` arguments.

    Returns
    -------
    int
        The exit code, 0 (an input error raises :class:`~rxrisk.errors.InputError`).
    """
    from rxrisk.io.outputs import Commit  # lazy: pulls pyarrow.compute
    from rxrisk.quality.run import measures  # lazy: the engines; pyarrow loads with them
    from rxrisk.quality.settings import load_measure_settings  # lazy: --help stays fast

    periods = _periods(args)  # fail fast on a bad year or period, before reading anything
    settings = load_measure_settings(args.config)  # and on a bad measures file
    out, detail_path, audit_path, q_path = _check_outputs(args)
    show = command_progress(args, "measures")
    t0 = time.perf_counter()
    result = measures(
        args.pharmacy,
        args.medical,
        eligibility=args.eligibility,
        members=args.members,
        periods=periods,
        reference=args.reference,
        rules=args.rules,
        codesets=args.codesets,
        config=settings,
        threads=args.threads,
        progress=show,
        date_format=args.date_format,
        max_reject_share=args.max_reject_share,
        quarantine=q_path is not None,
        stream=stream_options(args),
    )
    _print_intake(args, result.audit)
    with Commit() as run:  # every output in place, or none
        run.table(result.summary, out)
        if detail_path is not None:
            run.table(result.detail, detail_path)
        if q_path is not None:
            run.table(result.quarantine, q_path)
        if audit_path is not None:
            run.json(result.audit, audit_path)
        if args.report is not None:
            from rxrisk.quality.report import write_measures_report  # lazy: only with --report

            write_measures_report(
                args.report, result.summary, result.detail, settings=settings, run=run
            )
    if not args.quiet:
        _print_measured(result, out, time.perf_counter() - t0)
    return 0


def _periods(args) -> list:
    """The periods of --year or --period as (start, end) date pairs, checked."""
    from rxrisk.days import date_of  # lazy: --help stays fast
    from rxrisk.quality.settings import parse_periods  # lazy: --help stays fast

    if args.year is not None:
        days = parse_periods(years=args.year)
    else:
        days = parse_periods(periods=args.period)
    return [(date_of(a), date_of(b)) for a, b in days]


def _check_outputs(args) -> list:
    """Check the output files and the report folder before anything is read (none is an
    input or another output; each can be written), then remove temporary outputs that killed
    runs left in their folders. Returns the paths of --out, --detail, --audit and
    --quarantine (None where not given)."""
    from rxrisk.io.outputs import (  # lazy: pulls pyarrow.compute
        check_collisions,
        prepare_outputs,
    )
    from rxrisk.quality.report import check_report_dir, report_page  # lazy: pyarrow.compute

    inputs = [(label, getattr(args, name, None)) for name, label in MEASURES_INPUTS]
    files = [
        ("--out", args.out),
        ("--detail", args.detail),
        ("--audit", args.audit),
        ("--quarantine", args.quarantine),
    ]
    if args.report is not None:
        check_collisions(inputs, [*files, ("--report", report_page(args.report))])
    paths = prepare_outputs(inputs, files)
    if args.report is not None:
        check_report_dir(args.report)
    return paths


def _print_intake(args, audit: dict) -> None:
    """The run summary of the four inputs and the warnings, on stderr unless --quiet."""
    if args.quiet:
        return
    from rxrisk.ingest.intake import summary_lines  # lazy: pulls pyarrow.compute

    names = {
        "pharmacy": str(args.pharmacy),
        "eligibility": str(args.eligibility),
        "members": str(args.members),
    }
    if args.medical:
        names["medical"] = str(args.medical)
    for line in summary_lines(audit, names):
        print(one_line(line), file=sys.stderr, flush=True)


def _print_measured(result, out, seconds: float) -> None:
    """The closing lines: members, periods and time, then the rates of all products."""
    a = result.audit
    n = len(a["periods"])
    print(
        f"rxrisk: measured {a['members_eligible']:,} members eligible for a measure in {n} "
        f"period{'s' if n != 1 else ''} from {a['pharmacy']['rows_read']:,} pharmacy rows in "
        f"{seconds:.1f}s; wrote {out}"
    )
    rows = [r for r in result.summary.to_pylist() if r["product"] == "all"]
    width = max((len(r["measure"]) for r in rows), default=7)
    print(
        f"{'measure'.ljust(width)}  {'period':<23}  {'denominator':>12}  {'numerator':>12}  "
        f"{'rate':>7}"
    )
    for r in rows:
        rate = "-" if r["rate"] is None else f"{100 * r['rate']:.1f}%"
        print(
            f"{r['measure'].ljust(width)}  {r['period_start']} to {r['period_end']}  "
            f"{r['denominator']:>12,}  {r['numerator']:>12,}  {rate:>7}"
        )
