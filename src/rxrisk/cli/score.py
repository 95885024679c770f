"""The ``rxrisk score`` command: checks of its options, the local engine (in memory or
streaming) and the Spark engine, and the lines it prints. The engines load when it runs."""

from __future__ import annotations

import os
import sys
import time

from rxrisk.cli.commands import check_paths, flag_counts
from rxrisk.cli.progress import command_progress, print_intake
from rxrisk.errors import InputError


def cmd_score(args) -> int:
    """``rxrisk score``: score members as of one or more dates.

    Parameters
    ----------
    args : argparse.Namespace
        The parsed ``rxrisk score`` arguments.

    Returns
    -------
    int
        The exit code, 0 (an input error raises :class:`~rxrisk.errors.InputError`).
    """
    from rxrisk.config.settings import parse_as_of  # lazy: pyarrow; --help stays fast

    parse_as_of(args.as_of)  # fail fast on a bad date, before reading anything
    out, audit_path, q_path = check_paths(
        args, [("--out", args.out), ("--audit", args.audit), ("--quarantine", args.quarantine)]
    )
    if args.engine == "spark":
        streaming = (args.batch_rows, args.partitions, args.memory_budget, args.spill_dir)
        if args.mode is not None or any(v is not None for v in streaming):
            raise InputError(
                "--stream, --in-memory, --batch-rows, --partitions, --memory-budget and "
                "--spill-dir are for --engine local; Spark partitions the book itself"
            )
        return _score_spark(args, out, audit_path)
    if args.master is not None:
        raise InputError("--master is for --engine spark; add --engine spark or drop --master")
    return _score_local(args, out, audit_path, q_path)


def _score_local(args, out, audit_path, q_path) -> int:
    """Score in this process, in memory or streaming, and write the outputs."""
    from rxrisk.api import score  # lazy: the engines; pyarrow loads with them
    from rxrisk.io.outputs import Commit  # lazy: pulls pyarrow.compute

    show = command_progress(args, "score")
    t0 = time.perf_counter()
    stream = stream_options(args)
    result = score(
        args.pharmacy,
        args.medical,
        as_of=args.as_of,
        reference=args.reference,
        rules=args.rules,
        codesets=args.codesets,
        all_members=args.all_members,
        quarantine=q_path is not None,
        threads=args.threads,
        progress=show,
        stream=stream,
        date_format=args.date_format,
        max_reject_share=args.max_reject_share,
    )
    print_intake(args, result.audit)
    with Commit() as run:  # every output in place, or none
        run.table(result.members, out)
        if q_path is not None:
            run.table(result.quarantine, q_path)
        if audit_path is not None:
            run.json(result.audit, audit_path)
    if not args.quiet:
        _print_scored(result.audit, result.members, out, t0, "")
    return 0


def _print_scored(audit: dict, members, out, t0: float, where: str) -> None:
    """The closing lines of ``score``: members, rows and time, then the flagged-row counts."""
    ph = audit["pharmacy"]
    flagged = flag_counts(members)
    print(
        f"rxrisk: scored {audit['members_scored']:,} members ({members.num_rows:,} rows) "
        f"from {ph['rows_read']:,} pharmacy rows{where} in {time.perf_counter() - t0:.1f}s; wrote {out}"
    )
    if flagged:
        print("rxrisk: flagged rows: " + ", ".join(f"{k}={v:,}" for k, v in flagged.items()))


def parse_size(text: str) -> int:
    """'512M', '2G', '1.5GiB', '1000000' -> bytes (1024-based units)."""
    t = text.strip().upper().removesuffix("IB").removesuffix("B")
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
    mult = units.get(t[-1:], 1) if t else 1
    num = t[:-1] if t[-1:] in units else t
    try:
        value = float(num)
    except ValueError:
        value = -1.0
    if not (value >= 0 and value * mult <= (1 << 40)):  # also refuses nan and inf
        raise InputError(
            f"--memory-budget {text}: give a size between 0 and 1T, such as 512M, 2G or 1073741824"
        )
    return int(value * mult)


def stream_options(args):
    """StreamOptions from --stream/--in-memory and the batch/partition/spill options (None:
    in memory). Default: stream when the pharmacy input is large (see rxrisk.engines.batches).
    When the run streams, the spill folders that killed runs left in the folder it spills to
    are removed first (every command that streams calls this)."""
    stream = _stream_options(args)
    if stream is not None:
        from rxrisk.engines.spool import sweep_spill_root  # lazy: pyarrow; --help stays fast

        sweep_spill_root(stream.spill_dir)
    return stream


def _stream_options(args):
    """:func:`stream_options` without the sweep."""
    from rxrisk.engines.batches import should_stream  # lazy: pulls pyarrow.compute
    from rxrisk.engines.stream import StreamOptions, check_range  # lazy: pulls pyarrow.compute

    if args.batch_rows is not None:
        check_range("batch_rows", args.batch_rows, "--batch-rows")
    if args.partitions is not None:
        check_range("partitions", args.partitions, "--partitions")
    tuned = any(
        v is not None
        for v in (args.batch_rows, args.partitions, args.memory_budget, args.spill_dir)
    )
    if args.mode == "in-memory":
        if tuned:
            raise InputError(
                "--batch-rows, --partitions, --memory-budget and --spill-dir are for streaming; "
                "drop them or drop --in-memory"
            )
        return None
    if args.mode is None and not tuned and not should_stream(args.pharmacy):
        return None
    kw = {}
    if args.batch_rows is not None:
        kw["batch_rows"] = args.batch_rows
    if args.partitions is not None:
        kw["partitions"] = args.partitions
    if args.memory_budget is not None:
        kw["memory_bytes"] = parse_size(args.memory_budget)
    if args.spill_dir is not None:
        if not os.path.isdir(args.spill_dir):
            raise InputError(f"--spill-dir {args.spill_dir}: no such folder; create it first")
        from rxrisk.io.outputs import check_writable  # lazy: pulls pyarrow.compute

        check_writable(args.spill_dir, "--spill-dir")
        kw["spill_dir"] = args.spill_dir
    return StreamOptions(**kw)


# ----------------------------------------------------------------------- Spark


def _spark_session(master: str):
    """(session, owned): a new SparkSession (UI off, bound to 127.0.0.1 for local masters,
    quiet logs), or the active one of this process, which the caller must not stop."""
    import shutil

    try:
        from pyspark.sql import SparkSession
    except ImportError:
        raise InputError(
            "--engine spark needs pyspark: install rxrisk[spark] (pip install 'rxrisk[spark]')"
        ) from None
    local = master.startswith("local")
    if local and not (shutil.which("java") or os.environ.get("JAVA_HOME")):
        raise InputError("--engine spark needs Java 17 or later: install it or set JAVA_HOME")
    if local:  # the Python workers must be this interpreter (where rxrisk is installed)
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    builder = (
        SparkSession.builder.master(master)
        .appName("rxrisk score")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.shuffle.partitions", "8")
    )
    if local:
        builder = builder.config("spark.driver.host", "127.0.0.1").config(
            "spark.driver.bindAddress", "127.0.0.1"
        )
    owned = SparkSession.getActiveSession() is None  # else reuse it (and leave it running)
    spark = builder.getOrCreate()
    if owned:
        spark.sparkContext.setLogLevel("ERROR")
    return spark, owned


def _score_spark(args, out, audit_path) -> int:
    """Score on Spark (``--engine spark``) and write the outputs."""
    from rxrisk.io.outputs import Commit  # lazy: pulls pyarrow.compute

    for flag, given in (
        ("--quarantine", args.quarantine),
        ("--all-members", args.all_members),
        ("--threads", args.threads is not None),
    ):
        if given:
            raise InputError(
                f"{flag} is not available with --engine spark; drop it or use --engine local"
            )
    from rxrisk import spark as rxspark  # lazy: pulls pyarrow.compute (no pyspark import yet)

    rxspark.check_source(args.pharmacy, "pharmacy")  # fail fast, before starting Spark
    if args.medical:
        rxspark.check_source(args.medical, "medical")
    t0 = time.perf_counter()
    result, members = _run_spark(args, rxspark)
    print_intake(args, result.audit)
    with Commit() as run:  # every output in place, or none
        run.table(members, out)
        if audit_path is not None:
            run.json(result.audit, audit_path)
    if not args.quiet:
        _print_scored(result.audit, members, out, t0, " on Spark")
    return 0


def _run_spark(args, rxspark):
    """(result, member table) of a Spark run, in a session this run owns or the active one."""
    import warnings

    with warnings.catch_warnings():
        # pyspark's import-time notice about pandas >= 3 (the Spark engine uses no pandas)
        warnings.filterwarnings(
            "ignore", message=".*does not yet fully support pandas", category=FutureWarning
        )
        spark, owned = _spark_session(args.master or "local[*]")
        try:
            pharmacy = rxspark.read_pharmacy(spark, args.pharmacy)
            medical = rxspark.read_medical(spark, args.medical) if args.medical else None
            result = rxspark.score(
                pharmacy,
                medical,
                as_of=args.as_of,
                reference=args.reference,
                rules=args.rules,
                codesets=args.codesets,
                labels=(str(args.pharmacy), str(args.medical)),
                date_format=args.date_format,
                max_reject_share=args.max_reject_share,
            )
            members = result.to_arrow()
            result.unpersist()
        finally:
            if owned:
                spark.stop()
    return result, members
