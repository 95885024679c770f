"""Hostile inputs for tests/test_hostile.py.

Three parts:

- value cases: every column's odd, malformed and edge values, each with the outcome the
  engine promises (a valid value, or the rejection reason of the row);
- an independent oracle of the row buckets (pharmacy and medical, out-of-scope rows first),
  the in-scope counts, the warning and the stop of loud intake;
- the CLI runner and the checks every run must pass: exit code 0 or 2, one error line, no
  traceback, at most 3 member-data values per message, no stray file, inputs unchanged.

Member data is planted as unique sentinel tokens (``ZQ`` + a letter + 4 digits for text, and
integers ``98765xxxxx`` for integer member ids) so a test can count how many values of
member data a message shows.
"""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import hashlib
import io
import math
import os
import re
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.ipc as ipc
import pyarrow.parquet as pq
from hypothesis import strategies as st

from rxrisk.cli import main
from rxrisk.config.reference import load_reference

# ------------------------------------------------------------------------------- sentinels

SENTINEL_RE = re.compile(r"ZQ[A-Z][0-9]{4}|98765[0-9]{5}")
#: Values no message may show: member ids (the generated member-id rejections are all blank
#: ids, so a message has no member id to name), prescriber, pharmacy and claim ids, and the
#: extra column (``ZQZ``). Only offending values of the failing column may appear (dates
#: ``ZQD``/``ZQE``, NDCs ``ZQN``, statuses ``ZQS``, code types ``ZQT``...).
NEVER_SHOWN_RE = re.compile(r"ZQ[MPRCZ][0-9]{4}|98765[0-9]{5}")
INT_MEMBER_BASE = 9_876_500_000


def member_token(i: int) -> str:
    return f"ZQM{i:04d}"


def sentinels(text: str) -> set[str]:
    """The distinct planted member-data values in ``text``."""
    return set(SENTINEL_RE.findall(text))


# ------------------------------------------------------------------------------- reference

_REF = load_reference()
REF_NDC = set(_REF.column("ndc").to_pylist())


def _ref_row(ndc: str) -> dict:
    return _REF.filter(pc.equal(_REF["ndc"], ndc)).to_pylist()[0]


def _first(**equal) -> str:
    mask = None
    for col, value in equal.items():
        m = pc.equal(_REF[col], value)
        mask = m if mask is None else pc.and_(mask, m)
    return _REF.filter(mask)["ndc"][0].as_py()


ROLE_NDC = {
    "oxy30": _first(ingredient="oxycodone", strength_per_unit=30.0, unit="MG", long_acting=False),
    "patch": _first(ingredient="fentanyl", unit="MCG/HR", strength_per_unit=25.0),
    "benzo": _first(drug_class="benzodiazepine"),
    "gaba": _first(drug_class="gabapentinoid"),
    "mat": _first(drug_class="buprenorphine_mat"),
}


def drug(ndc11: str) -> dict:
    """strength, factor, days_per_unit and class of a reference NDC."""
    r = _ref_row(ndc11)
    return {
        "strength": r["strength_per_unit"],
        "factor": r["mme_factor"],
        "dpu": r["days_per_unit"],
        "class": r["drug_class"],
    }


def _with_zero_at(seg: int) -> str:
    """A tracked reference NDC whose segment ``seg`` (of 5-4-2) starts with a 0."""
    starts = {0: 0, 1: 5, 2: 9}[seg]
    for ndc in sorted(REF_NDC):
        if ndc[starts] == "0" and (seg != 0 or ndc[1] != "0"):
            return ndc
    raise AssertionError(seg)


def _ndc_cases() -> list[tuple[str | None, str | None]]:
    """(text as written, normalised NDC or None when rejected for ndc)."""
    cases = []
    for ndc in ROLE_NDC.values():
        cases += [
            (ndc, ndc),
            (f"{ndc[:5]}-{ndc[5:9]}-{ndc[9:]}", ndc),
            (f" {ndc[:5]} {ndc[5:9]} {ndc[9:]} ", ndc),
        ]
    a, b, c = _with_zero_at(0), _with_zero_at(1), _with_zero_at(2)
    cases += [
        (f"{a[1:5]}-{a[5:9]}-{a[9:]}", a),  # 4-4-2
        (f"{b[:5]}-{b[6:9]}-{b[9:]}", b),  # 5-3-2
        (f"{c[:5]}-{c[5:9]}-{c[10:]}", c),  # 5-4-1
    ]
    untracked = ["99999999999", "12345-6789-01", "1234-5678-90"]
    for u in untracked:
        norm = u.replace("-", "")
        if len(norm) == 10:
            norm = "0" + norm
        assert norm not in REF_NDC, u
        cases.append((u, norm))
    rejected = [
        None,
        "",
        "   ",
        "0005446652",  # 10 bare digits
        "000544665250",  # 12 digits
        "00054-4665-025",  # 5-4-3
        "0005-44665-25",
        "00054\u20104665\u201025",  # unicode hyphens
        "0005446652\uff15",  # a full-width digit
    ]
    cases += [(r, None) for r in rejected]
    return cases


NDC_CASES = _ndc_cases()

# ------------------------------------------------------------------------------ value cases
#
# A value case is (value, ok) where ok True means the value is valid for its column; for
# dates the valid value's day is given instead (a datetime.date).


def _d(y, m, d):
    return dt.date(y, m, d)


#: text dates: (text, date or None when rejected)
DATE_TEXT = [
    ("2025-03-15", _d(2025, 3, 15)),
    ("20250315", _d(2025, 3, 15)),
    (" 2025-11-30\t", _d(2025, 11, 30)),
    ("\r\n20251201 ", _d(2025, 12, 1)),
    ("2024-02-29", _d(2024, 2, 29)),
    ("0001-01-01", _d(1, 1, 1)),
    ("9999-12-31", _d(9999, 12, 31)),
    ("2025-02-30", None),
    ("2025-04-31", None),
    ("2023-02-29", None),
    ("20250230", None),
    ("0000-01-01", None),
    ("00000101", None),
    ("2025-13-01", None),
    ("2025-00-10", None),
    ("2025-12-00", None),
    ("2025/03/01", None),
    ("03/15/2025", None),
    ("2025-03-15T00:00:00", None),
    ("2025-3-5", None),
    ("", None),
    ("  ", None),
    (None, None),
]
#: integer dates (YYYYMMDD)
DATE_INT = [
    (20250315, _d(2025, 3, 15)),
    (20241231, _d(2024, 12, 31)),
    (20240229, _d(2024, 2, 29)),
    (20250230, None),
    (20250431, None),
    (20251301, None),
    (20250000, None),
    (99999999, None),
    (-20250101, None),
    (0, None),
    (None, None),
]
DATE_VALUES = [
    _d(2025, 12, 31),
    _d(2025, 10, 1),
    _d(2025, 6, 15),
    _d(2024, 12, 31),
    _d(1970, 1, 1),
    _d(1, 1, 1),
    _d(9999, 12, 31),
]

MEMBER_TEXT_BLANK = ["", "   ", "\t", " \r ", None]

QTY_FLOAT = [
    (30.0, True),
    (120.0, True),
    (0.5, True),
    (1e-300, True),
    (1e9, True),
    (1e300, True),
    (0.0, False),
    (-0.0, False),
    (-30.0, False),
    (math.nan, False),
    (math.inf, False),
    (-math.inf, False),
    (None, False),
]
QTY_TEXT = [
    ("30", True),
    (" 12.5 ", True),
    ("1e3", True),
    ("0", False),
    ("-3", False),
    ("nan", False),
    ("inf", False),
    ("", False),
    ("1,5", False),
    (None, False),
]
DS_INT = [
    (1, True),
    (30, True),
    (90, True),
    (365, True),
    (366, False),
    (0, False),
    (-5, False),
    (2**31 - 1, False),
    (2**62, False),
    (None, False),
]
DS_TEXT = [
    ("30", True),
    (" 7 ", True),
    ("365", True),
    ("366", False),
    ("0", False),
    ("-1", False),
    ("30.5", False),
    ("", False),
    ("99999999999999999999", False),
    (None, False),
]
DS_FLOAT = [
    (30.0, True),
    (7.0, True),
    (30.5, False),
    (math.nan, False),
    (math.inf, False),
    (1e20, False),
    (None, False),
]
#: claim_status: (text, "paid" / "reversed" / None when rejected)
STATUS = [
    ("paid", "paid"),
    ("PAID", "paid"),
    (" Paid ", "paid"),
    ("P", "paid"),
    ("p", "paid"),
    ("B1", "paid"),
    ("b1", "paid"),
    ("", "paid"),
    ("\t", "paid"),
    (None, "paid"),
    ("reversed", "reversed"),
    ("REVERSED", "reversed"),
    ("R", "reversed"),
    ("r", "reversed"),
    ("reversal", "reversed"),
    ("Reversal", "reversed"),
    ("B2", "reversed"),
    ("b2", "reversed"),
    ("void", None),
    ("B3", None),
    ("X", None),
    ("paid!", None),
    ("rev", None),
]
#: code_type spellings: (text, canonical or None when rejected)
CODE_TYPES = [
    ("ICD10CM", "ICD10CM"),
    ("icd10cm", "ICD10CM"),
    ("icd-10-cm", "ICD10CM"),
    (" ICD.10.CM ", "ICD10CM"),
    ("ICD10", "ICD10CM"),
    ("icd 10", "ICD10CM"),
    ("CPT", "CPT"),
    ("cpt4", "CPT"),
    ("CPT-4", "CPT"),
    ("HCPCS", "HCPCS"),
    ("hcpcs", "HCPCS"),
    ("REV", "REV"),
    ("revenue", "REV"),
    ("RC", "REV"),
    ("POS", "POS"),
    ("pos", "POS"),
    ("ICD9CM", None),
    ("ICD-11", None),
    ("DRG", None),
    ("", None),
    (None, None),
]
#: (canonical code type, code, in a category?)
CODES = [
    ("CPT", "99284", True),
    ("CPT", "99211", False),
    ("HCPCS", "99283", True),
    ("ICD10CM", "T40.2X1A", True),
    ("ICD10CM", "t402x1a", True),
    ("ICD10CM", "T40.2X5A", False),
    ("ICD10CM", "I10", False),
    ("ICD10CM", " F11.20 ", True),
    ("ICD10CM", "C50.911", True),
    ("ICD10CM", "D57.3", False),
    ("ICD10CM", "D57.1", True),
    ("ICD10CM", "Z51.5", True),
    ("REV", "450", True),
    ("REV", "0981", True),
    ("REV", "0100", False),
    ("POS", "23", True),
    ("POS", "11", False),
    ("POS", "34", True),
    ("CPT", "F11.20", False),
    ("ICD10CM", "99284", False),
]
CODE_BLANK = [None, "", "   "]


def _space(canonical: str) -> str:
    return "PROC" if canonical in ("CPT", "HCPCS") else canonical


def _code_key(canonical: str, code: str) -> tuple[str, str]:
    """How a code is compared within its type: ICD-10-CM upper-cased without dots, revenue
    codes as 4 digits, POS as 2, procedure codes upper-cased (CPT and HCPCS are one space)."""
    space = _space(canonical)
    c = code.strip(" \t\r\n")
    if space == "ICD10CM":
        c = c.upper().replace(".", "")
    elif space == "REV" and c.isdigit():
        c = c.zfill(4)
    elif space == "POS" and c.isdigit():
        c = c.zfill(2)
    else:
        c = c.upper()
    return space, c


_KNOWN_CODES = {_code_key(t, c): hit for t, c, hit in CODES}


def classified(canonical: str, code: str) -> bool:
    """Whether (canonical type, code) falls in a category (every code of :data:`CODES` under
    another type's space is in none)."""
    return _KNOWN_CODES.get(_code_key(canonical, code), False)


# -------------------------------------------------------------------------------- the rows


@dataclass
class PharmacyBook:
    """A generated pharmacy table: rows of cells, per-column kinds, expected outcomes."""

    kinds: dict  # column -> "string" | "int64" | "date32" | "timestamp" | "float64" | "null" | "absent"
    rows: list[dict]  # cell values
    expect: list[dict]  # per row: member, date, ndc (normalised or None), qty_ok, ds_ok, status
    layout: dict = field(default_factory=dict)  # see :func:`_layout`

    @property
    def n(self) -> int:
        return len(self.rows)


@dataclass
class MedicalBook:
    kinds: dict
    rows: list[dict]
    expect: list[dict]  # per row: member_ok, date, canonical, code_ok, classified
    layout: dict = field(default_factory=dict)

    @property
    def n(self) -> int:
        return len(self.rows)


PHARMACY_COLUMNS = (
    "member_id",
    "fill_date",
    "ndc",
    "quantity",
    "days_supply",
    "prescriber_id",
    "pharmacy_id",
    "claim_id",
    "claim_status",
)
MEDICAL_COLUMNS = ("member_id", "service_date", "code_type", "code")


def _mostly(draw, cases: list, good) -> tuple:
    """A case of ``cases``: three times in four one for which ``good(case)`` holds, else
    one for which it does not (so that rows reach every bucket, not only "rejected")."""
    want_good = draw(st.integers(0, 3)) > 0
    pool = [c for c in cases if bool(good(c)) == want_good] or cases
    return draw(st.sampled_from(pool))


def _ok(case) -> bool:
    return case[1] is not None and case[1] is not False


@st.composite
def _member_cell(draw, kind: str, row: int):
    if kind == "int64":
        if draw(st.integers(0, 9)) == 0:
            return None, False
        sign = draw(st.sampled_from([1, 1, 1, -1]))  # any integer is an id, negatives too
        return sign * (INT_MEMBER_BASE + draw(st.integers(0, 5))), True
    if draw(st.integers(0, 5)) == 0:
        return draw(st.sampled_from(MEMBER_TEXT_BLANK)), False
    token = member_token(draw(st.integers(0, 5)))
    pad = draw(st.sampled_from(["", " ", "\t", "  "]))
    return pad + token + draw(st.sampled_from(["", " ", "\r"])), True


@st.composite
def _date_cell(draw, kind: str, row: int, letter: str):
    if kind == "string":
        if draw(st.integers(0, 7)) == 0:  # an unparseable sentinel text
            return f"ZQ{letter}{row:04d}", None
        return _mostly(draw, DATE_TEXT, _ok)
    if kind == "int64":
        return _mostly(draw, DATE_INT, _ok)
    if draw(st.integers(0, 7)) == 0:
        return None, None
    day = draw(st.sampled_from(DATE_VALUES))
    if kind == "timestamp":
        hour = draw(st.integers(0, 23))
        return dt.datetime(day.year, day.month, day.day, hour, 30), day
    return day, day


def _qty_cases(kind):
    return {
        "float64": QTY_FLOAT,
        "string": QTY_TEXT,
        "int64": [(30, True), (0, False), (-5, False), (None, False)],
    }[kind]


def _ds_cases(kind):
    return {"int64": DS_INT, "string": DS_TEXT, "float64": DS_FLOAT}[kind]


EXTRA_KINDS = ("text", "list", "struct", "binary")


@st.composite
def _layout(draw, csv_safe: bool) -> dict:
    """How a table is laid out beyond its values: the Arrow type of its text columns, its
    chunking, and an extra column the engine must ignore (``notes``; nested or binary only
    in typed formats)."""
    return {
        "text": draw(st.sampled_from(["string", "string", "large_string", "dictionary"])),
        "chunk": draw(st.sampled_from([None, None, 1, 3])),
        "extra": draw(
            st.sampled_from([None, None, "text"] if csv_safe else [None, None, *EXTRA_KINDS])
        ),
    }


def _no_newlines(cell: dict) -> dict:
    """CR and LF inside a CSV cell would need multi-line parsing: write them as spaces,
    which trimming treats alike."""
    return {
        k: v.replace("\r", " ").replace("\n", " ") if isinstance(v, str) else v
        for k, v in cell.items()
    }


@st.composite
def pharmacy_books(draw, *, max_rows: int = 24, csv_safe: bool = False, min_rows: int = 0):
    """A pharmacy table of hostile rows and the outcome of each.

    ``csv_safe`` keeps to kinds and values that survive a CSV round trip unchanged in
    meaning (text everywhere; no float days supply).
    """
    kinds = {
        "member_id": draw(st.sampled_from(["string", "int64"])),
        "fill_date": draw(st.sampled_from(["string", "int64", "date32", "timestamp"])),
        "ndc": "string",
        "quantity": draw(st.sampled_from(["float64", "string", "int64"])),
        "days_supply": draw(
            st.sampled_from(["int64", "string"] if csv_safe else ["int64", "string", "float64"])
        ),
        "prescriber_id": draw(st.sampled_from(["string", "string", "absent", "null"])),
        "pharmacy_id": draw(st.sampled_from(["string", "absent"])),
        "claim_id": draw(st.sampled_from(["string", "string", "absent"])),
        "claim_status": draw(st.sampled_from(["string", "string", "absent", "null"])),
    }
    # a whole column of nulls (type null), as written by tools that found no value at all
    nulled = draw(
        st.sampled_from([None] * 10 + ["member_id", "fill_date", "ndc", "quantity", "days_supply"])
    )
    if nulled is not None:
        kinds[nulled] = "null"
    layout = draw(_layout(csv_safe))
    n = draw(st.integers(min_rows, max_rows))
    rows, expect = [], []
    for i in range(n):
        cell, exp = {}, {}
        if kinds["member_id"] == "null":
            cell["member_id"], ok = None, False
        else:
            cell["member_id"], ok = draw(_member_cell(kinds["member_id"], i))
        exp["member_ok"] = ok
        if kinds["fill_date"] == "null":
            cell["fill_date"], exp["date"] = None, None
        else:
            cell["fill_date"], exp["date"] = draw(_date_cell(kinds["fill_date"], i, "D"))
        if kinds["ndc"] == "null":
            cell["ndc"], exp["ndc"] = None, None
        else:
            r = draw(st.integers(0, 9))
            if r == 0:
                cell["ndc"], exp["ndc"] = f"ZQN{i:04d}", None
            else:
                group = [
                    c
                    for c in NDC_CASES
                    if (c[1] is None, c[1] is not None and c[1] not in REF_NDC) == (r == 1, r == 2)
                ]
                cell["ndc"], exp["ndc"] = draw(st.sampled_from(group))
        if kinds["quantity"] == "null":
            cell["quantity"], exp["qty"] = None, None
        else:
            q, ok = _mostly(draw, _qty_cases(kinds["quantity"]), _ok)
            if exp["ndc"] is not None and exp["ndc"] in REF_NDC and drug(exp["ndc"])["dpu"]:
                if ok and float(q) > 1e12:  # huge patch quantities: explicit cases only
                    q = 1e9 if kinds["quantity"] == "float64" else q
            cell["quantity"] = q
            exp["qty"] = float(q) if ok else None
        if kinds["days_supply"] == "null":
            cell["days_supply"], exp["ds"] = None, None
        else:
            v, ok = _mostly(draw, _ds_cases(kinds["days_supply"]), _ok)
            cell["days_supply"] = v
            exp["ds"] = int(float(v)) if ok else None
        for name, letter in (("prescriber_id", "P"), ("pharmacy_id", "R")):
            if kinds[name] == "string":
                cell[name] = draw(
                    st.sampled_from([f"ZQ{letter}{draw(st.integers(0, 4)):04d}", None, "", " "])
                )
            else:
                cell[name] = None
        if kinds["claim_id"] == "string":
            cid = draw(st.sampled_from([None, "", " ", "c", "c", "c", "c", "c", " c"]))
            if cid is not None and cid.strip() == "c":
                cid = cid.replace("c", f"ZQC{draw(st.integers(0, 2)):04d}")
            cell["claim_id"] = cid
        else:
            cell["claim_id"] = None
        exp["claim_id"] = (cell["claim_id"] or "").strip(" \t\r\n") or None
        if kinds["claim_status"] == "string":
            r = draw(st.integers(0, 11))
            if r == 0:
                cell["claim_status"], exp["status"] = f"ZQS{i:04d}", None
            else:
                want = None if r == 1 else "reversed" if r <= 3 else "paid"
                group = [c for c in STATUS if c[1] == want]
                cell["claim_status"], exp["status"] = draw(st.sampled_from(group))
        else:
            cell["claim_status"], exp["status"] = None, "paid"
        rows.append(_no_newlines(cell) if csv_safe else cell)
        expect.append(exp)
    return PharmacyBook(kinds, rows, expect, layout)


@st.composite
def medical_books(
    draw, *, max_rows: int = 16, min_rows: int = 0, csv_safe: bool = False, member_kind=None
):
    kinds = {
        "member_id": member_kind or draw(st.sampled_from(["string", "int64"])),
        "service_date": draw(st.sampled_from(["string", "int64", "date32", "timestamp"])),
        "code_type": "string",
        "code": "string",
    }
    nulled = draw(st.sampled_from([None] * 10 + list(MEDICAL_COLUMNS)))
    if nulled is not None:
        kinds[nulled] = "null"
    layout = draw(_layout(csv_safe))
    n = draw(st.integers(min_rows, max_rows))
    rows, expect = [], []
    for i in range(n):
        cell, exp = {}, {}
        cell["member_id"], exp["member_ok"] = draw(_member_cell(kinds["member_id"], i))
        cell["service_date"], exp["date"] = draw(_date_cell(kinds["service_date"], i, "E"))
        if kinds["code_type"] == "null":
            cell["code_type"], exp["canonical"] = None, None
        elif draw(st.integers(0, 12)) == 0:
            cell["code_type"], exp["canonical"] = f"ZQT{i:04d}", None
        else:
            cell["code_type"], exp["canonical"] = _mostly(draw, CODE_TYPES, _ok)
        if kinds["code"] == "null" or draw(st.integers(0, 10)) == 0:
            cell["code"], exp["code_ok"] = draw(st.sampled_from(CODE_BLANK)), False
            if kinds["code"] == "null":
                cell["code"] = None
            exp["classified"] = False
        else:
            _, code, _ = draw(st.sampled_from(CODES))
            cell["code"], exp["code_ok"] = code, True
            exp["classified"] = exp["canonical"] is not None and classified(exp["canonical"], code)
        rows.append(_no_newlines(cell) if csv_safe else cell)
        expect.append(exp)
    for name, key in (("member_id", "member_ok"), ("service_date", "date")):
        if kinds[name] == "null":
            for cell, exp in zip(rows, expect, strict=True):
                cell[name], exp[key] = None, (False if key == "member_ok" else None)
    return MedicalBook(kinds, rows, expect, layout)


# ------------------------------------------------------------------------------ the oracle

PHARMACY_BUCKETS = ("rejected", "reversal", "reversed", "duplicate", "untracked", "used")
PHARMACY_REASONS = ("member_id", "fill_date", "ndc", "claim_status", "quantity", "days_supply")
MEDICAL_BUCKETS = ("rejected", "unclassified", "used")
MEDICAL_REASONS = ("member_id", "service_date", "code_type", "code")


def _mme_finite(ndc: str, qty: float, ds: int) -> bool:
    d = drug(ndc)
    if d["class"] != "opioid" or d["factor"] is None:
        return True
    if d["dpu"]:
        ds = max(1, math.floor(qty * d["dpu"] + 0.5))
    return math.isfinite(d["strength"] * qty / ds * d["factor"])


def pharmacy_outcome(book: PharmacyBook) -> tuple[list[tuple[str, str | None]], dict]:
    """(per-row (bucket, reason), audit block) following the documented order."""
    out: list[list] = []
    for e in book.expect:
        if e["ndc"] is None:
            out.append(["rejected", "ndc"])
        elif e["ndc"] not in REF_NDC:
            out.append(["untracked", None])
        elif not e["member_ok"]:
            out.append(["rejected", "member_id"])
        elif e["date"] is None:
            out.append(["rejected", "fill_date"])
        elif e["status"] is None:
            out.append(["rejected", "claim_status"])
        elif e["status"] == "paid" and (
            e["qty"] is None
            or (e["ds"] is not None and not _mme_finite(e["ndc"], e["qty"], e["ds"]))
        ):
            out.append(["rejected", "quantity"])
        elif e["status"] == "paid" and e["ds"] is None:
            out.append(["rejected", "days_supply"])
        elif e["status"] == "reversed":
            out.append(["reversal", None])
        else:
            out.append(["used", None])
    reversal_ids = {
        e["claim_id"]
        for e, o in zip(book.expect, out, strict=True)
        if o[0] == "reversal" and e["claim_id"]
    }
    seen = set()
    for e, o in zip(book.expect, out, strict=True):
        if o[0] != "used" or e["claim_id"] is None:
            continue
        if e["claim_id"] in reversal_ids:
            o[0] = "reversed"
        elif e["claim_id"] in seen:
            o[0] = "duplicate"
        else:
            seen.add(e["claim_id"])
    return [tuple(o) for o in out], _block(out, PHARMACY_BUCKETS, PHARMACY_REASONS)


def medical_outcome(book: MedicalBook | None) -> tuple[list, dict]:
    if book is None:
        return [], _block([], MEDICAL_BUCKETS, MEDICAL_REASONS)
    out = []
    for e in book.expect:
        if e["canonical"] is None:
            out.append(("rejected", "code_type"))
        elif not e["code_ok"]:
            out.append(("rejected", "code"))
        elif not e["classified"]:
            out.append(("unclassified", None))
        elif not e["member_ok"]:
            out.append(("rejected", "member_id"))
        elif e["date"] is None:
            out.append(("rejected", "service_date"))
        else:
            out.append(("used", None))
    return out, _block(out, MEDICAL_BUCKETS, MEDICAL_REASONS)


def _block(out, buckets, reasons) -> dict:
    return {
        "rows_read": len(out),
        "buckets": {b: sum(1 for o in out if o[0] == b) for b in buckets},
        "rejected_by_reason": {r: sum(1 for o in out if o[1] == r) for r in reasons},
    }


def in_scope(block: dict, table: str) -> int:
    out_of_scope = "untracked" if table == "pharmacy" else "unclassified"
    return block["rows_read"] - block["buckets"][out_of_scope]


STOP_SHARE = 0.25
STOP_MIN_ROWS = 10
WARN_SHARE = 0.01


def intake_verdict(blocks: dict, share: float = STOP_SHARE) -> tuple[str, list]:
    """("stop" | "go", the (table, reason, count) that stop the run).

    A reason stops the run when it rejects more than ``share`` of a table's in-scope rows
    and at least 10 rows (``share`` 1 never stops).
    """
    over = []
    for table in ("pharmacy", "medical"):
        b = blocks[table]
        n = in_scope(b, table)
        for reason, count in b["rejected_by_reason"].items():
            if share < 1 and count >= STOP_MIN_ROWS and count > share * n:
                over.append((table, reason, count))
    return ("stop" if over else "go"), over


def warned_reasons(blocks: dict) -> set[tuple[str, str]]:
    """(table, reason) above 1% of the in-scope rows."""
    out = set()
    for table in ("pharmacy", "medical"):
        b = blocks[table]
        n = in_scope(b, table)
        for reason, count in b["rejected_by_reason"].items():
            if n and count > WARN_SHARE * n:
                out.add((table, reason))
    return out


# ------------------------------------------------------------------------------ the files


def _arrow_type(kind: str) -> pa.DataType:
    return {
        "string": pa.string(),
        "int64": pa.int64(),
        "date32": pa.date32(),
        "timestamp": pa.timestamp("ms"),
        "float64": pa.float64(),
        "null": pa.null(),
    }[kind]


def extra_column(kind: str, n: int) -> pa.Array:
    if kind == "text":
        return pa.array([f"ZQZ{i:04d}" for i in range(n)])
    if kind == "list":
        return pa.array([[f"ZQZ{i:04d}", None] if i % 2 else None for i in range(n)])
    if kind == "list_int":
        return pa.array([[i, None] if i % 2 else None for i in range(n)], pa.list_(pa.int64()))
    if kind == "struct":
        return pa.array([{"a": i, "b": f"ZQZ{i:04d}"} for i in range(n)])
    return pa.array([b"\xff\x00ZQZ" if i % 2 else None for i in range(n)], pa.binary())


def to_table(book: PharmacyBook | MedicalBook) -> pa.Table:
    """The book as an Arrow table, in its layout (text type, chunks, extra column)."""
    cols = {}
    layout = book.layout or {}
    for name, kind in book.kinds.items():
        if kind == "absent":
            continue
        t = _arrow_type(kind)
        values = [r[name] for r in book.rows]
        col = pa.nulls(len(values)) if kind == "null" else pa.array(values, t)
        if kind == "string" and layout.get("text") == "large_string":
            col = col.cast(pa.large_string())
        elif kind == "string" and layout.get("text") == "dictionary":
            col = col.dictionary_encode()
        cols[name] = col
    if layout.get("extra"):
        cols["notes"] = extra_column(layout["extra"], len(book.rows))
    table = pa.table(cols)
    if layout.get("chunk") and table.num_rows:
        table = pa.Table.from_batches(table.to_batches(max_chunksize=layout["chunk"]))
    return table


def _csv_text(v) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return repr(v)
    if isinstance(v, dt.datetime):
        return v.date().isoformat()
    if isinstance(v, dt.date):
        return v.isoformat()
    return str(v)


def csv_bytes(book: PharmacyBook | MedicalBook) -> bytes:
    names = [n for n, k in book.kinds.items() if k != "absent"]
    extra = (book.layout or {}).get("extra") == "text"
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(names + ["notes"] * extra)
    for i, r in enumerate(book.rows):
        w.writerow([_csv_text(r[n]) for n in names] + [f"ZQZ{i:04d}"] * extra)
    return buf.getvalue().encode()


FORMATS = ("parquet", "arrow", "csv", "csv.gz")


def write_book(book, path: Path, fmt: str) -> Path:
    """Write a generated book in one of :data:`FORMATS`; return the path written."""
    path = Path(f"{path}.{fmt}")
    if fmt == "parquet":
        pq.write_table(to_table(book), path)
    elif fmt == "arrow":
        t = to_table(book)
        with ipc.new_file(path, t.schema) as w:
            w.write_table(t)
    elif fmt == "csv":
        path.write_bytes(csv_bytes(book))
    elif fmt == "csv.gz":
        path.write_bytes(gzip.compress(csv_bytes(book), mtime=0))
    else:
        raise AssertionError(fmt)
    return path


# --------------------------------------------------------------------------------- running


@dataclass
class Run:
    rc: object
    out: str
    err: str
    argv: list = field(default_factory=list)

    def lines(self) -> list[str]:
        return self.err.splitlines()

    def __str__(self) -> str:
        return f"rc={self.rc}\nargv={self.argv}\nstdout={self.out!r}\nstderr={self.err!r}"


def run_cli(argv: list[str]) -> Run:
    """``rxrisk.cli.main(argv)`` in process, with stdout and stderr captured (a SystemExit,
    e.g. from argument parsing, gives its code)."""
    argv = [str(a) for a in argv]
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        try:
            rc = main(argv)
        except SystemExit as exc:
            rc = exc.code
    return Run(rc, out.getvalue(), err.getvalue(), argv)


#: the one error line of a failed run: "rxrisk: error: ..." or "rxrisk <command>: error: ..."
ERROR_LINE = re.compile(r"^rxrisk(?: [a-z]+)?: error: \S")


def error_lines(run: Run) -> list[str]:
    return [line for line in run.lines() if ERROR_LINE.match(line)]


def check_streams(run: Run, allowed=(0, 2)) -> str | None:
    """Exit code in ``allowed`` (0 or 2 at most), no traceback, stderr = optional run
    summary lines ("rxrisk: ...") plus, on exit 2, exactly ONE error line; every line shows at
    most 3 planted member-data values. Returns the error line (None on success)."""
    assert run.rc in allowed, run
    assert "Traceback" not in run.err and "Traceback" not in run.out, run
    assert "internal error" not in run.err, run
    for line in run.lines() + run.out.splitlines():
        assert len(sentinels(line)) <= 3, (line, run)
        assert not NEVER_SHOWN_RE.search(line), ("row data beyond the failing column", line, run)
    for line in run.lines():
        assert line.startswith("rxrisk"), ("stray stderr line", line, run)
    errors = error_lines(run)
    if run.rc == 2:
        assert len(errors) == 1, run
        assert not run.out.strip(), run
        return errors[0]
    assert not errors, run
    return None


def snapshot(folder: Path) -> dict[str, str]:
    """relative path -> sha256 of every file under ``folder`` (folders as '<dir>')."""
    out = {}
    for root, dirs, files in os.walk(folder):
        for d in dirs:
            out[os.path.relpath(os.path.join(root, d), folder)] = "<dir>"
        for f in files:
            p = os.path.join(root, f)
            if os.path.islink(p):
                out[os.path.relpath(p, folder)] = "<link>" + os.readlink(p)
                continue
            with open(p, "rb") as fh:
                out[os.path.relpath(p, folder)] = hashlib.sha256(fh.read()).hexdigest()
    return out


def check_outputs(run: Run, out_dir: Path, requested: list[str]) -> None:
    """Only the requested outputs on success; nothing at all on failure."""
    present = sorted(os.listdir(out_dir))
    if run.rc == 0:
        assert present == sorted(requested), (present, run)
    else:
        assert present == [], (present, run)


def check_audit_warnings(audit: dict) -> None:
    assert isinstance(audit.get("warnings"), list), audit.keys()
    for text in audit["warnings"]:
        assert isinstance(text, str) and len(sentinels(text)) <= 3, text
        assert not NEVER_SHOWN_RE.search(text), text


def check_blocks_add_up(audit: dict) -> None:
    for table in ("pharmacy", "medical"):
        b = audit[table]
        assert sum(b["buckets"].values()) == b["rows_read"], (table, b)
        assert sum(b["rejected_by_reason"].values()) == b["buckets"]["rejected"], (table, b)
