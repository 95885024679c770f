"""Medical code sets (code normalisation and categories), loaded from TOML data.

Classification runs on distinct (code space, code) pairs with pyarrow's RE2 regex kernels.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import msgspec
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from rxrisk.config.resources import data_path
from rxrisk.config.toml_file import decode_settings_file
from rxrisk.errors import InputError
from rxrisk.io.arrow import to_bool

#: Categories the engine's metrics read, in bit order. A code-set file must define them all.
CATEGORIES = (
    "ed_visit",
    "opioid_overdose",
    "oud",
    "sud_other",
    "cancer",
    "sickle_cell",
    "hospice_palliative",
)
SPACES = ("ICD10CM", "PROC", "REV", "POS")


class _Category(msgspec.Struct, forbid_unknown_fields=True):
    name: str
    ICD10CM: list[str] = []
    PROC: list[str] = []
    REV: list[str] = []
    POS: list[str] = []


class _File(msgspec.Struct, forbid_unknown_fields=True):
    category: list[_Category]


def normalize_codes(space: pa.Array, code: pa.Array) -> pa.Array:
    """Normalise codes per space: ICD upper-case without dots/spaces, REV 4 and POS 2 digits."""
    upper = pc.utf8_upper(code)
    icd = pc.replace_substring_regex(upper, r"[.\s]", "")
    digits = pc.fill_null(pc.match_substring_regex(code, r"^[0-9]+$"), False)
    rev = pc.if_else(digits, pc.utf8_lpad(code, width=4, padding="0"), upper)
    pos = pc.if_else(digits, pc.utf8_lpad(code, width=2, padding="0"), upper)
    out = pc.if_else(pc.equal(space, "ICD10CM"), icd, upper)
    out = pc.if_else(pc.equal(space, "REV"), rev, out)
    return pc.if_else(pc.equal(space, "POS"), pos, out)


@dataclass(frozen=True)
class CodeSets:
    """Regex patterns per category and code space."""

    patterns: dict[str, dict[str, tuple[str, ...]]]
    source: str

    def digest(self) -> str:
        return hashlib.sha256(
            repr(sorted((k, sorted(v.items())) for k, v in self.patterns.items())).encode()
        ).hexdigest()

    def classify(self, space: pa.Array, code: pa.Array) -> np.ndarray:
        """Category bitmask (uint8, bit i = ``CATEGORIES[i]``) of each (space, code) pair."""
        norm = normalize_codes(space, code)
        mask = np.zeros(len(norm), np.uint8)
        for bit, name in enumerate(CATEGORIES):
            for sp, pats in self.patterns[name].items():
                if not pats:
                    continue
                in_space = to_bool(pc.equal(space, sp))
                if not in_space.any():
                    continue
                hit = np.zeros(len(norm), bool)
                for p in pats:
                    hit |= to_bool(pc.match_substring_regex(norm, p))
                mask[in_space & hit] |= np.uint8(1 << bit)
        return mask


def load_codesets(path=None) -> CodeSets:
    """Load and check a code-set file (default ``data/codesets/default.toml``)."""
    path = Path(path) if path is not None else data_path("codesets", "default.toml")
    # msgspec's own words for a file that does not fit, and no fix for one that cannot be read
    parsed = decode_settings_file(
        path, _File, "code-set file", explain=str, read_fix="", invalid_toml="{}"
    )
    found = {c.name: c for c in parsed.category}
    missing = [c for c in CATEGORIES if c not in found]
    if missing:
        raise InputError(
            f"code-set file {path}: category '{missing[0]}' is missing; define all of {', '.join(CATEGORIES)}"
        )
    patterns = {}
    for name in CATEGORIES:
        c = found[name]
        patterns[name] = {sp: tuple(getattr(c, sp)) for sp in SPACES}
        for sp, pats in patterns[name].items():
            for p in pats:
                try:
                    pc.match_substring_regex(pa.array(["x"]), p)
                except pa.ArrowInvalid as exc:
                    raise InputError(
                        f"code-set file {path}: category '{name}' {sp} pattern {p!r} is not a valid RE2 regex ({exc})"
                    ) from None
    return CodeSets(patterns=patterns, source=str(path))
