"""Arrow string columns built from numbers and byte matrices without a Python loop per row."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

_LUT4 = np.frombuffer("".join(f"{i:04d}" for i in range(10_000)).encode(), np.uint8).reshape(
    10_000, 4
)


def digit_strings(prefix: bytes, numbers: np.ndarray, width: int) -> pa.Array:
    """``prefix`` + zero-padded decimal ``numbers`` as a pyarrow string array.

    Parameters
    ----------
    prefix : bytes
        ASCII prefix of every string (may be empty).
    numbers : numpy.ndarray
        Non-negative integers of at most ``width`` digits.
    width : int
        Number of digits (zero-padded on the left).

    Returns
    -------
    pyarrow.Array
        One string per number.
    """
    x = np.asarray(numbers, dtype=np.int64).copy()
    n = len(x)
    p = len(prefix)
    groups = -(-width // 4)
    digits = np.empty((n, 4 * groups), dtype=np.uint8)
    for g in range(groups - 1, -1, -1):
        digits[:, 4 * g : 4 * g + 4] = _LUT4[x % 10_000]
        x //= 10_000
    mat = np.empty((n, p + width), dtype=np.uint8)
    if p:
        mat[:, :p] = np.frombuffer(prefix, dtype=np.uint8)
    mat[:, p:] = digits[:, 4 * groups - width :]
    return matrix_strings(mat)


def matrix_strings(mat: np.ndarray) -> pa.Array:
    """Rows of a uint8 matrix (ASCII) as a pyarrow string array.

    Parameters
    ----------
    mat : numpy.ndarray
        ``(n, width)`` matrix of ASCII bytes.

    Returns
    -------
    pyarrow.Array
        ``n`` strings of ``width`` characters.
    """
    n, width = mat.shape
    offsets = np.arange(0, (n + 1) * width, width, dtype=np.int64)
    if offsets[-1] < 2**31:
        return pa.StringArray.from_buffers(
            n, pa.py_buffer(offsets.astype(np.int32)), pa.py_buffer(np.ascontiguousarray(mat))
        )
    return pa.LargeStringArray.from_buffers(
        n, pa.py_buffer(offsets), pa.py_buffer(np.ascontiguousarray(mat))
    ).cast(pa.string())
