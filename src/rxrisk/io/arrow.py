"""Small Arrow <-> numpy helpers shared by the stages (no business logic)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc


def dict_codes(col: pa.ChunkedArray | pa.Array) -> tuple[np.ndarray, pa.Array]:
    """Dictionary-encode a column in one hash pass.

    Returns
    -------
    codes : numpy.ndarray of int32
        Position of each row's value in ``dictionary``; -1 for nulls.
    dictionary : pyarrow.Array
        The distinct non-null values, in order of first appearance.
    """
    if pa.types.is_dictionary(col.type):
        return _dictionary_codes(col)
    enc = col.dictionary_encode()
    if isinstance(enc, pa.ChunkedArray):
        chunks = enc.chunks
        if not chunks:
            return np.empty(0, np.int32), pa.array([], col.type)
        dictionary = chunks[-1].dictionary
        codes = np.concatenate([_indices(c) for c in chunks])
        return codes, dictionary
    return _indices(enc), enc.dictionary


def _indices(arr: pa.DictionaryArray) -> np.ndarray:
    """Dictionary indices as int32 numpy, -1 where null (read straight from the buffers)."""
    idx = arr.indices
    dtype = np.dtype(idx.type.to_pandas_dtype())
    out = np.frombuffer(
        idx.buffers()[1], dtype=dtype, count=len(idx), offset=idx.offset * dtype.itemsize
    ).astype(np.int32)
    if idx.null_count:
        out[null_mask(idx)] = -1
    return out


def _dictionary_codes(col) -> tuple[np.ndarray, pa.Array]:
    """Codes of an already dictionary-encoded column (e.g. read with ``read_dictionary``):
    the chunks' dictionaries are unified once, no row is hashed. The returned dictionary may
    hold values no row uses, and equal values twice only if the input dictionary did."""
    if isinstance(col, pa.Array):
        col = pa.chunked_array([col])
    if col.num_chunks == 0:
        return np.empty(0, np.int32), pa.array([], col.type.value_type)
    col = pa.table({"c": col}).unify_dictionaries().column("c")
    dictionary = col.chunk(0).dictionary
    codes = np.concatenate([_indices(c) for c in col.chunks])
    if dictionary.null_count:  # a null dictionary value means a null row
        codes = np.where(np.isin(codes, np.flatnonzero(null_mask(dictionary))), np.int32(-1), codes)
    return codes, dictionary


def to_bool(col) -> np.ndarray:
    """A boolean column as numpy, nulls as False."""
    if isinstance(col, pa.ChunkedArray) and col.num_chunks == 0:
        return np.zeros(0, bool)
    return np.asarray(pc.fill_null(col, False).to_numpy(zero_copy_only=False), dtype=bool)


def is_null(col) -> np.ndarray:
    return to_bool(pc.is_null(col))


def date_days(col: pa.ChunkedArray) -> np.ndarray:
    """date32 column as int32 day numbers (zero-copy view per chunk); nulls become 0."""
    parts = []
    for chunk in col.chunks:
        if chunk.null_count:
            chunk = chunk.fill_null(pa.scalar(0, pa.date32()))
        parts.append(chunk.view(pa.int32()).to_numpy(zero_copy_only=False))
    return np.concatenate(parts) if parts else np.zeros(0, np.int32)


def to_numpy(col, dtype, fill=0) -> np.ndarray:
    """A numeric column as numpy of ``dtype`` with nulls filled.

    Fixed-width integer and float columns are read straight from their value buffers (one
    copy into the result, nulls overwritten from the validity bitmap); others go through
    Arrow's conversion.
    """
    if isinstance(col, pa.ChunkedArray) and col.num_chunks == 0:
        return np.zeros(0, dtype)
    if pa.types.is_integer(col.type) or pa.types.is_floating(col.type):
        chunks = col.chunks if isinstance(col, pa.ChunkedArray) else [col]
        src = np.dtype(col.type.to_pandas_dtype())
        out = np.empty(len(col), dtype)
        pos = 0
        for ch in chunks:
            n = len(ch)
            if n:
                buf = ch.buffers()[1]
                out[pos : pos + n] = np.frombuffer(
                    buf, dtype=src, count=n, offset=ch.offset * src.itemsize
                )
                if ch.null_count:
                    out[pos : pos + n][null_mask(ch)] = fill
            pos += n
        return out
    if col.null_count:
        col = pc.fill_null(col, fill)
    return np.asarray(col.to_numpy(zero_copy_only=False), dtype=dtype)


def string_chunks(col):
    """Yield each chunk of a string column as zero-copy (offsets, data, null) views.

    ``offsets`` (int32 or int64) index ``data`` directly, as in the Arrow buffers.
    """
    chunks = col.chunks if isinstance(col, pa.ChunkedArray) else [col]
    for ch in chunks:
        if pa.types.is_dictionary(ch.type):
            ch = ch.cast(ch.type.value_type)
        if not (pa.types.is_string(ch.type) or pa.types.is_large_string(ch.type)):
            ch = ch.cast(pa.large_string())
        n = len(ch)
        _, ob, db = ch.buffers()[:3]
        odt = np.dtype(np.int64 if pa.types.is_large_string(ch.type) else np.int32)
        if n == 0 or ob is None:
            yield np.zeros(1, odt), np.zeros(0, np.uint8), np.zeros(0, bool)
            continue
        offsets = np.frombuffer(ob, dtype=odt, count=n + 1, offset=ch.offset * odt.itemsize)
        data = (
            np.frombuffer(db, dtype=np.uint8)
            if db is not None and db.size
            else np.zeros(1, np.uint8)
        )
        yield offsets, data, null_mask(ch)


def string_buffers(col) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A string column as (offsets int64[n + 1], data uint8, null bool[n]) for byte kernels.

    Chunks are concatenated (one copy of offsets and data; no per-row Python work).
    """
    chunks = col.chunks if isinstance(col, pa.ChunkedArray) else [col]
    offs, datas, nulls = [], [], []
    base = 0
    for ch in chunks:
        if pa.types.is_dictionary(ch.type):
            ch = ch.cast(ch.type.value_type)
        if not (pa.types.is_string(ch.type) or pa.types.is_large_string(ch.type)):
            ch = ch.cast(pa.large_string())
        n = len(ch)
        _, ob, db = ch.buffers()[:3]
        odt = np.int64 if pa.types.is_large_string(ch.type) else np.int32
        o = (
            np.frombuffer(
                ob, dtype=odt, count=n + 1, offset=ch.offset * np.dtype(odt).itemsize
            ).astype(np.int64)
            if n
            else np.zeros(1, np.int64)
        )
        lo, hi = int(o[0]), int(o[-1])
        d = (
            np.frombuffer(db, dtype=np.uint8)[lo:hi]
            if db is not None and hi > lo
            else np.zeros(0, np.uint8)
        )
        offs.append(o[:-1] - lo + base if n else np.zeros(0, np.int64))
        datas.append(d)
        nulls.append(null_mask(ch))
        base += hi - lo
    offsets = np.concatenate([*offs, np.array([base], np.int64)])
    data = np.concatenate(datas) if datas else np.zeros(0, np.uint8)
    null = np.concatenate(nulls) if nulls else np.zeros(0, bool)
    return offsets, data, null


def null_mask(arr: pa.Array) -> np.ndarray:
    """True where ``arr`` is null, unpacked from the validity bitmap (no compute kernel)."""
    n = len(arr)
    if arr.null_count == 0:
        return np.zeros(n, bool)
    validity = arr.buffers()[0]
    if validity is None:  # e.g. null type
        return np.ones(n, bool)
    first = arr.offset // 8
    raw = np.frombuffer(validity, np.uint8)[first : (arr.offset + n + 7) // 8 + 1]
    bits = np.unpackbits(raw, bitorder="little")
    start = arr.offset - 8 * first
    return bits[start : start + n] == 0


#: Keys from which :func:`sort_uint64` takes the parallel sort kernel rather than numpy's.
SORT_KERNEL_MIN_KEYS = 1_000_000


def sort_uint64(keys: np.ndarray) -> np.ndarray:
    """Sorted uint64 keys: numpy for small arrays, the parallel radix + bucket sort of
    ``kernels.sorting`` for large ones (same result)."""
    if len(keys) < SORT_KERNEL_MIN_KEYS:
        return np.sort(keys)
    from rxrisk.kernels._jit import threads  # lazy: arrow helpers load without the kernels
    from rxrisk.kernels.sorting import sort_keys  # lazy: it imports numba (a parallel kernel)

    return sort_keys(keys, 4 * threads())


def take_rows(col, rows: np.ndarray):
    """``col.take(rows)`` for a chunked column without concatenating its chunks first.

    Arrow's chunked ``take`` may combine all chunks (a copy of the whole column); a boolean
    ``filter`` works chunk by chunk. The kept rows are then reordered on the small result.
    A column of one chunk (a streamed batch) is taken directly: ``take`` touches only the
    rows taken, where a filter scans every row.
    """
    rows = np.asarray(rows, np.int64)
    n = len(col)
    if len(rows) and (rows.min() < 0 or rows.max() >= n):
        raise IndexError("row index out of range")
    try:
        if isinstance(col, pa.Array):
            return col.take(pa.array(rows))
        if col.num_chunks == 1:
            return pa.chunked_array([col.chunk(0).take(pa.array(rows))], col.type)
    except pa.ArrowNotImplementedError:  # a type without a take kernel: filter it
        pass
    increasing = len(rows) < 2 or bool(np.all(rows[1:] > rows[:-1]))
    mask = np.zeros(n, bool)
    mask[rows] = True
    kept = col.filter(pa.array(mask))
    if increasing:
        return kept
    chunked = isinstance(kept, pa.ChunkedArray)
    kept = kept.combine_chunks() if chunked else kept
    out = kept.take(pa.array(np.searchsorted(np.flatnonzero(mask), rows)))
    return pa.chunked_array([out]) if chunked else out


def keep_rows(columns: dict, mask: np.ndarray) -> dict:
    """Keep the rows of ``mask`` (bool per row) of several aligned columns.

    Columns of one chunk each (a streamed batch) are taken by one shared array of row
    numbers: Arrow's ``take`` touches only the kept rows, where a boolean filter scans every
    row of every column (several times slower when a tenth of a batch is kept). Columns of
    several chunks (a whole book) go through one table filter, chunk by chunk. Either way
    the result holds the same values and types.
    """
    cols = list(columns.values())
    if cols and all(isinstance(c, pa.ChunkedArray) and c.num_chunks == 1 for c in cols):
        rows = pa.array(np.flatnonzero(mask))
        try:
            return {
                name: pa.chunked_array([c.chunk(0).take(rows)], c.type)
                for name, c in columns.items()
            }
        except pa.ArrowNotImplementedError:  # a type without a take kernel: filter it
            pass
    table = pa.table(columns).filter(pa.array(mask))
    return {name: table.column(name) for name in columns}
