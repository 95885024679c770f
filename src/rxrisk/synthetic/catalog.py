"""Drug catalog of the synthetic book: products picked from the drug reference, untracked NDCs.

Each product *template* (hydrocodone short-acting, morphine long-acting, fentanyl patch, ...) is
resolved to the reference NDCs that fit it; fills draw their NDC from those candidates. Made-up
11-digit NDCs outside the reference stand for the untracked maintenance and acute drugs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from rxrisk.config.reference import DRUG_CLASSES
from rxrisk.synthetic.strings import digit_strings

#: Class code of each tracked drug class; code 0 is ``untracked``.
CLASS_CODE = {name: i + 1 for i, name in enumerate(DRUG_CLASSES)}

# name: (drug_class, ingredient keywords, units, long_acting, strength range)
_TEMPLATES: dict[
    str, tuple[str, tuple[str, ...], tuple[str, ...] | None, bool | None, tuple | None]
] = {
    "hydrocodone_sa": ("opioid", ("hydrocodone",), ("MG",), False, (2.5, 10)),
    "hydrocodone_liquid": ("opioid", ("hydrocodone",), ("MG/ML",), False, (0.3, 1.0)),
    "oxycodone_sa": ("opioid", ("oxycodone",), ("MG",), False, (5, 30)),
    "oxycodone_acute": ("opioid", ("oxycodone",), ("MG",), False, (5, 10)),
    "oxycodone_liquid": ("opioid", ("oxycodone",), ("MG/ML",), False, (0.9, 1.1)),
    "tramadol_sa": ("opioid", ("tramadol",), ("MG",), False, (50, 100)),
    "codeine_sa": ("opioid", ("codeine",), ("MG",), False, (15, 60)),
    "codeine_liquid": ("opioid", ("codeine",), ("MG/ML",), False, (1.0, 3.0)),
    "hydromorphone_sa": ("opioid", ("hydromorphone",), ("MG",), False, (2, 8)),
    "morphine_sa": ("opioid", ("morphine",), ("MG",), False, (15, 30)),
    "tapentadol_sa": ("opioid", ("tapentadol",), ("MG",), False, (50, 100)),
    "oxycodone_la": ("opioid", ("oxycodone",), ("MG",), True, (10, 80)),
    "morphine_la": ("opioid", ("morphine",), ("MG",), True, (15, 100)),
    "hydromorphone_la": ("opioid", ("hydromorphone",), ("MG",), True, (8, 32)),
    "oxymorphone_la": ("opioid", ("oxymorphone",), ("MG",), True, (5, 40)),
    "tapentadol_la": ("opioid", ("tapentadol",), ("MG",), True, (50, 250)),
    "tramadol_la": ("opioid", ("tramadol",), ("MG",), True, (100, 300)),
    "methadone": ("opioid", ("methadone",), ("MG",), None, (5, 10)),
    "fentanyl_patch": ("opioid", ("fentanyl",), ("MCG/HR",), None, (12, 100)),
    "fentanyl_transmucosal": ("opioid", ("fentanyl",), ("MCG",), None, (100, 800)),
    "buprenorphine_patch": ("opioid", ("buprenorphine",), ("MCG/HR",), None, None),
    "buprenorphine_mat": ("buprenorphine_mat", ("buprenorphine",), ("MG",), None, (2, 12)),
    "naltrexone": ("naltrexone", ("naltrexone",), None, None, None),
    "naloxone": ("naloxone", ("naloxone",), None, None, None),
    "benzodiazepine": (
        "benzodiazepine",
        ("alprazolam", "lorazepam", "clonazepam", "diazepam", "temazepam"),
        ("MG",),
        None,
        None,
    ),
    "gabapentinoid": ("gabapentinoid", ("gabapentin", "pregabalin"), None, None, None),
    "muscle_relaxant": (
        "muscle_relaxant",
        (
            "cyclobenzaprine",
            "methocarbamol",
            "tizanidine",
            "baclofen",
            "carisoprodol",
            "metaxalone",
        ),
        ("MG",),
        None,
        None,
    ),
    "sedative_hypnotic": (
        "sedative_hypnotic",
        ("zolpidem", "eszopiclone", "zaleplon"),
        ("MG",),
        None,
        None,
    ),
    "stimulant": (
        "stimulant",
        (
            "amphetamine",
            "dextroamphetamine",
            "methylphenidate",
            "dexmethylphenidate",
            "lisdexamfetamine",
        ),
        ("MG",),
        None,
        None,
    ),
}
#: Templates whose quantity is derived from a daily-MME target (need strength and factor).
_DOSED = {
    "hydrocodone_sa",
    "oxycodone_sa",
    "tramadol_sa",
    "hydromorphone_sa",
    "morphine_sa",
    "tapentadol_sa",
    "oxycodone_la",
    "morphine_la",
    "hydromorphone_la",
    "oxymorphone_la",
    "tapentadol_la",
    "tramadol_la",
    "methadone",
    "fentanyl_patch",
    "fentanyl_transmucosal",
}


@dataclass
class Product:
    """Candidate NDCs of one template, grouped by strength level."""

    name: str
    cls: int
    ndc: np.ndarray  # int32 indices into the catalog NDC table, ordered by strength
    strength: np.ndarray  # float64 per candidate
    factor: np.ndarray  # float64 per candidate (nan when null)
    dpu: np.ndarray  # days_per_unit per candidate (nan when null)
    level_strength: np.ndarray  # distinct strengths
    level_factor: np.ndarray
    level_start: np.ndarray
    level_count: np.ndarray

    def pick(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """Uniformly random candidates (positions into the candidate arrays)."""
        return rng.integers(0, len(self.ndc), size=n)

    def pick_strength(self, rng: np.random.Generator, wanted: np.ndarray) -> np.ndarray:
        """Candidates whose strength is nearest (in ratio) to ``wanted``; random among equals."""
        s = self.level_strength
        if len(s) == 1:
            lvl = np.zeros(len(wanted), dtype=np.int64)
        else:
            w = np.log(np.maximum(wanted, 1e-9))[:, None]
            lvl = np.argmin(np.abs(w - np.log(np.maximum(s, 1e-9))[None, :]), axis=1)
        return self.level_start[lvl] + (rng.random(len(wanted)) * self.level_count[lvl]).astype(
            np.int64
        )


def _words(text: str) -> set[str]:
    return set(re.findall(r"[a-z]+", text.lower()))


def _zipf_cdf(n: int, a: float) -> np.ndarray:
    w = 1.0 / np.arange(1, n + 1, dtype=np.float64) ** a
    return np.cumsum(w) / w.sum()


class _ReferenceColumns:
    """The valid (11-digit) rows of the drug reference, sorted by NDC, as numpy columns.

    Sorted so that the catalog does not depend on the reference's row order.
    """

    def __init__(self, reference: pa.Table):
        cols = set(reference.column_names)
        need = {"ndc", "drug_class"}
        if not need <= cols:
            raise ValueError(f"drug reference lacks columns {sorted(need - cols)}")

        def col(name, default=None):
            if name not in cols:
                return [default] * reference.num_rows
            return reference.column(name).to_pylist()

        def fcol(name):
            return np.array(
                [np.nan if x is None else float(x) for x in col(name)], dtype=np.float64
            )

        ref_ndc = np.array(
            [str(x).strip() if x is not None else "" for x in col("ndc")], dtype=object
        )
        ok = np.array([len(x) == 11 and x.isdigit() for x in ref_ndc], dtype=bool)
        klass = np.array([(x or "").strip().lower() for x in col("drug_class")], dtype=object)
        ing_str = np.array([x or "" for x in col("ingredient", "")], dtype=object).astype(str)
        name_str = np.array([x or "" for x in col("drug_name", "")], dtype=object).astype(str)
        unit = np.array([(x or "").strip().upper() for x in col("unit", "")], dtype=object)
        strength = fcol("strength_per_unit")
        factor = fcol("mme_factor")
        dpu = fcol("days_per_unit")
        la = np.array([x for x in col("long_acting")], dtype=object)

        order = np.argsort(ref_ndc.astype(str), kind="stable")
        order = order[ok[order]]
        self.ndc = ref_ndc[order].astype(str)
        self.n = len(self.ndc)
        klass, self.unit, self.strength, self.factor, self.dpu, self.la = (
            a[order] for a in (klass, unit, strength, factor, dpu, la)
        )
        ing_u, self.ing_inv = np.unique(ing_str[order], return_inverse=True)
        name_u, self.name_inv = np.unique(name_str[order], return_inverse=True)
        self.ing_words = [_words(x) for x in ing_u]
        self.name_words = [_words(x) for x in name_u]
        self.klass = np.array([CLASS_CODE.get(k, 0) for k in klass], dtype=np.int8)

    def has_keyword(self, kw: set[str], in_name: bool) -> np.ndarray:
        """Rows whose ingredient (or, with ``in_name``, drug name) holds one of the words ``kw``."""
        words, inv = (self.name_words, self.name_inv) if in_name else (self.ing_words, self.ing_inv)
        return np.array([bool(kw & w) for w in words], dtype=bool)[inv]


def _template_rows(ref: _ReferenceColumns, name: str) -> np.ndarray | None:
    """Reference rows of template ``name``: the strictest of a ladder of looser matches."""
    cls_name, kws, units, long_acting, srange = _TEMPLATES[name]
    code = CLASS_CODE[cls_name]
    n_ref, strength = ref.n, ref.strength
    in_class = ref.klass == code
    if name in _DOSED:
        in_class &= (
            np.isfinite(strength) & (strength > 0) & np.isfinite(ref.factor) & (ref.factor > 0)
        )
    kw = set(kws)
    kw_ing = ref.has_keyword(kw, in_name=False)
    kw_any = ref.has_keyword(kw, in_name=True) | kw_ing
    u_ok = np.ones(n_ref, bool) if units is None else np.isin(ref.unit, list(units))
    if long_acting is None:
        la_ok = np.ones(n_ref, bool)
    else:
        la_ok = np.array([(x is not None and bool(x) == long_acting) for x in ref.la], dtype=bool)
    if srange is None:
        s_ok = np.ones(n_ref, bool)
    else:
        s_ok = (strength >= srange[0] - 1e-9) & (strength <= srange[1] + 1e-9)
    attempts = [
        in_class & kw_ing & u_ok & la_ok & s_ok,
        in_class & kw_any & u_ok & la_ok & s_ok,
        in_class & kw_any & u_ok & la_ok,
        in_class & kw_any & u_ok,
        in_class & kw_any,
        in_class & u_ok,
        in_class,
    ]
    for m in attempts:
        if m.any():
            return np.flatnonzero(m)
    if name not in _DOSED and (ref.klass == code).any():
        return np.flatnonzero(ref.klass == code)
    return None


def _resolve(ref: _ReferenceColumns, name: str) -> Product | None:
    """Template ``name`` as a :class:`Product` (None when the reference has no candidate)."""
    sel = _template_rows(ref, name)
    if sel is None:
        return None
    st = np.where(np.isfinite(ref.strength[sel]), ref.strength[sel], 1.0)
    o = np.lexsort((sel, st))
    sel, st = sel[o], st[o]
    lv, lstart, lcount = np.unique(st, return_index=True, return_counts=True)
    fac = ref.factor[sel]
    return Product(
        name=name,
        cls=CLASS_CODE[_TEMPLATES[name][0]],
        ndc=sel.astype(np.int32),
        strength=st,
        factor=fac,
        dpu=ref.dpu[sel],
        level_strength=lv,
        level_factor=np.where(np.isfinite(fac[lstart]), fac[lstart], 0.0),
        level_start=lstart,
        level_count=lcount,
    )


def _untracked_ndcs(rng: np.random.Generator, ref_ndc: np.ndarray) -> np.ndarray:
    """Made-up NDCs: plausible labelers, random product and package codes, not in the reference.

    Up to 4,000 of them, then the usual compound-claim placeholder ``99999999999`` (last) unless
    the reference holds it.
    """
    labelers = np.array(
        [
            93, 378, 591, 781, 904, 54, 143, 185, 603, 615, 172, 228, 440, 555, 832,
            16714, 16729, 23155, 27241, 29300, 31722, 33342, 42291, 43547, 45802, 47781,
            49884, 50090, 51079, 51672, 53746, 55111, 57664, 59746, 60505, 62135, 62332,
            63304, 64380, 65162, 65862, 67877, 68001, 68180, 68382, 69097, 70010, 71335,
            72205, 76282,
        ],
        dtype=np.int64,
    )  # fmt: skip
    n_fake = 4000
    lab = labelers[rng.integers(0, len(labelers), size=2 * n_fake)]
    prod = rng.integers(0, 10_000, size=2 * n_fake)
    pkg = np.array([1, 5, 10, 30, 50, 90, 1, 1, 5, 30], dtype=np.int64)[
        rng.integers(0, 10, size=2 * n_fake)
    ]
    num = lab * 1_000_000 + prod * 100 + pkg
    _, first = np.unique(num, return_index=True)
    num = num[np.sort(first)]
    fake = digit_strings(b"", num, 11).to_numpy(zero_copy_only=False).astype(str)
    fake = fake[~np.isin(fake, ref_ndc)]
    fake = fake[:n_fake]
    if "99999999999" not in set(ref_ndc):
        fake = np.concatenate([fake, np.array(["99999999999"])])
    return fake


class Catalog:
    """The NDC table of the book (reference NDCs, then made-up untracked NDCs) and its products.

    Attributes
    ----------
    products : dict
        Template name -> :class:`Product` (None when the reference has no candidate).
    ndc_table, ndc_bytes, row_class
        Per NDC index: the NDC string (pyarrow), its 11 ASCII bytes and its class code.
    maint_ids, acute_ids, compound_id, maint_cdf, acute_cdf
        Untracked NDC indices of maintenance and acute drugs with Zipf-like popularity, and the
        compound placeholder.
    """

    def __init__(self, reference: pa.Table, rng: np.random.Generator):
        ref = _ReferenceColumns(reference)
        self.ref_ndc = ref.ndc
        self.n_ref = n_ref = ref.n
        self.ref_class = ref.klass
        self.products: dict[str, Product | None] = {
            name: _resolve(ref, name) for name in _TEMPLATES
        }
        fake = _untracked_ndcs(rng, self.ref_ndc)
        self.n_fake = len(fake)
        self.ndc_table = pa.array(np.concatenate([self.ref_ndc, fake]).tolist(), type=pa.string())
        self.ndc_bytes = np.frombuffer(
            np.concatenate([self.ref_ndc, fake]).astype("S11").tobytes(), dtype=np.uint8
        ).reshape(-1, 11)
        self.row_class = np.concatenate([self.ref_class, np.zeros(len(fake), np.int8)])
        # popularity: maintenance drugs are the first 2/3 of the pool, acute the rest (Zipf-like)
        n_maint = (len(fake) - 1) * 2 // 3
        self.maint_ids = np.arange(n_ref, n_ref + n_maint, dtype=np.int32)
        self.acute_ids = np.arange(n_ref + n_maint, n_ref + len(fake) - 1, dtype=np.int32)
        self.compound_id = n_ref + len(fake) - 1
        self.maint_cdf = _zipf_cdf(len(self.maint_ids), 0.9)
        self.acute_cdf = _zipf_cdf(len(self.acute_ids), 0.8)
