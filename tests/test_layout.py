"""The typed kernel interface of scoring: the output layout is decoded slot for slot, and the
wrapper refuses arguments that would compile another specialisation of the kernel."""

import os

import numpy as np
import pyarrow as pa
import pytest

from rxrisk.config.rules import MetricsConfig
from rxrisk.config.schema import MME_DEFINITIONS, definition_stems, metric_fields
from rxrisk.kernels import containers as kc
from rxrisk.kernels import layout
from rxrisk.scoring.columns import metric_columns
from rxrisk.scoring.encode import Claims
from rxrisk.scoring.run import check_kernel_arguments, run_kernels

METRICS = MetricsConfig(windows=[30, 90, 180], ed_lookback_days=60, dx_lookback_days=200)
#: The same with every average-MME definition (listed out of column order).
DEFINED = MetricsConfig(
    windows=[30, 90, 180],
    ed_lookback_days=60,
    dx_lookback_days=200,
    mme_definitions=["fill", "window", "supply"],
)
DAYS = np.array([20000, 20030], np.int32)


@pytest.mark.parametrize(
    ("table", "size"),
    [
        (layout.WINDOW_INTS, layout.N_WINDOW_INTS),
        (layout.WINDOW_FLOATS, layout.N_WINDOW_FLOATS),
        (layout.SINGLE_INTS, layout.N_SINGLE_INTS),
        (layout.SINGLE_FLOATS, layout.N_SINGLE_FLOATS),
        (layout.DEFINITION_FLOATS, layout.N_DEFINITION_FLOATS),
    ],
)
def test_every_slot_is_named_once(table, size):
    names = [name for name, _ in table]
    assert len(set(names)) == len(names)
    assert sorted(slot for _, slot in table) == list(range(size))


def test_definition_slots_are_the_rule_file_names():
    assert [name for name, _ in layout.DEFINITION_FLOATS] == definition_stems(MME_DEFINITIONS)


def _slots(n_windows, definitions=0):
    """Every (output, row) of the layout for ``n_windows`` windows."""
    rows = [
        ("ints", layout.window_int(w, s)) for w in range(n_windows) for _, s in layout.WINDOW_INTS
    ]
    rows += [
        ("floats", layout.window_float(w, s))
        for w in range(n_windows)
        for _, s in layout.WINDOW_FLOATS
    ]
    rows += [("ints", layout.single_int(n_windows, s)) for _, s in layout.SINGLE_INTS]
    rows += [("floats", layout.single_float(n_windows, s)) for _, s in layout.SINGLE_FLOATS]
    rows += [
        ("floats", layout.definition_float(n_windows, w, s))
        for w in range(n_windows * definitions)
        for _, s in layout.DEFINITION_FLOATS
    ]
    return rows


@pytest.mark.parametrize("definitions", [0, 1])
def test_slot_rows_tile_the_outputs(definitions):
    nw = len(METRICS.windows)
    rows = _slots(nw, definitions)
    ints = sorted(r for kind, r in rows if kind == "ints")
    floats = sorted(r for kind, r in rows if kind == "floats")
    assert ints == list(range(layout.n_int_slots(nw)))
    assert floats == list(range(layout.n_float_slots(nw, definitions)))


def _decode(outputs, metrics=METRICS):
    cols, nulls = metric_columns(metrics, np.arange(len(DAYS)), DAYS, outputs)
    return {
        name: (np.asarray(values).tolist(), nulls.get(name, np.zeros(len(DAYS), bool)).tolist())
        for name, values in cols.items()
    }


def _empty_outputs(definitions=0):
    nw = len(METRICS.windows)
    ints = np.zeros((layout.n_int_slots(nw), len(DAYS)), np.int32)
    ints[layout.single_int(nw, layout.S_LAST_EMERGENCY)] = layout.NO_DATE
    floats = np.zeros((layout.n_float_slots(nw, definitions), len(DAYS)), np.float64)
    return kc.ScoreOutputs(ints, floats, np.ones(len(DAYS), np.bool_))


@pytest.mark.parametrize("metrics", [METRICS, DEFINED], ids=["plain", "definitions"])
def test_every_slot_is_decoded_exactly_once(metrics):
    """Setting one slot changes some columns; no two slots change the same column; together
    they change every metric column of the member table."""
    definitions = 1 if metrics.mme_definitions else 0
    base = _decode(_empty_outputs(definitions), metrics)
    names = [f.name for f in metric_fields(metrics.windows, 60, 200, metrics.mme_definitions)]
    assert sorted(base) == sorted(names)
    owner = {}
    for kind, row in _slots(len(metrics.windows), definitions):
        outputs = _empty_outputs(definitions)
        # 127: every category bit, and a day that is an emergency date
        getattr(outputs, kind)[row] = 127 if kind == "ints" else 1.5
        changed = [name for name, value in _decode(outputs, metrics).items() if value != base[name]]
        assert changed, f"{kind}[{row}] is decoded into no column"
        for name in changed:
            assert name not in owner, f"{name} comes from {owner[name]} and {(kind, row)}"
            owner[name] = (kind, row)
    assert sorted(owner) == sorted(names)


def _claims(n_members=2, **changes):
    """Hand-made encoded claims: one opioid fill per member and no medical rows."""
    fields = {
        "member_ids": pa.array([f"m{i}" for i in range(n_members)]),
        "fill_offsets": np.arange(n_members + 1, dtype=np.intp),
        "start": np.full(n_members, 19990, np.int32),
        "end": np.full(n_members, 20019, np.int32),
        "role": np.ones(n_members, np.uint8),
        "mme": np.full(n_members, 95.0),
        "prescriber": np.zeros(n_members, np.int32),
        "pharmacy": np.zeros(n_members, np.int32),
        "row": np.arange(n_members, dtype=np.int64),
        "n_prescribers": 1,
        "n_pharmacies": 1,
        "med_offsets": np.zeros(n_members + 1, np.intp),
        "med_day": np.zeros(0, np.int32),
        "med_mask": np.zeros(0, np.uint8),
    }
    fields.update(changes)
    return Claims(**fields)


def test_wrapper_scores_hand_made_claims():
    outputs = run_kernels(_claims(), DAYS, METRICS, None)
    nw = len(METRICS.windows)
    assert outputs.present.tolist() == [True, True, True, True]
    fills_30d = outputs.ints[layout.window_int(0, layout.W_OPIOID_FILLS)]
    assert fills_30d.tolist() == [1, 0, 1, 0]  # the fill is 10 days before the first as-of
    today = outputs.floats[layout.single_float(nw, layout.S_MME_TODAY)]
    assert today.tolist() == [95.0, 0.0, 95.0, 0.0]


@pytest.mark.skipif(os.environ.get("NUMBA_DISABLE_JIT") == "1", reason="no compilation")
def test_one_specialisation_for_every_call():
    from rxrisk.kernels.member_scores import score_chunk  # the compiled kernel of score_members

    run_kernels(_claims(), DAYS, METRICS, None)
    run_kernels(_claims(3, n_prescribers=5), [20000], MetricsConfig(windows=[7]), None)
    run_kernels(_claims(), DAYS, DEFINED, None)
    assert len(score_chunk.signatures) == 1


def test_wrapper_computes_the_definitions_only_when_asked():
    """One 30-day fill of 95 MME a day on days 19990 .. 20019, as of 20000 and 20030."""
    nw = len(DEFINED.windows)
    plain = run_kernels(_claims(), DAYS, METRICS, None)
    outputs = run_kernels(_claims(), DAYS, DEFINED, None)
    assert plain.floats.shape[0] == layout.n_float_slots(nw) == 11
    assert outputs.floats.shape[0] == layout.n_float_slots(nw, 1) == 20
    assert np.array_equal(outputs.floats[:11], plain.floats)

    def row(w, slot):  # member 0: as of 20000, then 20030
        return outputs.floats[layout.definition_float(nw, w, slot), :2].tolist()

    assert row(0, layout.D_MME_AVG_WINDOW) == [95.0 * 11 / 30, 95.0 * 19 / 30]
    assert row(1, layout.D_MME_AVG_WINDOW) == [95.0 * 11 / 90, 95.0 * 30 / 90]
    for slot in (layout.D_MME_AVG_SUPPLY, layout.D_MME_AVG_FILL):
        assert row(0, slot) == [95.0, 0.0]  # filled 40 days before 20030: not in its 30 days
        assert row(1, slot) == row(2, slot) == [95.0, 95.0]


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        (
            "mme",
            np.full(2, 95.0, np.float32),
            "MemberFills.mme must be a C-contiguous 1-d array of float64, not a C-contiguous 1-d array of float32",
        ),
        (
            "start",
            np.full(4, 19990, np.int32)[::2],
            "MemberFills.start must be a C-contiguous 1-d array of int32, not a not C-contiguous",
        ),
        (
            "fill_offsets",
            [0, 1, 2],
            "MemberFills.fill_offsets must be a numpy array of int64, not list",
        ),
        (
            "med_mask",
            np.zeros(0, np.int8),
            "MemberEvents.med_mask must be a C-contiguous 1-d array of uint8, not a C-contiguous "
            "1-d array of int8",
        ),
        (
            "med_day",
            np.zeros((0, 1), np.int32),
            "MemberEvents.med_day must be a C-contiguous 1-d array of int32, not a C-contiguous 2-d",
        ),
    ],
)
def test_wrapper_refuses_a_wrong_type_before_the_kernel(field, value, message):
    claims = _claims(**{field: value})
    with pytest.raises(TypeError, match=message.replace("(", r"\(")):
        run_kernels(claims, DAYS, METRICS, None)


def _arguments():
    claims = _claims()
    fills = kc.MemberFills(
        claims.fill_offsets,
        claims.start,
        claims.end,
        claims.role,
        claims.mme,
        claims.prescriber,
        claims.pharmacy,
        1,
        1,
    )
    events = kc.MemberEvents(claims.med_offsets, claims.med_day, claims.med_mask)
    params = kc.ScoreParams(DAYS, np.array([30, 90], np.int64), 90.0, 7, 60, 200, 1, 2, 1, 0)
    n = 2 * len(DAYS)
    outputs = kc.ScoreOutputs(
        np.zeros((layout.n_int_slots(2), n), np.int32),
        np.zeros((layout.n_float_slots(2), n), np.float64),
        np.zeros(n, np.bool_),
    )
    return fills, events, params, outputs


def test_check_passes_the_arguments_the_wrapper_builds():
    check_kernel_arguments(*_arguments())


@pytest.mark.parametrize(
    ("which", "field", "value", "error", "message"),
    [
        (
            0,
            "n_prescribers",
            np.int32(1),
            TypeError,
            "MemberFills.n_prescribers must be a Python int, not int32",
        ),
        (
            2,
            "high_dose_floor",
            90,
            TypeError,
            "ScoreParams.high_dose_floor must be a Python float, not int",
        ),
        (
            2,
            "windows",
            np.array([30, 90], np.int32),
            TypeError,
            "ScoreParams.windows must be .* of int64",
        ),
        (2, "windows", np.zeros(0, np.int64), ValueError, "ScoreParams.windows is empty"),
        (3, "present", np.zeros(4, np.uint8), TypeError, "ScoreOutputs.present must be .* of bool"),
        (
            3,
            "ints",
            np.zeros((3, 4), np.int32),
            ValueError,
            r"ScoreOutputs.ints: shape \(or size\) \(3, 4\) where the other arguments need \(23, 4\)",
        ),
        (
            0,
            "role",
            np.ones(3, np.uint8),
            ValueError,
            r"MemberFills.role: shape \(or size\) 3 where the other arguments need 2",
        ),
        (1, "med_offsets", np.zeros(2, np.intp), ValueError, "MemberEvents.med_offsets: shape"),
        (2, "mme_definitions", True, TypeError, "ScoreParams.mme_definitions must be a Python int"),
        (2, "mme_definitions", 2, ValueError, "ScoreParams.mme_definitions is 2; use 0 or 1"),
        (
            2,
            "mme_definitions",
            1,
            ValueError,
            r"ScoreOutputs.floats: shape \(or size\) \(8, 4\) where the other arguments need \(14, 4\)",
        ),
    ],
)
def test_check_refuses_wrong_arguments(which, field, value, error, message):
    arguments = list(_arguments())
    arguments[which] = arguments[which]._replace(**{field: value})
    with pytest.raises(error, match=message):
        check_kernel_arguments(*arguments)


def test_check_refuses_a_plain_tuple():
    fills, events, params, outputs = _arguments()
    with pytest.raises(TypeError, match="expected a MemberFills, got tuple"):
        check_kernel_arguments(tuple(fills), events, params, outputs)
