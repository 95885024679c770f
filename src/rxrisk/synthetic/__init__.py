"""Seeded synthetic book of business: pharmacy claims and medical events.

:func:`generate_book` writes ``pharmacy.parquet`` and ``medical.parquet`` for benchmarks, demos and
tests of the scoring engine. The book is made of member *archetypes* with realistic rates (per
member-year; the date range may be any length):

* everybody: maintenance drugs refilled every 30 or 90 days plus acute fills of untracked drugs
  (made-up 11-digit NDCs that are not in the drug reference), about 20 claims per member-year;
* acute opioid users (~14%): one short fill of 3-7 days, sometimes a refill;
* chronic opioid users (~2.5%): 28/30-day refills with jitter, early refills (overlaps), late gaps,
  dose escalation or tapering, long-acting + short-acting combinations (oxycodone/morphine ER,
  fentanyl patches, methadone, ...), daily MME drawn log-normally so that a share is above 50 and 90;
  benzodiazepine (~25%), gabapentinoid (~30%), muscle-relaxant and z-drug co-use; naloxone for some;
* shoppers (~0.2%): many overlapping opioid fills from 4-10 prescribers and 3-8 pharmacies;
* buprenorphine MAT (~0.3%, some on naltrexone instead) with OUD diagnoses;
* cancer, hospice and sickle-cell members (the exclusions), many of them on opioids;
* population-wide benzodiazepine, gabapentinoid, muscle-relaxant, z-drug and stimulant use.

Medical rows are ordinary visits (codes in no category), ED visits (~0.25 per member-year, more for
opioid users), opioid overdoses (~0.8% of chronic users per year, more for shoppers and OUD) written
with and without dots, near-misses that must not count (adverse effect ``T40.2X5A``, subsequent
encounter ``T40.2X1D``, cocaine ``T40.5X1A``, sickle-cell trait ``D57.3``, cancer history ``Z85.3``,
tobacco ``F17.210``), OUD and other SUD, cancer, sickle cell and hospice codes.

A small share of rows carries every rejection reason (null/empty member ids, null dates, bad NDCs,
status ``X``, bad quantities and days supply, reversals, duplicate claim ids, whitespace) together
with valid oddities (hyphenated 10-digit NDCs, NDCs with spaces, ``P``/``R``/``PAID``/null
statuses, lower-case code types, ``450`` for ``0450``).

Determinism: members are generated in fixed blocks of :data:`BLOCK_MEMBERS`, each from its own
child of ``numpy.random.SeedSequence(seed)``, so the same ``(members, seed, start, end)`` gives
byte-identical files whatever ``row_group_size``. Rows are ordered by block, then by fill/service
date with random ties (within a member they are not sorted by anything else). Everything is
vectorised numpy; memory is bounded by one block (blocks are streamed to the Parquet writer), so a
book of any size fits in memory as one file per table.

Parts: with ``part_members=K`` the book is written as ``pharmacy/part-00000.parquet``, ... and
``medical/part-00000.parquet``, ...: part ``p`` holds members ``[p*K, min((p+1)*K, members))`` and
each part file is closed when complete. Blocks are then also cut at part boundaries, so the same
``(members, seed, K)`` gives byte-identical parts, and when ``K`` is a multiple of
:data:`BLOCK_MEMBERS` the parts read in name order hold exactly the rows of the single-file book.
Member ids, claim numbers (sequential over the whole book) and the prescriber/pharmacy pools are
those of the whole book; reversals and duplicates stay within their block, hence their part.
"""

from __future__ import annotations

import datetime
import os
import re
import shutil
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from rxrisk.io.runfiles import sweep_outputs, temp_name

__all__ = [
    "BLOCK_MEMBERS",
    "DRUG_CLASSES",
    "MEDICAL_SCHEMA",
    "PHARMACY_SCHEMA",
    "generate_book",
]

#: Members per generation block: the unit of the random streams (and of memory use).
BLOCK_MEMBERS = 100_000

PHARMACY_SCHEMA = pa.schema(
    [
        pa.field("member_id", pa.string()),
        pa.field("fill_date", pa.date32()),
        pa.field("ndc", pa.string()),
        pa.field("quantity", pa.float64()),
        pa.field("days_supply", pa.int32()),
        pa.field("prescriber_id", pa.string()),
        pa.field("pharmacy_id", pa.string()),
        pa.field("claim_id", pa.string()),
        pa.field("claim_status", pa.string()),
    ]
)

MEDICAL_SCHEMA = pa.schema(
    [
        pa.field("member_id", pa.string()),
        pa.field("service_date", pa.date32()),
        pa.field("code_type", pa.string()),
        pa.field("code", pa.string()),
    ]
)

#: Tracked drug classes; class code 0 is ``untracked``.
DRUG_CLASSES = (
    "opioid",
    "buprenorphine_mat",
    "naltrexone",
    "naloxone",
    "benzodiazepine",
    "gabapentinoid",
    "muscle_relaxant",
    "sedative_hypnotic",
    "stimulant",
)
_CLASS_CODE = {name: i + 1 for i, name in enumerate(DRUG_CLASSES)}

_EPOCH = date(1970, 1, 1)

# --------------------------------------------------------------------------------------------
# Rates (per member, per member-year or per row). Tune here.
# --------------------------------------------------------------------------------------------
P_CHRONIC = 0.022  # chronic opioid therapy (before cancer/sickle-cell/hospice additions)
P_SHOPPER = 0.002
P_MAT = 0.003
ACUTE_OPIOID_EPISODES = 0.155  # per member-year (non-chronic members)
P_CANCER = 0.012
P_CANCER_HISTORY = 0.02  # Z85.x only: no exclusion
P_HOSPICE_OF_CANCER = 0.08
P_HOSPICE_OTHER = 0.0003
P_SICKLE = 0.0004
P_SICKLE_TRAIT = 0.003
P_OUD_GENERAL = 0.001
P_SUD_ALCOHOL = 0.015
P_SUD_CANNABIS = 0.01
P_SUD_OTHER = 0.003
P_TOBACCO = 0.08

ED_RATE = {"general": 0.22, "chronic": 1.0, "shopper": 2.0, "mat": 1.2, "sickle": 3.0}
OVERDOSE_RATE = {
    "general": 0.00004,
    "acute": 0.0004,
    "chronic": 0.008,
    "shopper": 0.05,
    "oud": 0.04,
}

#: Per-row rates of the pharmacy defects and oddities (at least one of each per block of 2000+
#: rows). Names are the ``kind`` keys of the summary.
PHARMACY_DEFECTS = {
    # rejected (reasons)
    "member_id_null": 12e-5,
    "member_id_empty": 6e-5,
    "member_id_blank": 4e-5,
    "fill_date_null": 16e-5,
    "ndc_null": 6e-5,
    "ndc_empty": 4e-5,
    "ndc_letters": 8e-5,
    "ndc_10_bare_digits": 8e-5,
    "ndc_bad_hyphen_segments": 8e-5,
    "claim_status_invalid": 8e-5,
    "quantity_zero": 6e-5,
    "quantity_negative": 6e-5,
    "quantity_nan": 4e-5,
    "quantity_null": 6e-5,
    "days_supply_zero": 6e-5,
    "days_supply_over_365": 6e-5,
    "days_supply_negative": 2e-5,
    "days_supply_null": 6e-5,
}
PHARMACY_ODDITIES = {
    # valid after cleaning
    "ndc_hyphen_4_4_2": 5e-5,
    "ndc_hyphen_5_3_2": 5e-5,
    "ndc_hyphen_5_4_1": 5e-5,
    "ndc_hyphen_5_4_2": 5e-5,
    "ndc_spaces": 3e-5,
    "status_P": 1e-4,
    "status_PAID": 1e-4,
    "status_Paid": 5e-5,
    "status_null": 1e-4,
    "status_empty": 3e-5,
    "member_id_whitespace": 2e-4,
    "prescriber_id_whitespace": 1e-4,
    "prescriber_id_empty": 5e-4,
    "pharmacy_id_whitespace": 1e-4,
    "claim_id_whitespace": 1e-4,
}
P_REVERSAL = 0.008
P_REBILL_OF_REVERSAL = 0.5
P_DUPLICATE = 0.003
P_DUPLICATE_WHITESPACE = 0.05  # share of duplicate rows whose claim_id has surrounding whitespace
P_PRESCRIBER_NULL = 0.02
P_PHARMACY_NULL = 0.003

MEDICAL_DEFECTS = {
    "member_id_null": 10e-5,
    "member_id_empty": 4e-5,
    "service_date_null": 10e-5,
    "code_type_invalid": 10e-5,
    "code_empty": 6e-5,
    "code_null": 4e-5,
}
MEDICAL_ODDITIES = {
    "code_type_lowercase": 2e-4,
    "code_whitespace": 2e-4,
    "member_id_whitespace": 1e-4,
}
P_ICD_NODOT = 0.12  # ICD-10-CM codes written without the dot (T40.2X1A -> T402X1A)
P_T40_NODOT = 0.35

_STATUS_VALUES = ("paid", "reversed", "P", "R", "PAID", "REVERSED", "Reversed", "Paid", "X", "")
_ST_PAID, _ST_REVERSED, _ST_P, _ST_R, _ST_PAID_UP, _ST_REV_UP, _ST_REV_CAP = range(7)
_ST_PAID_CAP, _ST_X, _ST_EMPTY = 7, 8, 9
_ST_NULL = -1

# --------------------------------------------------------------------------------------------
# Medical code vocabulary
# --------------------------------------------------------------------------------------------
#: group name -> list of (code_type, code, weight)
_MED_GROUPS: dict[str, list[tuple[str, str, float]]] = {
    "office_cpt": [
        ("CPT", "99213", 45),
        ("CPT", "99214", 25),
        ("CPT", "99212", 10),
        ("CPT", "99215", 4),
        ("CPT", "99203", 4),
        ("CPT", "99204", 3),
        ("CPT", "99396", 3),
        ("CPT", "99397", 3),
        ("CPT", "99395", 2),
        ("HCPCS", "G0439", 1),
    ],
    "office_dx": [
        ("ICD10CM", "I10", 14),
        ("ICD10CM", "E11.9", 8),
        ("ICD10CM", "E78.5", 8),
        ("ICD10CM", "M54.5", 3),
        ("ICD10CM", "M54.50", 4),
        ("ICD10CM", "Z00.00", 8),
        ("ICD10CM", "Z00.01", 3),
        ("ICD10CM", "J06.9", 5),
        ("ICD10CM", "K21.9", 3),
        ("ICD10CM", "F41.1", 3),
        ("ICD10CM", "F32.9", 3),
        ("ICD10CM", "R51.9", 1),
        ("ICD10CM", "M25.561", 2),
        ("ICD10CM", "J45.909", 2),
        ("ICD10CM", "E66.9", 2),
        ("ICD10CM", "N39.0", 2),
        ("ICD10CM", "R05.9", 2),
        ("ICD10CM", "Z23", 3),
        ("ICD10CM", "M79.7", 1),
        ("ICD10CM", "G43.909", 1),
        ("ICD10CM", "R10.9", 1),
        ("ICD10CM", "M17.11", 1),
        ("ICD10CM", "E03.9", 2),
        ("ICD10CM", "L70.0", 1),
        ("ICD10CM", "Z79.899", 2),
    ],
    "office_extra": [
        ("CPT", "80053", 4),
        ("CPT", "85025", 4),
        ("CPT", "36415", 4),
        ("CPT", "90686", 2),
        ("CPT", "93000", 1),
        ("HCPCS", "J1100", 1),
        ("HCPCS", "J3420", 1),
        ("HCPCS", "A4253", 1),
    ],
    "office_pos": [("POS", "11", 80), ("POS", "22", 8), ("POS", "02", 6), ("POS", "10", 6)],
    "pain_dx": [
        ("ICD10CM", "M54.50", 20),
        ("ICD10CM", "M54.5", 6),
        ("ICD10CM", "G89.29", 18),
        ("ICD10CM", "G89.4", 6),
        ("ICD10CM", "M79.7", 6),
        ("ICD10CM", "M47.816", 8),
        ("ICD10CM", "M51.26", 6),
        ("ICD10CM", "M17.0", 5),
        ("ICD10CM", "Z79.891", 25),
    ],
    "ed_cpt": [
        ("CPT", "99281", 2),
        ("CPT", "99282", 8),
        ("CPT", "99283", 35),
        ("CPT", "99284", 35),
        ("CPT", "99285", 20),
    ],
    "ed_rev": [
        ("REV", "0450", 68),
        ("REV", "450", 15),
        ("REV", "0451", 4),
        ("REV", "0456", 4),
        ("REV", "0459", 4),
        ("REV", "0981", 5),
    ],
    "ed_pos": [("POS", "23", 1)],
    "ed_dx": [
        ("ICD10CM", "R07.9", 12),
        ("ICD10CM", "R10.9", 12),
        ("ICD10CM", "S93.401A", 6),
        ("ICD10CM", "J18.9", 6),
        ("ICD10CM", "N39.0", 6),
        ("ICD10CM", "R55", 5),
        ("ICD10CM", "S01.81XA", 5),
        ("ICD10CM", "M54.50", 6),
        ("ICD10CM", "K29.70", 4),
        ("ICD10CM", "R51.9", 6),
        ("ICD10CM", "J06.9", 6),
        ("ICD10CM", "S61.411A", 4),
        ("ICD10CM", "R06.02", 4),
        ("ICD10CM", "T78.40XA", 2),
    ],
    "inpatient": [("REV", "0120", 3), ("POS", "21", 1)],
    "overdose": [
        ("ICD10CM", "T40.2X1A", 38),
        ("ICD10CM", "T40.1X1A", 15),
        ("ICD10CM", "T40.411A", 20),
        ("ICD10CM", "T40.604A", 5),
        ("ICD10CM", "T40.2X4A", 5),
        ("ICD10CM", "T40.2X2A", 4),
        ("ICD10CM", "T40.3X1A", 5),
        ("ICD10CM", "T40.421A", 4),
        ("ICD10CM", "T40.0X1A", 1),
        ("ICD10CM", "T40.491A", 2),
        ("ICD10CM", "T40.691A", 1),
    ],
    "overdose_followup": [  # subsequent encounters: not an overdose
        ("ICD10CM", "T40.2X1D", 6),
        ("ICD10CM", "T40.1X1D", 2),
        ("ICD10CM", "T40.411D", 2),
        ("ICD10CM", "T40.2X1S", 1),
    ],
    "adverse_effect": [  # adverse effect / underdosing: not an overdose
        ("ICD10CM", "T40.2X5A", 10),
        ("ICD10CM", "T40.2X6A", 2),
        ("ICD10CM", "T40.415A", 1),
        ("ICD10CM", "K59.03", 4),
    ],
    "other_poisoning": [  # not opioid overdose codes
        ("ICD10CM", "T40.5X1A", 4),
        ("ICD10CM", "T40.7X1A", 3),
        ("ICD10CM", "T42.4X1A", 3),
        ("ICD10CM", "T51.0X1A", 2),
    ],
    "oud": [
        ("ICD10CM", "F11.20", 70),
        ("ICD10CM", "F11.10", 10),
        ("ICD10CM", "F11.21", 8),
        ("ICD10CM", "F11.23", 4),
        ("ICD10CM", "F11.90", 8),
    ],
    "mat_service": [("HCPCS", "H0020", 2), ("HCPCS", "G2068", 2), ("HCPCS", "J0571", 1)],
    "sud_alcohol": [("ICD10CM", "F10.20", 6), ("ICD10CM", "F10.10", 3), ("ICD10CM", "F10.21", 1)],
    "sud_cannabis": [("ICD10CM", "F12.90", 5), ("ICD10CM", "F12.20", 3), ("ICD10CM", "F12.10", 2)],
    "sud_other": [("ICD10CM", "F14.20", 4), ("ICD10CM", "F15.20", 3), ("ICD10CM", "F19.20", 3)],
    "tobacco": [("ICD10CM", "F17.210", 8), ("ICD10CM", "Z72.0", 2)],
    "cancer": [
        ("ICD10CM", "C50.911", 20),
        ("ICD10CM", "C34.90", 14),
        ("ICD10CM", "C61", 14),
        ("ICD10CM", "C18.9", 8),
        ("ICD10CM", "C79.51", 6),
        ("ICD10CM", "C25.9", 4),
        ("ICD10CM", "C90.00", 4),
        ("ICD10CM", "C4A.9", 1),
        ("ICD10CM", "C7A.010", 1),
        ("ICD10CM", "C43.9", 4),
    ],
    "cancer_pain": [("ICD10CM", "G89.3", 1)],
    "cancer_service": [("CPT", "96413", 3), ("HCPCS", "J9267", 1), ("CPT", "77412", 2)],
    "cancer_history": [("ICD10CM", "Z85.3", 5), ("ICD10CM", "Z85.46", 3), ("ICD10CM", "D05.10", 1)],
    "sickle": [("ICD10CM", "D57.00", 5), ("ICD10CM", "D57.1", 8), ("ICD10CM", "D57.01", 1)],
    "sickle_crisis": [("ICD10CM", "D57.00", 3), ("ICD10CM", "D57.219", 1)],
    "sickle_trait": [("ICD10CM", "D57.3", 1)],
    "hospice_rev": [("REV", "0651", 10), ("REV", "0655", 1), ("REV", "0656", 1)],
    "hospice_dx": [("ICD10CM", "Z51.5", 1)],
    "hospice_pos": [("POS", "34", 1)],
}


def _build_vocab():
    types: list[str] = []
    codes: list[str] = []
    index: dict[tuple[str, str], int] = {}

    def add(t: str, c: str) -> int:
        key = (t, c)
        if key not in index:
            index[key] = len(types)
            types.append(t)
            codes.append(c)
        return index[key]

    groups = {}
    for name, entries in _MED_GROUPS.items():
        idx = np.array([add(t, c) for t, c, _ in entries], dtype=np.int32)
        w = np.array([w for _, _, w in entries], dtype=np.float64)
        groups[name] = (idx, np.cumsum(w) / w.sum())
    # dotless twins of ICD-10-CM codes
    nodot = np.arange(len(types), dtype=np.int32)
    for i in range(len(types)):
        if types[i] == "ICD10CM" and "." in codes[i]:
            nodot[i] = add("ICD10CM", codes[i].replace(".", ""))
    nodot = np.concatenate([nodot, np.arange(len(nodot), len(types), dtype=np.int32)])
    is_icd = np.array([t == "ICD10CM" for t in types])
    is_t40 = np.array(
        [t == "ICD10CM" and c.startswith("T40") for t, c in zip(types, codes, strict=True)]
    )
    return types, codes, groups, nodot, is_icd, is_t40


_VOCAB_TYPES, _VOCAB_CODES, _GROUPS, _NODOT, _IS_ICD, _IS_T40 = _build_vocab()

# --------------------------------------------------------------------------------------------
# Drug products resolved against the reference
# --------------------------------------------------------------------------------------------
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
class _Product:
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


class _Catalog:
    """The NDC table (reference + made-up untracked NDCs) and resolved products."""

    def __init__(self, reference: pa.Table, rng: np.random.Generator):
        cols = set(reference.column_names)
        need = {"ndc", "drug_class"}
        if not need <= cols:
            raise ValueError(f"drug reference lacks columns {sorted(need - cols)}")

        def col(name, default=None):
            if name not in cols:
                return [default] * reference.num_rows
            return reference.column(name).to_pylist()

        ref_ndc = np.array(
            [str(x).strip() if x is not None else "" for x in col("ndc")], dtype=object
        )
        ok = np.array([len(x) == 11 and x.isdigit() for x in ref_ndc], dtype=bool)
        klass = np.array([(x or "").strip().lower() for x in col("drug_class")], dtype=object)
        ing_str = np.array([x or "" for x in col("ingredient", "")], dtype=object).astype(str)
        name_str = np.array([x or "" for x in col("drug_name", "")], dtype=object).astype(str)
        unit = np.array([(x or "").strip().upper() for x in col("unit", "")], dtype=object)

        def fcol(name):
            return np.array(
                [np.nan if x is None else float(x) for x in col(name)], dtype=np.float64
            )

        strength = fcol("strength_per_unit")
        factor = fcol("mme_factor")
        dpu = fcol("days_per_unit")
        la = np.array([x for x in col("long_acting")], dtype=object)

        # Sorted by NDC so that the catalog does not depend on the reference's row order.
        order = np.argsort(ref_ndc.astype(str), kind="stable")
        order = order[ok[order]]
        self.ref_ndc = ref_ndc[order].astype(str)
        n_ref = len(self.ref_ndc)
        self.n_ref = n_ref
        klass, unit, strength, factor, dpu, la = (
            a[order] for a in (klass, unit, strength, factor, dpu, la)
        )
        ing_u, ing_inv = np.unique(ing_str[order], return_inverse=True)
        name_u, name_inv = np.unique(name_str[order], return_inverse=True)
        ing_words = [_words(x) for x in ing_u]
        name_words = [_words(x) for x in name_u]

        def has_keyword(words, inv, kw):
            return np.array([bool(kw & w) for w in words], dtype=bool)[inv]

        self.ref_class = np.array([_CLASS_CODE.get(k, 0) for k in klass], dtype=np.int8)

        self.products: dict[str, _Product | None] = {}
        for name, (cls_name, kws, units, long_acting, srange) in _TEMPLATES.items():
            code = _CLASS_CODE[cls_name]
            in_class = self.ref_class == code
            if name in _DOSED:
                in_class &= (
                    np.isfinite(strength) & (strength > 0) & np.isfinite(factor) & (factor > 0)
                )
            kw = set(kws)
            kw_ing = has_keyword(ing_words, ing_inv, kw)
            kw_any = has_keyword(name_words, name_inv, kw) | kw_ing
            u_ok = np.ones(n_ref, bool) if units is None else np.isin(unit, list(units))
            if long_acting is None:
                la_ok = np.ones(n_ref, bool)
            else:
                la_ok = np.array(
                    [(x is not None and bool(x) == long_acting) for x in la], dtype=bool
                )
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
            sel = None
            for m in attempts:
                if m.any():
                    sel = np.flatnonzero(m)
                    break
            if sel is None and name not in _DOSED and (self.ref_class == code).any():
                sel = np.flatnonzero(self.ref_class == code)
            if sel is None:
                self.products[name] = None
                continue
            st = np.where(np.isfinite(strength[sel]), strength[sel], 1.0)
            o = np.lexsort((sel, st))
            sel, st = sel[o], st[o]
            lv, lstart, lcount = np.unique(st, return_index=True, return_counts=True)
            fac = factor[sel]
            self.products[name] = _Product(
                name=name,
                cls=code,
                ndc=sel.astype(np.int32),
                strength=st,
                factor=fac,
                dpu=dpu[sel],
                level_strength=lv,
                level_factor=np.where(np.isfinite(fac[lstart]), fac[lstart], 0.0),
                level_start=lstart,
                level_count=lcount,
            )

        # Untracked NDCs: plausible labelers, random product and package codes, not in the reference.
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
        fake = _digit_strings(b"", num, 11).to_numpy(zero_copy_only=False).astype(str)
        fake = fake[~np.isin(fake, self.ref_ndc)]
        fake = fake[:n_fake]
        if "99999999999" not in set(self.ref_ndc):  # the usual compound-claim placeholder
            fake = np.concatenate([fake, np.array(["99999999999"])])
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


def _zipf_cdf(n: int, a: float) -> np.ndarray:
    w = 1.0 / np.arange(1, n + 1, dtype=np.float64) ** a
    return np.cumsum(w) / w.sum()


# --------------------------------------------------------------------------------------------
# Prescriber and pharmacy pools
# --------------------------------------------------------------------------------------------
class _Pools:
    """Regions with their own prescribers and pharmacies, plus national mail-order pharmacies."""

    def __init__(self, members: int, rng: np.random.Generator):
        self.n_regions = int(np.clip(members // 25_000, 1, 400))
        per_region = members / self.n_regions
        self.n_presc = int(max(40, round(per_region / 70)))  # per region
        self.n_pharm = int(max(8, round(per_region / 900)))  # per region
        self.n_mail = 3
        n_p = self.n_regions * self.n_presc
        n_h = self.n_regions * self.n_pharm + self.n_mail
        # NPI: 1 or 2, eight digits, Luhn check digit over the "80840" prefix.
        base = rng.choice(200_000_000, size=n_p, replace=False).astype(np.int64) + 100_000_000
        digits = np.stack([(base // 10**k) % 10 for k in range(9)], axis=1)  # [:,0] is rightmost
        dbl = digits[:, 0::2] * 2
        total = 24 + (dbl // 10 + dbl % 10).sum(axis=1) + digits[:, 1::2].sum(axis=1)
        check = (10 - total % 10) % 10
        self.prescriber_ids = _digit_strings(b"", base * 10 + check, 10)
        # NCPDP-like 7 digits
        ph = rng.choice(9_000_000, size=n_h, replace=False).astype(np.int64) + 1_000_000
        self.pharmacy_ids = _digit_strings(b"", ph, 7)
        self.mail_first = self.n_regions * self.n_pharm

    def region_prescriber(self, rng, region):
        return (region * self.n_presc + rng.integers(0, self.n_presc, size=len(region))).astype(
            np.int32
        )

    def region_pharmacy(self, rng, region):
        return (region * self.n_pharm + rng.integers(0, self.n_pharm, size=len(region))).astype(
            np.int32
        )

    def any_prescriber(self, rng, n):
        return rng.integers(0, self.n_regions * self.n_presc, size=n).astype(np.int32)

    def any_pharmacy(self, rng, n):
        return rng.integers(0, self.n_regions * self.n_pharm, size=n).astype(np.int32)


# --------------------------------------------------------------------------------------------
# Small vectorised helpers
# --------------------------------------------------------------------------------------------
_LUT4 = np.frombuffer("".join(f"{i:04d}" for i in range(10_000)).encode(), np.uint8).reshape(
    10_000, 4
)


def _digit_strings(prefix: bytes, numbers: np.ndarray, width: int) -> pa.Array:
    """``prefix`` + zero-padded decimal ``numbers`` as a pyarrow string array (no Python loop)."""
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
    return _matrix_strings(mat)


def _matrix_strings(mat: np.ndarray) -> pa.Array:
    """Rows of a uint8 matrix (ASCII) as a pyarrow string array."""
    n, width = mat.shape
    offsets = np.arange(0, (n + 1) * width, width, dtype=np.int64)
    if offsets[-1] < 2**31:
        return pa.StringArray.from_buffers(
            n, pa.py_buffer(offsets.astype(np.int32)), pa.py_buffer(np.ascontiguousarray(mat))
        )
    return pa.LargeStringArray.from_buffers(
        n, pa.py_buffer(offsets), pa.py_buffer(np.ascontiguousarray(mat))
    ).cast(pa.string())


def _cat(rng: np.random.Generator, cdf: np.ndarray, n: int) -> np.ndarray:
    """Categorical draws from a cumulative distribution."""
    return np.minimum(np.searchsorted(cdf, rng.random(n), side="right"), len(cdf) - 1)


def _choice(rng, values, weights, n):
    values = np.asarray(values)
    w = np.asarray(weights, dtype=np.float64)
    return values[_cat(rng, np.cumsum(w) / w.sum(), n)]


def _series(rng, start, stop, ds, p_early=0.12, p_late=0.12):
    """Refill series. Series ``i`` has fills from day ``start[i]`` every ~``ds[i]`` days (jitter,
    early refills, late gaps) until ``stop[i]`` (exclusive); fills before day 0 are dropped.

    Returns ``(series_index, day, fill_number)`` of the kept fills.
    """
    start = np.asarray(start, dtype=np.int64)
    stop = np.asarray(stop, dtype=np.int64)
    ds = np.asarray(ds, dtype=np.int64)
    n = len(start)
    if n == 0:
        e = np.zeros(0, np.int64)
        return e, e, e
    # enough fills for an average gap 20% below ds (early refills are 10-35% early, 12% of fills)
    counts = np.maximum(stop - start, 1) // np.maximum((ds * 0.8).astype(np.int64), 1) + 2
    sid = np.repeat(np.arange(n), counts)
    m = len(sid)
    d = ds[sid]
    gap = d.copy()
    monthly = d >= 14
    gap[monthly] += rng.integers(-1, 2, size=int(monthly.sum()))
    u = rng.random(m)
    early = u < p_early
    late = u > 1 - p_late
    gap[early] -= np.ceil(d[early] * rng.uniform(0.1, 0.35, size=int(early.sum()))).astype(np.int64)
    gap[late] += (d[late] * rng.uniform(0.1, 0.7, size=int(late.sum()))).astype(np.int64) + 2
    first = np.cumsum(counts) - counts
    gap[first] = 0
    cs = np.cumsum(gap)
    within = cs - np.repeat(cs[first], counts)
    day = start[sid] + within
    seq = np.arange(m) - np.repeat(first, counts)
    keep = (day >= 0) & (day < stop[sid])
    return sid[keep], day[keep], seq[keep]


def _episodes(rng, lam):
    """Poisson episode counts per member -> member index per episode."""
    k = rng.poisson(lam)
    return np.repeat(np.arange(len(lam)), k)


# --------------------------------------------------------------------------------------------
# One block of members
# --------------------------------------------------------------------------------------------
class _Block:
    def __init__(
        self,
        rng,
        catalog: _Catalog,
        pools: _Pools,
        first_member: int,
        n: int,
        n_days: int,
        id_width: int,
    ):
        self.rng = rng
        self.cat = catalog
        self.pools = pools
        self.n = n
        self.n_days = n_days
        self.years = n_days / 365.25
        self.first_member = first_member
        self.id_width = id_width
        i32, f64 = np.zeros(0, np.int32), np.zeros(0, np.float64)
        # (mem, day, ndc, qty, ds, presc, pharm); starts with an empty part so a block may be empty
        self.ph: list[tuple] = [(i32, i32, i32, f64, i32, i32, i32)]
        self.md: list[tuple] = [(i32, i32, i32, f64)]  # (mem, day, vocab, key)
        self.counts: dict[str, int] = {}

    # ---- pharmacy emission ----
    def _emit(self, mem, day, ndc, qty, ds, presc, pharm):
        if len(mem):
            self.ph.append(
                (
                    np.asarray(mem, np.int32),
                    np.asarray(day, np.int32),
                    np.asarray(ndc, np.int32),
                    np.asarray(qty, np.float64),
                    np.asarray(ds, np.int32),
                    np.asarray(presc, np.int32),
                    np.asarray(pharm, np.int32),
                )
            )

    def _presc(self, mem, p_own=0.6, p_region=0.35, own=None):
        """Prescriber per fill: the member's own (PCP, or ``own`` per fill), a regional or any."""
        rng = self.rng
        own = self.pcp[mem] if own is None else own
        u = rng.random(len(mem))
        out = np.where(u < p_own, own, self.pools.region_prescriber(rng, self.region[mem]))
        far = u >= p_own + p_region
        out[far] = self.pools.any_prescriber(rng, int(far.sum()))
        return out.astype(np.int32)

    def _pharm(self, mem, p_home=0.82, mail=None):
        rng = self.rng
        u = rng.random(len(mem))
        out = np.where(u < p_home, self.home_pharm[mem], self.second_pharm[mem])
        other = u >= p_home + 0.12
        out[other] = self.pools.region_pharmacy(rng, self.region[mem[other]])
        travel = u >= 0.995
        out[travel] = self.pools.any_pharmacy(rng, int(travel.sum()))
        if mail is not None:
            out[mail] = self.pools.mail_first + self.mail_choice[mem[mail]]
        return out.astype(np.int32)

    def _dosed(self, prod: _Product, mem, day, ds, target, presc, pharm, u_pref=4.0, u_max=12):
        """Fills of a dose-targeted product: strength nearest the target at ``u_pref`` units/day,
        quantity so that the daily MME is close to ``target``."""
        if prod is None or len(mem) == 0:
            return
        rng = self.rng
        name = prod.name
        if name == "fentanyl_patch":
            per = np.where(np.isfinite(prod.dpu) & (prod.dpu > 0), prod.dpu, 3.0)
            # daily MME of one patch at a time: strength * factor / days_per_unit
            lvl_per = prod.level_factor / per[prod.level_start]
            cand = prod.pick_strength(rng, target / np.maximum(lvl_per[0], 1e-9))
            pp = prod.strength[cand] * prod.factor[cand] / per[cand]
            at_once = np.clip(np.rint(target / pp), 1, 3)
            q48 = rng.random(len(mem)) < 0.2  # changed every 48 hours
            ds = np.full(len(mem), 30, np.int64)
            qty = np.where(q48, 15, 10) * at_once
        else:
            cand = prod.pick_strength(rng, target / (prod.level_factor.max() * u_pref))
            per_unit = prod.strength[cand] * prod.factor[cand]
            u = np.clip(np.rint(target / per_unit), 1, u_max)
            qty = u * ds
        self._emit(mem, day, prod.ndc[cand], qty, ds, presc, pharm)

    def _simple(self, prod: _Product | None, mem, day, ds, units_per_day, presc, pharm):
        if prod is None or len(mem) == 0:
            return
        cand = prod.pick(self.rng, len(mem))
        qty = np.maximum(np.rint(np.asarray(units_per_day) * ds), 1)
        self._emit(mem, day, prod.ndc[cand], qty, ds, presc, pharm)

    def _members_where(self, p, base=None):
        m = self.rng.random(self.n) < p
        return m if base is None else (m & base)

    # ---- medical emission ----
    def _med(self, mem, day, vocab, key):
        if len(mem):
            self.md.append(
                (
                    np.asarray(mem, np.int32),
                    np.asarray(day, np.int32),
                    np.asarray(vocab, np.int32),
                    key,
                )
            )

    def _codes(self, group, n):
        idx, cdf = _GROUPS[group]
        return idx[_cat(self.rng, cdf, n)]

    def _visit(self, mem, day, groups, key=None):
        """One row per (group) for each event; all rows of an event share the ordering key."""
        if key is None:
            key = day + self.rng.random(len(mem))
        for g in groups:
            self._med(mem, day, self._codes(g, len(mem)), key)
        return key

    def _optional(self, mem, day, key, group, p):
        m = self.rng.random(len(mem)) < p
        self._med(mem[m], day[m], self._codes(group, int(m.sum())), key[m])

    def _ed_visit(self, mem, day, dx_group="ed_dx", cpt_p=0.9, rev_p=0.75):
        rng = self.rng
        n = len(mem)
        key = day + rng.random(n)
        cpt = rng.random(n) < cpt_p
        rev = rng.random(n) < rev_p
        pos = (rng.random(n) < 0.4) | (~cpt & ~rev)
        for m, g in ((cpt, "ed_cpt"), (rev, "ed_rev"), (pos, "ed_pos")):
            self._med(mem[m], day[m], self._codes(g, int(m.sum())), key[m])
        if dx_group:
            self._med(mem, day, self._codes(dx_group, n), key)
        return key

    def _days(self, n, lo=0, hi=None):
        hi = self.n_days if hi is None else hi
        return self.rng.integers(lo, np.maximum(hi, lo + 1), size=n)

    # ---- the book ----
    def generate(self):
        rng = self.rng
        n, nd, yrs = self.n, self.n_days, self.years
        pools = self.pools
        self.region = rng.integers(0, pools.n_regions, size=n)
        self.pcp = pools.region_prescriber(rng, self.region)
        self.home_pharm = pools.region_pharmacy(rng, self.region)
        self.second_pharm = pools.region_pharmacy(rng, self.region)
        self.mail_choice = rng.integers(0, pools.n_mail, size=n)
        arange = np.arange(n)

        # ---- archetypes ----
        cancer = self._members_where(P_CANCER)
        cancer_history = self._members_where(P_CANCER_HISTORY) & ~cancer
        hospice = (cancer & self._members_where(P_HOSPICE_OF_CANCER)) | self._members_where(
            P_HOSPICE_OTHER
        )
        sickle = self._members_where(P_SICKLE)
        trait = self._members_where(P_SICKLE_TRAIT) & ~sickle
        chronic = (
            self._members_where(P_CHRONIC)
            | (cancer & self._members_where(0.25))
            | (hospice & self._members_where(0.7))
            | (sickle & self._members_where(0.4))
        )
        shopper = self._members_where(P_SHOPPER) & ~chronic
        mat = self._members_where(P_MAT) & ~chronic & ~shopper
        oud = mat | (shopper & self._members_where(0.3)) | (chronic & self._members_where(0.04))
        oud |= self._members_where(P_OUD_GENERAL)
        alcohol = self._members_where(P_SUD_ALCOHOL)
        cannabis = self._members_where(P_SUD_CANNABIS)
        sud_other = self._members_where(P_SUD_OTHER) | (shopper & self._members_where(0.2))
        tobacco = self._members_where(P_TOBACCO) | (oud & self._members_where(0.5))
        self.counts.update(
            chronic_members=int(chronic.sum()),
            shopper_members=int(shopper.sum()),
            mat_members=int(mat.sum()),
            cancer_members=int(cancer.sum()),
            hospice_members=int(hospice.sum()),
            sickle_cell_members=int(sickle.sum()),
        )

        # ---- untracked maintenance drugs and acute fills ----
        n_maint = _choice(rng, np.arange(7), [38, 20, 15, 10, 8, 5, 4], n)
        smem = np.repeat(arange, n_maint)
        ns = len(smem)
        sds = np.where(rng.random(ns) < 0.22, 90, 30)
        new_start = rng.random(ns) < 0.15
        sstart = np.where(new_start, self._days(ns, 0, int(nd * 0.85)), -rng.integers(0, sds))
        sstop = np.where(rng.random(ns) < 0.1, sstart + rng.integers(60, 300, size=ns), nd)
        sstop = np.minimum(sstop, nd)
        sndc = self.cat.maint_ids[_cat(rng, self.cat.maint_cdf, ns)]
        sunits = _choice(rng, [1, 2, 0.5, 3], [65, 28, 4, 3], ns)
        sprod_mail = (sds == 90) & (rng.random(ns) < 0.5)
        spresc = self._presc(smem, p_own=0.75, p_region=0.24)
        sid, day, _ = _series(rng, sstart, sstop, sds, p_early=0.05, p_late=0.15)
        mem = smem[sid]
        qty = np.maximum(np.rint(sunits[sid] * sds[sid] * 2) / 2, 1)
        special = rng.random(len(sid)) < 0.04  # inhalers, creams, insulin: fractional amounts
        qty[special] = _choice(
            rng, [8.5, 18.0, 6.7, 15.0, 30.0, 45.0, 10.0], [3, 2, 2, 2, 2, 1, 1], int(special.sum())
        )
        presc = np.where(rng.random(len(sid)) < 0.92, spresc[sid], self._presc(mem))
        self._emit(
            mem, day, sndc[sid], qty, sds[sid], presc, self._pharm(mem, mail=sprod_mail[sid])
        )

        lam = rng.gamma(0.8, 3.6 / 0.8, size=n) * yrs
        mem = _episodes(rng, lam)
        k = len(mem)
        ndc = self.cat.acute_ids[_cat(rng, self.cat.acute_cdf, k)]
        ndc[rng.random(k) < 0.003] = self.cat.compound_id
        ds = _choice(rng, [10, 7, 5, 14, 30, 3, 1, 90], [30, 20, 15, 10, 14, 5, 4, 2], k)
        qty = ds * _choice(rng, [1, 2, 3, 4], [45, 35, 12, 8], k).astype(np.float64)
        liquid = rng.random(k) < 0.05
        qty[liquid] = _choice(
            rng, [100.0, 150.0, 200.0, 473.0, 5.0], [4, 4, 2, 1, 1], int(liquid.sum())
        )
        self._emit(mem, self._days(k), ndc, qty, ds, self._presc(mem, 0.45, 0.5), self._pharm(mem))

        # ---- opioids ----
        P = self.cat.products
        self._acute_opioids(
            _episodes(rng, np.where(chronic | shopper | mat, 0.0, ACUTE_OPIOID_EPISODES * yrs))
        )
        self._acute_opioids(
            np.repeat(
                np.flatnonzero(sickle & ~chronic),
                rng.poisson(4 * yrs, int((sickle & ~chronic).sum())),
            )
        )
        self._acute_opioids(np.flatnonzero(mat & self._members_where(0.3)))
        self._chronic(np.flatnonzero(chronic), cancer | hospice)
        # chronic users also get an occasional acute fill from another prescriber (ED, dentist)
        extra = np.flatnonzero(chronic & self._members_where(0.15))
        self._acute_opioids(extra, other_prescriber=True)
        self._shoppers(np.flatnonzero(shopper))

        # ---- MAT, naltrexone, naloxone ----
        mmem = np.flatnonzero(mat)
        on_nal = rng.random(len(mmem)) < 0.15
        self._mat(mmem[~on_nal])
        alc_nal = np.flatnonzero(alcohol & self._members_where(0.08))
        self._naltrexone(np.concatenate([mmem[on_nal], alc_nal]))
        nalox = (
            (chronic & self._members_where(0.15))
            | (mat & self._members_where(0.4))
            | (shopper & self._members_where(0.1))
            | self._members_where(0.002)
        )
        mem = _episodes(rng, np.where(nalox, 1.3 * yrs, 0.0))
        k = len(mem)
        prod = P["naloxone"]
        if prod is not None and k:
            # nasal spray two-packs (quantity 2) mostly, single units otherwise
            qty = _choice(rng, [2.0, 1.0, 4.0], [80, 15, 5], k)
            ds = _choice(rng, [1, 2, 15, 30], [55, 25, 10, 10], k)
            ndc = prod.ndc[prod.pick(rng, k)]
            self._emit(mem, self._days(k), ndc, qty, ds, self._presc(mem), self._pharm(mem))

        # ---- other tracked classes ----
        co = rng.random(n)
        self._class_series(
            "benzodiazepine",
            (chronic & (co < 0.25)) | self._members_where(0.025),
            [1, 2, 3, 4],
            [40, 35, 20, 5],
        )
        self._class_acute(
            "benzodiazepine",
            0.025,
            [1, 2, 3],
            [50, 35, 15],
            [5, 7, 10, 14, 30],
            [15, 25, 25, 15, 20],
        )
        self._class_series(
            "gabapentinoid",
            (chronic & (self.rng.random(n) < 0.3)) | self._members_where(0.035),
            [1, 2, 3],
            [15, 35, 50],
        )
        self._class_acute("gabapentinoid", 0.01, [2, 3], [50, 50], [10, 30], [40, 60])
        self._class_series(
            "muscle_relaxant", chronic & self._members_where(0.15), [1, 2, 3], [30, 40, 30]
        )
        self._class_acute(
            "muscle_relaxant",
            0.045,
            [2, 3],
            [50, 50],
            [7, 10, 14, 30],
            [30, 35, 15, 20],
        )
        self._class_series(
            "sedative_hypnotic",
            (chronic & self._members_where(0.1)) | self._members_where(0.02),
            [1],
            [1],
            dur=(60, 360),
        )
        self._class_series("stimulant", self._members_where(0.025), [1, 2], [70, 30])

        # ---- medical ----
        self._medical(
            chronic,
            shopper,
            mat,
            oud,
            cancer,
            cancer_history,
            hospice,
            sickle,
            trait,
            alcohol,
            cannabis,
            sud_other,
            tobacco,
        )

    def _acute_opioids(self, mem, other_prescriber=False):
        rng = self.rng
        if len(mem) == 0:
            return
        P = self.cat.products
        nfill = _choice(rng, [1, 2, 3], [80, 16, 4], len(mem))
        first = self._days(len(mem))
        ep = np.repeat(np.arange(len(mem)), nfill)
        seq = np.arange(len(ep)) - np.repeat(np.cumsum(nfill) - nfill, nfill)
        m = mem[ep]
        day = first[ep] + seq * rng.integers(3, 25, size=len(ep))
        keep = day < self.n_days
        ep, m, day = ep[keep], m[keep], day[keep]
        k = len(ep)
        names = np.array(
            ["hydrocodone_sa", "oxycodone_acute", "tramadol_sa", "codeine_sa", "hydrocodone_liquid",
             "codeine_liquid", "oxycodone_liquid", "hydromorphone_sa", "morphine_sa", "tapentadol_sa"]
        )  # fmt: skip
        w = [42, 16, 22, 10, 2, 2, 1, 3, 1, 1]
        prod_of_ep = _choice(rng, np.arange(len(names)), w, len(mem))
        pi = prod_of_ep[ep]
        ds = _choice(rng, [3, 4, 5, 7, 10, 14, 30], [24, 6, 30, 28, 6, 4, 2], len(mem))[ep]
        upd = _choice(rng, [3, 4, 6], [30, 40, 30], len(mem))[ep].astype(np.float64)
        if other_prescriber:
            presc = self.pools.region_prescriber(rng, self.region[m])
        else:
            ep_presc = self._presc(mem, 0.4, 0.55)
            presc = ep_presc[ep]
        pharm = self._pharm(m)
        for j, name in enumerate(names):
            sel = pi == j
            if not sel.any():
                continue
            units = upd[sel]
            if name.endswith("liquid"):
                units = _choice(rng, [15, 20, 30, 40], [20, 30, 30, 20], int(sel.sum())).astype(
                    np.float64
                )
            elif name == "tramadol_sa":
                units = units + 1
            prod = P[name] or P["hydrocodone_sa"]
            self._simple(prod, m[sel], day[sel], ds[sel], units, presc[sel], pharm[sel])
        self.counts["acute_opioid_fills"] = self.counts.get("acute_opioid_fills", 0) + k

    def _chronic(self, mem, excluded):
        """Chronic opioid therapy: SA-only or LA + SA breakthrough, monthly refills."""
        rng = self.rng
        P = self.cat.products
        nd = self.n_days
        c = len(mem)
        if c == 0:
            return
        exc = excluded[mem]
        base = np.exp(rng.normal(np.log(32.0), 0.7, size=c))
        base[exc] *= 2.0
        # escalation (40%), taper (10%) or stable: multiplicative change per year
        u = rng.random(c)
        growth = np.where(
            u < 0.4,
            rng.uniform(1.2, 2.2, size=c),
            np.where(u < 0.5, rng.uniform(0.4, 0.8, size=c), 1.0),
        )
        ongoing = rng.random(c) < 0.72
        ds = np.where(rng.random(c) < 0.65, 30, 28)
        start = np.where(ongoing, -rng.integers(0, 30, size=c), self._days(c, 0, int(nd * 0.8)))
        stop = np.where(rng.random(c) < 0.2, start + rng.integers(60, 240, size=c), nd)
        stop = np.minimum(stop, nd)
        pain_doc = self.pools.region_prescriber(rng, self.region[mem])
        has_la = rng.random(c) < np.where(exc, 0.6, 0.33)
        la_names = np.array(
            ["oxycodone_la", "morphine_la", "fentanyl_patch", "methadone", "hydromorphone_la",
             "oxymorphone_la", "tapentadol_la", "tramadol_la", "buprenorphine_patch"]
        )  # fmt: skip
        la_prod = _choice(rng, np.arange(len(la_names)), [28, 28, 20, 8, 4, 3, 4, 2, 3], c)
        sa_names = np.array(
            [
                "hydrocodone_sa",
                "oxycodone_sa",
                "tramadol_sa",
                "hydromorphone_sa",
                "morphine_sa",
                "tapentadol_sa",
            ]
        )
        sa_prod = _choice(rng, np.arange(len(sa_names)), [42, 36, 12, 5, 3, 2], c)
        sa_prod[exc & (rng.random(c) < 0.5)] = 1  # oxycodone for cancer pain
        # breakthrough SA for 70% of LA users; SA carries the whole target otherwise
        sa_share = np.where(has_la, 0.3, 1.0)
        has_sa = ~has_la | (rng.random(c) < 0.7)

        def run(which, share, prods, names, early, late):
            sid, day, _ = _series(rng, start[which], stop[which], ds[which], early, late)
            idx = np.flatnonzero(which)[sid]
            m = mem[idx]
            years_in = (day - start[idx]) / 365.25
            target = base[idx] * share[idx] * growth[idx] ** years_in
            target *= rng.uniform(0.9, 1.1, size=len(idx))
            presc = self._presc(m, p_own=0.9, p_region=0.09, own=pain_doc[idx])
            pharm = self._pharm(m, p_home=0.9)
            for j, name in enumerate(names):
                sel = prods[idx] == j
                if not sel.any():
                    continue
                prod = P[name]
                dsj = ds[idx][sel]
                if name == "buprenorphine_patch":
                    if prod is not None:
                        k = int(sel.sum())
                        self._emit(
                            m[sel],
                            day[sel],
                            prod.ndc[prod.pick(rng, k)],
                            np.full(k, 4.0),
                            np.full(k, 28),
                            presc[sel],
                            pharm[sel],
                        )
                    continue
                if prod is None:
                    prod = P["oxycodone_sa"]
                u_pref = 3.0 if name == "methadone" else (2.0 if names is la_names else 4.0)
                u_max = 6 if names is la_names else 12
                self._dosed(
                    prod, m[sel], day[sel], dsj, target[sel], presc[sel], pharm[sel], u_pref, u_max
                )

        run(has_la, np.full(c, 0.7), la_prod, la_names, 0.08, 0.08)
        run(has_sa, sa_share, sa_prod, sa_names, 0.15, 0.12)
        # transmucosal fentanyl for some excluded (cancer) patients
        tm = exc & (rng.random(c) < 0.05)
        if tm.any() and P["fentanyl_transmucosal"] is not None:
            sid, day, _ = _series(rng, start[tm], stop[tm], np.full(int(tm.sum()), 30))
            idx = np.flatnonzero(tm)[sid]
            m = mem[idx]
            self._simple(
                P["fentanyl_transmucosal"],
                m,
                day,
                np.full(len(m), 30),
                rng.choice([2.0, 4.0], size=len(m)),
                pain_doc[idx],
                self._pharm(m),
            )

    def _shoppers(self, mem):
        rng = self.rng
        s = len(mem)
        if s == 0:
            return
        n_presc = rng.integers(4, 11, size=s)
        n_pharm = rng.integers(3, 9, size=s)
        presc_set = self.pools.region_prescriber(rng, np.repeat(self.region[mem], 10)).reshape(
            s, 10
        )
        far = rng.random((s, 10)) < 0.3
        presc_set[far] = self.pools.any_prescriber(rng, int(far.sum()))
        pharm_set = self.pools.region_pharmacy(rng, np.repeat(self.region[mem], 8)).reshape(s, 8)
        farp = rng.random((s, 8)) < 0.3
        pharm_set[farp] = self.pools.any_pharmacy(rng, int(farp.sum()))
        k_each = rng.poisson(rng.uniform(15, 40, size=s) * self.years)
        who = np.repeat(np.arange(s), k_each)
        k = len(who)
        m = mem[who]
        day = self._days(k)
        presc = presc_set[who, (rng.random(k) * n_presc[who]).astype(np.int64)]
        pharm = pharm_set[who, (rng.random(k) * n_pharm[who]).astype(np.int64)]
        ds = _choice(rng, [5, 7, 10, 15, 30], [15, 25, 20, 20, 20], k)
        target = rng.uniform(40, 180, size=k)
        P = self.cat.products
        prod = _choice(rng, [0, 1, 2], [45, 45, 10], k)
        for j, name in enumerate(["oxycodone_sa", "hydrocodone_sa", "hydromorphone_sa"]):
            sel = prod == j
            self._dosed(
                P[name] or P["oxycodone_sa"],
                m[sel],
                day[sel],
                ds[sel],
                target[sel],
                presc[sel],
                pharm[sel],
            )

    def _mat(self, mem):
        rng = self.rng
        prod = self.cat.products["buprenorphine_mat"]
        c = len(mem)
        if prod is None or c == 0:
            return
        ds = _choice(rng, [30, 28, 14, 7], [55, 15, 15, 15], c)
        start = np.where(
            rng.random(c) < 0.6, -rng.integers(0, ds), self._days(c, 0, int(self.n_days * 0.8))
        )
        stop = np.where(rng.random(c) < 0.3, start + rng.integers(30, 200, size=c), self.n_days)
        doc = self.pools.region_prescriber(rng, self.region[mem])
        sid, day, _ = _series(rng, start, np.minimum(stop, self.n_days), ds, 0.08, 0.2)
        m = mem[sid]
        wanted = _choice(rng, [8.0, 2.0, 12.0, 4.0], [70, 15, 10, 5], c)[sid]
        cand = prod.pick_strength(rng, wanted)
        st = prod.strength[cand]
        mg_day = _choice(rng, [8.0, 12.0, 16.0, 24.0], [15, 20, 50, 15], c)[sid]
        u = np.clip(np.rint(mg_day / np.maximum(st, 1e-9)), 1, 4)
        d = ds[sid]
        depot = st >= 50  # monthly injection
        qty = np.where(depot, 1.0, u * d)
        d = np.where(depot, 30, d)
        self._emit(
            m,
            day,
            prod.ndc[cand],
            qty,
            d,
            self._presc(m, 0.95, 0.05, own=doc[sid]),
            self._pharm(m, 0.9),
        )

    def _naltrexone(self, mem):
        rng = self.rng
        prod = self.cat.products["naltrexone"]
        c = len(mem)
        if prod is None or c == 0:
            return
        start = self._days(c, -30, int(self.n_days * 0.7))
        stop = np.minimum(start + rng.integers(60, 365, size=c), self.n_days)
        sid, day, _ = _series(rng, start, stop, np.full(c, 30))
        m = mem[sid]
        cand = prod.pick(rng, len(m))
        depot = np.nan_to_num(prod.strength[cand]) >= 300
        self._emit(
            m,
            day,
            prod.ndc[cand],
            np.where(depot, 1.0, 30.0),
            np.where(depot, 28, 30),
            self._presc(m),
            self._pharm(m),
        )

    def _class_series(self, template, who, units, weights, dur=None):
        rng = self.rng
        prod = self.cat.products[template]
        mem = np.flatnonzero(who)
        c = len(mem)
        if prod is None or c == 0:
            return
        ds = np.where(rng.random(c) < 0.85, 30, 90)
        start = np.where(
            rng.random(c) < 0.7, -rng.integers(0, ds), self._days(c, 0, int(self.n_days * 0.85))
        )
        if dur is None:
            stop = np.where(rng.random(c) < 0.2, start + rng.integers(60, 300, size=c), self.n_days)
        else:
            stop = start + rng.integers(dur[0], dur[1], size=c)
        sid, day, _ = _series(rng, start, np.minimum(stop, self.n_days), ds, 0.1, 0.15)
        m = mem[sid]
        upd = _choice(rng, units, weights, c)[sid]
        cand = prod.pick(rng, c)[sid]  # the same NDC for the whole series
        own = self._presc(mem, 0.7, 0.28)
        presc = self._presc(m, 0.9, 0.09, own=own[sid])
        qty = np.maximum(np.rint(upd * ds[sid]), 1)
        self._emit(
            m,
            day,
            prod.ndc[cand],
            qty,
            ds[sid],
            presc,
            self._pharm(m, mail=(ds[sid] == 90) & (rng.random(len(m)) < 0.4)),
        )

    def _class_acute(self, template, rate, units, uw, ds_values, dsw):
        """Acute episodes (``rate`` per member-year) of 1-3 consecutive fills."""
        rng = self.rng
        ep_mem = _episodes(rng, np.full(self.n, rate * self.years))
        e = len(ep_mem)
        nfill = _choice(rng, [1, 2, 3], [70, 22, 8], e)
        ep = np.repeat(np.arange(e), nfill)
        seq = np.arange(len(ep)) - np.repeat(np.cumsum(nfill) - nfill, nfill)
        ds = _choice(rng, ds_values, dsw, e)[ep]
        day = self._days(e)[ep] + seq * (ds + rng.integers(0, 10, size=len(ep)))
        keep = day < self.n_days
        mem, ep, ds, day = ep_mem[ep][keep], ep[keep], ds[keep], day[keep]
        upd = _choice(rng, units, uw, e)[ep]
        presc = self._presc(ep_mem, 0.5, 0.45)[ep]
        self._simple(self.cat.products[template], mem, day, ds, upd, presc, self._pharm(mem))

    # ---- medical events ----
    def _medical(
        self,
        chronic,
        shopper,
        mat,
        oud,
        cancer,
        cancer_history,
        hospice,
        sickle,
        trait,
        alcohol,
        cannabis,
        sud_other,
        tobacco,
    ):
        rng = self.rng
        n, yrs = self.n, self.years
        opioid_user = chronic | shopper
        # ordinary office visits
        lam = rng.gamma(0.8, 3.0 / 0.8, size=n) * yrs
        lam += np.where(chronic, 6.0, 0.0) * yrs + np.where(cancer, 6.0, 0.0) * yrs
        lam += np.where(mat, 8.0, 0.0) * yrs + np.where(sickle, 4.0, 0.0) * yrs
        mem = _episodes(rng, lam)
        day = self._days(len(mem))
        key = self._visit(mem, day, ["office_cpt", "office_dx"])
        self._optional(mem, day, key, "office_dx", 0.6)
        self._optional(mem, day, key, "office_pos", 0.45)
        self._optional(mem, day, key, "office_extra", 0.15)
        # condition codes on a share of a member's visits
        for flag, group, p in (
            (chronic, "pain_dx", 0.8),
            (oud, "oud", 0.7),
            (mat, "mat_service", 0.5),
            (alcohol, "sud_alcohol", 0.4),
            (cannabis, "sud_cannabis", 0.4),
            (sud_other, "sud_other", 0.4),
            (tobacco, "tobacco", 0.3),
            (cancer, "cancer", 0.85),
            (cancer, "cancer_service", 0.2),
            (cancer & opioid_user, "cancer_pain", 0.35),
            (cancer_history, "cancer_history", 0.5),
            (sickle, "sickle", 0.8),
            (trait, "sickle_trait", 0.3),
            (hospice, "hospice_dx", 0.15),
        ):
            sel = flag[mem] & (rng.random(len(mem)) < p)
            self._med(mem[sel], day[sel], self._codes(group, int(sel.sum())), key[sel])
        # make sure a flagged member has at least one such code: an extra visit for each
        for flag, group in (
            (oud, "oud"),
            (alcohol, "sud_alcohol"),
            (cannabis, "sud_cannabis"),
            (sud_other, "sud_other"),
            (cancer, "cancer"),
            (cancer_history, "cancer_history"),
            (sickle, "sickle"),
            (trait, "sickle_trait"),
        ):
            m = np.flatnonzero(flag)
            d = self._days(len(m))
            k = self._visit(m, d, ["office_cpt", group])
            self._optional(m, d, k, "office_pos", 0.45)
        # adverse effects of opioids (not overdoses)
        ae = np.flatnonzero(opioid_user & self._members_where(0.04))
        d = self._days(len(ae))
        self._visit(ae, d, ["office_cpt", "adverse_effect"])

        # hospice: monthly hospice claims from a start date to the end (most start late)
        hm = np.flatnonzero(hospice)
        hstart = self._days(len(hm), int(self.n_days * 0.4), self.n_days)
        sid, hd, _ = _series(
            rng, hstart, np.full(len(hm), self.n_days), np.full(len(hm), 30), 0.0, 0.0
        )
        m = hm[sid]
        k = self._visit(m, hd, ["hospice_rev"])
        self._optional(m, hd, k, "hospice_dx", 0.6)
        self._optional(m, hd, k, "hospice_pos", 0.4)

        # ED visits
        lam = np.full(n, ED_RATE["general"])
        lam = np.where(chronic, ED_RATE["chronic"], lam)
        lam = np.where(shopper, ED_RATE["shopper"], lam)
        lam = np.where(mat, ED_RATE["mat"], lam)
        lam = np.where(sickle, ED_RATE["sickle"], lam)
        lam = lam * rng.gamma(1.0, 1.0, size=n) * yrs
        mem = _episodes(rng, lam)
        day = self._days(len(mem))
        key = self._ed_visit(mem, day)
        sc = sickle[mem] & (rng.random(len(mem)) < 0.7)
        self._med(mem[sc], day[sc], self._codes("sickle_crisis", int(sc.sum())), key[sc])
        # rare non-opioid poisonings (cocaine, cannabis, benzodiazepine): not overdoses
        po = rng.random(len(mem)) < 0.004
        self._med(mem[po], day[po], self._codes("other_poisoning", int(po.sum())), key[po])

        # opioid overdoses
        lam = np.full(n, OVERDOSE_RATE["general"])
        lam = np.where(chronic, OVERDOSE_RATE["chronic"], lam)
        lam = np.where(shopper, OVERDOSE_RATE["shopper"], lam)
        lam = np.where(oud, np.maximum(lam, OVERDOSE_RATE["oud"]), lam)
        mem = _episodes(rng, lam * yrs)
        k = len(mem)
        day = self._days(k)
        inpatient = rng.random(k) < 0.1
        key = day + rng.random(k)
        ed = ~inpatient
        key[ed] = self._ed_visit(mem[ed], day[ed], dx_group=None)
        self._visit(mem[inpatient], day[inpatient], ["inpatient"], key=key[inpatient])
        self._med(mem, day, self._codes("overdose", k), key)
        self._optional(mem, day, key, "oud", 0.4)
        self._optional(mem, day, key, "other_poisoning", 0.1)
        fu = rng.random(k) < 0.5
        fday = day[fu] + rng.integers(7, 41, size=int(fu.sum()))
        keep = fday < self.n_days
        fm = mem[fu][keep]
        fday = fday[keep]
        self._visit(fm, fday, ["office_cpt", "overdose_followup"])
        self.counts["overdose_events"] = self.counts.get("overdose_events", 0) + k


# --------------------------------------------------------------------------------------------
# Finishing a block: ordering, claim ids, reversals, duplicates, defects, Arrow tables
# --------------------------------------------------------------------------------------------
class _Mods:
    """Replacement values for a few rows of the string columns (rows disjoint per column).

    A column is built with a single ``take`` from ``concat(table, replacements)``.
    """

    def __init__(self, n: int):
        self.n = n
        self.rows: dict[str, list[np.ndarray]] = {}
        self.vals: dict[str, list[pa.Array]] = {}

    def add(self, column: str, rows: np.ndarray, values):
        if len(rows) == 0:
            return
        if not isinstance(values, pa.Array):
            values = pa.array(values, type=pa.string())
        self.rows.setdefault(column, []).append(np.asarray(rows, np.int64))
        self.vals.setdefault(column, []).append(values.cast(pa.string()))

    def build(self, column: str, table: pa.Array, index: np.ndarray) -> pa.Array:
        """``table[index]`` (negative index = null) with this column's replacements applied."""
        index = np.asarray(index, dtype=np.int64)
        if column in self.rows:
            rows = np.concatenate(self.rows[column])
            table = pa.concat_arrays([table.cast(pa.string()), *self.vals[column]])
            index = index.copy()
            index[rows] = len(table) - len(rows) + np.arange(len(rows))
        return table.take(pa.array(index, mask=index < 0))


class _Picker:
    """Draws disjoint random rows for the defect kinds."""

    def __init__(self, rng, available: np.ndarray):
        self.rng = rng
        self.avail = available.copy()

    def take(self, rate: float, n_total: int, extra: np.ndarray | None = None) -> np.ndarray:
        cand = self.avail if extra is None else (self.avail & extra)
        pool = np.flatnonzero(cand)
        k = int(self.rng.binomial(n_total, rate))
        if n_total >= 2000:
            k = max(k, 1)
        k = min(k, len(pool))
        if k == 0:
            return np.zeros(0, np.int64)
        rows = np.sort(self.rng.choice(pool, size=k, replace=False))
        self.avail[rows] = False
        return rows


_WS_PRE = np.array([" ", "  ", "\t", "", ""], dtype=object)
_WS_POST = np.array(["", " ", "\t", "\r\n", "  ", "\n"], dtype=object)


def _wrap_ws(rng, values: pa.Array) -> pa.Array:
    k = len(values)
    pre = _WS_PRE[rng.integers(0, len(_WS_PRE), size=k)]
    post = _WS_POST[rng.integers(0, len(_WS_POST), size=k)]
    both_empty = (pre == "") & (post == "")
    post[both_empty] = " "
    return pc.binary_join_element_wise(
        pa.array(pre, pa.string()), values, pa.array(post, pa.string()), ""
    )


def _finish_pharmacy(blk: _Block, rng, claim_base: int, epoch_start: int, member_ids: pa.Array):
    cat, pools = blk.cat, blk.pools
    cols = list(zip(*blk.ph, strict=True))
    mem, day, ndc, qty, ds, presc, pharm = (np.concatenate(c) for c in cols)
    n0 = len(mem)
    presc[rng.random(n0) < P_PRESCRIBER_NULL] = -1
    pharm[rng.random(n0) < P_PHARMACY_NULL] = -1

    # Reversals (later, same claim id, negated), re-bills of some of them (new claim id) and
    # duplicate rows (later, identical). "Later" = a processing day 1+ days after the fill.
    rev = np.flatnonzero(rng.random(n0) < P_REVERSAL)
    dup = np.flatnonzero(rng.random(n0) < P_DUPLICATE)
    rebill_of = rng.random(len(rev)) < P_REBILL_OF_REVERSAL
    rebill = rev[rebill_of]
    rev_day = day[rev] + rng.integers(1, 11, size=len(rev))
    rebill_day = rev_day[rebill_of] + rng.integers(0, 4, size=len(rebill))
    dup_day = day[dup] + rng.integers(1, 6, size=len(dup))
    # origin: 0 base, 1 reversal, 2 rebill, 3 duplicate
    src = np.concatenate([np.arange(n0), rev, rebill, dup])
    origin = np.repeat(np.arange(4, dtype=np.int8), [n0, len(rev), len(rebill), len(dup)])
    sort_day = np.concatenate([day, rev_day, rebill_day, dup_day]).astype(np.int64)
    status = np.zeros(len(src), np.int16)
    status[n0 : n0 + len(rev)] = _choice(
        rng, [_ST_REVERSED, _ST_R, _ST_REV_UP, _ST_REV_CAP], [88, 6, 4, 2], len(rev)
    )
    # order: by processing day, random within a day (permutation + stable radix sort)
    perm = rng.permutation(len(src))
    sd = sort_day[perm]
    sd = sd.astype(np.int16) if sd.max(initial=0) < 2**15 and sd.min(initial=0) >= -(2**15) else sd
    order = perm[np.argsort(sd, kind="stable")]
    src, origin, status = src[order], origin[order], status[order]
    n = len(src)
    # claim numbers in file order for new claims (base rows and rebills); copies share theirs
    new = (origin == 0) | (origin == 2)
    claim = np.zeros(n, np.int64)
    claim[new] = claim_base + np.arange(int(new.sum()), dtype=np.int64)
    next_claim = claim_base + int(new.sum())
    claim_of_base = np.zeros(n0, np.int64)
    base_rows = origin == 0
    claim_of_base[src[base_rows]] = claim[base_rows]
    copies = (origin == 1) | (origin == 3)
    claim[copies] = claim_of_base[src[copies]]
    sign = np.where(origin == 1, -1, 1)
    involved = np.zeros(n0, bool)
    involved[rev] = True
    involved[dup] = True
    role = np.where(base_rows & involved[src], 1, np.where(copies, 2, 0)).astype(np.int8)
    role[origin == 3] = 3
    mem, day, ndc, presc, pharm = mem[src], day[src], ndc[src], presc[src], pharm[src]
    qty = qty[src] * sign
    ds = ds[src] * sign
    cls = cat.row_class[ndc]

    # ---- defects and oddities on plain rows ----
    pick = _Picker(rng, role == 0)
    mods = _Mods(n)
    date_null = np.zeros(n, bool)
    qty_null = np.zeros(n, bool)
    ds_null = np.zeros(n, bool)
    kinds: dict[str, int] = {}

    def ndc_bytes(rows):
        return cat.ndc_bytes[ndc[rows]]

    for kind, rate in PHARMACY_DEFECTS.items():
        rows = pick.take(rate, n)
        kinds[kind] = len(rows)
        k = len(rows)
        if kind == "member_id_null":
            mods.add("member_id", rows, pa.nulls(k, pa.string()))
        elif kind == "member_id_empty":
            mods.add("member_id", rows, [""] * k)
        elif kind == "member_id_blank":
            mods.add(
                "member_id",
                rows,
                _choice(rng, [" ", "  ", "\t", " \r\n"], [1, 1, 1, 1], k).tolist(),
            )
        elif kind == "fill_date_null":
            date_null[rows] = True
        elif kind == "ndc_null":
            mods.add("ndc", rows, pa.nulls(k, pa.string()))
        elif kind == "ndc_empty":
            mods.add("ndc", rows, _choice(rng, ["", " ", "-"], [3, 1, 1], k).tolist())
        elif kind == "ndc_letters":
            b = ndc_bytes(rows).copy()
            p = rng.integers(0, 11, size=k)
            b[np.arange(k), p] = np.frombuffer(b"OIABXZ", np.uint8)[rng.integers(0, 6, size=k)]
            vals = _matrix_strings(b)
            junk = rng.random(k) < 0.3
            jv = _choice(
                rng,
                ["UNKNOWN", "COMPOUND", "N/A", "NDC00406051201", "0x1F2E"],
                [1, 1, 1, 1, 1],
                int(junk.sum()),
            )
            vals = pc.replace_with_mask(vals, pa.array(junk), pa.array(jv.tolist(), pa.string()))
            mods.add("ndc", rows, vals)
        elif kind == "ndc_10_bare_digits":
            mods.add("ndc", rows, _matrix_strings(ndc_bytes(rows)[:, 1:]))
        elif kind == "ndc_bad_hyphen_segments":
            b = ndc_bytes(rows)
            pat = rng.integers(0, 5, size=k)
            out = []
            for j, (a, bb, c) in enumerate([(4, 5, 2), (5, 3, 1), (3, 4, 2), (6, 3, 2), (5, 4, 3)]):
                sel = pat == j
                if not sel.any():
                    continue
                dig = np.concatenate([b[sel], b[sel][:, :1]], axis=1)  # 12 digits available
                dash = np.full((int(sel.sum()), 1), ord("-"), np.uint8)
                mat = np.concatenate(
                    [dig[:, :a], dash, dig[:, a : a + bb], dash, dig[:, a + bb : a + bb + c]],
                    axis=1,
                )
                out.append((rows[sel], _matrix_strings(mat)))
            for r, v in out:
                mods.add("ndc", r, v)
        elif kind == "claim_status_invalid":
            status[rows] = _ST_X
        elif kind == "quantity_zero":
            qty[rows] = 0.0
        elif kind == "quantity_negative":
            qty[rows] = -np.abs(qty[rows])
        elif kind == "quantity_nan":
            qty[rows] = np.nan
        elif kind == "quantity_null":
            qty_null[rows] = True
        elif kind == "days_supply_zero":
            ds[rows] = 0
        elif kind == "days_supply_over_365":
            ds[rows] = _choice(rng, [400, 366, 999], [6, 2, 2], k)
        elif kind == "days_supply_negative":
            ds[rows] = -np.abs(ds[rows])
        elif kind == "days_supply_null":
            ds_null[rows] = True

    nb = cat.ndc_bytes[ndc]
    tracked = cls > 0
    for kind, rate in PHARMACY_ODDITIES.items():
        if kind == "ndc_hyphen_4_4_2":
            rows = pick.take(rate, n, tracked & (nb[:, 0] == 48))
            b = cat.ndc_bytes[ndc[rows]]
            segs = [(1, 5), (5, 9), (9, 11)]
        elif kind == "ndc_hyphen_5_3_2":
            rows = pick.take(rate, n, tracked & (nb[:, 5] == 48))
            b = cat.ndc_bytes[ndc[rows]]
            segs = [(0, 5), (6, 9), (9, 11)]
        elif kind == "ndc_hyphen_5_4_1":
            rows = pick.take(rate, n, tracked & (nb[:, 9] == 48))
            b = cat.ndc_bytes[ndc[rows]]
            segs = [(0, 5), (5, 9), (10, 11)]
        elif kind == "ndc_hyphen_5_4_2":
            rows = pick.take(rate, n, tracked)
            b = cat.ndc_bytes[ndc[rows]]
            segs = [(0, 5), (5, 9), (9, 11)]
        else:
            rows = pick.take(rate, n)
            b = None
        k = len(rows)
        kinds[kind] = k
        if kind.startswith("ndc_hyphen"):
            dash = np.full((k, 1), ord("-"), np.uint8)
            mat = np.concatenate(
                [
                    b[:, segs[0][0] : segs[0][1]],
                    dash,
                    b[:, segs[1][0] : segs[1][1]],
                    dash,
                    b[:, segs[2][0] : segs[2][1]],
                ],
                axis=1,
            )
            mods.add("ndc", rows, _matrix_strings(mat))
        elif kind == "ndc_spaces":
            b = ndc_bytes(rows)
            sp = np.full((k, 1), ord(" "), np.uint8)
            inner = rng.random(k) < 0.6
            mat_inner = np.concatenate([b[:, :5], sp, b[:, 5:9], sp, b[:, 9:]], axis=1)
            mat_outer = np.concatenate([sp, b, sp], axis=1)
            mods.add("ndc", rows[inner], _matrix_strings(mat_inner[inner]))
            mods.add("ndc", rows[~inner], _matrix_strings(mat_outer[~inner]))
        elif kind == "status_P":
            status[rows] = _ST_P
        elif kind == "status_PAID":
            status[rows] = _ST_PAID_UP
        elif kind == "status_Paid":
            status[rows] = _ST_PAID_CAP
        elif kind == "status_null":
            status[rows] = _ST_NULL
        elif kind == "status_empty":
            status[rows] = _ST_EMPTY
        elif kind == "member_id_whitespace":
            mods.add("member_id", rows, _wrap_ws(rng, member_ids.take(pa.array(mem[rows]))))
        elif kind == "prescriber_id_whitespace":
            rows = rows[presc[rows] >= 0]
            kinds[kind] = len(rows)
            mods.add(
                "prescriber_id",
                rows,
                _wrap_ws(rng, pools.prescriber_ids.take(pa.array(presc[rows]))),
            )
        elif kind == "prescriber_id_empty":
            mods.add("prescriber_id", rows, _choice(rng, ["", " ", "  "], [6, 2, 1], k).tolist())
        elif kind == "pharmacy_id_whitespace":
            rows = rows[pharm[rows] >= 0]
            kinds[kind] = len(rows)
            mods.add(
                "pharmacy_id", rows, _wrap_ws(rng, pools.pharmacy_ids.take(pa.array(pharm[rows])))
            )
        elif kind == "claim_id_whitespace":
            dws = np.flatnonzero((role == 3) & (rng.random(n) < P_DUPLICATE_WHITESPACE))
            rows = np.concatenate([rows, dws])
            kinds[kind] = len(rows)
            mods.add("claim_id", rows, _wrap_ws(rng, _digit_strings(b"RX", claim[rows], 12)))

    # ---- Arrow columns ----
    mcol = mods.build("member_id", member_ids, mem)
    dates = pa.array((day + epoch_start).astype(np.int32), type=pa.date32(), mask=date_null)
    ndc_col = mods.build("ndc", cat.ndc_table, ndc)
    qcol = pa.array(qty.astype(np.float64), type=pa.float64(), mask=qty_null)
    dcol = pa.array(ds.astype(np.int32), type=pa.int32(), mask=ds_null)
    pcol = mods.build("prescriber_id", pools.prescriber_ids, presc)
    hcol = mods.build("pharmacy_id", pools.pharmacy_ids, pharm)
    ccol = mods.build("claim_id", _digit_strings(b"RX", claim, 12), np.arange(n))
    st_values = pa.array(list(_STATUS_VALUES), pa.string())
    scol = st_values.take(pa.array(status.astype(np.int32), mask=status < 0))
    table = pa.Table.from_arrays(
        [mcol, dates, ndc_col, qcol, dcol, pcol, hcol, ccol, scol], schema=PHARMACY_SCHEMA
    )
    stats = {
        "rows": n,
        "by_class": np.bincount(cls, minlength=len(DRUG_CLASSES) + 1),
        "reversal_rows": len(rev),
        "rebill_rows": len(rebill),
        "duplicate_rows": len(dup),
        "kinds": kinds,
    }
    return table, stats, next_claim


def _finish_medical(blk: _Block, rng, epoch_start: int, member_ids: pa.Array):
    cols = list(zip(*blk.md, strict=True))
    mem, day, voc = (np.concatenate(c) for c in cols[:3])
    key = np.concatenate(cols[3])
    order = np.argsort(key)  # rows of one event share a key and stay together
    mem, day, voc = mem[order], day[order], voc[order]
    n = len(mem)
    # ICD codes without the dot
    u = rng.random(n)
    nodot = (_IS_ICD[voc] & (u < P_ICD_NODOT)) | (_IS_T40[voc] & (u < P_T40_NODOT))
    voc = np.where(nodot, _NODOT[voc], voc)

    pick = _Picker(rng, np.ones(n, bool))
    mods = _Mods(n)
    date_null = np.zeros(n, bool)
    kinds: dict[str, int] = {}
    types = pa.array(_VOCAB_TYPES, pa.string())
    codes = pa.array(_VOCAB_CODES, pa.string())
    for kind, rate in {**MEDICAL_DEFECTS, **MEDICAL_ODDITIES}.items():
        rows = pick.take(rate, n)
        k = len(rows)
        kinds[kind] = k
        if kind == "member_id_null":
            mods.add("member_id", rows, pa.nulls(k, pa.string()))
        elif kind == "member_id_empty":
            mods.add("member_id", rows, _choice(rng, ["", " "], [3, 1], k).tolist())
        elif kind == "service_date_null":
            date_null[rows] = True
        elif kind == "code_type_invalid":
            mods.add(
                "code_type",
                rows,
                _choice(rng, ["XYZ", "ICD9CM", "NDC", ""], [5, 2, 2, 1], k).tolist(),
            )
        elif kind == "code_empty":
            mods.add("code", rows, _choice(rng, ["", " "], [3, 1], k).tolist())
        elif kind == "code_null":
            mods.add("code", rows, pa.nulls(k, pa.string()))
        elif kind == "code_type_lowercase":
            t = types.take(pa.array(voc[rows]))
            low = pc.utf8_lower(t)
            cap = pc.utf8_capitalize(t)
            mods.add("code_type", rows, pc.if_else(pa.array(rng.random(k) < 0.7), low, cap))
        elif kind == "code_whitespace":
            mods.add("code", rows, _wrap_ws(rng, codes.take(pa.array(voc[rows]))))
        elif kind == "member_id_whitespace":
            mods.add("member_id", rows, _wrap_ws(rng, member_ids.take(pa.array(mem[rows]))))
    tcol = mods.build("code_type", types, voc)
    ccol = mods.build("code", codes, voc)
    mcol = mods.build("member_id", member_ids, mem)
    dates = pa.array((day + epoch_start).astype(np.int32), type=pa.date32(), mask=date_null)
    table = pa.Table.from_arrays([mcol, dates, tcol, ccol], schema=MEDICAL_SCHEMA)
    stats = {"rows": n, "kinds": kinds}
    return table, stats


# --------------------------------------------------------------------------------------------
# Public entry point
# --------------------------------------------------------------------------------------------
_PART_NAME = re.compile(r"part-\d+\.parquet")


def _pieces(members: int, part_members: int):
    """``(index, part, first, n, last_of_part)`` of each generation block, in order.

    Blocks follow the grid of :data:`BLOCK_MEMBERS` and are also cut at part boundaries, so a block
    never spans two parts. When ``part_members`` is a multiple of :data:`BLOCK_MEMBERS` (or covers
    the whole book) the blocks are exactly those of a single-file book.
    """
    first, index = 0, 0
    while first < members:
        part = first // part_members
        part_end = min(members, (part + 1) * part_members)
        stop = min(part_end, (first // BLOCK_MEMBERS + 1) * BLOCK_MEMBERS)
        yield index, part, first, stop - first, stop == part_end
        first, index = stop, index + 1


def _child(root: np.random.SeedSequence, i: int) -> np.random.SeedSequence:
    """``root.spawn(n)[i]`` for any ``n > i``, without making the ``n`` children."""
    return np.random.SeedSequence(
        root.entropy, spawn_key=(*root.spawn_key, i), pool_size=root.pool_size
    )


def _check_parts_folder(path: Path) -> None:
    """A parts folder may only replace an earlier parts folder (``part-*.parquet`` files only)."""
    if not path.exists():
        return
    if not path.is_dir() or any(not _PART_NAME.fullmatch(p.name) for p in path.iterdir()):
        raise FileExistsError(
            f"{path} exists and is not a folder of part-*.parquet files from an earlier run; "
            "remove it or choose another output folder"
        )


def generate_book(
    out_dir,
    *,
    members: int,
    seed: int = 0,
    start: datetime.date = date(2025, 1, 1),
    end: datetime.date = date(2025, 12, 31),
    row_group_size: int = 1_000_000,
    progress: Callable[[str, int], None] | None = None,
    reference: pa.Table | None = None,
    part_members: int | None = None,
) -> dict:
    """Write a synthetic book of business to ``out_dir/pharmacy.parquet`` and ``medical.parquet``,
    or, with ``part_members``, to the folders ``out_dir/pharmacy/`` and ``out_dir/medical/``.

    Memory is bounded by one block of :data:`BLOCK_MEMBERS` members in both layouts (blocks are
    streamed to the Parquet writer), so a book of any size may be written as one file per table;
    parts only split the output into files of ``part_members`` members each.

    Parameters
    ----------
    out_dir : str or os.PathLike
        Target folder (created if missing). Outputs are written to temporary names in it and
        renamed when complete; on failure no partial output is left behind.
    members : int
        Number of members (``M`` + zero-padded number, 1-based, unique in the whole book).
    seed : int
        Seed of ``numpy.random.SeedSequence``; the same arguments give byte-identical files.
    start, end : datetime.date
        Inclusive date range of fills and services; rates are per member-year.
    row_group_size : int
        Maximum rows per Parquet row group (each block of members starts a new group).
    progress : callable, optional
        ``progress(stage, n)`` with ``n`` the rows (pharmacy + medical) written so far. One file
        per table: called each time a block of members has been written, with
        ``stage = "members 100,000/1,000,000"``. Parts: called each time a part has been written,
        with ``stage = "part 1/20 (members 1,000,000/20,000,000; 19,711,042 rows, 1,050,000
        rows/s)"`` (rows and rate of that part).
    reference : pyarrow.Table, optional
        Drug reference; defaults to :func:`rxrisk.config.reference.load_reference`.
    part_members : int, optional
        Write ``pharmacy/part-00000.parquet``, ``part-00001.parquet``, ... and the same names in
        ``medical/``: part ``p`` holds members ``p*part_members + 1`` to
        ``min((p+1)*part_members, members)``. Part names sort in generation order (five digits,
        more if needed), so the folders are inputs of :func:`rxrisk.score` as they are. Parts are
        written one after the other and closed when complete. Member ids, claim numbers and the
        prescriber/pharmacy pools are those of the whole book; reversals and duplicates stay
        within their part. When ``part_members`` is a multiple of :data:`BLOCK_MEMBERS` the rows,
        read in part order, are exactly those of the single-file book of the same
        ``(members, seed)``; otherwise blocks are also cut at part boundaries (still
        deterministic for the same ``part_members``). Existing ``pharmacy/`` and ``medical/``
        folders are replaced, but only if they hold nothing but ``part-*.parquet`` files.
        Default: one file per table, whatever ``members``.

    Returns
    -------
    dict
        ``members``, ``seed``, ``start``, ``end``, ``paths`` (files, or folders with parts),
        ``parts`` and ``part_members`` (None for one file per table), ``pharmacy_rows``,
        ``medical_rows``, ``rows`` (the same, per table),
        ``pharmacy_rows_by_class`` (by the class of the generated drug, ``untracked`` included;
        rows whose NDC was then corrupted still count under it), ``pharmacy_special`` (reversal,
        rebill and duplicate rows and each defect/oddity kind), ``medical_special``,
        ``archetypes`` (member counts), ``seconds``.
    """
    t0 = time.perf_counter()
    members = int(members)
    if members < 1:
        raise ValueError("members must be at least 1")
    if part_members is not None:
        part_members = int(part_members)
        if part_members < 1:
            raise ValueError("part_members must be at least 1")
    if not isinstance(start, date) or not isinstance(end, date):
        raise TypeError("start and end must be datetime.date")
    if end < start:
        raise ValueError(f"end ({end}) is before start ({start})")
    if int(row_group_size) < 1:
        raise ValueError("row_group_size must be at least 1")

    out = Path(out_dir)
    kinds = ("pharmacy", "medical")
    if part_members is None:
        n_parts = 1
        final = {k: out / f"{k}.parquet" for k in kinds}
        tmp = {k: out / temp_name(v.name) for k, v in final.items()}

        def part_path(kind: str, part: int) -> Path:
            return tmp[kind]

    else:
        n_parts = -(-members // part_members)
        width = max(5, len(str(n_parts - 1)))
        final = {k: out / k for k in kinds}
        for path in final.values():
            _check_parts_folder(path)
        tmp = {k: out / temp_name(k) for k in kinds}

        def part_path(kind: str, part: int) -> Path:
            return tmp[kind] / f"part-{part:0{width}d}.parquet"

    if reference is None:
        from rxrisk.config.reference import load_reference

        reference = load_reference()

    out.mkdir(parents=True, exist_ok=True)
    sweep_outputs(out)  # temporary files of killed runs (only those whose owner is dead)
    n_days = (end - start).days + 1
    epoch_start = (start - _EPOCH).days
    id_width = max(8, len(str(members)))

    root = np.random.SeedSequence(int(seed))
    pool_seq, block_root = root.spawn(2)
    pool_rng = np.random.default_rng(pool_seq)
    catalog = _Catalog(reference, pool_rng)
    pools = _Pools(members, pool_rng)

    by_class = np.zeros(len(DRUG_CLASSES) + 1, np.int64)
    rows = {"pharmacy": 0, "medical": 0}
    ph_special: dict[str, int] = {"reversal_rows": 0, "rebill_rows": 0, "duplicate_rows": 0}
    md_special: dict[str, int] = {}
    archetypes: dict[str, int] = {}
    opts = {"compression": "zstd", "use_dictionary": False}
    claim_base = 1
    writers: dict[str, pq.ParquetWriter] = {}  # the open part; used by the writer thread only
    part_clock = {"t": time.perf_counter(), "rows": 0}

    def write(part: int, ph: pa.Table, md: pa.Table, last: bool) -> None:
        if not writers:
            writers["pharmacy"] = pq.ParquetWriter(
                part_path("pharmacy", part), PHARMACY_SCHEMA, **opts
            )
            writers["medical"] = pq.ParquetWriter(
                part_path("medical", part), MEDICAL_SCHEMA, **opts
            )
        writers["pharmacy"].write_table(ph, row_group_size=int(row_group_size))
        writers["medical"].write_table(md, row_group_size=int(row_group_size))
        if last:
            for w in writers.values():
                w.close()
            writers.clear()

    def report(part: int, done: int, n_rows: int, last: bool) -> None:
        if progress is None:
            return
        if part_members is None:
            progress(f"members {done:,}/{members:,}", n_rows)
        elif last:
            now = time.perf_counter()
            part_rows = n_rows - part_clock["rows"]
            rate = part_rows / max(now - part_clock["t"], 1e-9)
            part_clock.update(t=now, rows=n_rows)
            progress(
                f"part {part + 1}/{n_parts} (members {done:,}/{members:,}; "
                f"{part_rows:,} rows, {rate:,.0f} rows/s)",
                n_rows,
            )

    try:
        if part_members is not None:
            for path in tmp.values():
                path.mkdir()
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="rxrisk-generate-write") as pool:
            pending = None  # the previous block's write overlaps this block's generation
            part_clock["t"] = time.perf_counter()
            for index, part, first, nb, last in _pieces(members, part_members or members):
                rng = np.random.default_rng(_child(block_root, index))
                blk = _Block(rng, catalog, pools, first, nb, n_days, id_width)
                blk.generate()
                member_ids = _digit_strings(b"M", np.arange(first + 1, first + nb + 1), id_width)
                ph, ph_stats, claim_base = _finish_pharmacy(
                    blk, rng, claim_base, epoch_start, member_ids
                )
                md, md_stats = _finish_medical(blk, rng, epoch_start, member_ids)
                rows["pharmacy"] += ph_stats["rows"]
                rows["medical"] += md_stats["rows"]
                by_class += ph_stats["by_class"]
                for key in ("reversal_rows", "rebill_rows", "duplicate_rows"):
                    ph_special[key] += ph_stats[key]
                for key, v in ph_stats["kinds"].items():
                    ph_special[key] = ph_special.get(key, 0) + v
                for key, v in md_stats["kinds"].items():
                    md_special[key] = md_special.get(key, 0) + v
                for key, v in blk.counts.items():
                    archetypes[key] = archetypes.get(key, 0) + v
                del blk
                if pending is not None:
                    pending[0].result()
                    report(*pending[1:])
                pending = (
                    pool.submit(write, part, ph, md, last),
                    part,
                    first + nb,
                    rows["pharmacy"] + rows["medical"],
                    last,
                )
                del ph, md
            if pending is not None:
                pending[0].result()
                report(*pending[1:])
        _publish(tmp, final, parts=part_members is not None)
    except BaseException:
        for w in writers.values():  # the writer thread has stopped: safe to close here
            try:
                w.close()
            except Exception:  # noqa: BLE001 - cleaning up after the real error
                pass
        for p in tmp.values():
            if p.is_dir():
                shutil.rmtree(p, ignore_errors=True)
            else:
                try:
                    p.unlink()
                except FileNotFoundError:
                    pass
        raise
    names = ("untracked", *DRUG_CLASSES)
    return {
        "members": members,
        "seed": int(seed),
        "start": start.isoformat(),
        "end": end.isoformat(),
        "paths": {k: str(v) for k, v in final.items()},
        "parts": None if part_members is None else n_parts,
        "part_members": part_members,
        "pharmacy_rows": rows["pharmacy"],
        "medical_rows": rows["medical"],
        "rows": rows,
        "pharmacy_rows_by_class": {name: int(by_class[i]) for i, name in enumerate(names)},
        "pharmacy_special": ph_special,
        "medical_special": md_special,
        "archetypes": archetypes,
        "seconds": round(time.perf_counter() - t0, 3),
    }


def _publish(tmp: dict[str, Path], final: dict[str, Path], *, parts: bool) -> None:
    """Rename the finished temporary outputs to their final names (replacing earlier ones)."""
    if not parts:
        for k in final:
            os.replace(tmp[k], final[k])
        return
    for dest in final.values():
        _check_parts_folder(dest)  # it may have changed while generating
    for k, dest in final.items():
        if dest.exists():
            old = dest.with_name(temp_name(dest.name, "old"))
            os.replace(dest, old)
            os.replace(tmp[k], dest)
            shutil.rmtree(old)
        else:
            os.replace(tmp[k], dest)
