"""The ``rxrisk edits`` command: the safety-edit replay in memory or streaming (the choice and
options of ``score``), the outputs committed together and the lines it prints. The library
loads when it runs."""

from __future__ import annotations

import time

from rxrisk.cli.commands import check_paths
from rxrisk.cli.progress import command_progress, print_intake
from rxrisk.cli.score import stream_options


def cmd_edits(args) -> int:
    """``rxrisk edits``: replay the point-of-sale safety edits.

    Parameters
    ----------
    args : argparse.Namespace
        The parsed ``rxrisk edits`` arguments.

    Returns
    -------
    int
        The exit code, 0 (an input error raises :class:`~rxrisk.errors.InputError`).
    """
    from rxrisk.edits import (  # lazy: pulls pyarrow.compute and the kernels
        EDIT_NAMES,
        load_edits,
        replay_edits,
    )
    from rxrisk.io.outputs import Commit  # lazy: pulls pyarrow.compute

    out, audit_path = check_paths(args, [("--out", args.out), ("--audit", args.audit)])
    load_edits(args.edits, args.overrides)  # fail fast on a bad edits file or --set, before reading
    stream = stream_options(args)
    show = command_progress(args, "edits")
    t0 = time.perf_counter()
    result = replay_edits(
        args.pharmacy,
        args.medical,
        reference=args.reference,
        rules=args.rules,
        codesets=args.codesets,
        edits=args.edits,
        overrides=args.overrides,
        threads=args.threads,
        progress=show,
        date_format=args.date_format,
        max_reject_share=args.max_reject_share,
        stream=stream,
    )
    print_intake(args, result.audit)
    with Commit() as run:  # every output in place, or none
        run.table(result.claims, out)
        if audit_path is not None:
            run.json(result.audit, audit_path)
    if not args.quiet:
        a = result.audit
        e = a["edits"]
        print(
            f"rxrisk: replayed {e['claims_evaluated']:,} claims of {a['members_scored']:,} members "
            f"from {a['pharmacy']['rows_read']:,} pharmacy rows in {time.perf_counter() - t0:.1f}s; wrote {out}"
        )
        width = max(len(n) for n in EDIT_NAMES)
        print(f"{'edit'.ljust(width)}  {'claims':>12}  {'members':>12}")
        for name in EDIT_NAMES:
            print(f"{name.ljust(width)}  {e['fired'][name]:>12,}  {e['members_hit'][name]:>12,}")
    return 0
