"""The ``rxrisk`` argument parser: one small builder per command and the option groups the
commands share (inputs and configuration, run options, streaming, engine). Building it imports
nothing heavy: ``rxrisk --help`` compiles nothing."""

from __future__ import annotations

import argparse
import sys

from rxrisk.cli.commands import (
    CONFIG_FILES,
    cmd_config,
    cmd_generate,
    cmd_show,
)
from rxrisk.cli.compile import cmd_compile
from rxrisk.cli.edits import cmd_edits
from rxrisk.cli.measures import cmd_measures
from rxrisk.cli.report import cmd_report
from rxrisk.cli.score import cmd_score
from rxrisk.version import __version__

HELP_PHARMACY = "pharmacy claims: .parquet file or folder, .arrow, .csv[.gz]"


class UsageParser(argparse.ArgumentParser):
    """argparse with one-line usage errors, e.g. ``rxrisk score: error: the following
    arguments are required: --out (see rxrisk score --help)``; exit code 2. Subcommand
    parsers are of this class too."""

    def error(self, message: str):
        print(f"{self.prog}: error: {message} (see {self.prog} --help)", file=sys.stderr)
        raise SystemExit(2)


def build_parser() -> argparse.ArgumentParser:
    """The ``rxrisk`` parser.

    Returns
    -------
    argparse.ArgumentParser
        The parser of every command; each subcommand's namespace carries its command function
        as ``func``.
    """
    p = UsageParser(
        prog="rxrisk",
        description="Opioid-risk scoring of pharmacy and medical claims (MME timelines, windows, flags).",
        epilog="first steps:\n"
        "  rxrisk generate --members 20000 --out sample\n"
        "  rxrisk score sample/pharmacy.parquet --medical sample/medical.parquet \\\n"
        "      --as-of 2025-12-31 --out sample/scores.parquet\n"
        "  rxrisk show sample/scores.parquet\n"
        "  rxrisk config show rules > my-rules.toml   # a rule file to edit, for --rules\n\n"
        "Run 'rxrisk COMMAND --help' for the options of a command.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--version", action="version", version=f"rxrisk {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_score(sub)
    _add_edits(sub)
    _add_generate(sub)
    _add_show(sub)
    _add_config(sub)
    _add_report(sub)
    _add_measures(sub)
    _add_compile(sub)
    return p


# ----------------------------------------------------------------------- shared option groups


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


def _add_streaming_options(s: argparse.ArgumentParser) -> None:
    """--stream / --in-memory and the batch, partition, memory and spill options of ``score``."""
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


def _add_engine_options(s: argparse.ArgumentParser) -> None:
    """--engine and --master of ``score``."""
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


# ----------------------------------------------------------------------- one builder per command


def _add_score(sub) -> None:
    s = sub.add_parser(
        "score",
        help="score members as of one or more dates",
        description="Score members: metrics, flags and reasons per member and as-of date.",
    )
    s.add_argument("pharmacy", metavar="PHARMACY", help=HELP_PHARMACY)
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
    _add_streaming_options(s)
    _add_engine_options(s)
    _add_run_options(s)
    s.set_defaults(func=cmd_score)


def _add_edits(sub) -> None:
    e = sub.add_parser(
        "edits",
        help="replay point-of-sale safety edits over claims history",
        description="Replay the opioid safety edits (MME care coordination and hard limit, "
        "opioid-naive days limit, opioid + benzodiazepine, duplicate long-acting) "
        "over every opioid and benzodiazepine claim, in adjudication order.",
    )
    e.add_argument("pharmacy", metavar="PHARMACY", help=HELP_PHARMACY)
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
    _add_streaming_options(e)
    _add_run_options(e)
    e.set_defaults(func=cmd_edits)


def _add_generate(sub) -> None:
    g = sub.add_parser(
        "generate",
        help="write a seeded synthetic book of business",
        description=(
            "Write pharmacy.parquet, medical.parquet, eligibility.parquet and members.parquet "
            "for a synthetic book of business, or with --part-members the folders pharmacy/, "
            "medical/, eligibility/ and members/ of Parquet parts. The claims are dated in 2025; "
            "measure the book with 'rxrisk measures ... --year 2025' (eligibility gaps, joiners, "
            "leavers and product switches fall in that year). Members are generated and "
            "written in blocks of 100,000, so memory does not grow with N in either layout: "
            "without --part-members the output is one file per table whatever N."
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
    g.set_defaults(func=cmd_generate)


def _add_show(sub) -> None:
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
    v.set_defaults(func=cmd_show)


def _add_config(sub) -> None:
    c = sub.add_parser(
        "config",
        help="print a packaged default file (rules, code sets, edits, measures) to copy and edit",
        description="Print a packaged default configuration file, e.g. 'rxrisk config show "
        "rules > my-rules.toml', then edit it and pass it with --rules (--codesets, --edits, "
        "'rxrisk measures --config').",
    )
    csub = c.add_subparsers(dest="config_command", required=True, metavar="ACTION")
    cs = csub.add_parser(
        "show",
        help="print a default file: rules, codesets, edits or measures",
        description="Print a packaged default file: rules (the scoring rules and thresholds, "
        "for --rules), codesets (the medical code sets, for --codesets), edits (the safety-edit "
        "thresholds, for 'rxrisk edits --edits') or measures (the thresholds of the standard "
        "measures, for 'rxrisk measures --config').",
    )
    cs.add_argument(
        "name",
        choices=tuple(CONFIG_FILES),
        metavar="NAME",
        help="rules, codesets, edits or measures",
    )
    c.set_defaults(func=cmd_config)


def _add_report(sub) -> None:
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
    _add_streaming_options(r)
    _add_run_options(r, threads=False)
    r.set_defaults(func=cmd_report)


def _add_measures(sub) -> None:
    m = sub.add_parser(
        "measures",
        help="standard opioid measures (PQA- and HEDIS-style rates) per period and product",
        description="Measure the standard opioid measures (high dose, multiple prescribers and "
        "pharmacies, opioid + benzodiazepine, continued use) for each period: a summary of "
        "rates per measure and product (--out), and optionally the member detail, the audit "
        "and an HTML report. Members count when continuously enrolled (--eligibility) and of "
        "age (--members).",
    )
    m.add_argument("pharmacy", metavar="PHARMACY", help=HELP_PHARMACY)
    m.add_argument(
        "--medical",
        metavar="FILE",
        help="medical events (long format); hospice/palliative, cancer and sickle-cell codes "
        "exclude members from the denominators",
    )
    m.add_argument(
        "--eligibility",
        required=True,
        metavar="FILE",
        help="enrollment spans: member_id, start_date, end_date (empty: open-ended), optional "
        "product; same file kinds as PHARMACY",
    )
    m.add_argument(
        "--members",
        required=True,
        metavar="FILE",
        help="member_id and birth_date; a member without a valid row is in no denominator",
    )
    when = m.add_mutually_exclusive_group(required=True)
    when.add_argument(
        "--year", metavar="Y[,Y...]", help="calendar years to measure, e.g. 2025 or 2024,2025"
    )
    when.add_argument(
        "--period",
        metavar="A:B[,A:B...]",
        help="periods to measure, both ends inclusive, YYYY-MM-DD or YYYYMMDD, e.g. "
        "2025-01-01:2025-06-30",
    )
    _add_config_options(
        m,
        rules_help="scoring rule file (TOML): its max_days_supply and factor_edition shape the "
        "claims as in 'rxrisk score'; default: the packaged one",
    )
    m.add_argument(
        "--config",
        metavar="FILE",
        help="measures file (TOML) with the thresholds of the measures; default: the packaged "
        "one, which 'rxrisk config show measures' prints",
    )
    m.add_argument(
        "--out",
        required=True,
        metavar="FILE",
        help="summary of rates per period, measure and product; format from extension: "
        ".parquet, .csv, .arrow",
    )
    m.add_argument(
        "--detail",
        metavar="FILE",
        help="member detail: one row per member and period eligible for any measure "
        "(.parquet, .csv, .arrow)",
    )
    m.add_argument(
        "--report", metavar="DIR", help="HTML report of the rates: DIR/index.html (DIR is made)"
    )
    m.add_argument(
        "--quarantine", metavar="FILE", help="write rejected rows (with reject_reason) here"
    )
    _add_streaming_options(m)
    _add_run_options(m)
    m.set_defaults(func=cmd_measures)


def _add_compile(sub) -> None:
    c = sub.add_parser(
        "compile",
        help="compile every kernel now, so that no later run waits for it",
        description="Compile and cache every numba kernel now, by running each claims command "
        "once on a small generated book (about a minute on 2 cores). A wheel ships its kernels "
        "compiled for the machine it was built on; run this after installing on another CPU, "
        "with another numba, or in a container image build. --shipped writes into the "
        "package's own cache folder, which every user of the install reads, even read-only.",
    )
    c.add_argument(
        "--shipped",
        action="store_true",
        help="compile into the cache folder inside the installed package (needs write access "
        "to the install), instead of the user cache folder",
    )
    c.add_argument("--quiet", action="store_true", help="no progress lines")
    c.set_defaults(func=cmd_compile)
