"""The slots of the member-scoring outputs, named once for the kernel that writes them and the
decoder (``rxrisk.scoring.columns``) that reads them.

The outputs are column-major: ``ints`` (int32) and ``floats`` (float64) have one row per
*slot* and one column per output row ``m * k + j`` (member ``m``, as-of date ``j``). Each
window ``w`` (in the order of the configured windows) owns a block of ``N_WINDOW_INTS``
integer slots starting at ``w * N_WINDOW_INTS`` and a block of ``N_WINDOW_FLOATS`` float slots
starting at ``w * N_WINDOW_FLOATS``; the single slots follow the blocks of all the windows::

    ints:   [window 0: 8 counts] [window 1: 8 counts] ... [7 single ints]
    floats: [window 0: 3 mme]    [window 1: 3 mme]    ... [2 single floats]
            ([window 0: 3 averages] [window 1: 3 averages] ...)

The last blocks, of the optional average-MME definitions, exist only in a run that asks for
them (``ScoreParams.mme_definitions`` is 1); window ``w``'s starts at
``n_windows * N_WINDOW_FLOATS + N_SINGLE_FLOATS + w * N_DEFINITION_FLOATS``.

The per-window positions are also the columns of the kernels' per-window scratch ``counts``
(n_windows, ``N_WINDOW_INTS``) and ``mmes`` (n_windows, ``N_WINDOW_FLOATS``).

The names in ``WINDOW_INTS``, ``WINDOW_FLOATS``, ``SINGLE_INTS``, ``SINGLE_FLOATS`` and
``DEFINITION_FLOATS`` say what each slot holds; every slot appears in exactly one of them. The
row helpers at the end are plain Python for the decoder and compile inline into the kernels
(:func:`~rxrisk.kernels._jit.jitable`).
"""

from rxrisk.kernels._jit import jitable

# -- integer slots of each window's block (int32) -------------------------------------------
W_OPIOID_FILLS = 0  # opioid fills with a fill date in the window
W_PRESCRIBERS = 1  # distinct prescribers of those fills
W_PHARMACIES = 2  # distinct pharmacies of those fills
W_OPIOID_DAYS = 3  # days covered by an opioid
W_HIGH_DOSE_DAYS = 4  # days with daily MME at or above the high-dose floor
W_BENZO_FILLS = 5  # benzodiazepine fills with a fill date in the window
W_BENZO_OVERLAP = 6  # opioid days also covered by a benzodiazepine
W_CNS_OVERLAP = 7  # opioid days also covered by a CNS depressant
N_WINDOW_INTS = 8

# -- float slots of each window's block (float64) -------------------------------------------
W_MME_TOTAL = 0  # sum of the daily MME over the window
W_MME_AVG = 1  # total over the opioid days (0 without any)
W_MME_PEAK = 2  # largest daily MME
N_WINDOW_FLOATS = 3

# -- single integer slots, after the windows' blocks (offset ``n_windows * N_WINDOW_INTS``) --
S_HIGH_DOSE_RUN = 0  # longest run of high-dose days in the longest window
S_MAT_FILLS = 1  # MAT fills in the longest window
S_NALOXONE_FILLS = 2  # naloxone fills in the longest window
S_ED_VISITS = 3  # distinct ED visit days in the ED lookback
S_OVERDOSES = 4  # distinct overdose days in the diagnosis lookback
S_LAST_EMERGENCY = 5  # latest ED visit or overdose day in the diagnosis lookback, or NO_DATE
S_CATEGORY_BITS = 6  # OR of the category bits of the medical rows in the diagnosis lookback
N_SINGLE_INTS = 7

# -- single float slots, after the windows' blocks (offset ``n_windows * N_WINDOW_FLOATS``) --
S_MME_TODAY = 0  # daily MME on the as-of day
S_MME_ROLLING_MAX = 1  # largest average over ``rolling_days`` consecutive days in the horizon
N_SINGLE_FLOATS = 2

# -- float slots of each window's average-MME definitions (float64), after the single floats
# (offset ``n_windows * N_WINDOW_FLOATS + N_SINGLE_FLOATS``), only when asked for ---------------
D_MME_AVG_WINDOW = 0  # the window's MME total over its length
D_MME_AVG_SUPPLY = 1  # daily MME x covered days over covered days, opioid fills filled in it
D_MME_AVG_FILL = 2  # mean daily MME of the opioid fills filled in the window
N_DEFINITION_FLOATS = 3

#: The ``S_LAST_EMERGENCY`` value of a member without an emergency in the lookback.
NO_DATE = -(2**31)

#: What each slot holds, by name (the member table's column stem) and position.
WINDOW_INTS = (
    ("opioid_fills", W_OPIOID_FILLS),
    ("opioid_prescribers", W_PRESCRIBERS),
    ("opioid_pharmacies", W_PHARMACIES),
    ("opioid_days", W_OPIOID_DAYS),
    ("high_dose_days", W_HIGH_DOSE_DAYS),
    ("benzo_fills", W_BENZO_FILLS),
    ("benzo_overlap_days", W_BENZO_OVERLAP),
    ("cns_overlap_days", W_CNS_OVERLAP),
)
WINDOW_FLOATS = (("mme_total", W_MME_TOTAL), ("mme_avg", W_MME_AVG), ("mme_peak", W_MME_PEAK))
SINGLE_INTS = (
    ("high_dose_run", S_HIGH_DOSE_RUN),
    ("mat_fills", S_MAT_FILLS),
    ("naloxone_fills", S_NALOXONE_FILLS),
    ("ed_visits", S_ED_VISITS),
    ("overdoses", S_OVERDOSES),
    ("last_emergency", S_LAST_EMERGENCY),
    ("category_bits", S_CATEGORY_BITS),
)
SINGLE_FLOATS = (("mme_today", S_MME_TODAY), ("mme_rolling_max", S_MME_ROLLING_MAX))
DEFINITION_FLOATS = (
    ("mme_avg_window", D_MME_AVG_WINDOW),
    ("mme_avg_supply", D_MME_AVG_SUPPLY),
    ("mme_avg_fill", D_MME_AVG_FILL),
)


@jitable
def n_int_slots(n_windows):
    """Rows of ``ints``: ``N_WINDOW_INTS`` per window, then ``N_SINGLE_INTS``."""
    return n_windows * N_WINDOW_INTS + N_SINGLE_INTS


@jitable
def n_float_slots(n_windows, definitions=0):
    """Rows of ``floats``: ``N_WINDOW_FLOATS`` per window, then ``N_SINGLE_FLOATS``, then
    (``definitions`` 1) ``N_DEFINITION_FLOATS`` per window."""
    return n_windows * (N_WINDOW_FLOATS + definitions * N_DEFINITION_FLOATS) + N_SINGLE_FLOATS


@jitable
def window_int(w, slot):
    """Row of ``ints`` holding per-window integer ``slot`` (a ``W_*``) of window ``w``."""
    return w * N_WINDOW_INTS + slot


@jitable
def window_float(w, slot):
    """Row of ``floats`` holding per-window float ``slot`` (a ``W_MME_*``) of window ``w``."""
    return w * N_WINDOW_FLOATS + slot


@jitable
def single_int(n_windows, slot):
    """Row of ``ints`` holding single integer ``slot`` (an ``S_*`` of ``SINGLE_INTS``)."""
    return n_windows * N_WINDOW_INTS + slot


@jitable
def single_float(n_windows, slot):
    """Row of ``floats`` holding single float ``slot`` (an ``S_*`` of ``SINGLE_FLOATS``)."""
    return n_windows * N_WINDOW_FLOATS + slot


@jitable
def definition_float(n_windows, w, slot):
    """Row of ``floats`` holding average-MME definition ``slot`` (a ``D_*``) of window ``w``."""
    return n_windows * N_WINDOW_FLOATS + N_SINGLE_FLOATS + w * N_DEFINITION_FLOATS + slot
