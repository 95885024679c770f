"""Rule sets: msgspec-typed config (the metric settings and the flags) and their
vectorised evaluation over metric columns.

A flag's ``when`` is a small boolean expression language parsed with :mod:`ast` (never
``eval``): ``and``, ``or``, ``not``, parentheses, names of metric columns or earlier flags, and
comparisons of a column with a finite number. An expression is at most
:data:`MAX_WHEN_CHARS` characters long and :data:`MAX_WHEN_DEPTH` levels deep. Every error
names the file, the rule and the field.
"""

from __future__ import annotations

import ast
import hashlib
import math
import os
from pathlib import Path

import msgspec
import numpy as np

from rxrisk.config.reference import EDITIONS
from rxrisk.config.resources import data_path
from rxrisk.config.schema import MME_DEFINITIONS, metric_fields
from rxrisk.config.toml_file import convert_settings, decode_settings_file
from rxrisk.errors import InputError


class MetricsConfig(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """The settings of the metrics (``[metrics]`` of a rule file)."""

    windows: list[int] = msgspec.field(default_factory=lambda: [90, 180, 365])
    high_dose_mme: float = 90.0
    rolling_days: int = 90
    ed_lookback_days: int = 90
    dx_lookback_days: int = 365
    max_days_supply: int = 365
    factor_edition: str = "cdc2022"
    tolerance: float = 1e-9
    max_reject_share: float = 0.25
    mme_definitions: list[str] = msgspec.field(default_factory=list)

    @property
    def horizon(self) -> int:
        """The longest window ``H``."""
        return max(self.windows)


class Flag(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """One output flag: a name and a boolean expression."""

    name: str
    when: str
    anchor: str = ""
    description: str = ""


class RuleSet(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """A complete rule file: metric settings and flags in output order."""

    metrics: MetricsConfig = msgspec.field(default_factory=MetricsConfig)
    flags: list[Flag] = msgspec.field(default_factory=list)
    source: str = "<rules>"

    def digest(self) -> str:
        """Stable sha256 of the rule content (not of its file name)."""
        metrics = msgspec.to_builtins(self.metrics)
        # no definitions: the digest of the rule files written before they existed; else in
        # column order (the order of the list changes nothing)
        named = metrics.pop("mme_definitions")
        if named:
            metrics["mme_definitions"] = [d for d in MME_DEFINITIONS if d in named]
        payload = msgspec.json.encode(
            {"metrics": metrics, "flags": msgspec.to_builtins(self.flags)}
        )
        return hashlib.sha256(payload).hexdigest()


def load_rules(source=None) -> RuleSet:
    """Load and validate a rule file.

    Parameters
    ----------
    source : None, str, os.PathLike, dict or RuleSet
        None for the packaged default (``data/rules/default.toml``); a TOML file path; a dict
        of the same structure as the TOML file (``{"metrics": {...}, "flags": [{...}]}``); or
        an already-built :class:`RuleSet` (validated again).

    Returns
    -------
    RuleSet

    Raises
    ------
    InputError
        With one line naming the file, the rule and the field at fault.
    """
    if isinstance(source, RuleSet):
        _check(source)
        return source
    if isinstance(source, dict):
        data = {"source": "<rules dict>", **source}
        rules = convert_settings(data, RuleSet, "rules file <rules dict>")
        _check(rules)
        return rules
    if source is not None and not isinstance(source, (str, os.PathLike)):
        raise InputError(
            f"rules: cannot use an object of type {type(source).__name__}; give a rule file "
            "path, a dict of the same structure as the file, or a RuleSet"
        )
    path = Path(source) if source is not None else data_path("rules", "default.toml")
    rules = decode_settings_file(path, RuleSet, "rules file")
    rules = msgspec.structs.replace(rules, source=str(path))
    _check(rules)
    return rules


def _check(rules: RuleSet) -> None:
    m = rules.metrics
    where = f"rules file {rules.source}"
    if not m.windows:
        raise InputError(
            f"{where}: [metrics] windows is empty; give at least one window, e.g. [90, 180, 365]"
        )
    if any(w < 1 or w > 3660 for w in m.windows) or len(set(m.windows)) != len(m.windows):
        raise InputError(
            f"{where}: [metrics] windows {m.windows} must be distinct whole days between 1 and 3660"
        )
    if list(m.windows) != sorted(m.windows):
        raise InputError(
            f"{where}: [metrics] windows {m.windows} must be in ascending order, e.g. {sorted(m.windows)}"
        )
    for name in ("rolling_days", "ed_lookback_days", "dx_lookback_days", "max_days_supply"):
        value = getattr(m, name)
        if value < 1 or value > 3660:
            raise InputError(f"{where}: [metrics] {name} = {value} must be between 1 and 3660")
    if m.factor_edition not in EDITIONS:
        raise InputError(
            f"{where}: [metrics] factor_edition {m.factor_edition!r} is unknown; use one of {', '.join(EDITIONS)}"
        )
    if not (0 <= m.tolerance < 1):
        raise InputError(f"{where}: [metrics] tolerance {m.tolerance} must be >= 0 and < 1")
    if not (0 <= m.max_reject_share <= 1):  # also refuses nan
        raise InputError(
            f"{where}: [metrics] max_reject_share {m.max_reject_share} must be a share from 0 to 1, "
            "e.g. 0.25 (1 never stops a run)"
        )
    if not (math.isfinite(m.high_dose_mme) and m.high_dose_mme >= 0):
        raise InputError(
            f"{where}: [metrics] high_dose_mme {m.high_dose_mme} must be a finite MME >= 0, e.g. 90"
        )
    _check_definitions(m.mme_definitions, where)
    compile_flags(rules, _metric_kinds(m))


def _check_definitions(names: list[str], where: str) -> None:
    """``[metrics] mme_definitions``: known names, each at most once."""
    allowed = ", ".join(MME_DEFINITIONS)
    for i, name in enumerate(names):
        if name not in MME_DEFINITIONS:
            raise InputError(
                f"{where}: [metrics] mme_definitions: unknown definition {name!r}; "
                f'use any of {allowed} (e.g. mme_definitions = ["window", "supply"])'
            )
        if name in names[:i]:
            raise InputError(
                f"{where}: [metrics] mme_definitions: {name!r} is listed twice; name each "
                f"definition once (any of {allowed})"
            )


def _metric_kinds(m: MetricsConfig) -> dict[str, str]:
    kinds = {}
    for f in metric_fields(m.windows, m.ed_lookback_days, m.dx_lookback_days, m.mme_definitions):
        kinds[f.name] = "bool" if str(f.type) == "bool" else "number"
    return kinds


_COMPARE = {
    ast.GtE: "ge",
    ast.Gt: "gt",
    ast.LtE: "le",
    ast.Lt: "lt",
    ast.Eq: "eq",
    ast.NotEq: "ne",
}


def compile_flags(rules: RuleSet, kinds: dict[str, str]) -> list[tuple[str, ast.AST]]:
    """Parse and check every flag expression; return ``[(name, tree)]`` in order."""
    known = dict(kinds)
    compiled = []
    seen = set()
    for i, flag in enumerate(rules.flags):
        where = f"rules file {rules.source}: flag {flag.name!r} (flags[{i}])"
        if not flag.name.isidentifier():
            raise InputError(f"{where}: name must be a plain identifier such as high_dose")
        if (
            flag.name in seen
            or flag.name in kinds
            or flag.name in ("member_id", "as_of", "reasons")
        ):
            raise InputError(
                f"{where}: name is already used by a metric or an earlier flag; rename it"
            )
        text = " ".join(flag.when.split())
        if len(text) > MAX_WHEN_CHARS:
            raise InputError(
                f"{where}: field when: {len(text):,} characters long; write it in at most "
                f"{MAX_WHEN_CHARS:,} (split it over several flags)"
            )
        try:
            tree = ast.parse(text, mode="eval").body
        except SyntaxError as exc:
            raise InputError(
                f"{where}: field when: cannot parse {_short(text)!r} ({exc.msg})"
            ) from None
        except (RecursionError, MemoryError):
            raise InputError(_too_deep(where)) from None
        if _depth(tree) > MAX_WHEN_DEPTH:
            raise InputError(_too_deep(where))
        if _check_node(tree, known, where) != "bool":
            raise InputError(
                f"{where}: field when: {ast.unparse(tree)!r} is a number, not a condition; compare it, e.g. {ast.unparse(tree)} >= 1"
            )
        compiled.append((flag.name, tree))
        known[flag.name] = "bool"
        seen.add(flag.name)
    return compiled


#: Longest flag expression (characters, after collapsing white space) and deepest nesting of
#: and / or / not, parentheses and comparisons that a rule file may use.
MAX_WHEN_CHARS = 100_000
MAX_WHEN_DEPTH = 100


def _short(text: str, limit: int = 120) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _too_deep(where: str) -> str:
    return (
        f"{where}: field when: nested more than {MAX_WHEN_DEPTH} levels deep; write it with "
        "fewer levels of and / or / not and parentheses (split it over several flags)"
    )


def _depth(tree: ast.AST) -> int:
    """Nesting depth of an expression tree (a comparison such as ``x >= 1`` is 3 deep),
    walked without recursion and only to just past :data:`MAX_WHEN_DEPTH`."""
    deepest = 0
    stack = [(tree, 1)]
    while stack:
        node, d = stack.pop()
        deepest = max(deepest, d)
        if d <= MAX_WHEN_DEPTH:  # deeper is refused anyway: stop walking there
            stack.extend((child, d + 1) for child in ast.iter_child_nodes(node))
    return deepest


def _check_node(node: ast.AST, known: dict[str, str], where: str) -> str:
    if isinstance(node, ast.BoolOp):
        for v in node.values:
            if _check_node(v, known, where) != "bool":
                raise InputError(
                    f"{where}: field when: {ast.unparse(v)!r} is a number, not a condition; compare it, e.g. {ast.unparse(v)} >= 1"
                )
        return "bool"
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
        if _check_node(node.operand, known, where) != "bool":
            raise InputError(
                f"{where}: field when: 'not' needs a condition, got {ast.unparse(node.operand)!r}"
            )
        return "bool"
    if isinstance(node, ast.Compare):
        if len(node.ops) != 1 or type(node.ops[0]) not in _COMPARE:
            raise InputError(
                f"{where}: field when: {ast.unparse(node)!r}: use one comparison (>=, >, <=, <, ==, !=) of a column with a number"
            )
        left, right = node.left, node.comparators[0]
        number = right.value if isinstance(right, ast.Constant) else None
        if isinstance(number, float) and not math.isfinite(number):
            raise InputError(
                f"{where}: field when: {ast.unparse(node)!r}: compare with a finite number"
            )
        if isinstance(right, ast.Name) and right.id.lower() in ("nan", "inf", "infinity"):
            raise InputError(
                f"{where}: field when: {ast.unparse(node)!r}: {right.id} is not a threshold; "
                "compare with a finite number"
            )
        if not (
            isinstance(left, ast.Name)
            and isinstance(right, ast.Constant)
            and isinstance(right.value, (int, float))
            and not isinstance(right.value, bool)
        ):
            raise InputError(
                f"{where}: field when: {ast.unparse(node)!r}: write column <op> number, e.g. mme_avg_180d >= 90"
            )
        if _check_node(left, known, where) != "number":
            raise InputError(
                f"{where}: field when: {left.id!r} is a condition, not a number; use it without a comparison"
            )
        return "bool"
    if isinstance(node, ast.Name):
        if node.id not in known:
            near = ", ".join(
                sorted(k for k in known if k.split("_")[0] == node.id.split("_")[0])[:6]
            )
            hint = f" (did you mean one of: {near})" if near else ""
            raise InputError(f"{where}: field when: unknown column or flag {node.id!r}{hint}")
        return known[node.id]
    raise InputError(
        f"{where}: field when: {ast.unparse(node)!r} is not allowed; use and/or/not, parentheses and column <op> number"
    )


def evaluate_flags(
    rules: RuleSet, columns: dict[str, np.ndarray], nulls: dict[str, np.ndarray] | None = None
):
    """Evaluate the flags over metric columns, vectorised.

    Parameters
    ----------
    rules : RuleSet
    columns : dict of str to numpy.ndarray
        Metric columns by name, all of one length.
    nulls : dict of str to numpy.ndarray, optional
        Boolean validity masks (True = null) for nullable columns; comparisons with a null
        value are false.

    Returns
    -------
    dict of str to numpy.ndarray
        Boolean flag columns in rule order.
    """
    nulls = nulls or {}
    kinds = {name: ("bool" if col.dtype == np.bool_ else "number") for name, col in columns.items()}
    tol = rules.metrics.tolerance
    env = dict(columns)
    out = {}
    for name, tree in compile_flags(rules, kinds):
        value = _eval(tree, env, nulls, tol)
        out[name] = value
        env[name] = value
    return out


_OPS = {
    "ge": lambda x, t, tol: x >= t - tol,
    "gt": lambda x, t, tol: x > t + tol,
    "le": lambda x, t, tol: x <= t + tol,
    "lt": lambda x, t, tol: x < t - tol,
    "eq": lambda x, t, tol: np.abs(x - t) <= tol,
    "ne": lambda x, t, tol: np.abs(x - t) > tol,
}


def _eval(node, env, nulls, tol):
    if isinstance(node, ast.BoolOp):
        op = np.logical_and if isinstance(node.op, ast.And) else np.logical_or
        vals = [_eval(v, env, nulls, tol) for v in node.values]
        result = vals[0]
        for v in vals[1:]:
            result = op(result, v)
        return result
    if isinstance(node, ast.UnaryOp):
        return np.logical_not(_eval(node.operand, env, nulls, tol))
    if isinstance(node, ast.Compare):
        col = env[node.left.id]
        res = _OPS[_COMPARE[type(node.ops[0])]](
            col.astype(np.float64), float(node.comparators[0].value), tol
        )
        if node.left.id in nulls:
            res = res & ~nulls[node.left.id]
        return res
    if isinstance(node, ast.Name):
        return env[node.id].astype(bool)
    raise AssertionError(node)  # unreachable: checked in compile_flags
