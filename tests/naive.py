"""Plain-Python reference implementation of SPEC sections 1.4-4 (the test oracle).

Written for clarity, not speed: straightforward loops over rows and days, no numpy, no
pyarrow compute. The fast engine in ``rxrisk`` is checked against this module, so it
follows the SPEC literally. Decisions on the points where the SPEC is not explicit are
marked ``READING:`` in the comments.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

# --------------------------------------------------------------------------- constants

WHITESPACE = " \t\r\n"
ASCII_DIGITS = frozenset("0123456789")
TOL = 1e-9

DEFAULT_CONFIG: dict[str, Any] = {
    "windows": (90, 180, 365),
    "high_dose_mme": 90.0,
    "rolling_days": 90,
    "ed_days": 90,
    "dx_days": 365,
    "max_days_supply": 365,
    "mme_definitions": (),
}

PHARMACY_BUCKETS = ("rejected", "reversal", "reversed", "duplicate", "untracked", "used")
PHARMACY_REASONS = ("member_id", "fill_date", "ndc", "claim_status", "quantity", "days_supply")
MEDICAL_BUCKETS = ("rejected", "unclassified", "used")
MEDICAL_REASONS = ("member_id", "service_date", "code_type", "code")

CODE_TYPES = ("ICD10CM", "CPT", "HCPCS", "REV", "POS")
CATEGORIES = (
    "ed_visit",
    "opioid_overdose",
    "oud",
    "sud_other",
    "cancer",
    "sickle_cell",
    "hospice_palliative",
)

CNS_CLASSES = frozenset({"benzodiazepine", "gabapentinoid", "muscle_relaxant", "sedative_hypnotic"})
MAT_CLASSES = frozenset({"buprenorphine_mat", "naltrexone"})

FLAGS = (
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
)

WINDOW_METRICS = (
    "opioid_fills",
    "opioid_prescribers",
    "opioid_pharmacies",
    "opioid_days",
    "mme_total",
    "mme_avg",
    "mme_peak",
    "high_dose_days",
    "benzo_fills",
    "benzo_overlap_days",
    "cns_overlap_days",
)


#: The optional average-MME definitions (SPEC 2 v2), in column order: each adds
#: ``mme_avg_<name>_{w}d`` right after ``mme_avg_{w}d``.
MME_DEFINITIONS = ("window", "supply", "fill")


def _window_columns(definitions) -> list[str]:
    names = []
    for m in WINDOW_METRICS:
        names.append(m)
        if m == "mme_avg":
            names += [f"mme_avg_{d}" for d in MME_DEFINITIONS if d in definitions]
    return names


def column_names(config: dict | None = None) -> list[str]:
    """The member-table columns, in order, for a config."""
    cfg = _config(config)
    cols = ["member_id", "as_of"]
    for w in cfg["windows"]:
        cols += [f"{m}_{w}d" for m in _window_columns(cfg["mme_definitions"])]
    cols += [
        "mme_today",
        "mme_rolling_max",
        "high_dose_run",
        "mat_fills",
        "naloxone_fills",
        f"ed_visits_{cfg['ed_days']}d",
        f"overdoses_{cfg['dx_days']}d",
        "last_emergency_date",
        "days_since_emergency",
        "oud_dx",
        "sud_dx",
        "cancer_dx",
        "sickle_cell_dx",
        "hospice_dx",
    ]
    cols += list(FLAGS)
    cols.append("reasons")
    return cols


def _config(config: dict | None) -> dict[str, Any]:
    cfg = dict(DEFAULT_CONFIG)
    if config:
        unknown = set(config) - set(DEFAULT_CONFIG)
        if unknown:
            raise KeyError(f"unknown config keys: {sorted(unknown)}")
        cfg.update(config)
    cfg["windows"] = tuple(int(w) for w in cfg["windows"])
    return cfg


# --------------------------------------------------------------------------- small parsers


def _trim(value: Any) -> Any:
    """Trim surrounding space/tab/CR/LF of a string; other values unchanged."""
    if isinstance(value, str):
        return value.strip(WHITESPACE)
    return value


def _optional_id(value: Any) -> Any:
    """prescriber_id / pharmacy_id / claim_id: trimmed; empty string is null."""
    value = _trim(value)
    if value == "":
        return None
    return value


def _member_id(value: Any) -> Any:
    """Trimmed member id, or None when null or empty (rejected)."""
    value = _trim(value)
    if value is None or value == "":
        return None
    return value


_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def _parse_date(value: Any) -> dt.date | None:
    """A date, a datetime (its date) or a strict ISO ``YYYY-MM-DD`` string; None otherwise."""
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    if isinstance(value, str):
        text = value.strip(WHITESPACE)
        if not _ISO_DATE.fullmatch(text):
            return None
        try:
            return dt.date(int(text[0:4]), int(text[5:7]), int(text[8:10]))
        except ValueError:
            return None
    return None


def _claim_status(value: Any) -> str | None:
    """'paid', 'reversed', or None when the value is neither (rejected)."""
    value = _trim(value)
    if value is None or value == "":
        return "paid"
    if not isinstance(value, str):
        return None
    lowered = value.lower()
    if lowered in ("paid", "p"):
        return "paid"
    if lowered in ("reversed", "r"):
        return "reversed"
    return None


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _valid_quantity(value: Any) -> bool:
    return _is_number(value) and math.isfinite(value) and value > 0


def _valid_days_supply(value: Any, max_days: int) -> bool:
    if not _is_number(value):
        return False
    if isinstance(value, float) and not value.is_integer():
        return False
    return 0 < value <= max_days


def _all_digits(text: str) -> bool:
    return len(text) > 0 and all(ch in ASCII_DIGITS for ch in text)


def round_half_up(x: float) -> int:
    """Round the exact value of the float ``x`` to the nearest integer, halves away from 0."""
    if abs(x) >= 2.0**52:  # already an integer (and past the precision of quantize)
        return int(x)
    return int(Decimal(x).quantize(Decimal(1), rounding=ROUND_HALF_UP))


# --------------------------------------------------------------------------- SPEC 1.4


def normalize_ndc(s: Any) -> str | None:
    """SPEC 1.4: the 11-digit NDC, or None when the value is rejected with reason ``ndc``."""
    if not isinstance(s, str):
        return None
    text = s.strip(WHITESPACE).replace(" ", "")
    if len(text) == 11 and _all_digits(text):
        return text
    parts = text.split("-")
    if len(parts) != 3 or not all(_all_digits(p) for p in parts):
        return None
    lengths = tuple(len(p) for p in parts)
    first, second, third = parts
    if lengths == (4, 4, 2):
        return "0" + first + second + third
    if lengths == (5, 3, 2):
        return first + "0" + second + third
    if lengths == (5, 4, 1):
        return first + second + "0" + third
    if lengths == (5, 4, 2):
        return first + second + third
    return None


# --------------------------------------------------------------------------- SPEC 1.6

ED_PROCEDURES = frozenset({"99281", "99282", "99283", "99284", "99285"})
ED_REVENUE = frozenset({f"{n:04d}" for n in range(450, 460)} | {"0981"})
ED_POS = frozenset({"23"})
HOSPICE_REVENUE = frozenset(
    {"0115", "0125", "0135", "0145", "0155", "0235"} | {f"{n:04d}" for n in range(650, 660)}
)
HOSPICE_POS = frozenset({"34"})

# Opioid poisoning categories: T40.0, T40.1, T40.2, T40.3, all of T40.4 (T40.4X, T40.41,
# T40.42, T40.49), T40.60, T40.69 (dots removed). READING: "T40.4 (incl. ...)" is the
# whole T40.4 family, so any code under the prefix T404 counts.
OVERDOSE_PREFIXES = ("T400", "T401", "T402", "T403", "T404", "T4060", "T4069")
OVERDOSE_INTENTS = frozenset("1234")
SUD_OTHER_PREFIXES = ("F10", "F12", "F13", "F14", "F15", "F16", "F18", "F19")


def _is_overdose(icd: str) -> bool:
    # Full 7-character code: category prefix, intent (6th character) 1-4, encounter
    # (7th character) A.
    if len(icd) != 7:
        return False
    if not icd.startswith(OVERDOSE_PREFIXES):
        return False
    return icd[5] in OVERDOSE_INTENTS and icd[6] == "A"


def _is_cancer(icd: str) -> bool:
    if icd.startswith("G893"):
        return True
    if len(icd) < 3 or icd[0] != "C":
        return False
    two = icd[1:3]
    if two in ("4A", "7A", "7B"):
        return True
    return _all_digits(two) and 0 <= int(two) <= 96


def _icd_categories(icd: str) -> set[str]:
    cats: set[str] = set()
    if _is_overdose(icd):
        cats.add("opioid_overdose")
    if icd.startswith("F11"):
        cats.add("oud")
    if icd.startswith(SUD_OTHER_PREFIXES):
        cats.add("sud_other")
    if _is_cancer(icd):
        cats.add("cancer")
    if icd.startswith("D57") and not icd.startswith("D573"):
        cats.add("sickle_cell")
    if icd.startswith("Z515"):
        cats.add("hospice_palliative")
    return cats


def _normalize_code_type(code_type: Any) -> str | None:
    """Upper-cased trimmed code type when it is one of the five of SPEC 1.2, else None."""
    if not isinstance(code_type, str):
        return None
    upper = code_type.strip(WHITESPACE).upper()
    return upper if upper in CODE_TYPES else None


def classify_medical(code_type: Any, code: Any) -> set[str]:
    """SPEC 1.6: the categories of one (code_type, code); empty set when none applies."""
    kind = _normalize_code_type(code_type)
    if kind is None or not isinstance(code, str):
        return set()
    text = code.strip(WHITESPACE)
    if text == "":
        return set()
    if kind == "ICD10CM":
        return _icd_categories(text.upper().replace(".", ""))
    if kind in ("CPT", "HCPCS"):
        # One procedure-code space. READING: compared upper-cased, otherwise exactly.
        return {"ed_visit"} if text.upper() in ED_PROCEDURES else set()
    if kind == "REV":
        # READING: "compared as 4 digits with leading zeros": 1-4 digits are zero-padded;
        # anything else (letters, 5+ digits) matches nothing.
        if not _all_digits(text) or len(text) > 4:
            return set()
        rev = text.zfill(4)
        cats = set()
        if rev in ED_REVENUE:
            cats.add("ed_visit")
        if rev in HOSPICE_REVENUE:
            cats.add("hospice_palliative")
        return cats
    # POS
    if not _all_digits(text) or len(text) > 2:
        return set()
    pos = text.zfill(2)
    cats = set()
    if pos in ED_POS:
        cats.add("ed_visit")
    if pos in HOSPICE_POS:
        cats.add("hospice_palliative")
    return cats


# --------------------------------------------------------------------------- reference


def reference_from_table(table) -> dict[str, dict[str, Any]]:
    """Build the naive reference dict (ndc -> entry) from a pyarrow Table of SPEC 1.3."""
    reference: dict[str, dict[str, Any]] = {}
    for row in table.to_pylist():
        ndc = normalize_ndc(row["ndc"]) or row["ndc"]
        reference[ndc] = {
            "drug_class": row.get("drug_class"),
            "strength_per_unit": row.get("strength_per_unit"),
            "mme_factor": row.get("mme_factor"),
            "days_per_unit": row.get("days_per_unit"),
            "long_acting": row.get("long_acting"),
            "ingredient": row.get("ingredient"),
        }
    return reference


# --------------------------------------------------------------------------- row handling


@dataclass
class Fill:
    """One used pharmacy row, with its coverage (as day ordinals) and daily MME."""

    member_id: Any
    start: int  # fill_date ordinal
    end: int  # last covered day ordinal
    drug_class: str
    daily_mme: float
    prescriber_id: Any
    pharmacy_id: Any

    def covers(self, day: int) -> bool:
        return self.start <= day <= self.end


@dataclass
class Event:
    """One used medical row."""

    member_id: Any
    day: int  # service_date ordinal
    categories: frozenset[str]


def _covered_days(quantity: float, days_supply: int, entry: dict[str, Any]) -> int | float:
    """Days of supply after the patch rewrite; ``math.inf`` when quantity x days_per_unit
    is not finite (exact integers otherwise: Python ints never overflow, so coverage is
    never cut short here)."""
    days_per_unit = entry.get("days_per_unit")
    if days_per_unit is not None:
        product = quantity * days_per_unit
        if not math.isfinite(product):
            return math.inf
        return max(1, round_half_up(product))
    return int(days_supply)


def _daily_mme(quantity: float, ds: int | float, entry: dict[str, Any]) -> float:
    if entry.get("drug_class") != "opioid":
        return 0.0
    factor = entry.get("mme_factor")
    strength = entry.get("strength_per_unit")
    # READING: a null strength gives no MME, like a null factor.
    if factor is None or strength is None:
        return 0.0
    return strength * quantity / ds * factor


def _mme_not_finite(quantity: float, days_supply: Any, entry: dict[str, Any], max_ds: int) -> bool:
    """A paid opioid row whose daily MME is not finite (rejected with reason quantity).

    READING: checked only where the MME is defined (opioid with a strength and a factor) and
    its days of supply are known (a patch's rewrite, or a valid days_supply); otherwise the
    days_supply check decides.
    """
    if entry.get("drug_class") != "opioid":
        return False
    if entry.get("mme_factor") is None or entry.get("strength_per_unit") is None:
        return False
    if entry.get("days_per_unit") is None and not _valid_days_supply(days_supply, max_ds):
        return False
    ds = _covered_days(quantity, days_supply, entry)
    return not math.isfinite(_daily_mme(quantity, ds, entry))


def _pharmacy_pass(rows, reference, cfg):
    """Bucket every pharmacy row (SPEC 1.5). Returns (labels, used fills).

    Order: ndc rejected; untracked (NDC not in the reference: nothing else is checked and
    the row takes no part in claim-id matching); the other rejection reasons; reversal;
    reversed; duplicate; used.
    """
    max_ds = cfg["max_days_supply"]
    parsed = []
    for row in rows:
        member = _member_id(row.get("member_id"))
        fill_date = _parse_date(row.get("fill_date"))
        ndc = normalize_ndc(row.get("ndc"))
        status = _claim_status(row.get("claim_status"))
        quantity = row.get("quantity")
        days_supply = row.get("days_supply")
        entry = reference.get(ndc) if ndc is not None else None
        reason = None
        if ndc is None:
            reason = "ndc"
        elif entry is None:
            pass  # untracked
        elif member is None:
            reason = "member_id"
        elif fill_date is None:
            reason = "fill_date"
        elif status is None:
            reason = "claim_status"
        elif status == "paid":
            if not _valid_quantity(quantity) or _mme_not_finite(
                quantity, days_supply, entry, max_ds
            ):
                reason = "quantity"
            elif not _valid_days_supply(days_supply, max_ds):
                reason = "days_supply"
        parsed.append(
            {
                "reason": reason,
                "tracked": entry is not None,
                "member_id": member,
                "fill_date": fill_date,
                "ndc": ndc,
                "status": status,
                "quantity": quantity,
                "days_supply": days_supply,
                "claim_id": _optional_id(row.get("claim_id")),
                "prescriber_id": _optional_id(row.get("prescriber_id")),
                "pharmacy_id": _optional_id(row.get("pharmacy_id")),
            }
        )

    # Claim ids of the (tracked, not rejected) reversal rows, wherever they are in the input.
    reversal_ids = set()
    for p in parsed:
        if (
            p["reason"] is None
            and p["tracked"]
            and p["status"] == "reversed"
            and p["claim_id"] is not None
        ):
            reversal_ids.add(p["claim_id"])

    labels: list[str] = []
    fills: list[Fill] = []
    seen_claim_ids: set = set()
    for p in parsed:
        if p["reason"] is not None:
            labels.append("rejected:" + p["reason"])
            continue
        if not p["tracked"]:
            labels.append("untracked")
            continue
        if p["status"] == "reversed":
            labels.append("reversal")
            continue
        claim_id = p["claim_id"]
        if claim_id is not None and claim_id in reversal_ids:
            labels.append("reversed")
            continue
        if claim_id is not None and claim_id in seen_claim_ids:
            labels.append("duplicate")
            continue
        if claim_id is not None:
            seen_claim_ids.add(claim_id)
        entry = reference[p["ndc"]]
        labels.append("used")
        ds = _covered_days(p["quantity"], p["days_supply"], entry)
        start = p["fill_date"].toordinal()
        fills.append(
            Fill(
                member_id=p["member_id"],
                start=start,
                end=start + ds - 1,
                drug_class=entry.get("drug_class"),
                daily_mme=_daily_mme(p["quantity"], ds, entry),
                prescriber_id=p["prescriber_id"],
                pharmacy_id=p["pharmacy_id"],
            )
        )
    return labels, fills


def _medical_pass(rows):
    """Bucket every medical row (SPEC 1.5). Returns (labels, used events).

    Order: code_type, code rejected; unclassified (nothing else checked); member_id,
    service_date rejected; used.
    """
    labels: list[str] = []
    events: list[Event] = []
    for row in rows:
        member = _member_id(row.get("member_id"))
        service_date = _parse_date(row.get("service_date"))
        # READING: code_type is rejected when null, empty or not one of the five types.
        code_type = _normalize_code_type(row.get("code_type"))
        code = _trim(row.get("code"))
        reason = None
        cats: set[str] = set()
        if code_type is None:
            reason = "code_type"
        elif code is None or code == "" or not isinstance(code, str):
            reason = "code"
        else:
            cats = classify_medical(code_type, code)
            if not cats:
                labels.append("unclassified")
                continue
            if member is None:
                reason = "member_id"
            elif service_date is None:
                reason = "service_date"
        if reason is not None:
            labels.append("rejected:" + reason)
            continue
        labels.append("used")
        events.append(Event(member, service_date.toordinal(), frozenset(cats)))
    return labels, events


def _count_audit(labels, buckets, reasons):
    bucket_counts = {b: 0 for b in buckets}
    reason_counts = {r: 0 for r in reasons}
    for label in labels:
        if label.startswith("rejected:"):
            bucket_counts["rejected"] += 1
            reason_counts[label.split(":", 1)[1]] += 1
        else:
            bucket_counts[label] += 1
    return {"rows_read": len(labels), "buckets": bucket_counts, "rejected_by_reason": reason_counts}


# --------------------------------------------------------------------------- SPEC 2


def _ge(x: float, threshold: float) -> bool:
    return x >= threshold - TOL


class _MemberDays:
    """Per-day facts of one member, computed by looping over its fills (cached per day)."""

    def __init__(self, fills: list[Fill]):
        self.fills = fills
        self._cache: dict[int, tuple[float, bool, bool, bool]] = {}

    def day(self, d: int) -> tuple[float, bool, bool, bool]:
        """(mme(d), opioid covered, benzodiazepine covered, CNS-class covered) on day d."""
        if d not in self._cache:
            mme = 0.0
            opioid = benzo = cns = False
            for f in self.fills:
                if not f.covers(d):
                    continue
                if f.drug_class == "opioid":
                    opioid = True
                    mme += f.daily_mme
                if f.drug_class == "benzodiazepine":
                    benzo = True
                if f.drug_class in CNS_CLASSES:
                    cns = True
            self._cache[d] = (mme, opioid, benzo, cns)
        return self._cache[d]

    def mme(self, d: int) -> float:
        return self.day(d)[0]


def _average_definitions(opioid_in: list[Fill], mme_total: float, w: int) -> dict[str, float]:
    """The three optional average-MME definitions of one window (SPEC 2 v2).

    READING: ``ds`` of the supply definition is the fill's covered days after the patch
    rewrite (``end - start + 1``), all of them, also those after the as-of date; an opioid
    fill without an MME factor counts with daily MME 0 (as in ``opioid_fills``), and its
    MME x ds is 0 even when its days are not finite (an absurd patch quantity).
    """
    supply_days = sum(f.end - f.start + 1 for f in opioid_in)
    dispensed = sum(f.daily_mme * (f.end - f.start + 1) for f in opioid_in if f.daily_mme)
    return {
        "mme_avg_window": mme_total / w,
        "mme_avg_supply": dispensed / supply_days if opioid_in else 0.0,
        "mme_avg_fill": sum(f.daily_mme for f in opioid_in) / len(opioid_in) if opioid_in else 0.0,
    }


def _window_metrics(
    days: _MemberDays, a: int, w: int, high_dose: float, definitions=()
) -> dict[str, Any]:
    first = a - w + 1
    window_days = range(first, a + 1)
    opioid_in = [f for f in days.fills if f.drug_class == "opioid" and first <= f.start <= a]
    benzo_in = [f for f in days.fills if f.drug_class == "benzodiazepine" and first <= f.start <= a]
    opioid_days = 0
    mme_total = 0.0
    mme_peak = 0.0
    high_dose_days = 0
    benzo_overlap = 0
    cns_overlap = 0
    for d in window_days:
        mme, opioid, benzo, cns = days.day(d)
        if opioid:
            opioid_days += 1
        mme_total += mme
        mme_peak = max(mme_peak, mme)
        if _ge(mme, high_dose):
            high_dose_days += 1
        if opioid and benzo:
            benzo_overlap += 1
        if opioid and cns:
            cns_overlap += 1
    values = {
        "opioid_fills": len(opioid_in),
        "opioid_prescribers": len({f.prescriber_id for f in opioid_in} - {None}),
        "opioid_pharmacies": len({f.pharmacy_id for f in opioid_in} - {None}),
        "opioid_days": opioid_days,
        "mme_total": mme_total,
        "mme_avg": mme_total / opioid_days if opioid_days else 0.0,
        "mme_peak": mme_peak,
        "high_dose_days": high_dose_days,
        "benzo_fills": len(benzo_in),
        "benzo_overlap_days": benzo_overlap,
        "cns_overlap_days": cns_overlap,
        **_average_definitions(opioid_in, mme_total, w),
    }
    return {name: values[name] for name in _window_columns(definitions)}


def _score_one(member_id, a_date, fills, events, cfg) -> dict[str, Any]:
    a = a_date.toordinal()
    windows = cfg["windows"]
    H = max(windows)
    R = cfg["rolling_days"]
    E = cfg["ed_days"]
    D = cfg["dx_days"]
    high_dose = cfg["high_dose_mme"]
    days = _MemberDays(fills)

    metrics: dict[int, dict[str, Any]] = {}

    def window(w: int) -> dict[str, Any]:
        if w not in metrics:
            metrics[w] = _window_metrics(days, a, w, high_dose, cfg["mme_definitions"])
        return metrics[w]

    out: dict[str, Any] = {"member_id": member_id, "as_of": a_date}
    for w in windows:
        for name, value in window(w).items():
            out[f"{name}_{w}d"] = value

    # Over the longest window H.
    h_first = a - H + 1
    out["mme_today"] = days.mme(a)
    rolling_max = 0.0
    if H >= R:
        for start in range(h_first, a - R + 2):
            total = 0.0
            for d in range(start, start + R):
                total += days.mme(d)
            rolling_max = max(rolling_max, total / R)
    out["mme_rolling_max"] = rolling_max
    best_run = run = 0
    for d in range(h_first, a + 1):
        if _ge(days.mme(d), high_dose):
            run += 1
            best_run = max(best_run, run)
        else:
            run = 0
    out["high_dose_run"] = best_run
    out["mat_fills"] = sum(
        1 for f in fills if f.drug_class in MAT_CLASSES and h_first <= f.start <= a
    )
    out["naloxone_fills"] = sum(
        1 for f in fills if f.drug_class == "naloxone" and h_first <= f.start <= a
    )

    # Medical.
    def in_last(n: int, day: int) -> bool:
        return a - n + 1 <= day <= a

    ed_dates = {e.day for e in events if "ed_visit" in e.categories and in_last(E, e.day)}
    od_dates = {e.day for e in events if "opioid_overdose" in e.categories and in_last(D, e.day)}
    emergency_dates = [
        e.day
        for e in events
        if ({"ed_visit", "opioid_overdose"} & e.categories) and in_last(D, e.day)
    ]
    out[f"ed_visits_{E}d"] = len(ed_dates)
    out[f"overdoses_{D}d"] = len(od_dates)
    if emergency_dates:
        last = max(emergency_dates)
        out["last_emergency_date"] = dt.date.fromordinal(last)
        out["days_since_emergency"] = a - last
    else:
        out["last_emergency_date"] = None
        out["days_since_emergency"] = None

    def any_dx(*cats: str) -> bool:
        return any((set(cats) & e.categories) and in_last(D, e.day) for e in events)

    out["oud_dx"] = any_dx("oud")
    out["sud_dx"] = any_dx("oud", "sud_other")
    out["cancer_dx"] = any_dx("cancer")
    out["sickle_cell_dx"] = any_dx("sickle_cell")
    out["hospice_dx"] = any_dx("hospice_palliative")

    # SPEC 3 flags (default rule set). The flag columns refer to the 180 and 365 day
    # windows whatever `windows` holds; they are computed the same way.
    w180 = window(180)
    w365 = window(365)
    avg180 = w180["mme_avg"]
    presc180 = w180["opioid_prescribers"]
    pharm180 = w180["opioid_pharmacies"]
    overdoses = len(od_dates)  # overdoses_365d with the default D

    f: dict[str, bool] = {}
    f["excluded"] = out["cancer_dx"] or out["sickle_cell_dx"] or out["hospice_dx"]
    not_excl = not f["excluded"]
    f["high_dose"] = not_excl and _ge(avg180, 90)
    f["multi_provider"] = not_excl and presc180 >= 4 and pharm180 >= 4
    f["cms_oms"] = not_excl and (
        (_ge(avg180, 90) and ((presc180 >= 3 and pharm180 >= 3) or presc180 >= 5))
        or (overdoses >= 1 and w180["opioid_fills"] >= 1)
    )
    f["concurrent_benzo"] = (
        not_excl
        and w365["opioid_fills"] >= 2
        and w365["benzo_fills"] >= 2
        and w365["benzo_overlap_days"] >= 30
    )
    f["dose_with_cns"] = not_excl and _ge(avg180, 50) and w180["cns_overlap_days"] >= 30
    f["overdose_history"] = overdoses >= 1
    f["substance_use_history"] = out["sud_dx"]
    f["at_risk"] = (
        f["high_dose"]
        or f["multi_provider"]
        or f["cms_oms"]
        or f["concurrent_benzo"]
        or f["dose_with_cns"]
        or f["overdose_history"]
        or (f["substance_use_history"] and w365["opioid_fills"] >= 1)
    )
    dse = out["days_since_emergency"]
    f["emergency_outreach"] = f["at_risk"] and dse is not None and dse <= 89
    for name in FLAGS:
        out[name] = bool(f[name])
    out["reasons"] = [name for name in FLAGS if out[name]]
    return out


# --------------------------------------------------------------------------- entry point


@dataclass
class NaiveResult:
    members: list[dict[str, Any]]
    audit: dict[str, Any]
    pharmacy_buckets: list[str] = field(default_factory=list)
    medical_buckets: list[str] = field(default_factory=list)


def _as_of_dates(as_of) -> list[dt.date]:
    if isinstance(as_of, (dt.date, str)):
        as_of = [as_of]
    dates = []
    for value in as_of:
        parsed = _parse_date(value)
        if parsed is None:
            raise ValueError(f"bad as-of date: {value!r}")
        dates.append(parsed)
    # READING: repeated as-of dates are scored once.
    return sorted(set(dates))


def _member_sort_key(member_id):
    return (isinstance(member_id, str), member_id)


def naive_score(pharmacy_rows, medical_rows, as_of, reference, config=None) -> NaiveResult:
    """Score per SPEC 1.4-4. See the module docstring and tests/test_naive.py."""
    cfg = _config(config)
    as_of_dates = _as_of_dates(as_of)
    pharmacy_rows = list(pharmacy_rows or [])
    medical_rows = list(medical_rows or [])

    pharmacy_labels, fills = _pharmacy_pass(pharmacy_rows, reference, cfg)
    medical_labels, events = _medical_pass(medical_rows)

    fills_by_member: dict[Any, list[Fill]] = {}
    for f in fills:
        fills_by_member.setdefault(f.member_id, []).append(f)
    events_by_member: dict[Any, list[Event]] = {}
    for e in events:
        events_by_member.setdefault(e.member_id, []).append(e)

    H = max(cfg["windows"])
    D = cfg["dx_days"]
    medical_span = max(H, D)
    members = sorted(set(fills_by_member) | set(events_by_member), key=_member_sort_key)

    out_rows: list[dict[str, Any]] = []
    for member_id in members:
        member_fills = fills_by_member.get(member_id, [])
        member_events = events_by_member.get(member_id, [])
        for a_date in as_of_dates:
            a = a_date.toordinal()
            # SPEC 4 membership: a used pharmacy row covering or filled in a-H+1..a, or a
            # used medical row in a-max(H,D)+1..a.
            by_fill = any(f.start <= a and f.end >= a - H + 1 for f in member_fills)
            by_event = any(a - medical_span + 1 <= e.day <= a for e in member_events)
            if not (by_fill or by_event):
                continue
            out_rows.append(_score_one(member_id, a_date, member_fills, member_events, cfg))

    audit = {
        "pharmacy": _count_audit(pharmacy_labels, PHARMACY_BUCKETS, PHARMACY_REASONS),
        "medical": _count_audit(medical_labels, MEDICAL_BUCKETS, MEDICAL_REASONS),
        "members_scored": len({row["member_id"] for row in out_rows}),
        "rows_out": len(out_rows),
    }
    return NaiveResult(out_rows, audit, pharmacy_labels, medical_labels)


# ------------------------------------------------------------------------------------------
# Array-level references of the individual kernels (kernels/*.py): one plain loop per
# definition, over the same arrays the kernels take. tests/test_kernels.py holds each kernel
# to these on hand-made and random arrays.


def kernel_mme_on_day(start, end, role, mme, d):
    """mme(d) and the numbers of opioid / benzo / CNS fills covering day d."""
    total, op, bz, cns = 0.0, 0, 0, 0
    for s, e, r, v in zip(start, end, role, mme, strict=True):
        if s <= d <= e:
            if r & 1:
                total += v
                op += 1
            if r & 2:
                bz += 1
            if r & 4:
                cns += 1
    return (total if op else 0.0), op, bz, cns


def kernel_window(start, end, role, mme, a, w, floor):
    """(opioid_days, high_dose_days, benzo_overlap, cns_overlap, total, avg, peak) for window w."""
    op_days = hd = bz = cn = 0
    total = peak = 0.0
    for d in range(a - w + 1, a + 1):
        v, op, b, c = kernel_mme_on_day(start, end, role, mme, d)
        total += v
        peak = max(peak, v)
        if op:
            op_days += 1
            bz += b > 0
            cn += c > 0
        hd += v >= floor
    return op_days, hd, bz, cn, total, (total / op_days if op_days else 0.0), peak


def kernel_fill_counts(start, role, prescriber, pharmacy, a, w):
    """(opioid fills, distinct prescribers, distinct pharmacies, benzo fills, mat, naloxone)."""
    rows = [i for i in range(len(start)) if a - w + 1 <= start[i] <= a]
    op = [i for i in rows if role[i] & 1]
    return (
        len(op),
        len({prescriber[i] for i in op if prescriber[i] >= 0}),
        len({pharmacy[i] for i in op if pharmacy[i] >= 0}),
        sum(1 for i in rows if role[i] & 2),
        sum(1 for i in rows if role[i] & 8),
        sum(1 for i in rows if role[i] & 16),
    )


def kernel_fill_averages(start, end, role, mme, a, w, total):
    """(mme_total / w, supply-weighted and per-fill average daily MME) of the opioid fills
    with a fill day in window w; ``total`` is the window's MME total."""
    op = [i for i in range(len(start)) if a - w + 1 <= start[i] <= a and role[i] & 1]
    days = sum(int(end[i]) - int(start[i]) + 1 for i in op)
    dose = sum(float(mme[i]) * (int(end[i]) - int(start[i]) + 1) for i in op)
    return (
        total / w,
        dose / days if op else 0.0,
        sum(float(mme[i]) for i in op) / len(op) if op else 0.0,
    )


def kernel_rolling_max(series, horizon, span):
    """Largest mean of `span` consecutive values among the last `horizon` of `series`."""
    tail = series[len(series) - horizon :]
    if span > horizon:
        return 0.0
    return max(sum(tail[i : i + span]) for i in range(horizon - span + 1)) / span


def kernel_longest_run(series, floor):
    best = run = 0
    for v in series:
        run = run + 1 if v >= floor else 0
        best = max(best, run)
    return best


def kernel_medical(day, mask, a, ed_days, dx_days, ed_bit, od_bit):
    """(ed visit dates, overdose dates, last emergency day or None, OR of bits) for one member."""
    ed = {d for d, m in zip(day, mask, strict=True) if a - ed_days + 1 <= d <= a and m & ed_bit}
    od = {d for d, m in zip(day, mask, strict=True) if a - dx_days + 1 <= d <= a and m & od_bit}
    em = [
        d
        for d, m in zip(day, mask, strict=True)
        if a - dx_days + 1 <= d <= a and m & (ed_bit | od_bit)
    ]
    bits = 0
    for d, m in zip(day, mask, strict=True):
        if a - dx_days + 1 <= d <= a:
            bits |= int(m)
    return len(ed), len(od), (max(em) if em else None), bits


def kernel_string_hash(value):
    """The claim/member id hash of kernels/strings.py in plain Python: two polynomial hashes
    of the trimmed UTF-8 bytes (each byte + 1) modulo 2**31 - 1, joined as ``h1 << 31 | h2``;
    -1 for None or blank."""
    if value is None:
        return -1
    data = value.strip(" \t\r\n").encode()
    if not data:
        return -1
    p = 2**31 - 1
    h1 = h2 = 0
    for b in data:
        h1 = (h1 * 1000003 + b + 1) % p
        h2 = (h2 * 65599 + b + 1) % p
    return (h1 << 31) | h2
