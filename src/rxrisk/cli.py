"""The ``rxrisk`` command line. Argument parsing, progress and exit codes only: the work is
done by the library. Heavy modules (numba kernels, pyarrow) are imported inside commands so
``rxrisk --help`` starts fast and compiles nothing.

Exit codes: 0 success; 2 usage or input-schema error (one line, no traceback); 1 anything
else (one line; set RXRISK_DEBUG=1 for the traceback).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

from rxrisk import __version__
from rxrisk.errors import InputError


class _Progress:
    """Progress on stderr: a line as each stage ends and, on long streaming runs, a running
    count (rows read, partitions done) with its rate, redrawn in place at most once a second."""

    def __init__(self):
        self.t0 = time.perf_counter()
        self.last = 0.0
        self.open_line = False

    def _elapsed(self) -> float:
        return time.perf_counter() - self.t0

    def __call__(self, stage: str, n: int | None = None) -> None:
        extra = f" ({n:,} rows)" if n is not None else ""
        self._end_line()
        print(
            f"rxrisk: {stage} done at {self._elapsed():6.1f}s{extra}", file=sys.stderr, flush=True
        )

    def tick(self, what: str, n: int) -> None:
        now = self._elapsed()
        if now - self.last < 1.0:
            return
        self.last = now
        rate = f" ({n / now:,.0f}/s)" if "rows" in what and now > 0 else ""
        sys.stderr.write(f"\r\x1b[Krxrisk: {what}: {n:,}{rate} at {now:6.1f}s")
        sys.stderr.flush()
        self.open_line = True

    def _end_line(self) -> None:
        if self.open_line:
            sys.stderr.write("\n")
            self.open_line = False


def _progress_printer(enabled: bool):
    """A :class:`_Progress` when progress should show (stderr is a terminal, no --quiet)."""
    return _Progress() if enabled else None


def _cmd_score(args) -> int:
    from rxrisk.api import parse_as_of, score
    from rxrisk.outputs import check_output_path, write_json, write_table

    parse_as_of(args.as_of)  # fail fast on a bad date, before reading anything
    out = check_output_path(args.out)
    audit_path = check_output_path(args.audit, "--audit") if args.audit else None
    q_path = check_output_path(args.quarantine, "--quarantine") if args.quarantine else None
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
    show = _progress_printer(not args.quiet and sys.stderr.isatty())
    t0 = time.perf_counter()
    stream = _stream_options(args)
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
    )
    write_table(result.members, out)
    if q_path is not None:
        write_table(result.quarantine, q_path)
    if audit_path is not None:
        write_json(result.audit, audit_path)
    if not args.quiet:
        ph = result.audit["pharmacy"]
        flagged = _flag_counts(result.members)
        print(
            f"rxrisk: scored {result.audit['members_scored']:,} members ({result.members.num_rows:,} rows) "
            f"from {ph['rows_read']:,} pharmacy rows in {time.perf_counter() - t0:.1f}s; wrote {out}"
        )
        if flagged:
            print("rxrisk: flags: " + ", ".join(f"{k}={v:,}" for k, v in flagged.items()))
    return 0


def _parse_size(text: str) -> int:
    """'512M', '2G', '1.5GiB', '1000000' -> bytes (1024-based units)."""
    t = text.strip().upper().removesuffix("IB").removesuffix("B")
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
    mult = units.get(t[-1:], 1) if t else 1
    num = t[:-1] if t[-1:] in units else t
    try:
        value = float(num)
    except ValueError:
        value = -1.0
    if not (value >= 0 and value == value):
        raise InputError(f"--memory-budget {text}: give a size such as 512M, 2G or 1073741824")
    return int(value * mult)


def _stream_options(args):
    """StreamOptions from --stream/--in-memory and the batch/partition/spill options (None:
    in memory). Default: stream when the pharmacy input is large (see rxrisk.stream)."""
    from rxrisk.stream import StreamOptions, should_stream

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
        kw["memory_bytes"] = _parse_size(args.memory_budget)
    if args.spill_dir is not None:
        if not os.path.isdir(args.spill_dir):
            raise InputError(f"--spill-dir {args.spill_dir}: no such folder; create it first")
        kw["spill_dir"] = args.spill_dir
    return StreamOptions(**kw)


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
    from rxrisk.outputs import write_json, write_table

    for flag, given in (
        ("--quarantine", args.quarantine),
        ("--all-members", args.all_members),
        ("--threads", args.threads is not None),
    ):
        if given:
            raise InputError(
                f"{flag} is not available with --engine spark; drop it or use --engine local"
            )
    import warnings

    from rxrisk import spark as rxspark  # no pyspark import yet

    rxspark.check_source(args.pharmacy, "pharmacy")  # fail fast, before starting Spark
    if args.medical:
        rxspark.check_source(args.medical, "medical")
    t0 = time.perf_counter()
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
            )
            members = result.to_arrow()
            result.unpersist()
        finally:
            if owned:
                spark.stop()
    write_table(members, out)
    if audit_path is not None:
        write_json(result.audit, audit_path)
    if not args.quiet:
        ph = result.audit["pharmacy"]
        flagged = _flag_counts(members)
        print(
            f"rxrisk: scored {result.audit['members_scored']:,} members ({members.num_rows:,} rows) "
            f"from {ph['rows_read']:,} pharmacy rows on Spark in {time.perf_counter() - t0:.1f}s; wrote {out}"
        )
        if flagged:
            print("rxrisk: flags: " + ", ".join(f"{k}={v:,}" for k, v in flagged.items()))
    return 0


def _cmd_edits(args) -> int:
    from rxrisk.edits import EDIT_NAMES, load_edits, replay_edits
    from rxrisk.outputs import check_output_path, write_json, write_table

    load_edits(args.edits, args.overrides)  # fail fast on a bad edits file or --set, before reading
    out = check_output_path(args.out)
    audit_path = check_output_path(args.audit, "--audit") if args.audit else None
    show = _progress_printer(not args.quiet and sys.stderr.isatty())
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
    )
    write_table(result.claims, out)
    if audit_path is not None:
        write_json(result.audit, audit_path)
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


def _cmd_report(args) -> int:
    from rxrisk.report import write_reports

    flags = args.flags if args.flags else (() if args.reasons else ("at_risk",))
    show = _progress_printer(not args.quiet and sys.stderr.isatty())
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
    )
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


def _flag_counts(table) -> dict:
    import pyarrow as pa
    import pyarrow.compute as pc

    out = {}
    for f in table.schema:
        if pa.types.is_boolean(f.type) and not f.name.endswith("_dx"):
            out[f.name] = int(pc.sum(table.column(f.name)).as_py() or 0)
    return out


def _cmd_generate(args) -> int:
    from rxrisk.generate import generate_book

    if args.members < 1:
        raise InputError(f"--members {args.members}: give at least 1")
    if args.part_members is not None and args.part_members < 1:
        raise InputError(f"--part-members {args.part_members}: give at least 1")
    os.makedirs(args.out, exist_ok=True)
    show = _progress_printer(not args.quiet and sys.stderr.isatty())
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


def _cmd_show(args) -> int:
    import pyarrow as pa

    from rxrisk.inputs import read_source

    table = read_source(args.members, label="members").table
    if "reasons" not in table.column_names:
        raise InputError(
            f"{args.members}: no 'reasons' column; give a member table written by 'rxrisk score'"
        )
    counts = _flag_counts(table)
    print(
        f"{table.num_rows:,} member rows; flagged: "
        + ", ".join(f"{k}={v:,}" for k, v in counts.items())
    )
    flag = args.flag
    if flag not in table.column_names or not pa.types.is_boolean(table.schema.field(flag).type):
        raise InputError(f"--flag {flag}: no such flag column; use one of {', '.join(counts)}")
    hits = table.filter(table.column(flag))
    if "mme_avg_180d" in hits.column_names:
        hits = hits.sort_by([("mme_avg_180d", "descending"), ("member_id", "ascending")])
    cols = [
        c
        for c in (
            "member_id",
            "as_of",
            "mme_avg_180d",
            "opioid_prescribers_180d",
            "opioid_pharmacies_180d",
            "benzo_overlap_days_365d",
            "days_since_emergency",
            "reasons",
        )
        if c in hits.column_names
    ]
    shown = hits.select(cols).slice(0, args.limit)
    print(f"\nfirst {shown.num_rows} of {hits.num_rows:,} members with {flag}:")
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
    return 0


_HELP_PHARMACY = "pharmacy claims: .parquet file or folder, .arrow, .csv[.gz]"


def _add_config_options(p: argparse.ArgumentParser, *, rules_help: str) -> None:
    """The reference, rules and code-set options every claims command shares."""
    p.add_argument(
        "--reference",
        metavar="FILE",
        help="your NDC rows (.csv or .parquet), merged over the packaged reference",
    )
    p.add_argument("--rules", metavar="FILE", help=rules_help)
    p.add_argument(
        "--codesets",
        metavar="FILE",
        help="medical code-set file (TOML); default data/codesets/default.toml",
    )


def _add_run_options(p: argparse.ArgumentParser, *, threads: bool = True) -> None:
    """--audit / --threads / --quiet, shared by the commands that score claims."""
    if threads:
        p.add_argument("--audit", metavar="FILE", help="write the audit JSON here")
        p.add_argument(
            "--threads", type=int, metavar="N", help="numba threads (default: all cores)"
        )
    p.add_argument("--quiet", action="store_true", help="print nothing but errors")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="rxrisk",
        description="Opioid-risk scoring of pharmacy and medical claims (MME timelines, windows, flags).",
    )
    p.add_argument("--version", action="version", version=f"rxrisk {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    s = sub.add_parser(
        "score",
        help="score members as of one or more dates (SPEC 5)",
        description="Score members: metrics, flags and reasons per member and as-of date.",
    )
    s.add_argument("pharmacy", metavar="PHARMACY", help=_HELP_PHARMACY)
    s.add_argument(
        "--medical", metavar="FILE", help="medical events (long format), same file kinds"
    )
    _add_config_options(s, rules_help="rule file (TOML); default data/rules/default.toml")
    s.add_argument(
        "--as-of",
        required=True,
        metavar="DATE[,DATE...]",
        help="as-of dates, YYYY-MM-DD, comma-separated",
    )
    s.add_argument(
        "--out",
        required=True,
        metavar="FILE",
        help="member table; format from extension: .parquet, .csv, .arrow",
    )
    s.add_argument(
        "--quarantine", metavar="FILE", help="write rejected rows (with reject_reason) here"
    )
    s.add_argument(
        "--all-members", action="store_true", help="add a row for every member seen in any input"
    )
    mode = s.add_mutually_exclusive_group()
    mode.add_argument(
        "--stream",
        dest="mode",
        action="store_const",
        const="stream",
        help="read batch by batch with bounded memory, spilling to disk when needed (default "
        "for inputs of 5 million rows or more; same output byte for byte)",
    )
    mode.add_argument(
        "--in-memory",
        dest="mode",
        action="store_const",
        const="in-memory",
        help="read the whole input into memory (default below 5 million rows)",
    )
    s.add_argument(
        "--batch-rows",
        type=int,
        metavar="N",
        help="streaming: rows per batch read (default 1,000,000)",
    )
    s.add_argument(
        "--partitions",
        type=int,
        metavar="N",
        help="streaming: member partitions scored one at a time (default: one per 100 million "
        "input rows)",
    )
    s.add_argument(
        "--memory-budget",
        metavar="SIZE",
        help="streaming: bytes each partitioned store keeps in memory before spilling to "
        "Arrow IPC files (default 1G; 0 spills at once)",
    )
    s.add_argument(
        "--spill-dir",
        metavar="DIR",
        help="streaming: folder for spill files (default: the system temporary folder); "
        "they are removed when the run ends",
    )
    s.add_argument(
        "--engine",
        choices=("local", "spark"),
        default="local",
        help="local (in-process, default) or spark (needs rxrisk[spark] and Java; same output)",
    )
    s.add_argument(
        "--master",
        metavar="URL",
        help="Spark master for --engine spark (default local[*]), e.g. local[2] or yarn",
    )
    _add_run_options(s)
    s.set_defaults(func=_cmd_score)

    e = sub.add_parser(
        "edits",
        help="replay point-of-sale safety edits over claims history (SPEC 7)",
        description="Replay the opioid safety edits (MME care coordination and hard limit, "
        "opioid-naive days limit, opioid + benzodiazepine, duplicate long-acting) "
        "over every opioid and benzodiazepine claim, in adjudication order.",
    )
    e.add_argument("pharmacy", metavar="PHARMACY", help=_HELP_PHARMACY)
    e.add_argument(
        "--medical",
        metavar="FILE",
        help="medical events (long format); cancer, sickle cell and hospice codes exclude",
    )
    _add_config_options(
        e,
        rules_help="scoring rule file (TOML) for max_days_supply and factor_edition; "
        "default data/rules/default.toml",
    )
    e.add_argument(
        "--edits", metavar="FILE", help="edit thresholds (TOML); default data/rules/edits.toml"
    )
    e.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="EDIT.FIELD=VALUE",
        help="override one edit setting, e.g. mme_hard_limit.threshold=150 (repeatable)",
    )
    e.add_argument(
        "--out",
        required=True,
        metavar="FILE",
        help="claim table; format from extension: .parquet, .csv, .arrow",
    )
    _add_run_options(e)
    e.set_defaults(func=_cmd_edits)

    g = sub.add_parser(
        "generate",
        help="write a seeded synthetic book of business",
        description=(
            "Write pharmacy.parquet and medical.parquet for a synthetic book of business, or with "
            "--part-members the folders pharmacy/ and medical/ of Parquet parts. Members are "
            "generated and written in blocks of 100,000, so memory does not grow with N in "
            "either layout: without --part-members the output is one file per table whatever N."
        ),
    )
    g.add_argument("--members", type=int, required=True, metavar="N")
    g.add_argument("--seed", type=int, default=0, metavar="S")
    g.add_argument("--out", required=True, metavar="DIR")
    g.add_argument(
        "--part-members",
        type=int,
        default=None,
        metavar="K",
        help=(
            "write DIR/pharmacy/part-00000.parquet, ... and DIR/medical/part-00000.parquet, ... "
            "with K members per part (a folder is a valid input of 'rxrisk score'); same seed and "
            "K give identical files; default: one file per table whatever N"
        ),
    )
    _add_run_options(g, threads=False)
    g.set_defaults(func=_cmd_generate)

    v = sub.add_parser(
        "show",
        help="summarise a member table and list flagged members",
        description="Print flag counts of a member table and the members with one flag.",
    )
    v.add_argument("members", metavar="FILE", help="member table written by 'rxrisk score'")
    v.add_argument("--flag", default="at_risk", help="flag to list (default at_risk)")
    v.add_argument("--limit", type=int, default=20, metavar="N", help="rows to print (default 20)")
    v.set_defaults(func=_cmd_show)

    r = sub.add_parser(
        "report",
        help="member profiles, prescriber alert bundles, outreach and lock-in lists",
        description="Write one self-contained HTML profile per flagged member, a bundle per "
        "prescriber of those members, outreach.parquet (emergency_outreach, most urgent first), "
        "lock_in.parquet (multi_provider / cms_oms with their top prescriber and pharmacy) and "
        "index.html into one folder.",
    )
    r.add_argument("members", metavar="MEMBERS", help="member table written by 'rxrisk score'")
    r.add_argument(
        "--pharmacy", required=True, metavar="FILE", help="the pharmacy claims that were scored"
    )
    r.add_argument("--medical", metavar="FILE", help="the medical events that were scored")
    _add_config_options(r, rules_help="rule file (TOML) used for scoring; thresholds are quoted")
    r.add_argument(
        "--as-of", metavar="DATE", help="as-of date to report (default: the latest in MEMBERS)"
    )
    r.add_argument(
        "--flag",
        dest="flags",
        action="append",
        default=[],
        metavar="NAME",
        help="profile members with this flag (repeatable; default at_risk unless --reason)",
    )
    r.add_argument(
        "--reason",
        dest="reasons",
        action="append",
        default=[],
        metavar="NAME",
        help="profile members whose reasons hold NAME (repeatable)",
    )
    r.add_argument(
        "--lookback-days",
        type=int,
        default=180,
        metavar="N",
        help="days of fills and daily MME on each page, and the lock-in window (default 180)",
    )
    r.add_argument(
        "--list-format",
        choices=("parquet", "csv"),
        default="parquet",
        help="format of outreach and lock_in (default parquet)",
    )
    r.add_argument("--out", required=True, metavar="DIR", help="report folder (created)")
    _add_run_options(r, threads=False)
    r.set_defaults(func=_cmd_report)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except InputError as exc:
        print(f"rxrisk: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("rxrisk: interrupted; no output was written", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - the CLI's last line of defence
        if os.environ.get("RXRISK_DEBUG"):
            raise
        msg = str(exc).splitlines()[0] if str(exc) else ""
        print(
            f"rxrisk: internal error: {type(exc).__name__}: {msg} (set RXRISK_DEBUG=1 for the traceback)",
            file=sys.stderr,
        )
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
