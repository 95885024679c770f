"""Which tier a run's kernels take: compiled (numba) for any book, or plain Python for a book so
small that loading the compiled kernels would take longer than running them as Python.

The choice is made once per in-memory run, when the claims have been read (:func:`choose_tier`),
and holds for that run only (:func:`rxrisk.kernels._jit.use_python_tier`). Both tiers run the same kernel
source and write the same bytes; only the time differs. ``RXRISK_KERNELS`` overrides the choice.
"""

from __future__ import annotations

import os

from rxrisk.errors import InputError
from rxrisk.kernels._jit import use_python_tier

#: Claim rows read (pharmacy and medical together) below which a run's kernels run as Python
#: under the default ``auto``. Importing numba and loading the compiled kernels costs about
#: 0.3 s of a command's start, while the Python kernels cost about 15 microseconds per claim
#: row: on 2 cores a warm ``score`` breaks even near 25,000 claim rows (750 generated members),
#: and is 20-33% quicker as Python below this limit. ``bench/bench_start.py --crossover``
#: measures it.
PYTHON_TIER_MAX_ROWS = 10_000

#: The environment variable that overrides the choice.
TIER_ENV = "RXRISK_KERNELS"

#: Its values: ``auto`` (the default: Python below :data:`PYTHON_TIER_MAX_ROWS` claim rows,
#: else compiled), ``compiled`` (always numba) and ``python`` (plain Python for every run that
#: reads its whole book into memory: slow on large books, for checking and debugging). A
#: streamed run, and a Spark stage that does not read a whole book, always run compiled.
TIER_SETTINGS = ("auto", "compiled", "python")


def tier_setting() -> str:
    """The ``RXRISK_KERNELS`` setting (``auto`` when unset or empty); another value raises
    :class:`~rxrisk.errors.InputError`."""
    value = os.environ.get(TIER_ENV, "").strip().lower() or "auto"
    if value not in TIER_SETTINGS:
        raise InputError(
            f"{TIER_ENV}={os.environ[TIER_ENV]!r} is not a kernel tier; "
            f"set it to one of {', '.join(TIER_SETTINGS)} (or unset it for auto)"
        )
    return value


def choose_tier(claim_rows: int) -> str:
    """Pick the kernel tier of the current run from the claim rows it read, and apply it.

    Parameters
    ----------
    claim_rows : int
        Rows read from the pharmacy and medical inputs together.

    Returns
    -------
    str
        ``"python"`` or ``"compiled"``.
    """
    setting = tier_setting()
    python = setting == "python" or (setting == "auto" and claim_rows < PYTHON_TIER_MAX_ROWS)
    use_python_tier(python)
    return "python" if python else "compiled"
