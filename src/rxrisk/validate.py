"""SPEC 1.4-1.5: NDC normalisation, rejection reasons, reversal and duplicate matching, and
the bucket of every row. Everything runs vectorised (pyarrow.compute on distinct values,
numpy on row masks); no Python loop touches a row.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from rxrisk.arrowutil import dict_codes, is_null, to_bool, to_numpy
from rxrisk.inputs import MedicalColumns, PharmacyColumns

PHARMACY_BUCKETS = ("rejected", "reversal", "reversed", "duplicate", "untracked", "used")
PHARMACY_REASONS = ("member_id", "fill_date", "ndc", "claim_status", "quantity", "days_supply")
MEDICAL_BUCKETS = ("rejected", "unclassified", "used")
MEDICAL_REASONS = ("member_id", "service_date", "code_type", "code")
CODE_TYPES = ("ICD10CM", "CPT", "HCPCS", "REV", "POS")

# (pattern, RE2 rewrite) for the accepted NDC shapes of SPEC 1.4, after spaces are removed.
# RE2 group references are one digit: "\\10" is group 1 followed by a literal 0.
_NDC_FORMS = (
    (r"^([0-9]{11})$", r"\1"),
    (r"^([0-9]{5})-([0-9]{4})-([0-9]{2})$", r"\1\2\3"),
    (r"^([0-9]{4})-([0-9]{4})-([0-9]{2})$", r"0\1\2\3"),
    (r"^([0-9]{5})-([0-9]{3})-([0-9]{2})$", r"\10\2\3"),
    (r"^([0-9]{5})-([0-9]{4})-([0-9]{1})$", r"\1\20\3"),
)


def normalize_ndc(values: pa.Array) -> pa.Array:
    """Normalise NDC text to 11 digits (SPEC 1.4); null where the shape is not accepted.

    Parameters
    ----------
    values : pyarrow.Array of string
        Typically the distinct values of a column.
    """
    text = pc.replace_substring(values, " ", "")
    out = pa.nulls(len(text), pa.string())
    for pattern, repl in _NDC_FORMS:
        hit = pc.match_substring_regex(text, pattern)
        rewritten = pc.replace_substring_regex(text, pattern, repl)
        out = pc.if_else(pc.fill_null(hit, False), rewritten, out)
    return out


@dataclass
class PharmacyRows:
    """Per-row outcome of validation, aligned with the input rows."""

    bucket: np.ndarray  # int8 index into PHARMACY_BUCKETS
    reason: np.ndarray  # int8 index into PHARMACY_REASONS, -1 when not rejected
    ref_index: np.ndarray  # int32 reference row of the normalised NDC, -1 when none
    ndc: pa.ChunkedArray  # normalised NDC (null where rejected for ndc)

    def counts(self) -> dict:
        b = np.bincount(self.bucket, minlength=len(PHARMACY_BUCKETS))
        r = np.bincount(self.reason[self.reason >= 0], minlength=len(PHARMACY_REASONS))
        return {
            "rows_read": int(len(self.bucket)),
            "buckets": {name: int(b[i]) for i, name in enumerate(PHARMACY_BUCKETS)},
            "rejected_by_reason": {name: int(r[i]) for i, name in enumerate(PHARMACY_REASONS)},
        }


def _first_reason(checks: list[np.ndarray], n: int) -> np.ndarray:
    reason = np.full(n, -1, np.int8)
    for i in range(len(checks) - 1, -1, -1):
        reason[checks[i]] = i
    return reason


def _ndc_lookup(
    ndc: pa.ChunkedArray, reference_ndc: pa.Array
) -> tuple[pa.ChunkedArray, np.ndarray]:
    """Normalise on distinct values; return normalised NDCs and reference row per input row."""
    codes, distinct = dict_codes(ndc)
    norm = normalize_ndc(distinct)
    ref_of_distinct = to_numpy(pc.index_in(norm, value_set=reference_ndc), np.int32, -1)
    norm_valid = ~is_null(norm)
    # -2 marks "rejected for ndc"; -1 "valid but not in the reference".
    per_distinct = np.where(norm_valid, ref_of_distinct, -2).astype(np.int32)
    per_distinct = np.append(per_distinct, np.int32(-2))  # the slot for null inputs (code -1)
    per_row = per_distinct[codes]
    norm_rows = (
        pc.take(norm, pa.array(codes, mask=codes < 0))
        if len(distinct)
        else pa.nulls(len(codes), pa.string())
    )
    return pa.chunked_array([norm_rows]), per_row


def validate_pharmacy(
    cols: PharmacyColumns, reference_ndc: pa.Array, *, max_days_supply: int
) -> PharmacyRows:
    """Put every pharmacy row in its SPEC 1.5 bucket."""
    n = len(cols)
    status = pc.utf8_lower(cols.claim_status)
    is_paid = to_bool(
        pc.or_kleene(pc.is_null(status), pc.is_in(status, value_set=pa.array(["paid", "p"])))
    )
    is_rev = to_bool(pc.is_in(status, value_set=pa.array(["reversed", "r"])))
    ndc_norm, ref_row = _ndc_lookup(cols.ndc, reference_ndc)

    qty = to_numpy(cols.quantity, np.float64, np.nan)
    with np.errstate(invalid="ignore"):
        qty_bad = ~np.isfinite(qty) | ~(qty > 0)
    ds_null = is_null(cols.days_supply)
    ds = to_numpy(cols.days_supply, np.int64, 0)
    ds_bad = ds_null | (ds <= 0) | (ds > max_days_supply)
    checks = [
        is_null(cols.member_id),
        is_null(cols.fill_date),
        ref_row == -2,
        ~(is_paid | is_rev),
        is_paid & qty_bad,
        is_paid & ds_bad,
    ]
    reason = _first_reason(checks, n)
    ok = reason < 0
    bucket = np.full(n, PHARMACY_BUCKETS.index("used"), np.int8)
    bucket[~ok] = 0

    reversal = ok & is_rev
    bucket[reversal] = PHARMACY_BUCKETS.index("reversal")
    claim_codes, _ = dict_codes(cols.claim_id)
    has_id = claim_codes >= 0
    paid_ok = ok & is_paid
    if reversal.any():
        rev_ids = np.unique(claim_codes[reversal & has_id])
        reversed_ = paid_ok & has_id & np.isin(claim_codes, rev_ids)
    else:
        reversed_ = np.zeros(n, bool)
    bucket[reversed_] = PHARMACY_BUCKETS.index("reversed")

    cand = np.flatnonzero(paid_ok & ~reversed_ & has_id)
    _, first = np.unique(claim_codes[cand], return_index=True)
    dup = np.zeros(n, bool)
    dup[cand] = True
    dup[cand[first]] = False
    bucket[dup] = PHARMACY_BUCKETS.index("duplicate")

    untracked = paid_ok & ~reversed_ & ~dup & (ref_row < 0)
    bucket[untracked] = PHARMACY_BUCKETS.index("untracked")
    return PharmacyRows(
        bucket=bucket, reason=reason, ref_index=np.where(ref_row >= 0, ref_row, -1), ndc=ndc_norm
    )


@dataclass
class MedicalRows:
    bucket: np.ndarray  # int8 index into MEDICAL_BUCKETS
    reason: np.ndarray  # int8 index into MEDICAL_REASONS, -1 when not rejected
    mask: np.ndarray  # uint8 category bits (0 when none)

    def counts(self) -> dict:
        b = np.bincount(self.bucket, minlength=len(MEDICAL_BUCKETS))
        r = np.bincount(self.reason[self.reason >= 0], minlength=len(MEDICAL_REASONS))
        return {
            "rows_read": int(len(self.bucket)),
            "buckets": {name: int(b[i]) for i, name in enumerate(MEDICAL_BUCKETS)},
            "rejected_by_reason": {name: int(r[i]) for i, name in enumerate(MEDICAL_REASONS)},
        }


def empty_medical_counts() -> dict:
    """The all-zero medical audit block used when no medical input is given."""
    return MedicalRows(np.zeros(0, np.int8), np.zeros(0, np.int8), np.zeros(0, np.uint8)).counts()


def validate_medical(cols: MedicalColumns, codesets) -> MedicalRows:
    """Put every medical row in its SPEC 1.5 bucket and compute its category bits."""
    n = len(cols)
    code_type = pc.utf8_upper(cols.code_type)
    type_ok = to_bool(pc.is_in(code_type, value_set=pa.array(CODE_TYPES)))
    checks = [
        is_null(cols.member_id),
        is_null(cols.service_date),
        ~type_ok,
        is_null(cols.code),
    ]
    reason = _first_reason(checks, n)
    ok = reason < 0
    mask = np.zeros(n, np.uint8)
    if ok.any():
        # Classify distinct (code space, code) pairs only.
        space = pc.if_else(
            pc.is_in(code_type, value_set=pa.array(["CPT", "HCPCS"])), "PROC", code_type
        )
        key = pc.binary_join_element_wise(space, cols.code, "\x1f")
        codes, distinct = dict_codes(key)
        parts = pc.split_pattern(distinct, "\x1f", max_splits=1)
        d_space = pc.list_element(parts, 0)
        d_code = pc.list_element(parts, 1)
        d_mask = codesets.classify(d_space, d_code)
        mask = np.where(ok & (codes >= 0), d_mask[np.maximum(codes, 0)], 0).astype(np.uint8)
    bucket = np.where(ok, np.where(mask > 0, 2, 1), 0).astype(np.int8)
    return MedicalRows(bucket=bucket, reason=reason, mask=mask)
