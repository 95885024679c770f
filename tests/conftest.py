"""Shared fixtures: small hand-made claim tables built on real reference NDCs."""

import datetime as dt
import os

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from rxrisk.config.reference import load_reference

# The suite's books are small, so under the default ``auto`` their kernels would run as Python
# (the python tier): the suite holds the compiled kernels to their references instead. The
# tests of the python tier set the tier themselves (tests/test_kernel_tier.py).
os.environ.setdefault("RXRISK_KERNELS", "compiled")


def _first_ndc(ref, **equal):
    mask = None
    for col, value in equal.items():
        m = pc.equal(ref[col], value)
        mask = m if mask is None else pc.and_(mask, m)
    return ref.filter(mask)["ndc"][0].as_py()


@pytest.fixture(scope="session")
def ndcs():
    """Real NDCs by role: oxycodone 30 mg tablet, alprazolam, an untracked one."""
    ref = load_reference()
    return {
        "oxy30": _first_ndc(ref, ingredient="oxycodone", strength_per_unit=30.0, unit="MG"),
        "benzo": _first_ndc(ref, drug_class="benzodiazepine"),
        "gaba": _first_ndc(ref, drug_class="gabapentinoid"),
        "untracked": "99999999999",
    }


@pytest.fixture
def small_book(ndcs):
    """A few members with one of every pharmacy bucket, and medical rows."""
    d = dt.date
    oxy, bz = ndcs["oxy30"], ndcs["benzo"]
    pharmacy = pa.table(
        {
            "member_id": ["A", "A", " A ", "B", "B", "C", "C", "", "D", "D"],
            "fill_date": [
                d(2025, 10, 1),
                d(2025, 11, 1),
                d(2025, 11, 5),
                d(2025, 12, 1),
                d(2025, 12, 1),
                d(2025, 9, 1),
                d(2025, 9, 2),
                d(2025, 9, 2),
                d(2025, 9, 3),
                None,
            ],
            "ndc": [oxy, oxy, bz, oxy, oxy, oxy, "99999999999", oxy, "12-34", oxy],
            "quantity": [120.0, 120.0, 30.0, 10.0, -10.0, 5.0, 1.0, 1.0, 1.0, 1.0],
            "days_supply": [30, 30, 30, 5, -5, 5, 1, 1, 1, 1],
            "prescriber_id": ["p1", "p2", "p3", None, None, "p1", "p1", "p1", "p1", "p1"],
            "pharmacy_id": ["r1", "r1", "r2", "r3", "r3", "r1", "r1", "r1", "r1", "r1"],
            "claim_id": ["c1", "c2", "c3", "c4", "c4", "c5", "c6", "c7", "c8", "c9"],
            "claim_status": ["paid", "P", None, "paid", "R", "", "paid", "paid", "paid", "paid"],
        }
    )
    medical = pa.table(
        {
            "member_id": ["A", "E", "E", None],
            "service_date": [d(2025, 12, 20), d(2025, 6, 1), d(2025, 6, 2), d(2025, 6, 2)],
            "code_type": ["CPT", "icd10cm", "ICD10CM", "CPT"],
            "code": ["99284", "C50.911", "I10", "99284"],
        }
    )
    return pharmacy, medical
