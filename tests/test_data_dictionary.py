"""docs/data-dictionary.md names every output column and audit key the engine produces.

The dictionary's tables are parsed (first cell of each row of a table whose first header cell
is ``column`` or ``key``; every backticked name in it counts), and compared with what the code
actually writes for a small book: the member table of the default rules, the edits table, the
report's two lists, the quarantine file and both audits. A column or key the code adds without
documenting it fails here. The docs must also stand on their own (no citation of the contract
document the project was built from).
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import rxrisk
from rxrisk.config.rules import load_rules
from rxrisk.config.schema import metric_fields
from rxrisk.edits import EDIT_NAMES, replay_edits
from rxrisk.ingest.sources import MEDICAL_REQUIRED, PHARMACY_OPTIONAL, PHARMACY_REQUIRED
from rxrisk.reports import write_reports

REPO = Path(__file__).resolve().parents[1]
DICTIONARY = REPO / "docs" / "data-dictionary.md"
AS_OF = dt.date(2025, 12, 31)

OXYCODONE_30 = "00054466525"  # Roxicodone 30 mg tablet
ALPRAZOLAM_025 = "00009002901"  # Xanax 0.25 mg tablet
UNTRACKED = "99999999999"


# --------------------------------------------------------------------------- markdown parsing


def _sections(text: str) -> list[tuple[int, str, list[str]]]:
    """(level, title, lines up to the next heading) for every heading."""
    out: list[tuple[int, str, list[str]]] = []
    for line in text.splitlines():
        m = re.match(r"^(#{1,6})\s+(.*)$", line)
        if m:
            out.append((len(m.group(1)), m.group(2).strip(), []))
        elif out:
            out[-1][2].append(line)
    return out


def _section_lines(title_prefix: str) -> list[str]:
    """Lines of the first heading starting with ``title_prefix`` and of its sub-headings."""
    secs = _sections(DICTIONARY.read_text(encoding="utf-8"))
    for i, (level, title, lines) in enumerate(secs):
        if title.startswith(title_prefix):
            out = list(lines)
            for lvl, _, more in secs[i + 1 :]:
                if lvl <= level:
                    break
                out += more
            return out
    raise AssertionError(f"{DICTIONARY.name}: no section '{title_prefix}'")


def _names(lines: list[str], first_header: str) -> set[str]:
    """Backticked names in the first cell of the rows of tables headed ``| first_header |``."""
    names: set[str] = set()
    block: list[str] = []
    for line in [*lines, ""]:
        if line.startswith("|"):
            block.append(line)
            continue
        if block and block[0].split("|")[1].strip() == first_header:
            for row in block[2:]:
                names.update(re.findall(r"`([^`]+)`", row.split("|")[1]))
        block = []
    return names


def documented(title_prefix: str, first_header: str = "column") -> set[str]:
    names = _names(_section_lines(title_prefix), first_header)
    assert names, f"{DICTIONARY.name}: section '{title_prefix}' names nothing"
    return names


# --------------------------------------------------------------------------- a small book


def _pharmacy() -> pa.Table:
    """M1: four opioid fills from four prescribers at four pharmacies (multi_provider) plus a
    benzodiazepine; M2: one fill and a reversal; one untracked and one bad-NDC row."""
    d = dt.date
    rows = [
        ("M1", d(2025, 10, 1), OXYCODONE_30, 120.0, 30, "P1", "F1", "C1", "paid"),
        ("M1", d(2025, 10, 20), OXYCODONE_30, 120.0, 30, "P2", "F2", "C2", "P"),
        ("M1", d(2025, 11, 10), OXYCODONE_30, 120.0, 30, "P3", "F3", "C3", ""),
        ("M1", d(2025, 12, 1), OXYCODONE_30, 120.0, 30, "P4", "F4", "C4", "B1"),
        ("M1", d(2025, 11, 1), ALPRAZOLAM_025, 60.0, 30, "P5", "F1", "C5", None),
        ("M2", d(2025, 9, 1), OXYCODONE_30, 60.0, 30, "P1", "F1", "C6", "paid"),
        ("M2", d(2025, 9, 2), OXYCODONE_30, 60.0, 30, "P1", "F1", "C6", "reversed"),
        ("M2", d(2025, 9, 3), UNTRACKED, 10.0, 10, "P1", "F1", "C7", "paid"),
        ("M3", d(2025, 9, 3), "not-an-ndc", 10.0, 10, "P1", "F1", "C8", "paid"),
    ]
    cols = list(zip(*rows, strict=True))
    names = (*PHARMACY_REQUIRED, *PHARMACY_OPTIONAL)  # the order of the tuples above
    types = {"fill_date": pa.date32(), "quantity": pa.float64(), "days_supply": pa.int32()}
    return pa.table(
        {n: pa.array(c, types.get(n, pa.string())) for n, c in zip(names, cols, strict=True)}
    )


def _medical() -> pa.Table:
    return pa.table(
        {
            "member_id": ["M1", "M2", "M2", "M3"],
            "service_date": pa.array(
                [
                    dt.date(2025, 12, 20),
                    dt.date(2025, 6, 1),
                    dt.date(2025, 6, 2),
                    dt.date(2025, 6, 3),
                ],
                pa.date32(),
            ),
            "code_type": ["CPT", "ICD10CM", "ICD10CM", "ICD9CM"],
            "code": ["99283", "F11.20", "Z00.00", "965.09"],
        }
    )


@pytest.fixture(scope="module")
def scored() -> rxrisk.Result:
    return rxrisk.score(_pharmacy(), _medical(), as_of=AS_OF, quarantine=True)


@pytest.fixture(scope="module")
def edits_result():
    return replay_edits(_pharmacy(), _medical())


def _flat_keys(obj: dict, prefix: str = "") -> list[str]:
    """Dotted paths of every leaf (a non-dict value, or an empty dict)."""
    out = []
    for k, v in obj.items():
        path = f"{prefix}{k}"
        if isinstance(v, dict) and v:
            out += _flat_keys(v, path + ".")
        else:
            out.append(path)
    return out


def _pattern(name: str) -> str:
    """A documented audit key as a regex: ``<placeholder>`` matches one segment."""
    parts = re.split(r"(<[^>]+>)", name)
    return "".join("[^.]+" if p.startswith("<") else re.escape(p) for p in parts)


def _covered(path: str, patterns: set[str]) -> bool:
    for name in patterns:
        rx = _pattern(name)
        if re.fullmatch(rx, path):
            return True
        # an empty object (an edit without settings) is the prefix of a documented key
        segments = name.split(".")
        for k in range(1, len(segments)):
            if re.fullmatch(_pattern(".".join(segments[:k])), path):
                return True
    return False


# --------------------------------------------------------------------------- the tests


def test_member_table_columns_are_named(scored) -> None:
    names = documented("Member table")
    rules = load_rules()
    m = rules.metrics
    expected = [
        "member_id",
        "as_of",
        *(f.name for f in metric_fields(m.windows, m.ed_lookback_days, m.dx_lookback_days)),
        *(f.name for f in rules.flags),
        "reasons",
    ]
    assert scored.members.column_names == expected  # the schema module is the whole table
    missing = [c for c in expected if c not in names]
    assert not missing, f"member-table columns missing from {DICTIONARY.name}: {missing}"


def test_edits_columns_are_named(edits_result) -> None:
    names = documented("Edits table")
    columns = edits_result.claims.column_names
    assert edits_result.claims.num_rows > 0
    assert set(EDIT_NAMES) <= set(columns)
    assert set(columns) == names, (
        f"{DICTIONARY.name} edits table: undocumented {sorted(set(columns) - names)}, "
        f"documented but absent {sorted(names - set(columns))}"
    )


def test_report_list_columns_are_named(scored, tmp_path: Path) -> None:
    summary = write_reports(scored.members, _pharmacy(), _medical(), out_dir=tmp_path / "report")
    assert summary["outreach_rows"] > 0 and summary["lock_in_rows"] > 0, summary
    for name in ("outreach", "lock_in"):
        columns = pq.read_schema(tmp_path / "report" / f"{name}.parquet").names
        names = documented(f"`{name}.parquet`")
        assert set(columns) == names, (
            f"{DICTIONARY.name} {name}: undocumented {sorted(set(columns) - names)}, "
            f"documented but absent {sorted(names - set(columns))}"
        )


def test_quarantine_columns_are_named(scored) -> None:
    names = documented("Quarantine file")
    q = scored.quarantine
    assert q is not None and q.num_rows >= 2
    inputs = set(_pharmacy().column_names) | set(_medical().column_names)
    own = [c for c in q.column_names if c not in inputs]
    assert set(own) == names, (own, names)
    assert set(q.column_names) - set(own) == inputs


def test_input_columns_are_named() -> None:
    pharmacy = documented("Pharmacy claims")
    medical = documented("Medical events")
    assert set(PHARMACY_REQUIRED) | set(PHARMACY_OPTIONAL) == pharmacy
    assert set(MEDICAL_REQUIRED) == medical


@pytest.mark.parametrize("which", ["score", "edits"])
def test_audit_keys_are_named(which: str, scored, edits_result) -> None:
    names = documented("Audit", "key")
    audit = scored.audit if which == "score" else edits_result.audit
    assert "warnings" in audit and audit["warnings"], "the small book has a 1%+ reason"
    missing = [k for k in _flat_keys(audit) if not _covered(k, names)]
    assert not missing, f"{which} audit keys missing from {DICTIONARY.name}: {missing}"


def test_documented_audit_keys_exist(scored, edits_result) -> None:
    """No documented key is a typo: each one matches a key of the score or edits audit (the
    ``seconds`` stages are a placeholder)."""
    names = documented("Audit", "key")
    keys = _flat_keys(scored.audit) + _flat_keys(edits_result.audit)
    absent = [n for n in names if not any(re.fullmatch(_pattern(n), k) for k in keys)]
    assert not absent, absent


def test_docs_stand_on_their_own() -> None:
    """README and docs explain the contract in the project's own words: no citation of the
    contract document (SPEC sections) and no path outside the repository."""
    bad = []
    for path in [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]:
        for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if re.search(r"\bSPEC\b|\.\./shared|shared/(SPEC|ARCHITECTURE)", line):
                bad.append(f"{path.relative_to(REPO)}:{i}: {line.strip()[:80]}")
    assert not bad, "\n".join(bad)


# --------------------------------------------------------------------------- rxrisk measures


def test_measures_detail_and_summary_columns_are_named() -> None:
    from rxrisk.quality.detail import DETAIL_COLUMNS
    from rxrisk.quality.summary import SUMMARY_SCHEMA

    for title, columns in (
        ("Member detail", list(DETAIL_COLUMNS)),
        ("Measures summary", SUMMARY_SCHEMA.names),
    ):
        names = documented(title)
        assert set(columns) == names, (
            f"{DICTIONARY.name} {title}: undocumented {sorted(set(columns) - names)}, "
            f"documented but absent {sorted(names - set(columns))}"
        )


def test_measures_inputs_are_named() -> None:
    from rxrisk.ingest.sources import (
        ELIGIBILITY_OPTIONAL,
        ELIGIBILITY_REQUIRED,
        MEMBERS_REQUIRED,
    )
    from rxrisk.quality.enrollment_checks import ELIGIBILITY_REASONS, MEMBERS_REASONS

    assert documented("Eligibility input") == set(ELIGIBILITY_REQUIRED + ELIGIBILITY_OPTIONAL)
    assert documented("Members input") == set(MEMBERS_REQUIRED)
    lines = "\n".join(_section_lines("Eligibility input") + _section_lines("Members input"))
    for reason in ELIGIBILITY_REASONS + MEMBERS_REASONS:
        assert f"(`{reason}`)" in lines or f"`{reason}`: a row" in lines, reason


def test_measures_config_keys_and_defaults_are_named() -> None:
    """Every key of the measures config is in the table, in its table, with its default."""
    from rxrisk.quality.settings import TABLE_OF, load_measure_settings

    rows = {}
    for line in _section_lines("Measures config"):
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("|") and len(cells) == 4 and cells[0].startswith("`"):
            rows[cells[0].strip("`")] = (cells[1].strip("`[]"), cells[2])
    defaults = load_measure_settings().values()
    assert set(rows) == set(defaults)
    for key, value in defaults.items():
        table, shown = rows[key]
        assert table == TABLE_OF[key], key
        assert float(shown) == value, (key, shown, value)


def test_measures_audit_keys_are_named() -> None:
    """Every key of a measures audit is documented (its pharmacy and medical blocks in the
    audit of `score`), and every documented measures key exists."""
    span = pa.array([dt.date(2024, 1, 1)] * 2, pa.date32())
    eligibility = pa.table(
        {"member_id": ["M1", "M2"], "start_date": span, "end_date": pa.nulls(2, pa.date32())}
    )
    birth = pa.array([dt.date(1970, 1, 1)] * 2, pa.date32())
    members = pa.table({"member_id": ["M1", "M2"], "birth_date": birth})
    result = rxrisk.measures(
        _pharmacy(), _medical(), eligibility=eligibility, members=members, periods=2025
    )
    assert result.detail.num_rows > 0
    score_keys = documented("Audit", "key")
    own = documented("Measures audit", "key")
    keys = _flat_keys(result.audit)
    for key in keys:
        names = score_keys if key.split(".")[0] in ("pharmacy", "medical") else own
        assert _covered(key, names), f"measures audit key missing from {DICTIONARY.name}: {key}"
    absent = [
        n for n in own if "*" not in n and not any(re.fullmatch(_pattern(n), k) for k in keys)
    ]
    assert not absent, absent
