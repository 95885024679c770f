"""The ``rxrisk`` command line. Argument parsing, progress and exit codes only: the work is
done by the library. Heavy modules (numba kernels, pyarrow) are imported inside commands so
``rxrisk --help`` starts fast and compiles nothing.

Exit codes: 0 success; 2 usage or input-schema error (one line, no traceback); 1 anything
else (one line; set RXRISK_DEBUG=1 for the traceback); 130 after SIGINT (Ctrl-C) and 143 after
SIGTERM, both leaving no output, temporary file or spill file behind.
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


# ----------------------------------------------------------------------- first-run notice

#: The kernel modules each command runs (nested kernels included), for the first-run notice.
_COMMAND_KERNELS = {
    "score": (
        "dictionary",
        "distinct",
        "events",
        "fills",
        "grouping",
        "member_scores",
        "strings",
        "timeline",
        "windows",
    ),
    "edits": ("dictionary", "edits", "fills", "grouping", "strings"),
    "report": ("strings",),
}
#: Rough cold-compile seconds per module on 2 cores (kernels called from another kernel
#: compile with it and count there).
_COMPILE_SECONDS = {"grouping": 27, "edits": 11, "member_scores": 6, "dictionary": 5, "strings": 3}


def _kernel_cache_dir() -> str:
    """The folder where numba caches the compiled rxrisk kernels (``NUMBA_CACHE_DIR``, else
    ``$XDG_CACHE_HOME/rxrisk/numba``, as ``rxrisk.kernels._jit`` sets it up), worked out
    without importing numba or the kernels."""
    import hashlib
    import importlib.util

    base = os.environ.get("NUMBA_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"),
        "rxrisk",
        "numba",
    )
    spec = importlib.util.find_spec("rxrisk.kernels")
    src = os.path.abspath(list(spec.submodule_search_locations)[0])
    # numba's layout: <cache>/<folder name>_<sha1 of the folder path>/<module>.<function>-...
    return os.path.join(base, f"{os.path.basename(src)}_{hashlib.sha1(src.encode()).hexdigest()}")


class _Stub:
    """Stands for every class while an index file is read: nothing of numba is imported and
    nothing of the file runs."""

    def __init__(self, *args, **kwargs):
        pass

    def __setstate__(self, state):
        pass


def _index_fresh(index: str, source: str, numba_version: str | None) -> bool:
    """Whether numba will use the index file ``index`` for kernels of ``source``: written by
    this numba, for this source file (numba stores a stamp of the source: its sha256 in recent
    versions, its (mtime, size) in older ones)."""
    import hashlib
    import io
    import pickle

    class Reader(pickle.Unpickler):
        def find_class(self, module, name):
            return _Stub

    try:
        with open(index, "rb") as f:
            written_by = Reader(f).load()  # numba's version, then the pickled (stamp, overloads)
            stamp = Reader(io.BytesIO(f.read())).load()[0]
        if numba_version is not None and written_by != numba_version:
            return False
        st = os.stat(source)
        if isinstance(stamp, bytes):
            with open(source, "rb") as f:
                return stamp == hashlib.sha256(f.read()).digest()
        return tuple(stamp) == (st.st_mtime, st.st_size)
    except Exception:  # noqa: BLE001 - another layout: fall back to the file times
        try:
            return os.stat(index).st_mtime >= os.stat(source).st_mtime
        except OSError:
            return False


def kernels_to_compile(command: str) -> list[str]:
    """The kernel modules of ``command`` that numba has not cached yet for this Python, this
    numba and these kernel sources (no index file that numba would use): what the next run
    will compile. Empty when nothing compiles (all cached, JIT disabled, or a command without
    kernels)."""
    import glob
    import importlib.util
    from importlib.metadata import PackageNotFoundError, version

    modules = _COMMAND_KERNELS.get(command, ())
    if not modules or os.environ.get("NUMBA_DISABLE_JIT", "0") not in ("", "0"):
        return []
    try:
        numba_version = version("numba")
    except PackageNotFoundError:  # pragma: no cover - numba is a dependency
        numba_version = None
    cache = _kernel_cache_dir()
    src_dir = list(importlib.util.find_spec("rxrisk.kernels").submodule_search_locations)[0]
    tag = f"py{sys.version_info[0]}{sys.version_info[1]}"
    missing = []
    for module in modules:
        source = os.path.join(src_dir, f"{module}.py")
        indexes = glob.glob(os.path.join(glob.escape(cache), f"{module}.*.{tag}.nbi"))
        if not any(_index_fresh(index, source, numba_version) for index in indexes):
            missing.append(module)
    return missing


def compile_notice(command: str) -> str | None:
    """The first-run line for ``command`` (None when its kernels are cached)."""
    missing = kernels_to_compile(command)
    if not missing:
        return None
    seconds = sum(_COMPILE_SECONDS.get(m, 0) for m in missing)
    seconds = max(5, 5 * round(seconds / 5))
    folder = _kernel_cache_dir()
    while not os.path.exists(folder) and os.path.dirname(folder) != folder:
        folder = os.path.dirname(folder)
    if not os.access(folder, os.W_OK):  # numba then compiles in memory on every run
        return (
            f"compiling kernels (about {seconds} s on 2 cores, on every run: {folder} is not "
            "writable; set NUMBA_CACHE_DIR to a writable folder to compile only once)"
        )
    return f"compiling kernels (first run only, about {seconds} s on 2 cores)"


class _Noticing:
    """Progress that prints the first-run compile notice when the first stage ends or the
    first running count comes (numba compiles right after reading starts), then passes
    everything on to the :class:`_Progress` it wraps."""

    def __init__(self, inner: _Progress, notice: str):
        self.inner = inner
        self.notice = notice

    def _note(self) -> None:
        if self.notice is not None:
            self.inner._end_line()
            print(f"rxrisk: {self.notice}", file=sys.stderr, flush=True)
            self.notice = None

    def __call__(self, stage: str, n: int | None = None) -> None:
        self.inner(stage, n)
        self._note()

    def tick(self, what: str, n: int) -> None:
        self._note()
        self.inner.tick(what, n)


def _with_notice(progress, command: str):
    """``progress`` wrapped to print the first-run notice when ``command`` will compile (only
    where progress shows: stderr is a terminal and no --quiet)."""
    notice = None if progress is None else compile_notice(command)
    return progress if notice is None else _Noticing(progress, notice)


def _cmd_score(args) -> int:
    from rxrisk.api import score
    from rxrisk.config.settings import parse_as_of
    from rxrisk.io.outputs import Commit

    parse_as_of(args.as_of)  # fail fast on a bad date, before reading anything
    out, audit_path, q_path = _check_paths(
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
    show = _with_notice(_progress_printer(not args.quiet and sys.stderr.isatty()), "score")
    t0 = time.perf_counter()
    stream = _stream_options(args)
    if stream is not None:  # spill folders of killed runs in the folder this run spills to
        from rxrisk.engines.spool import sweep_spill_root

        sweep_spill_root(stream.spill_dir)
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
    _print_intake(args, result.audit)
    with Commit() as run:  # every output in place, or none
        run.table(result.members, out)
        if q_path is not None:
            run.table(result.quarantine, q_path)
        if audit_path is not None:
            run.json(result.audit, audit_path)
    if not args.quiet:
        ph = result.audit["pharmacy"]
        flagged = _flag_counts(result.members)
        print(
            f"rxrisk: scored {result.audit['members_scored']:,} members ({result.members.num_rows:,} rows) "
            f"from {ph['rows_read']:,} pharmacy rows in {time.perf_counter() - t0:.1f}s; wrote {out}"
        )
        if flagged:
            print("rxrisk: flagged rows: " + ", ".join(f"{k}={v:,}" for k, v in flagged.items()))
    return 0


# Input options of the claims commands, as the user names them in messages.
_INPUT_OPTIONS = (
    ("pharmacy", "PHARMACY"),
    ("medical", "--medical"),
    ("reference", "--reference"),
    ("rules", "--rules"),
    ("codesets", "--codesets"),
    ("edits", "--edits"),
)


def _check_paths(args, outputs) -> list:
    """Check the output files before anything is read (none is an input or another output,
    each can be written), then remove temporary outputs that killed runs left in their
    folders. Returns the output paths (None where not given)."""
    from rxrisk.io.outputs import prepare_outputs

    inputs = [(label, getattr(args, name, None)) for name, label in _INPUT_OPTIONS]
    return prepare_outputs(inputs, outputs)


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
    if not (value >= 0 and value * mult <= (1 << 40)):  # also refuses nan and inf
        raise InputError(
            f"--memory-budget {text}: give a size between 0 and 1T, such as 512M, 2G or 1073741824"
        )
    return int(value * mult)


def _stream_options(args):
    """StreamOptions from --stream/--in-memory and the batch/partition/spill options (None:
    in memory). Default: stream when the pharmacy input is large (see rxrisk.engines.stream)."""
    from rxrisk.engines.stream import StreamOptions, check_range, should_stream

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
        kw["memory_bytes"] = _parse_size(args.memory_budget)
    if args.spill_dir is not None:
        if not os.path.isdir(args.spill_dir):
            raise InputError(f"--spill-dir {args.spill_dir}: no such folder; create it first")
        from rxrisk.io.outputs import check_writable

        check_writable(args.spill_dir, "--spill-dir")
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
    from rxrisk.io.outputs import Commit

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
                date_format=args.date_format,
                max_reject_share=args.max_reject_share,
            )
            members = result.to_arrow()
            result.unpersist()
        finally:
            if owned:
                spark.stop()
    _print_intake(args, result.audit)
    with Commit() as run:  # every output in place, or none
        run.table(members, out)
        if audit_path is not None:
            run.json(result.audit, audit_path)
    if not args.quiet:
        ph = result.audit["pharmacy"]
        flagged = _flag_counts(members)
        print(
            f"rxrisk: scored {result.audit['members_scored']:,} members ({members.num_rows:,} rows) "
            f"from {ph['rows_read']:,} pharmacy rows on Spark in {time.perf_counter() - t0:.1f}s; wrote {out}"
        )
        if flagged:
            print("rxrisk: flagged rows: " + ", ".join(f"{k}={v:,}" for k, v in flagged.items()))
    return 0


def _cmd_edits(args) -> int:
    from rxrisk.edits.replay import EDIT_NAMES, load_edits, replay_edits
    from rxrisk.io.outputs import Commit

    out, audit_path = _check_paths(args, [("--out", args.out), ("--audit", args.audit)])
    load_edits(args.edits, args.overrides)  # fail fast on a bad edits file or --set, before reading
    show = _with_notice(_progress_printer(not args.quiet and sys.stderr.isatty()), "edits")
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
    )
    _print_intake(args, result.audit)
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


def _cmd_report(args) -> int:
    from rxrisk.reports.profiles import write_reports

    flags = args.flags if args.flags else (() if args.reasons else ("at_risk",))
    show = _with_notice(_progress_printer(not args.quiet and sys.stderr.isatty()), "report")
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
    )
    _print_intake(args, summary)
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


def _print_intake(args, audit: dict) -> None:
    """The run summary (rows read, in scope, rejected by reason) and the warnings, on
    stderr whether or not it is a terminal, unless --quiet."""
    if args.quiet:
        return
    from rxrisk.ingest.intake import summary_lines

    names = {"pharmacy": str(args.pharmacy)}
    if args.medical:
        names["medical"] = str(args.medical)
    for line in summary_lines(audit, names):
        print(_one_line(line), file=sys.stderr, flush=True)


def _flag_counts(table) -> dict:
    import pyarrow as pa
    import pyarrow.compute as pc

    out = {}
    for f in table.schema:
        if pa.types.is_boolean(f.type) and not f.name.endswith("_dx"):
            out[f.name] = int(pc.sum(table.column(f.name)).as_py() or 0)
    return out


def _cmd_generate(args) -> int:
    from rxrisk.synthetic import generate_book

    if args.members < 1:
        raise InputError(f"--members {args.members}: give at least 1")
    if args.part_members is not None and args.part_members < 1:
        raise InputError(f"--part-members {args.part_members}: give at least 1")
    from rxrisk.io.outputs import check_target, sweep_leftovers

    check_target(args.out, "--out", folder=True, parents=True)
    names = (
        ("pharmacy", "medical") if args.part_members else ("pharmacy.parquet", "medical.parquet")
    )
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
            "to write the book into it (its pharmacy and medical files are replaced)"
        )
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
    import datetime as dt

    import pyarrow as pa
    import pyarrow.compute as pc

    from rxrisk.ingest.sources import read_source
    from rxrisk.reports.profiles import load_members

    if args.limit < 0:
        raise InputError(f"--limit {args.limit}: give 0 or more rows")
    day = None
    if args.as_of is not None:
        from rxrisk.config.settings import parse_as_of

        days = parse_as_of(args.as_of)
        if len(days) != 1:
            raise InputError(f"--as-of {args.as_of}: give one date, YYYY-MM-DD")
        day = int(days[0])
    table = read_source(args.members, label="members").table
    missing = [c for c in ("member_id", "as_of", "reasons") if c not in table.column_names]
    if missing:
        raise InputError(
            f"{args.members}: not a member table (missing column{'s' if len(missing) > 1 else ''} "
            f"{', '.join(repr(c) for c in missing)}); give a member table written by 'rxrisk "
            "score' (.parquet, .csv or .arrow)"
        )
    table = load_members(table)  # CSV text back to the member-table types
    for name in (
        "opioid_prescribers_180d",
        "opioid_pharmacies_180d",
        "benzo_overlap_days_365d",
        "days_since_emergency",
    ):  # counts of a CSV table come back as float64
        if name in table.column_names and pa.types.is_floating(table.schema.field(name).type):
            i = table.column_names.index(name)
            table = table.set_column(i, name, table.column(name).cast(pa.int64()))
    as_of = table.column("as_of").cast(pa.int32())
    have = sorted(pc.unique(pc.drop_null(as_of)).to_pylist())
    epoch = dt.date(1970, 1, 1)

    def date(d: int) -> str:
        return str(epoch + dt.timedelta(days=d))

    if day is not None:
        if day not in have:
            listed = ", ".join(date(d) for d in have[-5:]) or "none"
            raise InputError(
                f"--as-of {date(day)}: {args.members} has no rows for it (as-of dates: {listed})"
            )
        table = table.filter(pc.fill_null(pc.equal(as_of, day), False))
        have = [day]
    counts = _flag_counts(table)
    members = pc.count_distinct(table.column("member_id")).as_py() if table.num_rows else 0
    if len(have) == 1:
        dates = f"as of {date(have[0])}"
    elif have:
        dates = f"{len(have)} as-of dates, {date(have[0])} to {date(have[-1])}"
    else:
        dates = "no as-of dates"
    print(
        f"{table.num_rows:,} rows ({members:,} members, {dates}); flagged rows: "
        + ", ".join(f"{k}={v:,}" for k, v in counts.items())
    )
    flag = args.flag
    if flag not in table.column_names or not pa.types.is_boolean(table.schema.field(flag).type):
        raise InputError(f"--flag {flag}: no such flag column; use one of {', '.join(counts)}")
    hits = table.filter(pc.fill_null(table.column(flag), False))
    if "mme_avg_180d" in hits.column_names:
        hits = hits.sort_by(
            [("mme_avg_180d", "descending"), ("member_id", "ascending"), ("as_of", "ascending")]
        )
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
    return 0


_CONFIG_FILES = {
    "rules": ("rules", "default.toml"),
    "codesets": ("codesets", "default.toml"),
    "edits": ("rules", "edits.toml"),
}


def _cmd_config(args) -> int:
    from rxrisk.config.resources import data_path

    sys.stdout.write(data_path(*_CONFIG_FILES[args.name]).read_text(encoding="utf-8"))
    sys.stdout.flush()
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
        help="medical code-set file (TOML); default: the packaged one, which 'rxrisk config "
        "show codesets' prints",
    )
    p.add_argument(
        "--date-format",
        metavar="FORMAT",
        help="strptime format of text dates that are not YYYY-MM-DD or YYYYMMDD, e.g. "
        "'%%m/%%d/%%Y' (dates are never guessed; an impossible date rejects its row)",
    )
    p.add_argument(
        "--max-reject-share",
        metavar="SHARE",
        help="stop before writing anything when one rejection reason takes more than this "
        "share of an input's in-scope rows (default 0.25; 1 never stops)",
    )


def _add_run_options(p: argparse.ArgumentParser, *, threads: bool = True) -> None:
    """--audit / --threads / --quiet, shared by the commands that score claims."""
    if threads:
        p.add_argument("--audit", metavar="FILE", help="write the audit JSON here")
        p.add_argument(
            "--threads",
            type=int,
            metavar="N",
            help="numba threads, 1 to 1,024 (default: all cores; more than the cores are not used)",
        )
    p.add_argument("--quiet", action="store_true", help="print nothing but errors")


class _Parser(argparse.ArgumentParser):
    """argparse with one-line usage errors, e.g. ``rxrisk score: error: the following
    arguments are required: --out (see rxrisk score --help)``; exit code 2. Subcommand
    parsers are of this class too."""

    def error(self, message: str):
        print(f"{self.prog}: error: {message} (see {self.prog} --help)", file=sys.stderr)
        raise SystemExit(2)


#: --threads range (more threads than cores are not used: numba caps them at the cores)
_THREADS_RANGE = (1, 1024)


def _subparser(parser: argparse.ArgumentParser, name: str | None):
    """The parser of subcommand ``name`` (``parser`` itself when there is none)."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction) and name in action.choices:
            return action.choices[name]
    return parser


def _parse(parser: argparse.ArgumentParser, argv: list[str] | None):
    """``(args, None)``, or ``(None, exit code)`` after --help, --version, a usage error (one
    line on stderr) or no arguments at all (the help, exit 0)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv:
        parser.print_help()
        return None, 0
    try:
        args, extra = parser.parse_known_args(argv)
        sub = _subparser(parser, getattr(args, "command", None))
        if getattr(args, "config_command", None):
            sub = _subparser(sub, args.config_command)
        if extra:
            sub.error(f"unrecognized arguments: {' '.join(extra)}")
        threads = getattr(args, "threads", None)
        lo, hi = _THREADS_RANGE
        if threads is not None and not lo <= threads <= hi:
            sub.error(
                f"--threads {threads}: out of range; give a whole number between {lo} and {hi:,}"
            )
    except SystemExit as exc:
        code = exc.code
        return None, (0 if code is None else code if isinstance(code, int) else 2)
    return args, None


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="rxrisk",
        description="Opioid-risk scoring of pharmacy and medical claims (MME timelines, windows, flags).",
        epilog="first steps:\n"
        "  rxrisk generate --members 20000 --out sample\n"
        "  rxrisk score sample/pharmacy.parquet --medical sample/medical.parquet \\\n"
        "      --as-of 2025-12-31 --out sample/members.parquet\n"
        "  rxrisk show sample/members.parquet\n"
        "  rxrisk config show rules > my-rules.toml   # a rule file to edit, for --rules\n\n"
        "Run 'rxrisk COMMAND --help' for the options of a command.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--version", action="version", version=f"rxrisk {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    s = sub.add_parser(
        "score",
        help="score members as of one or more dates",
        description="Score members: metrics, flags and reasons per member and as-of date.",
    )
    s.add_argument("pharmacy", metavar="PHARMACY", help=_HELP_PHARMACY)
    s.add_argument(
        "--medical", metavar="FILE", help="medical events (long format), same file kinds"
    )
    _add_config_options(
        s,
        rules_help="rule file (TOML); default: the packaged one, which 'rxrisk config show "
        "rules' prints",
    )
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
        help="streaming: rows per batch read, 1 to 100,000,000 (default 1,000,000)",
    )
    s.add_argument(
        "--partitions",
        type=int,
        metavar="N",
        help="streaming: member partitions scored one at a time, 1 to 4,096 (default: one per "
        "100 million input rows; never more than one per 10,000 input rows)",
    )
    s.add_argument(
        "--memory-budget",
        metavar="SIZE",
        help="streaming: bytes each partitioned store keeps in memory before spilling to "
        "Arrow IPC files, 0 to 1T (default 1G; 0 spills at once)",
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
        help="replay point-of-sale safety edits over claims history",
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
        "--edits",
        metavar="FILE",
        help="edit thresholds (TOML); default: the packaged one, which 'rxrisk config show "
        "edits' prints",
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
    g.add_argument("--members", type=int, required=True, metavar="N", help="members to generate")
    g.add_argument("--seed", type=int, default=0, metavar="S", help="random seed (default 0)")
    g.add_argument(
        "--out",
        required=True,
        metavar="DIR",
        help="output folder (created); it must be new or empty unless --force",
    )
    g.add_argument(
        "--force",
        action="store_true",
        help="write into a folder that already holds files (replacing the book's files there)",
    )
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
        description="Print the row, member and flag counts of a member table written by "
        "'rxrisk score' (.parquet, .csv or .arrow) and its rows with one flag, highest average "
        "MME first. A row is one member on one as-of date.",
    )
    v.add_argument("members", metavar="FILE", help="member table written by 'rxrisk score'")
    v.add_argument("--flag", default="at_risk", help="flag to list (default at_risk)")
    v.add_argument(
        "--as-of", metavar="DATE", help="show one as-of date, YYYY-MM-DD (default: all of them)"
    )
    v.add_argument("--limit", type=int, default=20, metavar="N", help="rows to print (default 20)")
    v.set_defaults(func=_cmd_show)

    c = sub.add_parser(
        "config",
        help="print a packaged default file (rules, code sets, edits) to copy and edit",
        description="Print a packaged default configuration file, e.g. 'rxrisk config show "
        "rules > my-rules.toml', then edit it and pass it with --rules (--codesets, --edits).",
    )
    csub = c.add_subparsers(dest="config_command", required=True, metavar="ACTION")
    cs = csub.add_parser(
        "show",
        help="print a default file: rules, codesets or edits",
        description="Print a packaged default file: rules (the scoring rules and thresholds, "
        "for --rules), codesets (the medical code sets, for --codesets) or edits (the safety-edit "
        "thresholds, for 'rxrisk edits --edits').",
    )
    cs.add_argument(
        "name", choices=tuple(_CONFIG_FILES), metavar="NAME", help="rules, codesets or edits"
    )
    c.set_defaults(func=_cmd_config)

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


class Terminated(BaseException):
    """SIGTERM arrived: unwinds the run like KeyboardInterrupt does for SIGINT, so temporary
    outputs and spill files are removed on the way out (not an Exception: nothing catches it
    by accident)."""


def _on_sigterm(signum, frame) -> None:
    import signal

    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second SIGTERM does not cut clean-up short
    raise Terminated


def _committed() -> int:
    """Runs whose outputs this process has committed (without importing the writers)."""
    outputs = sys.modules.get("rxrisk.io.outputs")
    return getattr(outputs, "committed_runs", 0) if outputs is not None else 0


def _interrupted(what: str, before: int) -> None:
    written = "its outputs were written" if _committed() > before else "no output was written"
    print(f"rxrisk: {what}; {written}", file=sys.stderr)


def _one_line(text: str) -> str:
    """A message on one line: line breaks inside it (a file name may hold one) are escaped."""
    return text.replace("\r", "\\r").replace("\n", "\\n")


def main(argv: list[str] | None = None) -> int:
    import signal
    import threading

    parser = build_parser()
    args, code = _parse(parser, argv)
    if args is None:
        return code
    before = _committed()
    old_term = None
    finished = False
    try:
        if threading.current_thread() is threading.main_thread():
            old_term = signal.signal(signal.SIGTERM, _on_sigterm)
        code = args.func(args)
        finished = True
        return code
    except InputError as exc:
        print(f"rxrisk: error: {_one_line(str(exc))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        _interrupted("interrupted", before)
        return 130
    except Terminated:
        _interrupted("terminated (SIGTERM)", before)
        return 128 + signal.SIGTERM
    except Exception as exc:  # noqa: BLE001 - the CLI's last line of defence
        if os.environ.get("RXRISK_DEBUG"):
            raise
        msg = str(exc).splitlines()[0] if str(exc) else ""
        print(
            f"rxrisk: internal error: {type(exc).__name__}: {msg} (set RXRISK_DEBUG=1 for the traceback)",
            file=sys.stderr,
        )
        return 1
    finally:
        spool = sys.modules.get("rxrisk.engines.spool")
        if not finished and spool is not None:  # spill folders of a store left open mid-way
            spool.remove_live_spills()
        if old_term is not None:
            signal.signal(signal.SIGTERM, old_term)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
