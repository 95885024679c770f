"""Drug reference: NDC -> class, strength, unit and MME factor.

The default reference ships as ``data/reference/drugs.csv`` (built by
``data/scripts/build_reference.py`` from CDC's Sept 2018 NDC/MME file and the Opioid Data Lab
value sets; see ``data/reference/README.md``). It carries one MME factor column per edition;
:func:`load_reference` picks one and can merge a user's own rows over the default.
"""

from __future__ import annotations

import functools
import hashlib
import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from rxrisk.config.resources import data_path
from rxrisk.errors import InputError

__all__ = [
    "DRUG_CLASSES",
    "EDITIONS",
    "REFERENCE_SCHEMA",
    "load_reference",
    "reference_digest",
]

DRUG_CLASSES: tuple[str, ...] = (
    "opioid",
    "buprenorphine_mat",
    "naltrexone",
    "naloxone",
    "benzodiazepine",
    "gabapentinoid",
    "muscle_relaxant",
    "sedative_hypnotic",
    "stimulant",
)
"""Allowed values of ``drug_class``, in the engine's canonical order."""

EDITIONS: tuple[str, ...] = ("cdc2022", "cdc2018")
"""MME factor editions of the default reference; the first is the default."""

REFERENCE_SCHEMA = pa.schema(
    [
        pa.field("ndc", pa.string()),
        pa.field("drug_name", pa.string()),
        pa.field("ingredient", pa.string()),
        pa.field("drug_class", pa.string()),
        pa.field("strength_per_unit", pa.float64()),
        pa.field("unit", pa.string()),
        pa.field("mme_factor", pa.float64()),
        pa.field("long_acting", pa.bool_()),
        pa.field("days_per_unit", pa.float64()),
        pa.field("dea_schedule", pa.string()),
    ]
)
"""Arrow schema of a loaded reference."""

# Columns of the packaged drugs.csv (one factor column per edition, plus provenance).
_CSV_TYPES: dict[str, pa.DataType] = {
    "ndc": pa.string(),
    "drug_name": pa.string(),
    "ingredient": pa.string(),
    "drug_class": pa.string(),
    "strength_per_unit": pa.float64(),
    "unit": pa.string(),
    **{f"mme_factor_{e}": pa.float64() for e in EDITIONS},
    "long_acting": pa.bool_(),
    "days_per_unit": pa.float64(),
    "dea_schedule": pa.string(),
    "source": pa.string(),
}
_REQUIRED = ("ndc", "ingredient", "drug_class", "strength_per_unit", "unit")
_OPTIONAL = ("drug_name", "long_acting", "days_per_unit", "dea_schedule")
_FACTOR_COLUMNS = ("mme_factor", *(f"mme_factor_{e}" for e in EDITIONS))
_KNOWN = (*_REQUIRED, *_OPTIONAL, *_FACTOR_COLUMNS)
_TRUE = ("true", "t", "1", "yes", "y")
_FALSE = ("false", "f", "0", "no", "n")
_NUMBER = r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$"
_MAX_SHOWN = 3


def _check_edition(edition: str) -> None:
    if edition not in EDITIONS:
        raise InputError(
            f"unknown MME factor edition {edition!r}; expected one of {', '.join(EDITIONS)}"
        )


@functools.lru_cache(maxsize=len(EDITIONS))
def _default_reference(edition: str) -> pa.Table:
    """Read the packaged ``drugs.csv`` once per edition (cached: it is read often)."""
    path = data_path("reference", "drugs.csv")
    table = pacsv.read_csv(
        path,
        # one thread: 2.8 MB parse in ~12 ms, where starting Arrow's thread pool for it costs
        # more than the parse on every command's start
        read_options=pacsv.ReadOptions(use_threads=False),
        convert_options=pacsv.ConvertOptions(
            column_types=_CSV_TYPES,
            include_columns=list(_CSV_TYPES),
            null_values=[""],
            strings_can_be_null=True,
            true_values=["true"],
            false_values=["false"],
        ),
    )
    columns = {name: table[name] for name in REFERENCE_SCHEMA.names if name != "mme_factor"}
    columns["mme_factor"] = table[f"mme_factor_{edition}"]
    columns["long_acting"] = pc.fill_null(table["long_acting"], False)
    out = pa.table([columns[f.name] for f in REFERENCE_SCHEMA], schema=REFERENCE_SCHEMA)
    if not _sorted_without_nulls(out["ndc"]):  # the packaged file is: no sort to pay for
        out = out.sort_by("ndc")
    return out.combine_chunks()


def _sorted_without_nulls(column: pa.ChunkedArray) -> bool:
    """Whether ``column`` holds no null and never decreases (sorting it would change nothing)."""
    if column.null_count or len(column) < 2:
        return column.null_count == 0
    flat = column.combine_chunks()
    return bool(pc.all(pc.less_equal(flat[:-1], flat[1:])).as_py())


def load_reference(
    extra: str | os.PathLike[str] | pa.Table | None = None, *, edition: str = "cdc2022"
) -> pa.Table:
    """Load the drug reference, optionally merging a user's own rows over the default.

    Parameters
    ----------
    extra : str, path-like, pyarrow.Table or None
        User rows to merge over the packaged default: a ``.csv``, ``.csv.gz`` or ``.parquet``
        file, or an Arrow table. Required columns: ``ndc`` (11-digit text), ``ingredient``,
        ``drug_class`` (one of :data:`DRUG_CLASSES`), ``strength_per_unit``, ``unit`` and an MME
        factor column: ``mme_factor_<edition>`` if present, else ``mme_factor`` (empty = no
        MME). Optional columns (``drug_name``, ``long_acting``, ``days_per_unit``,
        ``dea_schedule``) default to null, or false for ``long_acting``. Other columns are
        ignored. A user row replaces the default row with the same ``ndc``; new NDCs are added.
    edition : {"cdc2022", "cdc2018"}
        Which MME factor edition of the default reference to use.

    Returns
    -------
    pyarrow.Table
        Table with :data:`REFERENCE_SCHEMA`, one row per NDC, sorted by ``ndc``.

    Raises
    ------
    InputError
        Unknown edition, unreadable file, or an invalid ``extra`` row: the one-line message names
        the file, the column, up to three offending values with their row numbers (data rows
        counted from 1, header excluded) and the fix.
    """
    _check_edition(edition)
    base = _default_reference(edition)
    if extra is None:
        return base
    user = _read_extra(extra, edition)
    if user.num_rows == 0:
        return base
    keep = pc.invert(pc.is_in(base["ndc"], value_set=user["ndc"]))
    merged = pa.concat_tables([base.filter(keep), user])
    return merged.sort_by("ndc").combine_chunks()


def reference_digest(table: pa.Table) -> str:
    """Return a stable SHA-256 hex digest of a reference table's content.

    The digest covers column names, types, validity and values (row order included), and does not
    depend on chunking or on the pyarrow version, so it can go into an audit's config digest.

    Parameters
    ----------
    table : pyarrow.Table
        Typically the output of :func:`load_reference`.

    Returns
    -------
    str
        64 lower-case hex characters.
    """
    h = hashlib.sha256()
    h.update(f"rows={table.num_rows};".encode())
    for field in table.schema:
        col = table[field.name].combine_chunks()
        h.update(f"{field.name}:{field.type};".encode())
        h.update(np.asarray(pc.is_valid(col), dtype=np.uint8).tobytes())
        t = field.type
        if pa.types.is_floating(t) or pa.types.is_integer(t):
            filled = pc.fill_null(col, 0).to_numpy(zero_copy_only=False)
            h.update(filled.astype(filled.dtype.newbyteorder("<")).tobytes())
        elif pa.types.is_boolean(t):
            h.update(np.asarray(pc.fill_null(col, False), dtype=np.uint8).tobytes())
        else:
            arr = pc.fill_null(col.cast(pa.large_string()), "")
            bufs = arr.buffers()
            offsets = np.frombuffer(bufs[1], dtype="<i8")[arr.offset : arr.offset + len(arr) + 1]
            h.update(np.diff(offsets).astype("<i8").tobytes())
            if len(arr) and bufs[2] is not None:
                h.update(memoryview(bufs[2])[int(offsets[0]) : int(offsets[-1])])
    return h.hexdigest()


# --------------------------------------------------------------------------- user rows


def _read_extra(extra: str | os.PathLike[str] | pa.Table, edition: str) -> pa.Table:
    """Read, validate and normalise the user's reference rows."""
    if isinstance(extra, pa.Table):
        return _validate(extra, "extra reference table", edition)
    if not isinstance(extra, (str, os.PathLike)):
        raise InputError(
            f"extra reference must be a file path or a pyarrow.Table, not {type(extra).__name__}"
        )
    path = Path(extra)
    name = path.name
    lower = name.lower()
    if not path.is_file():
        raise InputError(f"{path}: extra reference file not found; check the path")
    try:
        if lower.endswith((".csv", ".csv.gz")):
            table = pacsv.read_csv(
                path,
                convert_options=pacsv.ConvertOptions(
                    column_types={c: pa.string() for c in _KNOWN},
                    strings_can_be_null=False,
                ),
            )
        elif lower.endswith(".parquet"):
            import pyarrow.parquet as pq

            table = pq.read_table(path)
        else:
            raise InputError(
                f"{name}: unsupported extra reference file type; use .csv, .csv.gz or .parquet"
            )
    except (pa.ArrowInvalid, OSError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(f"{name}: cannot read extra reference ({first})") from exc
    return _validate(table, name, edition)


def _fail(src: str, col: str, problem: str, values: pa.Array, mask: pa.Array, fix: str) -> None:
    """Raise InputError listing up to three offending values (1-based data rows) of ``col``."""
    rows = pc.indices_nonzero(mask).to_numpy()
    count = len(rows)
    shown = rows[:_MAX_SHOWN]
    vals = values.take(pa.array(shown, type=pa.int64())).to_pylist()
    items = ", ".join(
        f"{v!r} in row {int(r) + 1}" if v is not None else f"empty in row {int(r) + 1}"
        for v, r in zip(vals, shown, strict=True)
    )
    more = f" (and {count - len(shown)} more)" if count > len(shown) else ""
    raise InputError(f"{src}: column '{col}': {problem}: {items}{more}; {fix}")


def _as_text(table: pa.Table, col: str, src: str) -> pa.Array:
    """Column as trimmed strings, empty -> null."""
    arr = table[col].combine_chunks()
    if pa.types.is_dictionary(arr.type):
        arr = arr.dictionary_decode()
    if col == "ndc" and not (pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type)):
        raise InputError(
            f"{src}: column 'ndc' has type {arr.type}, expected string; write NDCs as "
            "11-digit text so leading zeros are kept"
        )
    try:
        text = arr.cast(pa.string())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise InputError(
            f"{src}: column '{col}' has type {arr.type}, which cannot be read as text; "
            "use a string or numeric column"
        ) from exc
    text = pc.utf8_trim_whitespace(text)
    return pc.if_else(pc.equal(text, ""), pa.scalar(None, pa.string()), text)


def _number(src: str, col: str, text: pa.Array, *, allow_null: bool = True) -> pa.Array:
    """Parse a text column as positive finite floats (null allowed unless ``allow_null`` is false)."""
    ok = pc.fill_null(pc.match_substring_regex(text, _NUMBER), True)
    bad = pc.invert(ok)
    if pc.any(bad).as_py():
        _fail(src, col, "not a number", text, bad, "write a plain decimal number or leave it empty")
    values = pc.cast(pc.if_else(ok, text, pa.scalar(None, pa.string())), pa.float64())
    bad = pc.fill_null(pc.invert(pc.and_(pc.is_finite(values), pc.greater(values, 0.0))), False)
    if pc.any(bad).as_py():
        _fail(src, col, "must be a positive finite number", text, bad, "fix or empty the value")
    if not allow_null:
        missing = pc.is_null(values)
        if pc.any(missing).as_py():
            _fail(src, col, "value required", text, missing, "fill in the value")
    return values


def _validate(table: pa.Table, src: str, edition: str) -> pa.Table:
    """Validate user rows and return them with :data:`REFERENCE_SCHEMA`."""
    names = set(table.column_names)
    factor_col = _factor_column(names, src, edition)
    text = {c: _as_text(table, c, src) for c in _KNOWN if c in names}
    n = table.num_rows
    ndc = _checked_ndc(text["ndc"], src)
    drug_class = _checked_drug_class(text["drug_class"], src)
    ingredient = _checked_ingredient(text["ingredient"], src)
    strength, factor, unit = _checked_dose(text, factor_col, drug_class, src)
    null_str = pa.nulls(n, pa.string())
    if "days_per_unit" in text:
        days = _number(src, "days_per_unit", text["days_per_unit"])
    else:
        days = pa.nulls(n, pa.float64())
    if "long_acting" in text:
        long_acting = _checked_long_acting(text["long_acting"], src)
    else:
        long_acting = pa.array(np.zeros(n, dtype=bool))
    columns = {
        "ndc": ndc,
        "drug_name": text.get("drug_name", null_str),
        "ingredient": ingredient,
        "drug_class": drug_class,
        "strength_per_unit": strength,
        "unit": unit,
        "mme_factor": factor,
        "long_acting": long_acting,
        "days_per_unit": days,
        "dea_schedule": text.get("dea_schedule", null_str),
    }
    return pa.table([columns[f.name] for f in REFERENCE_SCHEMA], schema=REFERENCE_SCHEMA)


def _factor_column(names: set[str], src: str, edition: str) -> str:
    """The MME-factor column of the edition (``mme_factor_<edition>``, else ``mme_factor``);
    InputError naming every missing required column."""
    factor_col = next(
        (c for c in (f"mme_factor_{edition}", "mme_factor") if c in names),
        None,
    )
    missing = [c for c in _REQUIRED if c not in names]
    if factor_col is None:
        missing.append("mme_factor")
    if missing:
        others = [f"mme_factor_{e}" for e in EDITIONS if f"mme_factor_{e}" in names]
        hint = (
            f" (found {', '.join(others)} but edition is {edition!r})"
            if factor_col is None and others
            else ""
        )
        raise InputError(
            f"{src}: missing required column(s) {', '.join(repr(c) for c in missing)}{hint}; "
            f"expected columns {', '.join(_REQUIRED)}, mme_factor (or mme_factor_{edition}) "
            f"and optionally {', '.join(_OPTIONAL)}"
        )
    return factor_col


def _checked_ndc(ndc: pa.Array, src: str) -> pa.Array:
    """The NDCs, each 11 digits and none twice (InputError otherwise)."""
    bad = pc.invert(pc.fill_null(pc.match_substring_regex(ndc, r"^\d{11}$"), False))
    if pc.any(bad).as_py():
        _fail(
            src,
            "ndc",
            "ndc not 11 digits",
            ndc,
            bad,
            "write the 11-digit NDC (5-4-2, zero padded, no hyphens) as text",
        )
    n = len(ndc)
    if n > 1:
        order = pc.sort_indices(ndc)
        ordered = ndc.take(order)
        dup_sorted = pc.equal(ordered[1:], ordered[:-1])
        if pc.any(dup_sorted).as_py():
            later = order[1:].filter(dup_sorted)  # stable sort: the later occurrence
            mask = np.zeros(n, dtype=bool)
            mask[later.to_numpy()] = True
            _fail(src, "ndc", "duplicate ndc", ndc, pa.array(mask), "keep one row per NDC")
    return ndc


def _checked_drug_class(text: pa.Array, src: str) -> pa.Array:
    """The drug classes in lower case, each a known one (InputError otherwise)."""
    drug_class = pc.utf8_lower(text)
    bad = pc.invert(pc.fill_null(pc.is_in(drug_class, value_set=pa.array(DRUG_CLASSES)), False))
    if pc.any(bad).as_py():
        _fail(
            src,
            "drug_class",
            "unknown drug_class",
            text,
            bad,
            f"expected one of {', '.join(DRUG_CLASSES)}",
        )
    return drug_class


def _checked_ingredient(text: pa.Array, src: str) -> pa.Array:
    """The ingredients in lower case, none empty (InputError otherwise)."""
    ingredient = pc.utf8_lower(text)
    bad = pc.is_null(ingredient)
    if pc.any(bad).as_py():
        _fail(src, "ingredient", "value required", text, bad, "fill in the ingredient")
    return ingredient


def _checked_dose(
    text: dict, factor_col: str, drug_class: pa.Array, src: str
) -> tuple[pa.Array, pa.Array, pa.Array]:
    """``(strength_per_unit, mme_factor, unit)``: numbers read, units in upper case, and an
    opioid with an MME factor has a strength and a unit (InputError otherwise)."""
    strength = _number(src, "strength_per_unit", text["strength_per_unit"])
    factor = _number(src, factor_col, text[factor_col])
    unit = pc.utf8_upper(text["unit"])
    needs = pc.and_(pc.equal(drug_class, "opioid"), pc.is_valid(factor))
    for col, values in (("strength_per_unit", strength), ("unit", unit)):
        bad = pc.and_(needs, pc.is_null(values))
        if pc.any(bad).as_py():
            _fail(
                src,
                col,
                "required for an opioid with an MME factor",
                text[col],
                bad,
                "fill in the strength and unit, or leave the MME factor empty",
            )
    return strength, factor, unit


def _checked_long_acting(text: pa.Array, src: str) -> pa.Array:
    """``long_acting`` as booleans (true/t/1/yes/y, false/f/0/no/n, empty = false; InputError
    for anything else)."""
    la = pc.utf8_lower(text)
    bad = pc.invert(pc.fill_null(pc.is_in(la, value_set=pa.array(_TRUE + _FALSE)), True))
    if pc.any(bad).as_py():
        _fail(
            src,
            "long_acting",
            "not a boolean",
            text,
            bad,
            "use true or false (empty = false)",
        )
    return pc.fill_null(pc.is_in(la, value_set=pa.array(_TRUE)), False)
