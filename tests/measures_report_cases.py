"""Member detail tables built by hand for the measures report's tests: rows of quantities, with
the denominator and numerator columns set by the measure rules, and their summary."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pyarrow as pa

from rxrisk.quality.detail import DETAIL_COLUMNS, detail_schema
from rxrisk.quality.rates import MEASURES, measure_flags
from rxrisk.quality.settings import MeasureSettings, parse_periods
from rxrisk.quality.summary import detail_quantities, summary_table

HOSTILE_ID = "<script>alert('x')</script>&\"M"
HOSTILE_PRODUCT = "hmo<b>&'"
YEARS = (2024, 2025)

#: The quantities of a row that is eligible for the opioid measures and in no numerator.
BASE = {
    "age": 50,
    "exclusion": None,
    "opioid_claims": 3,
    "opioid_fill_dates": 3,
    "cumulative_days_supply": 60,
    "ipsd": dt.date(2025, 2, 1),
    "treatment_days": 60,
    "avg_mme": 30.0,
    "longest_high_dose_run": 0,
    "prescribers": 1,
    "pharmacies": 1,
    "benzo_fill_dates": 0,
    "opioid_benzo_days": 0,
    "episode_start": None,
    "covered_30": 0,
    "covered_62": 0,
}


def row(member, year: int, product: str, **quantities) -> dict:
    """A detail row of ``member`` for calendar ``year`` (flags not set yet)."""
    r = {
        "member_id": member,
        "period_start": dt.date(year, 1, 1),
        "period_end": dt.date(year, 12, 31),
        "product": product,
        **BASE,
        **quantities,
    }
    if isinstance(r["ipsd"], dt.date):
        r["ipsd"] = r["ipsd"].replace(year=year)
    return r


def small_rows() -> list[dict]:
    """Five members over 2024 and 2025: high dose with many providers (both years), opioids with
    benzodiazepines, a hostile id in continued use, an excluded high-dose member, and a hostile
    product whose only member is excluded (so its rates have no denominator)."""
    heavy = {"avg_mme": 140.0, "longest_high_dose_run": 120, "prescribers": 5, "pharmacies": 4}
    episode = {"episode_start": dt.date(2025, 3, 1), "covered_30": 20, "covered_62": 40}
    return [
        row("M1", 2024, "part_d", **heavy),
        row("M1", 2025, "part_d", **heavy),
        row("M2", 2025, "medicaid", benzo_fill_dates=3, opioid_benzo_days=45),
        row("M2", 2024, "medicaid"),
        row("M3", 2025, "part_d"),
        row(HOSTILE_ID, 2025, "commercial", **episode),
        row("M4", 2025, "part_d", exclusion="cancer", **heavy),
        row("M5", 2025, HOSTILE_PRODUCT, exclusion="hospice_palliative", avg_mme=200.0),
    ]


def detail_from_rows(rows: list[dict], settings=None) -> pa.Table:
    """The detail table of ``rows`` (sorted by member, period) with flags from the rules."""
    settings = settings or MeasureSettings()
    rows = sorted(rows, key=lambda r: (str(r["member_id"]), r["period_start"]))
    schema = detail_schema(pa.string())
    base = pa.table(
        {c: pa.array([r[c] for r in rows], schema.field(c).type) for c in DETAIL_COLUMNS[:20]}
    )
    assert base.column_names == list(DETAIL_COLUMNS[:20])
    flags = measure_flags(detail_quantities(base), settings)
    columns = dict(zip(base.column_names, base.columns, strict=True))
    for m in MEASURES:
        _, denominator, numerator = flags[m]
        columns[f"{m}_denominator"] = pa.array(np.asarray(denominator, bool))
        columns[f"{m}_numerator"] = pa.array(np.asarray(numerator, bool))
    return pa.Table.from_arrays([columns[c] for c in DETAIL_COLUMNS], schema=schema)


def tables(rows: list[dict], years=YEARS, settings=None) -> tuple[pa.Table, pa.Table]:
    """(summary, detail) of ``rows`` measured over ``years``."""
    settings = settings or MeasureSettings()
    detail = detail_from_rows(rows, settings)
    periods = parse_periods(years=list(years))
    keep = {dt.date(y, 1, 1) for y in years}
    detail = detail.filter(pa.array([d in keep for d in detail["period_start"].to_pylist()]))
    return summary_table(detail, periods, settings), detail


def random_rows(n_members: int, years, seed: int = 7) -> list[dict]:
    """A book-like detail: ``n_members`` members over ``years`` in three products, with
    quantities drawn so that every measure has a few numerator members."""
    rng = np.random.default_rng(seed)
    products = ("commercial", "medicaid", "part_d")
    out = []
    for i in range(n_members):
        product = products[rng.integers(3)]
        for y in years:
            if rng.random() < 0.15:
                continue
            heavy = rng.random() < 0.12 + 0.02 * (y - years[0])
            out.append(
                row(
                    f"M{i:05d}",
                    y,
                    product,
                    age=int(rng.integers(18, 90)),
                    exclusion="cancer" if rng.random() < 0.05 else None,
                    opioid_fill_dates=int(rng.integers(2, 14)),
                    cumulative_days_supply=int(rng.integers(15, 365)),
                    avg_mme=float(rng.gamma(2.0, 70.0 if heavy else 20.0)),
                    longest_high_dose_run=int(rng.integers(60, 200)) if heavy else 0,
                    prescribers=int(rng.integers(1, 7 if heavy else 4)),
                    pharmacies=int(rng.integers(1, 7 if heavy else 4)),
                    benzo_fill_dates=int(rng.integers(0, 5)),
                    opioid_benzo_days=int(rng.integers(0, 90)),
                    episode_start=dt.date(y, 4, 1) if rng.random() < 0.3 else None,
                    covered_30=int(rng.integers(5, 31)),
                    covered_62=int(rng.integers(10, 63)),
                )
            )
    return out
