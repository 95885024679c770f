"""NDC normalisation, rejection reasons, reversal and duplicate matching, and
the bucket of every row. Everything runs vectorised (pyarrow.compute on distinct values,
numpy on row masks); no Python loop touches a row.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from rxrisk.ingest.conform import MedicalColumns, PharmacyColumns, trim
from rxrisk.ingest.drugs import supply_days
from rxrisk.io.arrow import (
    dict_codes,
    is_null,
    keep_rows,
    sort_uint64,
    string_buffers,
    string_chunks,
    take_rows,
    to_bool,
    to_numpy,
)
from rxrisk.kernels.roles import OPIOID

PHARMACY_BUCKETS = ("rejected", "reversal", "reversed", "duplicate", "untracked", "used")
PHARMACY_REASONS = ("member_id", "fill_date", "ndc", "claim_status", "quantity", "days_supply")
MEDICAL_BUCKETS = ("rejected", "unclassified", "used")
MEDICAL_REASONS = ("member_id", "service_date", "code_type", "code")
CODE_TYPES = ("ICD10CM", "CPT", "HCPCS", "REV", "POS")
#: other spellings of the code types, compared after normalisation (upper case, A-Z and 0-9)
CODE_TYPE_SYNONYMS = {"ICD10": "ICD10CM", "CPT4": "CPT", "REVENUE": "REV", "RC": "REV"}
#: claim_status spellings (trimmed, lower-cased); empty or null is paid too
PAID = ("paid", "p", "b1")
REVERSED = ("reversed", "r", "reversal", "b2")

# (pattern, RE2 rewrite) for the accepted NDC shapes, after spaces are removed.
# RE2 group references are one digit: "\\10" is group 1 followed by a literal 0.
_NDC_FORMS = (
    (r"^([0-9]{11})$", r"\1"),
    (r"^([0-9]{5})-([0-9]{4})-([0-9]{2})$", r"\1\2\3"),
    (r"^([0-9]{4})-([0-9]{4})-([0-9]{2})$", r"0\1\2\3"),
    (r"^([0-9]{5})-([0-9]{3})-([0-9]{2})$", r"\10\2\3"),
    (r"^([0-9]{5})-([0-9]{4})-([0-9]{1})$", r"\1\20\3"),
)


def normalize_ndc(values: pa.Array) -> pa.Array:
    """Normalise NDC text to 11 digits; null where the shape is not accepted.

    Values already of 11 digits (most of a book) pass one pattern test; only the others are
    tried against the hyphenated forms.

    Parameters
    ----------
    values : pyarrow.Array of string
        Typically the distinct values of a column.
    """
    text = pc.replace_substring(values, " ", "")
    if isinstance(text, pa.ChunkedArray):
        text = text.combine_chunks()
    plain = to_bool(pc.match_substring_regex(text, _NDC_FORMS[0][0]))
    out = pc.if_else(pa.array(plain), text, pa.nulls(len(text), pa.string()))
    if plain.all():
        return out
    other = ~plain
    rest = text.filter(pa.array(other))
    rest_out = pa.nulls(len(rest), pa.string())
    for pattern, repl in _NDC_FORMS[1:]:
        hit = pc.match_substring_regex(rest, pattern)
        rewritten = pc.replace_substring_regex(rest, pattern, repl)
        rest_out = pc.if_else(pc.fill_null(hit, False), rewritten, rest_out)
    return pc.replace_with_mask(out, pa.array(other), rest_out.cast(out.type))


@dataclass
class PharmacyRows:
    """Per-row outcome of validation, aligned with the input rows."""

    bucket: np.ndarray  # int8 index into PHARMACY_BUCKETS
    reason: np.ndarray  # int8 index into PHARMACY_REASONS, -1 when not rejected
    ref_index: np.ndarray  # int32 reference row of the normalised NDC, -1 when none
    ndc_codes: np.ndarray  # int32 index into ndc_distinct, -1 for null input
    ndc_distinct: pa.Array  # normalised distinct NDCs (null where not parseable)

    def normalized_ndc(self, rows: np.ndarray) -> pa.Array:
        """The normalised 11-digit NDC of the given rows (null where rejected for ndc)."""
        codes = self.ndc_codes[rows]
        return pc.take(self.ndc_distinct, pa.array(codes, mask=codes < 0))

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


def blank_mask(col: pa.ChunkedArray) -> np.ndarray:
    """Null or whitespace-only rows (integers: null only), by a byte scan of the buffers."""
    if not (pa.types.is_string(col.type) or pa.types.is_large_string(col.type)):
        return is_null(col)
    from rxrisk.kernels.strings import blank_rows  # lazy: kernels on first use

    parts = [blank_rows(*chunk) for chunk in string_chunks(col)]
    return np.concatenate(parts) if parts else np.zeros(0, bool)


def _ndc_outcome(texts: pa.Array, reference_ndc: pa.Array) -> tuple[np.ndarray, pa.Array]:
    """``(reference row, normalised NDC)`` of each raw NDC text: the row is -2 where the text
    is rejected (null or unparseable), -1 where valid but not in the reference."""
    norm = normalize_ndc(trim(texts))
    ref = to_numpy(pc.index_in(norm, value_set=reference_ndc), np.int32, -1)
    return np.where(~is_null(norm), ref, -2).astype(np.int32), norm


class RememberedNdcs:
    """The NDC lookup of :func:`check_pharmacy` remembered across the batches of a run: each
    distinct raw NDC text is trimmed, normalised and looked up in the reference once, however
    many batches hold it (a batch's dictionary repeats most of the last one's). Same results
    as without it, value by value. At most :data:`MAX_REMEMBERED_NDCS` texts are kept: a book
    of more distinct texts stops remembering (the memory is dropped) and each batch's texts are
    worked out afresh, as without it, since looking texts up in a larger memory costs more
    than it saves.

    Parameters
    ----------
    reference_ndc : pyarrow.Array
        The reference's 11-digit NDCs (``DrugTable.ndc``).
    """

    def __init__(self, reference_ndc: pa.Array):
        self.reference_ndc = reference_ndc
        self._texts = pa.array([], pa.string())
        self._norm = pa.array([], pa.string())
        self._ref = np.zeros(0, np.int32)
        self.full = False  # more distinct texts than kept: nothing remembered any more

    def lookup(self, texts: pa.Array) -> tuple[np.ndarray, pa.Array]:
        """:func:`_ndc_outcome` of ``texts`` (distinct raw NDC texts of one batch)."""
        if self.full:
            return _ndc_outcome(texts, self.reference_ndc)
        if texts.type != pa.string():
            texts = texts.cast(pa.string())
        pos = to_numpy(pc.index_in(texts, value_set=self._texts), np.int64, -1)
        new = np.flatnonzero(pos < 0)
        if len(self._ref) + len(new) > MAX_REMEMBERED_NDCS:
            self.full = True
            self._texts = self._norm = self._ref = None  # the memory dropped
            return _ndc_outcome(texts, self.reference_ndc)
        if len(new):
            fresh = texts.take(pa.array(new))
            ref, norm = _ndc_outcome(fresh, self.reference_ndc)
            pos[new] = len(self._ref) + np.arange(len(new))
            self._texts = pa.concat_arrays([self._texts, fresh])
            self._norm = pa.concat_arrays([self._norm, norm.cast(pa.string())])
            self._ref = np.concatenate([self._ref, ref])
        return self._ref[pos], self._norm.take(pa.array(pos))


#: Most distinct raw NDC texts a :class:`RememberedNdcs` keeps. Looking a batch's 22,000
#: texts (a generated 1M-member book's, mostly the same each batch) up in 22,000 remembered
#: ones took 2.9 ms, in 200,000 14 ms and in 1,000,000 164 ms, against about 13 ms to work
#: them out afresh: past this many, remembering costs more than it saves.
MAX_REMEMBERED_NDCS = 100_000


def _ndc_lookup(
    ndc: pa.ChunkedArray, reference_ndc: pa.Array, remembered: RememberedNdcs | None = None
) -> tuple[np.ndarray, np.ndarray, pa.Array]:
    """Normalise on distinct values; return per-row reference rows and distinct codes.

    Returns ``(ref_row, codes, normalised_distinct)``: ref_row is -2 where the NDC is rejected
    (null or unparseable), -1 where valid but not in the reference; ``codes`` index
    ``normalised_distinct`` (-1 for null input). ``remembered`` carries the outcomes of the
    texts of earlier batches (:class:`RememberedNdcs`).
    """
    codes, distinct = dict_codes(ndc)
    if remembered is None:
        per_distinct, norm = _ndc_outcome(distinct, reference_ndc)
    else:
        per_distinct, norm = remembered.lookup(distinct)
    per_distinct = np.append(per_distinct, np.int32(-2))  # slot -1: null input
    return per_distinct[codes], codes, norm


def match_claim_ids(
    claim_id: pa.ChunkedArray,
    is_reversal: np.ndarray,
    is_candidate: np.ndarray,
    row_bits: int | None = None,
):
    """Reversed and duplicate rows by trimmed claim id.

    Each chunk is hashed in place (no copy of the strings), the keys are sorted once, and
    only rows whose hash equals another row's are compared as strings. ``row_bits``
    (tests only) widens the row field to force hash collisions.
    """
    from rxrisk.kernels.strings import hash_ids  # lazy: kernels on first use

    n = len(is_reversal)
    include = is_reversal | is_candidate
    row_bits = row_bits or max(1, int(n).bit_length())
    # chunks are hashed on the numba threads' count of Python threads (the kernel releases
    # the GIL), each into its own slice of ``keys``
    jobs, start, row0 = [], 0, 0
    for offsets, data, null in string_chunks(claim_id):
        m = len(null)
        jobs.append((offsets, data, null, include[row0 : row0 + m], row0, start))
        start += int(np.count_nonzero(include[row0 : row0 + m]))
        row0 += m
    keys = np.empty(start, np.uint64)
    written = np.zeros(len(jobs), np.int64)

    def run(j):
        offsets, data, null, inc, r0, s0 = jobs[j]
        written[j] = hash_ids(offsets, data, null, inc, r0, row_bits, keys[s0:])

    if len(jobs) > 1:
        from concurrent.futures import ThreadPoolExecutor

        from rxrisk.kernels._jit import submit, threads  # lazy: with the kernels

        with ThreadPoolExecutor(threads()) as pool:
            for done in [submit(pool, run, j) for j in range(len(jobs))]:
                done.result()
    elif jobs:
        run(0)
    # blank ids were skipped: keep each chunk's written prefix
    if len(jobs) and int(written.sum()) != start:
        keep = np.concatenate(
            [np.arange(s0, s0 + w) for (*_, s0), w in zip(jobs, written, strict=True)]
        )
        keys = keys[keep]
    return _match_keys(keys, row_bits, claim_id, is_reversal, is_candidate)


def match_claim_hashes(
    hashes: np.ndarray,
    claim_id: pa.ChunkedArray,
    is_reversal: np.ndarray,
    is_candidate: np.ndarray,
):
    """:func:`match_claim_ids` for rows whose claim-id hashes are already known (``hashes``:
    int64 from :func:`rxrisk.kernels.strings.hash_strings`, -1 for blank ids)."""
    n = len(hashes)
    row_bits = max(1, int(n).bit_length())
    hash_mask = np.int64((1 << (64 - row_bits)) - 1) if row_bits >= 2 else np.int64(-1)
    rows = np.flatnonzero((hashes >= 0) & (is_reversal | is_candidate))
    keys = (hashes[rows] & hash_mask).astype(np.uint64) << np.uint64(row_bits)
    keys |= rows.astype(np.uint64)
    return _match_keys(keys, row_bits, claim_id, is_reversal, is_candidate)


def _match_keys(keys, row_bits, claim_id, is_reversal, is_candidate):
    """Sort the (hash bits, row) keys, then compare strings within runs of equal hash bits."""
    from rxrisk.kernels.strings import collision_runs, match_runs  # lazy: kernels on first use

    n = len(is_reversal)
    reversed_ = np.zeros(n, bool)
    duplicate = np.zeros(n, bool)
    keys = sort_uint64(keys)
    rows, run_start = collision_runs(keys, row_bits)
    if len(rows):
        sub = take_rows(claim_id, rows)
        rev, dup = match_runs(
            run_start, *string_buffers(sub), is_reversal[rows], is_candidate[rows]
        )
        reversed_[rows[rev]] = True
        duplicate[rows[dup]] = True
    return reversed_, duplicate


def normalize_code_type(values: pa.Array) -> pa.Array:
    """Code types upper-cased with every character but A-Z and 0-9 removed, then synonyms
    mapped (``icd-10-cm`` -> ``ICD10CM``, ``CPT4`` -> ``CPT``, ``RC`` -> ``REV``)."""
    text = pc.replace_substring_regex(pc.utf8_upper(values), "[^A-Z0-9]", "")
    for alias, canonical in CODE_TYPE_SYNONYMS.items():
        text = pc.if_else(pc.equal(text, alias), canonical, text)
    return text


def _status(col: pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    """(is_paid, is_reversal) per row, decided on the distinct trimmed, lower-cased values."""
    codes, distinct = dict_codes(col)
    low = pc.utf8_lower(trim(distinct))
    paid = to_bool(pc.or_kleene(pc.equal(low, ""), pc.is_in(low, value_set=pa.array(PAID))))
    rev = to_bool(pc.is_in(low, value_set=pa.array(REVERSED)))
    return np.append(paid, True)[codes], np.append(rev, False)[codes]


@dataclass
class PharmacyChecks:
    """The row-local part of validation (everything but claim-id matching), per input row."""

    reason: np.ndarray  # int8 index into PHARMACY_REASONS, -1 when not rejected
    is_reversal: np.ndarray  # bool: tracked, not rejected, status reversed
    paid_ok: np.ndarray  # bool: tracked, not rejected, status paid
    ref_row: np.ndarray  # int32 reference row of the normalised NDC, -1 none, -2 rejected
    ndc_codes: np.ndarray  # int32 index into ndc_distinct, -1 for null input
    ndc_distinct: pa.Array  # normalised distinct NDCs (null where not parseable)
    scope: np.ndarray  # int64 positions of the tracked rows (ref_row >= 0), ascending
    scoped: PharmacyColumns  # the columns of those rows, in that order

    @property
    def untracked(self) -> np.ndarray:
        """Rows whose valid NDC is not in the reference (bucket ``untracked``)."""
        return self.ref_row == -1


def _mme_not_finite(quantity, days_supply, ref_row: np.ndarray, rows: np.ndarray, drugs):
    """Of the given paid opioid rows (of the ``quantity`` and ``days_supply`` columns), those
    whose daily MME (with the uncapped days of supply, as the encoder computes it) is not
    finite."""
    r = ref_row[rows]
    q = to_numpy(take_rows(quantity, rows), np.float64, np.nan)
    ds_in = to_numpy(take_rows(days_supply, rows), np.int64, 0)
    ds = supply_days(ds_in, q, drugs.days_per_unit[r])
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        value = drugs.strength[r] * q / ds * drugs.factor[r]
    return ~np.isfinite(value)


def check_pharmacy(
    cols: PharmacyColumns, drugs, *, max_days_supply: int, ndcs: RememberedNdcs | None = None
) -> PharmacyChecks:
    """Rejection reasons, status and reference lookup of every row: all of validation that
    one row decides alone. Works on a whole book or on one batch of it.

    Rows are tested in this order: NDC (rejected ``ndc``), then reference
    membership (untracked rows are never checked further), then member id, fill date,
    status and, for paid rows, quantity (including an opioid's daily MME being finite) and
    days supply. Only the NDC column is read on every row: the other checks run on the
    tracked rows alone (:func:`_tracked_checks`), a tenth of a typical book.

    Parameters
    ----------
    cols : PharmacyColumns
    drugs : rxrisk.ingest.drugs.DrugTable
        The reference's NDCs and, for the MME check, roles, strengths, factors and days
        per unit.
    max_days_supply : int
    ndcs : RememberedNdcs, optional
        The NDC outcomes of a run's earlier batches (the streaming path keeps one per run).
    """
    n = len(cols)
    ref_row, ndc_codes, ndc_distinct = _ndc_lookup(cols.ndc, drugs.ndc, ndcs)
    tracked = ref_row >= 0
    scope = np.flatnonzero(tracked)
    scoped = _tracked_columns(cols, tracked, len(scope))
    first, is_paid, is_rev = _tracked_checks(scoped, ref_row[scope], drugs, max_days_supply)
    reason = np.full(n, -1, np.int8)
    reason[scope] = first
    reason[ref_row == -2] = PHARMACY_REASONS.index("ndc")
    ok = first < 0
    is_reversal = np.zeros(n, bool)
    is_reversal[scope[ok & is_rev]] = True
    paid_ok = np.zeros(n, bool)
    paid_ok[scope[ok & is_paid]] = True
    return PharmacyChecks(
        reason=reason,
        is_reversal=is_reversal,
        paid_ok=paid_ok,
        ref_row=ref_row,
        ndc_codes=ndc_codes,
        ndc_distinct=ndc_distinct,
        scope=scope,
        scoped=scoped,
    )


def _tracked_columns(cols: PharmacyColumns, tracked: np.ndarray, count: int) -> PharmacyColumns:
    """The columns of the tracked rows only (:func:`rxrisk.io.arrow.keep_rows`; ``count``
    rows are tracked)."""
    if count == len(tracked):
        return cols
    names = [f.name for f in fields(PharmacyColumns)]
    kept = keep_rows({name: getattr(cols, name) for name in names}, tracked)
    return PharmacyColumns(*(kept[name] for name in names))


def _tracked_checks(cols: PharmacyColumns, ref_row: np.ndarray, drugs, max_days_supply: int):
    """``(first reason, is_paid, is_reversal)`` of tracked rows (``cols``: their columns,
    ``ref_row``: their reference rows): member id, fill date, status, then for paid rows
    quantity (an opioid's daily MME finite) and days supply."""
    m = len(ref_row)
    is_paid, is_rev = _status(cols.claim_status)
    quantity, ds = cols.quantity, cols.days_supply
    # Arrow compute gives bit-packed masks: far less memory traffic than float64 copies.
    qty_ok = to_bool(pc.and_(pc.is_finite(quantity), pc.greater(quantity, 0)))
    ds_ok = to_bool(pc.and_(pc.greater(ds, 0), pc.less_equal(ds, max_days_supply)))
    qty_bad = ~qty_ok
    # An opioid's daily MME must be finite: checked where it is defined (strength and factor
    # known) and its days of supply are (a patch's rewrite, or a valid days_supply).
    opioid_ref = (drugs.role & np.uint8(OPIOID)) != 0
    mme_ref = opioid_ref & np.isfinite(drugs.strength) & np.isfinite(drugs.factor)
    patch_ref = ~np.isnan(drugs.days_per_unit)
    mme_rows = np.zeros(0, np.intp)
    if mme_ref.any():
        mme_rows = np.flatnonzero(is_paid & qty_ok)
        r = ref_row[mme_rows]
        mme_rows = mme_rows[mme_ref[r] & (patch_ref[r] | ds_ok[mme_rows])]
    if len(mme_rows):
        qty_bad[mme_rows[_mme_not_finite(quantity, ds, ref_row, mme_rows, drugs)]] = True
    checks = [
        blank_mask(cols.member_id),
        is_null(cols.fill_date),
        np.zeros(m, bool),  # ndc: decided before (in check_pharmacy)
        ~(is_paid | is_rev),
        is_paid & qty_bad,
        is_paid & ~ds_ok,
    ]
    return _first_reason(checks, m), is_paid, is_rev


def validate_pharmacy(cols: PharmacyColumns, drugs, *, max_days_supply: int) -> PharmacyRows:
    """Put every pharmacy row in its bucket (``drugs``: see :func:`check_pharmacy`):
    :func:`check_pharmacy`, then :func:`pharmacy_buckets`."""
    checks = check_pharmacy(cols, drugs, max_days_supply=max_days_supply)
    return pharmacy_buckets(checks, cols.claim_id)


def pharmacy_buckets(checks: PharmacyChecks, claim_id: pa.ChunkedArray) -> PharmacyRows:
    """The bucket of every row of a whole book from its row-local checks, matching claim ids
    over the whole book (:func:`match_claim_ids`): only tracked rows that passed the checks
    take part in the matching.

    Parameters
    ----------
    checks : PharmacyChecks
        From :func:`check_pharmacy` on the whole book.
    claim_id : pyarrow.ChunkedArray
        The book's claim ids (``PharmacyColumns.claim_id``).

    Returns
    -------
    PharmacyRows
    """
    c = checks
    bucket = np.full(len(c.reason), PHARMACY_BUCKETS.index("used"), np.int8)
    bucket[c.reason >= 0] = PHARMACY_BUCKETS.index("rejected")
    bucket[c.untracked] = PHARMACY_BUCKETS.index("untracked")
    bucket[c.is_reversal] = PHARMACY_BUCKETS.index("reversal")
    reversed_, dup = match_claim_ids(claim_id, c.is_reversal, c.paid_ok)
    bucket[reversed_] = PHARMACY_BUCKETS.index("reversed")
    bucket[dup] = PHARMACY_BUCKETS.index("duplicate")
    return PharmacyRows(
        bucket=bucket,
        reason=c.reason,
        ref_index=np.where(c.ref_row >= 0, c.ref_row, -1),
        ndc_codes=c.ndc_codes,
        ndc_distinct=c.ndc_distinct,
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


class RememberedCodes:
    """Code sets whose :meth:`classify` remembers every (code space, code) pair it has
    classified, so that a run checking batch after batch (whose batches repeat the same few
    thousand codes) runs the code-set patterns on each pair once. Same results as
    ``codesets.classify``, pair by pair.

    Parameters
    ----------
    codesets : rxrisk.config.codesets.CodeSets
    """

    def __init__(self, codesets):
        self.codesets = codesets
        self._keys = pa.array([], pa.string())  # "<bytes of space>:space:code" of each pair
        self._masks = np.zeros(0, np.uint8)

    def classify(self, space: pa.Array, code: pa.Array) -> np.ndarray:
        """Category bits of each (space, code) pair (``CodeSets.classify``)."""
        # the byte length of the space first: one key per pair, whatever the texts hold
        length = pc.cast(pc.binary_length(space), pa.string())
        keys = pc.binary_join_element_wise(length, space, code, ":")
        if isinstance(keys, pa.ChunkedArray):
            keys = keys.combine_chunks()
        if keys.null_count:  # a null space or code: not remembered
            return self.codesets.classify(space, code)
        keys = keys.cast(pa.string())
        pos = to_numpy(pc.index_in(keys, value_set=self._keys), np.int64, -1)
        new = np.flatnonzero(pos < 0)
        if len(new):  # classify each new pair once: its first row stands for the others
            codes, distinct = dict_codes(keys.take(pa.array(new)))
            first = new[np.unique(codes, return_index=True)[1]]
            rows = pa.array(first)
            found = self.codesets.classify(space.take(rows), code.take(rows))
            pos[new] = len(self._masks) + codes
            self._keys = pa.concat_arrays([self._keys, distinct])
            self._masks = np.concatenate([self._masks, found.astype(np.uint8, copy=False)])
        return self._masks[pos]


def empty_medical_counts() -> dict:
    """The all-zero medical audit block used when no medical input is given."""
    return MedicalRows(np.zeros(0, np.int8), np.zeros(0, np.int8), np.zeros(0, np.uint8)).counts()


def validate_medical(cols: MedicalColumns, codesets) -> MedicalRows:
    """Put every medical row in its bucket and compute its category bits.

    Code types and codes are classified as a (distinct type x distinct code) matrix, so no
    per-row string work is done beyond one dictionary encoding of each column; each row
    then takes its outcome from that matrix in one lookup, and only the classified rows
    (a few per cent of a book) have their member id and service date checked.
    """
    t_codes, t_distinct = dict_codes(cols.code_type)
    t_norm = normalize_code_type(t_distinct)
    t_ok = to_bool(pc.is_in(t_norm, value_set=pa.array(CODE_TYPES)))
    c_codes, c_distinct = dict_codes(cols.code)
    c_norm = trim(c_distinct)
    c_blank = to_bool(pc.equal(c_norm, ""))
    n_t, n_c = len(t_distinct), len(c_distinct)
    # outcome of each (type, code) pair; slot 0 of each axis is a null value
    category = np.zeros((n_t + 1, n_c + 1), np.uint8)
    valid_t = np.flatnonzero(t_ok)
    if len(valid_t) and n_c:
        space = pc.if_else(pc.is_in(t_norm, value_set=pa.array(["CPT", "HCPCS"])), "PROC", t_norm)
        space_rep = pc.take(space, pa.array(np.repeat(valid_t, n_c)))
        code_rep = pc.take(c_norm, pa.array(np.tile(np.arange(n_c), len(valid_t))))
        found = codesets.classify(space_rep, code_rep).reshape(len(valid_t), n_c)
        category[valid_t + 1, 1:] = np.where(c_blank, 0, found)
    reason_of = np.full((n_t + 1, n_c + 1), -1, np.int8)
    reason_of[:, np.append(True, c_blank)] = MEDICAL_REASONS.index("code")
    reason_of[np.append(True, ~t_ok)] = MEDICAL_REASONS.index("code_type")
    # order: code type and code, then unclassified (nothing else checked), then member id
    # and service date of the classified rows
    bucket_of = np.where(reason_of >= 0, 0, np.where(category > 0, 2, 1)).astype(np.int8)
    pair = t_codes.astype(np.int32 if category.size < 2**31 else np.int64)  # a copy
    pair *= n_c + 1
    pair += c_codes
    pair += n_c + 2  # (type + 1, code + 1): null values are slot 0
    mask, reason, bucket = category.ravel()[pair], reason_of.ravel()[pair], bucket_of.ravel()[pair]
    classified = np.flatnonzero(mask)
    if len(classified):
        picked = keep_rows({"m": cols.member_id, "d": cols.service_date}, mask > 0)
        checks = [blank_mask(picked["m"]), is_null(picked["d"])]
        first = _first_reason(checks, len(classified))
        bad = first >= 0
        reason[classified[bad]] = first[bad]
        mask[classified[bad]] = 0
        bucket[classified[bad]] = MEDICAL_BUCKETS.index("rejected")
    return MedicalRows(bucket=bucket, reason=reason, mask=mask)
