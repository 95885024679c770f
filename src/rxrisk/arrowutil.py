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
