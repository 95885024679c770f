"""Validation reads only the NDC (pharmacy) or the code type and code (medical) of every row:
the other checks run on the tracked / classified rows alone, with the same buckets."""

import datetime as dt

import numpy as np
import pyarrow as pa
import pytest

from rxrisk.config.settings import load_config
from rxrisk.ingest import validate
from rxrisk.ingest.conform import conform_medical, conform_pharmacy
from rxrisk.ingest.drugs import DrugTable
from rxrisk.ingest.sources import Source

RAW_NDCS = [
    "12345678901",
    "12345-6789-01",
    "1234-5678-90",
    None,
    "12345-678-90",
    "12345-6789-0",
    "12 345 6789 01",
    "1234567890",
    "98765432109",
    "12345-67890-1",
    "",
    "1234A678901",
]


def test_normalize_ndc_of_mixed_forms_matches_each_value_alone():
    """11-digit values take the short path; the others keep their place in the result."""
    alone = [validate.normalize_ndc(pa.array([v], pa.string()))[0].as_py() for v in RAW_NDCS]
    together = validate.normalize_ndc(pa.array(RAW_NDCS, pa.string())).to_pylist()
    assert together == alone
    assert together[:4] == ["12345678901", "12345678901", "01234567890", None]


@pytest.fixture
def pharmacy(ndcs):
    """Tracked rows with each row-local problem, and untracked / bad-NDC rows with the same
    problems (which must not be looked at)."""
    d = dt.date(2025, 10, 1)
    oxy = ndcs["oxy30"]
    table = pa.table(
        {
            "member_id": ["A", " ", "B", "C", "D", " ", "E", "F", "G"],
            "fill_date": [d, d, None, d, d, d, None, d, d],
            "ndc": [oxy, oxy, oxy, oxy, oxy, "99999999999", "99999999999", "12-34", oxy],
            "quantity": [30.0, 30.0, 30.0, 30.0, -1.0, 30.0, -1.0, 30.0, 30.0],
            "days_supply": [30, 30, 30, 30, 30, 30, 0, 30, 30],
            "claim_id": ["c1", "c2", "c3", "c4", "c5", "c6", "c7", "c8", "c9"],
            "claim_status": ["paid", "paid", "paid", "bogus", "paid", "paid", "bogus", "R", "R"],
        }
    )
    return conform_pharmacy(Source(table, "pharmacy"))


def test_pharmacy_row_checks_read_only_tracked_rows(pharmacy, monkeypatch):
    seen = []
    blank = validate.blank_mask
    monkeypatch.setattr(validate, "blank_mask", lambda col: seen.append(len(col)) or blank(col))
    drugs = DrugTable.from_reference(load_config().reference)
    checks = validate.check_pharmacy(pharmacy, drugs, max_days_supply=365)
    tracked = [0, 1, 2, 3, 4, 8]
    assert seen == [len(tracked)]
    assert checks.scope.tolist() == tracked
    assert checks.scoped.claim_id.to_pylist() == [f"c{i + 1}" for i in tracked]
    names = validate.PHARMACY_REASONS
    shown = [names[r] if r >= 0 else None for r in checks.reason]
    assert shown == [None, "member_id", "fill_date", "claim_status", "quantity"] + [
        None,
        None,
        "ndc",
        None,
    ]
    assert checks.untracked.tolist() == [False] * 5 + [True, True, False, False]
    assert checks.paid_ok.tolist() == [True] + [False] * 8
    assert checks.is_reversal.tolist() == [False] * 8 + [True]


def test_medical_member_and_date_checks_read_only_classified_rows(monkeypatch):
    d = dt.date(2025, 6, 1)
    table = pa.table(
        {
            "member_id": ["A", " ", "B", " ", None, "C"],
            "service_date": [d, d, None, None, d, d],
            "code_type": ["CPT", "CPT", "icd-10-cm", "CPT", "bogus", "CPT"],
            "code": ["99284", "99284", "C50.911", "00000", "99284", " "],
        }
    )
    cols = conform_medical(Source(table, "medical"))
    seen = []
    blank = validate.blank_mask
    monkeypatch.setattr(validate, "blank_mask", lambda col: seen.append(len(col)) or blank(col))
    rows = validate.validate_medical(cols, load_config().codesets)
    assert seen == [3]  # rows 0-2 are classified; 3 is not, 4 and 5 are rejected first
    names = validate.MEDICAL_REASONS
    shown = [names[r] if r >= 0 else None for r in rows.reason]
    assert shown == [None, "member_id", "service_date", None, "code_type", "code"]
    buckets = [validate.MEDICAL_BUCKETS[b] for b in rows.bucket]
    assert buckets == ["used", "rejected", "rejected", "unclassified", "rejected", "rejected"]
    assert (rows.mask[1:] == 0).all() and rows.mask[0] != 0
    assert rows.mask.dtype == np.uint8 and rows.reason.dtype == np.int8
