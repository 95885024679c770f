"""Rule files: decoding, validation messages, vectorised evaluation."""

import numpy as np
import pytest

from rxrisk.config.rules import Flag, MetricsConfig, RuleSet, evaluate_flags, load_rules
from rxrisk.errors import InputError


def test_default_rules_match_spec_table_order():
    rules = load_rules()
    assert [f.name for f in rules.flags] == [
        "excluded",
        "high_dose",
        "multi_provider",
        "cms_oms",
        "concurrent_benzo",
        "dose_with_cns",
        "overdose_history",
        "substance_use_history",
        "at_risk",
        "emergency_outreach",
    ]
    m = rules.metrics
    assert (m.windows, m.high_dose_mme, m.rolling_days, m.ed_lookback_days, m.dx_lookback_days) == (
        [90, 180, 365],
        90.0,
        90,
        90,
        365,
    )
    assert m.max_days_supply == 365 and m.factor_edition == "cdc2022" and m.tolerance == 1e-9


def _cols(**kw):
    return {k: np.asarray(v) for k, v in kw.items()}


def test_tolerance_and_null_comparisons():
    rules = RuleSet(flags=[Flag("hi", "x >= 90"), Flag("lo", "y <= 89"), Flag("not_lo", "not lo")])
    cols = _cols(x=[90 - 1e-10, 90 - 1e-8, 95.0], y=np.array([89, 90, 0], np.int32))
    out = evaluate_flags(rules, cols, {"y": np.array([False, False, True])})
    assert out["hi"].tolist() == [True, False, True]
    assert out["lo"].tolist() == [True, False, False]  # null never satisfies a comparison
    assert out["not_lo"].tolist() == [False, True, True]


def test_all_operators():
    x = np.array([1.0, 2.0, 3.0])
    rules = RuleSet(
        flags=[
            Flag(n, f"x {op} 2")
            for n, op in [
                ("ge", ">="),
                ("gt", ">"),
                ("le", "<="),
                ("lt", "<"),
                ("eq", "=="),
                ("ne", "!="),
            ]
        ]
    )
    out = evaluate_flags(rules, {"x": x})
    assert {k: v.tolist() for k, v in out.items()} == {
        "ge": [False, True, True],
        "gt": [False, False, True],
        "le": [True, True, False],
        "lt": [True, False, False],
        "eq": [False, True, False],
        "ne": [True, False, True],
    }


def _write(tmp_path, text):
    p = tmp_path / "rules.toml"
    p.write_text(text)
    return p


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        (
            '[[flags]]\nname = "a"\nwhen = "mme_avg_180 >= 90"\n',
            "unknown column or flag 'mme_avg_180'",
        ),
        ('[[flags]]\nname = "a"\nwhen = "mme_avg_180d >="\n', "cannot parse"),
        ('[[flags]]\nname = "a"\nwhen = "mme_avg_180d"\n', "is a number, not a condition"),
        ('[[flags]]\nname = "a"\nwhen = "oud_dx >= 1"\n', "is a condition, not a number"),
        ('[[flags]]\nname = "a"\nwhen = "__import__(\'os\')"\n', "is not allowed"),
        ('[[flags]]\nname = "a"\nwhen = 3\n', "flags[0].when"),
        (
            '[[flags]]\nname = "a"\nwhen = "oud_dx"\n[[flags]]\nname = "a"\nwhen = "oud_dx"\n',
            "already used",
        ),
        ("[metrics]\nwindows = [180, 90]\n", "ascending"),
        ('[metrics]\nfactor_edition = "cdc2099"\n', "factor_edition"),
        ("[metrics]\nwindow = [90]\n", "window"),
        ('[[flags]]\nname = "a"\nwhen = "mme_avg_180d >= 90 >= 1"\n', "one comparison"),
    ],
)
def test_bad_rule_files_name_the_rule_and_field(tmp_path, text, needle):
    with pytest.raises(InputError) as info:
        load_rules(_write(tmp_path, text))
    msg = str(info.value)
    assert needle in msg and "rules.toml" in msg and "\n" not in msg


def test_custom_windows_change_metric_names(tmp_path):
    p = _write(
        tmp_path,
        '[metrics]\nwindows = [30, 60]\n[[flags]]\nname = "short_high"\nwhen = "mme_avg_30d >= 50"\n',
    )
    rules = load_rules(p)
    assert rules.metrics.horizon == 60
    with pytest.raises(InputError, match="mme_avg_180d"):
        load_rules(
            _write(
                tmp_path,
                '[metrics]\nwindows = [30, 60]\n[[flags]]\nname = "x"\nwhen = "mme_avg_180d >= 50"\n',
            )
        )


def test_digest_changes_with_content():
    a = RuleSet(flags=[Flag("a", "oud_dx")])
    b = RuleSet(flags=[Flag("a", "sud_dx")])
    c = RuleSet(metrics=MetricsConfig(high_dose_mme=80.0), flags=[Flag("a", "oud_dx")])
    assert len({a.digest(), b.digest(), c.digest()}) == 3
    assert a.digest() == RuleSet(flags=[Flag("a", "oud_dx")], source="elsewhere").digest()
