"""The optional average-MME definitions (``[metrics] mme_definitions``): hand-computed values at
the edges (engine and naive oracle), column placement, rule-file errors, flags over the new
columns, and the same bytes in memory and streamed. (The random comparison with the oracle is
in test_score_vs_naive.py, Spark in test_spark.py.)"""

from __future__ import annotations

import io

import msgspec
import pyarrow.parquet as pq
import pytest

import rxrisk
from rxrisk.cli import main
from rxrisk.config.resources import data_path
from rxrisk.config.rules import Flag, load_rules
from rxrisk.config.schema import MME_DEFINITIONS, metric_fields
from rxrisk.engines.stream import StreamOptions
from rxrisk.errors import InputError

from cases import (
    ALPRAZ,
    BUP_PATCH,
    FENT,
    OXY,
    combined_book,
    day,
    fill,
    medical_table,
    pharmacy_table,
    reference_dict,
    reference_table,
)
from naive import naive_score

ALL = ["window", "supply", "fill"]


def _rules(definitions, flags=None):
    """The default rule set with these definitions (and these flags instead, when given)."""
    rules = load_rules()
    metrics = msgspec.structs.replace(rules.metrics, mme_definitions=list(definitions))
    changes = {"metrics": metrics} if flags is None else {"metrics": metrics, "flags": flags}
    return load_rules(msgspec.structs.replace(rules, **changes))


# Oxycodone 10 mg (factor 1.5): quantity q over ds days is 15 q / ds MME a day. Fentanyl
# 25 mcg/hr patches (factor 7.2, 3 days a patch): 10 patches cover 30 days at 60 MME a day.
HAND_ROWS = [
    # E: a fill on the 90-day window's first day (30 MME, A-89 .. A-60) and one the day before
    # (60 MME, A-90 .. A-61)
    fill("E", -89, OXY, 60.0, 30),
    fill("E", -90, OXY, 120.0, 30),
    # P: a patch whose covered days (30) are not its input days_supply (28), and a 10-day fill
    # of 30 MME (A-50 .. A-41)
    fill("P", -9, FENT, 10.0, 28),
    fill("P", -50, OXY, 20.0, 10),
    # O: an early refill: 30 MME on A-40 .. A-11, then 60 MME on A-20 .. A+9 (10 days overlap)
    fill("O", -40, OXY, 60.0, 30),
    fill("O", -20, OXY, 120.0, 30),
    # N: no fill in the 90-day window, but a fill before it covers 19 of its days (30 MME)
    fill("N", -100, OXY, 60.0, 30),
    # Z: an opioid patch without an MME factor (4 x 7 = 28 days, daily MME 0) and 30 MME
    fill("Z", -27, BUP_PATCH, 4.0, 30),
    fill("Z", -10, OXY, 60.0, 30),
    # B: a benzodiazepine only
    fill("B", -5, ALPRAZ, 30.0, 30),
]

#: (mme_avg_window, mme_avg_supply, mme_avg_fill) per member and window, by hand.
HAND = {
    "E": {
        90: (2640 / 90, 30.0, 30.0),  # 29 days at 90 and one at 30; only the A-89 fill
        180: (2700 / 180, (30 * 30 + 60 * 30) / 60, 45.0),
        365: (2700 / 365, 45.0, 45.0),
    },
    "P": {w: ((10 * 60 + 10 * 30) / w, (60 * 30 + 30 * 10) / 40, 45.0) for w in (90, 180, 365)},
    "O": {w: ((20 * 30 + 10 * 90 + 11 * 60) / w, 45.0, 45.0) for w in (90, 180, 365)},
    "N": {90: (19 * 30 / 90, 0.0, 0.0), 180: (30 * 30 / 180, 30.0, 30.0), 365: (900 / 365, 30, 30)},
    "Z": {w: (11 * 30 / w, 30 * 30 / (28 + 30), 15.0) for w in (90, 180, 365)},
    "B": {w: (0.0, 0.0, 0.0) for w in (90, 180, 365)},
}


def _hand_rows(rows: list[dict]) -> dict[str, dict]:
    return {row["member_id"]: row for row in rows}


def _assert_hand_values(rows: dict[str, dict]) -> None:
    assert sorted(rows) == sorted(HAND)
    for member, windows in HAND.items():
        for w, values in windows.items():
            got = [rows[member][f"mme_avg_{name}_{w}d"] for name in ALL]
            assert got == pytest.approx(values, rel=1e-12, abs=1e-12), (member, w)


def test_hand_cases_engine():
    result = rxrisk.score(
        pharmacy_table(HAND_ROWS), as_of=day(0), reference=reference_table(), rules=_rules(ALL)
    )
    rows = _hand_rows(result.members.to_pylist())
    _assert_hand_values(rows)
    assert rows["O"]["mme_avg_90d"] == pytest.approx(2160 / 41)  # the covered-days definition


def test_hand_cases_naive():
    config = {"mme_definitions": tuple(ALL)}
    rows = _hand_rows(naive_score(HAND_ROWS, None, [day(0)], reference_dict(), config).members)
    _assert_hand_values(rows)


def test_columns_follow_each_window_average_in_a_fixed_order():
    plain = rxrisk.score(pharmacy_table(HAND_ROWS), as_of=day(0), reference=reference_table())
    for definitions in (["fill", "window"], ["window", "fill"]):
        got = rxrisk.score(
            pharmacy_table(HAND_ROWS),
            as_of=day(0),
            reference=reference_table(),
            rules=_rules(definitions),
        ).members
        added = [c for c in got.column_names if c not in plain.members.column_names]
        assert added == [f"mme_avg_{n}_{w}d" for w in (90, 180, 365) for n in ("window", "fill")]
        for w in (90, 180, 365):
            at = got.column_names.index(f"mme_avg_{w}d")
            assert got.column_names[at + 1 : at + 3] == [
                f"mme_avg_window_{w}d",
                f"mme_avg_fill_{w}d",
            ]
            assert got.schema.field(f"mme_avg_fill_{w}d").type == "double"
        assert got.drop_columns(added).equals(plain.members)  # nothing else changes


def test_no_definitions_by_default():
    assert load_rules().metrics.mme_definitions == []
    members = rxrisk.score(pharmacy_table(HAND_ROWS), as_of=day(0), reference=reference_table())
    assert not [
        c for c in members.members.column_names if c.startswith("mme_avg_") and c.count("_") > 2
    ]


def test_digest_ignores_the_order_and_an_empty_list():
    default = load_rules().digest()
    assert _rules([]).digest() == default
    assert _rules(["supply", "window"]).digest() == _rules(["window", "supply"]).digest() != default


def _rules_file(tmp_path, line: str):
    path = tmp_path / "rules.toml"
    text = data_path("rules", "default.toml").read_text()
    assert "mme_definitions = []" in text
    path.write_text(text.replace("mme_definitions = []", line))
    return path


@pytest.mark.parametrize(
    ("line", "needle"),
    [
        (
            'mme_definitions = ["window", "daily"]',
            "[metrics] mme_definitions: unknown definition 'daily'; use any of window, supply, fill",
        ),
        (
            'mme_definitions = ["fill", "window", "fill"]',
            "[metrics] mme_definitions: 'fill' is listed twice; name each definition once "
            "(any of window, supply, fill)",
        ),
        ('mme_definitions = "window"', "field metrics.mme_definitions: Expected `array`"),
        ("mme_definitions = [1]", "field metrics.mme_definitions[0]: Expected `str`"),
    ],
)
def test_rule_file_errors(tmp_path, capsys, small_book, line, needle):
    path = _rules_file(tmp_path, line)
    with pytest.raises(InputError) as err:
        load_rules(path)
    assert str(err.value).startswith(f"rules file {path}: ") and needle in str(err.value)
    # the CLI: exit 2, that one line
    ph, _ = small_book
    pq.write_table(ph, tmp_path / "ph.parquet")
    argv = ["score", str(tmp_path / "ph.parquet"), "--as-of", "2025-12-31"]
    rc = main([*argv, "--rules", str(path), "--out", str(tmp_path / "out.parquet"), "--quiet"])
    captured = capsys.readouterr()
    assert rc == 2 and captured.err.count("\n") == 1 and needle in captured.err


def test_flags_may_use_the_columns_of_the_definitions_asked_for():
    flags = [Flag("steady", "mme_avg_supply_90d >= 45 and not mme_avg_window_90d >= 20")]
    result = rxrisk.score(
        pharmacy_table(HAND_ROWS),
        as_of=day(0),
        reference=reference_table(),
        rules=_rules(["window", "supply"], flags),
    )
    steady = {r["member_id"]: r["steady"] for r in result.members.to_pylist()}
    # supply 90d: E 30, P 52.5, O 45, N 0, Z 15.5, B 0; window 90d: P 10, O 24
    assert steady == {"B": False, "E": False, "N": False, "O": False, "P": True, "Z": False}
    with pytest.raises(InputError, match="unknown column or flag 'mme_avg_supply_90d'"):
        _rules(["window"], flags)


def _parquet_bytes(table) -> bytes:
    buf = io.BytesIO()
    pq.write_table(table, buf, compression="zstd")
    return buf.getvalue()


@pytest.mark.parametrize(
    "options",
    [
        StreamOptions(batch_rows=7, partitions=3, claim_partitions=4, min_partition_rows=1),
        StreamOptions(batch_rows=13, partitions=1, claim_partitions=1, memory_bytes=2000),
    ],
    ids=["partitions", "spilled"],
)
def test_streamed_table_is_byte_identical(options, tmp_path):
    case = combined_book()
    kw = dict(
        as_of=list(case.as_of),
        reference=reference_table(),
        rules=_rules(["supply", "fill", "window"]),
    )
    pharmacy, medical = pharmacy_table(case.pharmacy), medical_table(case.medical)
    want = rxrisk.score(pharmacy, medical, **kw)
    assert "mme_avg_supply_365d" in want.members.column_names
    opts = StreamOptions(**{**options.__dict__, "spill_dir": str(tmp_path)})
    got = rxrisk.score(pharmacy, medical, stream=opts, **kw)
    assert got.members.schema == want.members.schema
    assert _parquet_bytes(got.members) == _parquet_bytes(want.members)
    assert got.audit["config_digest"] == want.audit["config_digest"]


def test_every_column_is_in_the_data_dictionary():
    from test_data_dictionary import documented

    m = load_rules().metrics
    fields = metric_fields(m.windows, m.ed_lookback_days, m.dx_lookback_days, MME_DEFINITIONS)
    missing = [f.name for f in fields if f.name not in documented("Member table")]
    assert missing == []
