"""The ``rxrisk report`` command: the report folder written with the claims read in memory or
streaming (the choice and options of ``score``), and the lines it prints. The library loads
when it runs."""

from __future__ import annotations

import time

from rxrisk.cli.progress import command_progress, print_intake
from rxrisk.cli.score import stream_options


def cmd_report(args) -> int:
    """``rxrisk report``: member profiles, prescriber bundles, outreach and lock-in lists.

    Parameters
    ----------
    args : argparse.Namespace
        The parsed ``rxrisk report`` arguments.

    Returns
    -------
    int
        The exit code, 0 (an input error raises :class:`~rxrisk.errors.InputError`).
    """
    from rxrisk.reports.write import write_reports  # lazy: pulls pyarrow.compute

    flags = args.flags if args.flags else (() if args.reasons else ("at_risk",))
    stream = stream_options(args)
    show = command_progress(args, "report")
    t0 = time.perf_counter()
    summary = write_reports(
        args.members,
        args.pharmacy,
        args.medical,
        out_dir=args.out,
        as_of=args.as_of,
        flags=flags,
        reasons=args.reasons,
        reference=args.reference,
        rules=args.rules,
        codesets=args.codesets,
        lookback_days=args.lookback_days,
        list_format=args.list_format,
        progress=show,
        date_format=args.date_format,
        max_reject_share=args.max_reject_share,
        stream=stream,
    )
    print_intake(args, summary)
    if not args.quiet:
        s = summary
        print(
            f"rxrisk: as of {s['as_of']}: {s['member_pages']:,} member profiles, "
            f"{s['prescriber_pages']:,} prescriber bundles, {s['outreach_rows']:,} outreach and "
            f"{s['lock_in_rows']:,} lock-in rows in {time.perf_counter() - t0:.1f}s; "
            f"wrote {s['out_dir']}/index.html"
        )
        for note in s["notes"]:
            print(f"rxrisk: note: {note}")
    return 0
