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
    enc = col.dictionary_encode()
    if isinstance(enc, pa.ChunkedArray):
        chunks = enc.chunks
        if not chunks:
            return np.empty(0, np.int32), pa.array([], col.type)
        dictionary = chunks[-1].dictionary
        codes = np.concatenate(
            [
                c.indices.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int32, copy=False)
                for c in chunks
            ]
        )
        return codes, dictionary
    return enc.indices.fill_null(-1).to_numpy(zero_copy_only=False).astype(
        np.int32, copy=False
    ), enc.dictionary


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
    """A numeric column as numpy of ``dtype`` with nulls filled."""
    if isinstance(col, pa.ChunkedArray) and col.num_chunks == 0:
        return np.zeros(0, dtype)
    if col.null_count:
        col = pc.fill_null(col, fill)
    return np.asarray(col.to_numpy(zero_copy_only=False), dtype=dtype)


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
        nulls.append(is_null(ch) if ch.null_count else np.zeros(n, bool))
        base += hi - lo
    offsets = np.concatenate([*offs, np.array([base], np.int64)])
    data = np.concatenate(datas) if datas else np.zeros(0, np.uint8)
    null = np.concatenate(nulls) if nulls else np.zeros(0, bool)
    return offsets, data, null
