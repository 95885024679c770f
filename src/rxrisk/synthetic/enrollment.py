"""Eligibility spans and birth dates of the synthetic book, one block of members at a time.

The measures of ``rxrisk measures`` need ``eligibility.parquet`` (one row per enrollment span:
``member_id``, ``start_date``, ``end_date``, ``product``) and ``members.parquet``
(``member_id``, ``birth_date``) beside the claims. They are drawn here, block by block, from a
random stream of their own (a child of ``numpy.random.SeedSequence(seed)`` that the claims never
use), so the claims of a seed are the same with or without them.

Measurement year: :func:`measurement_year`, the calendar year with the most days in the book's
date range (the latest on a tie). The default book (2025-01-01 to 2025-12-31) is measured with
``--year 2025``. Gaps, late joiners, leavers and product switches are placed in that year; a
member of the ``full_year`` pattern is enrolled from before the book's start to past its end.

Patterns (:data:`PATTERNS`, shares in :data:`PATTERN_WEIGHTS`), for the measurement year
``[p0, p1]``:

* ``full_year``: one span from before ``p0`` (up to ten years), open-ended or ending after ``p1``;
* ``renewal``: yearly spans that touch: ``.. p0-1``, ``p0 .. p1``, ``p1+1 ..``;
* ``short_gap``: one gap of 1 to 45 days inside the year (still enrolled under the default rule);
* ``long_gap``: one gap of 46 to 150 days (not enrolled);
* ``two_gaps``: two gaps of 1 to 45 days (not enrolled under the default rule of one gap);
* ``late_join``: enrolled from ``p0 + 1`` to ``p0 + 300`` on (a gap at the start of the year: up
  to 45 days for about a third of them), some with an older span that ended before;
* ``leaver``: the only span ends 1 to 300 days before ``p1`` (``p1`` is not covered);
* ``switch``: a product switch mid-year: two touching spans of different products;
* ``overlap``: two overlapping spans (same or different product), or a short span inside a
  longer one;
* ``no_eligibility``: no span (a claims member without eligibility).

The last span of a member enrolled at ``p1`` is open-ended (null ``end_date``) for half of them.
Products follow age: ``part_d`` mostly 65 and over, ``medicaid`` and ``commercial`` below (a
``switch`` or ``overlap`` member's second product is another one: ``part_d`` from 64 on,
``medicaid`` for ``commercial`` and the other way round below; never ``part_d`` for a child). A share of each block gets
eligibility but no claims (ids ``M`` + ``members + k``, beyond the claims' ids); a few members
with spans have no ``members`` row. Birth dates give ages on ``p0`` from 0 to 104 (about a
fifth under 18 and 3% over 85), some 29 February birthdays and some members born within three
days of turning 18 on ``p0``. All rows are valid: the tables carry no defects.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from rxrisk.days import day_of
from rxrisk.synthetic.draws import draw_from_cdf
from rxrisk.synthetic.strings import digit_strings

ELIGIBILITY_SCHEMA = pa.schema(
    [
        pa.field("member_id", pa.string()),
        pa.field("start_date", pa.date32()),
        pa.field("end_date", pa.date32()),
        pa.field("product", pa.string()),
    ]
)
"""Schema of the book's eligibility spans (``end_date`` null = open-ended)."""

MEMBERS_SCHEMA = pa.schema(
    [
        pa.field("member_id", pa.string()),
        pa.field("birth_date", pa.date32()),
    ]
)
"""Schema of the book's members (one row per member id)."""

#: Product names; spans carry their index.
PRODUCTS = ("part_d", "medicaid", "commercial")
PART_D, MEDICAID, COMMERCIAL = 0, 1, 2

#: Enrollment patterns, in the order of their codes.
PATTERNS = (
    "full_year",
    "renewal",
    "short_gap",
    "long_gap",
    "two_gaps",
    "late_join",
    "leaver",
    "switch",
    "overlap",
    "no_eligibility",
)
#: Share of each pattern among the claims members (extra members never get ``no_eligibility``).
PATTERN_WEIGHTS = (0.72, 0.06, 0.04, 0.03, 0.02, 0.035, 0.035, 0.03, 0.02, 0.01)
#: Extra members per claims member: eligibility (and a members row) but no claims.
P_EXTRA_MEMBER = 0.005
#: Members with a span but no members row.
P_NO_MEMBERS_ROW = 0.004
#: Members born on 29 February, and members born within three days of turning 18 on ``p0``.
P_FEB_29 = 0.003
P_NEAR_18 = 0.01
#: Age bands on ``p0`` (inclusive) and their shares.
AGE_BANDS = ((0, 17), (18, 64), (65, 84), (85, 104))
AGE_BAND_WEIGHTS = (0.20, 0.60, 0.17, 0.03)
#: Product shares (part_d, medicaid, commercial) by age: under 18, 18-64, 65 and over.
PRODUCT_BY_AGE = ((0.0, 0.45, 0.55), (0.03, 0.29, 0.68), (0.88, 0.06, 0.06))

_CODES = {name: i for i, name in enumerate(PATTERNS)}


def measurement_year(start: dt.date, end: dt.date) -> int:
    """The calendar year to measure a book of fills from ``start`` to ``end`` on.

    Parameters
    ----------
    start, end : datetime.date
        The book's inclusive date range.

    Returns
    -------
    int
        The year with the most days in the range (the latest on a tie): 2025 for the default
        book.
    """
    best, best_days = end.year, -1
    for year in range(start.year, end.year + 1):
        lo = max(start, dt.date(year, 1, 1))
        hi = min(end, dt.date(year, 12, 31))
        days = (hi - lo).days + 1
        if days >= best_days:
            best, best_days = year, days
    return best


@dataclass(frozen=True)
class EnrollmentFrame:
    """What every block's enrollment shares: the book's size, id width and dates (day numbers)."""

    members: int  # members with claims ids (M + 1 .. M + members)
    id_width: int  # digits of the claims' member ids
    year: int  # the measurement year
    p0: int  # its first day
    p1: int  # its last day
    book_start: int  # first day of the book's fills
    book_end: int  # last day of the book's fills

    @classmethod
    def of_book(cls, members: int, id_width: int, start: dt.date, end: dt.date):
        """The frame of a book of ``members`` over ``start .. end``."""
        year = measurement_year(start, end)
        return cls(
            members=members,
            id_width=id_width,
            year=year,
            p0=day_of(dt.date(year, 1, 1)),
            p1=day_of(dt.date(year, 12, 31)),
            book_start=day_of(start),
            book_end=day_of(end),
        )


def _year_start(years: np.ndarray) -> np.ndarray:
    """Day number of 1 January of each year."""
    return (
        (np.asarray(years, np.int64) - 1970)
        .astype("datetime64[Y]")
        .astype("datetime64[D]")
        .astype(np.int64)
    )


def ages_on_january_first(birth: np.ndarray, year: int) -> np.ndarray:
    """Completed years on 1 January of ``year`` of members born on ``birth`` (day numbers)."""
    born = np.asarray(birth, np.int64).astype("datetime64[D]").astype("datetime64[Y]")
    born_year = born.astype(np.int64) + 1970
    return year - born_year - (birth != _year_start(born_year))


def birth_days(
    rng: np.random.Generator, year: int, n: int, adult: np.ndarray | None = None
) -> tuple[np.ndarray, dict]:
    """Birth days (day numbers) of ``n`` members and the counts of the special kinds.

    Parameters
    ----------
    rng : numpy.random.Generator
        The block's enrollment stream.
    year : int
        The measurement year: ages are completed years on its 1 January.
    n : int
        Members.
    adult : numpy.ndarray, optional
        Members who are 19 or older on 1 January (bool, ``n``): the adult bands' shares, no
        birthday near 18.

    Returns
    -------
    tuple
        ``(birth, counts)``: int64 day numbers, and ``feb_29`` / ``near_18`` counts.
    """
    adult = np.zeros(n, bool) if adult is None else adult
    weights = np.array(AGE_BAND_WEIGHTS) / sum(AGE_BAND_WEIGHTS)
    u = rng.random(n)
    u[adult] = weights[0] + u[adult] * (1 - weights[0])  # past the children's band
    band = np.minimum(np.searchsorted(np.cumsum(weights), u, side="right"), len(weights) - 1)
    lo = np.array([b[0] for b in AGE_BANDS])[band]
    hi = np.array([b[1] for b in AGE_BANDS])[band]
    age = np.maximum(rng.integers(lo, hi + 1), np.where(adult, 19, 0))
    # born 2 January of year - age - 1 .. 1 January of year - age: `age` completed years on p0
    first = _year_start(year - age - 1) + 1
    length = _year_start(year - age) + 1 - first
    birth = first + (rng.random(n) * length).astype(np.int64)
    feb29 = rng.random(n) < P_FEB_29
    back = rng.integers(np.where(adult, 5, 1)[feb29], 23)  # leap years 4 .. 88 years back
    leap = year - year % 4 - 4 * back
    leap[(leap % 100 == 0) & (leap % 400 != 0)] -= 4
    birth[feb29] = _year_start(leap) + 59  # 1 January + 31 + 28 days
    near = (rng.random(n) < P_NEAR_18) & ~feb29 & ~adult
    birth[near] = _year_start(np.full(int(near.sum()), year - 18)) + rng.integers(
        -3, 4, size=int(near.sum())
    )
    return birth, {"feb_29": int(feb29.sum()), "near_18": int(near.sum())}


def products_by_age(rng: np.random.Generator, age: np.ndarray) -> np.ndarray:
    """Each member's product code (:data:`PRODUCTS`), drawn from the shares of the age group."""
    group = np.where(age < 18, 0, np.where(age < 65, 1, 2))
    cdf = np.cumsum(np.array(PRODUCT_BY_AGE), axis=1)
    u = rng.random(len(age))
    return (u[:, None] >= cdf[group][:, :2]).sum(axis=1).astype(np.int8)


class _Spans:
    """Spans collected per pattern: member index, start, end, open end, product code."""

    def __init__(self):
        self.parts: list[tuple] = []

    def add(self, mem, start, end, product, open_end=None):
        """Append spans (``open_end`` marks a null ``end_date``; ``end`` is then ignored)."""
        mem = np.asarray(mem, np.int64)
        k = len(mem)
        end = np.broadcast_to(np.asarray(end, np.int64), (k,))
        open_end = np.zeros(k, bool) if open_end is None else np.asarray(open_end, bool)
        self.parts.append(
            (
                mem,
                np.broadcast_to(np.asarray(start, np.int64), (k,)),
                end,
                open_end,
                np.broadcast_to(np.asarray(product, np.int8), (k,)),
            )
        )

    def arrays(self):
        """``(mem, start, end, open_end, product)`` sorted by member, start, end, product."""
        cols = [np.concatenate(c) for c in zip(*self.parts, strict=True)]
        mem, start, end, open_end, product = cols
        end_key = np.where(open_end, np.iinfo(np.int64).max, end)
        order = np.lexsort((product, end_key, start, mem))
        return tuple(c[order] for c in cols)


@dataclass
class _Members:
    """The members of one pattern: indices and their own draws (all arrays of equal length)."""

    mem: np.ndarray
    since: np.ndarray  # first enrolled day, before p0
    tail: np.ndarray  # end of the last span (ignored where tail_open)
    tail_open: np.ndarray
    product: np.ndarray
    other: np.ndarray  # another product (switches and overlaps)
    birth: np.ndarray


def _span_gap(spans: _Spans, m: _Members, gap_start, gap_len) -> None:
    """One gap of ``gap_len`` days from ``gap_start``: two spans of the member's product."""
    spans.add(m.mem, m.since, gap_start - 1, m.product)
    spans.add(m.mem, gap_start + gap_len, m.tail, m.product, m.tail_open)


def _exact_some(rng, values: np.ndarray, value: int, p: float = 0.1) -> np.ndarray:
    """``values`` with a share ``p`` set to ``value`` (the boundary cases)."""
    out = values.copy()
    out[rng.random(len(out)) < p] = value
    return out


def _gaps(rng, spans: _Spans, f: EnrollmentFrame, pat: dict[str, _Members]) -> None:
    """The ``short_gap``, ``long_gap`` and ``two_gaps`` members."""
    m = pat["short_gap"]
    k = len(m.mem)
    length = _exact_some(rng, rng.integers(1, 46, size=k), 45)
    _span_gap(spans, m, f.p0 + rng.integers(15, 300, size=k), length)
    m = pat["long_gap"]
    k = len(m.mem)
    length = _exact_some(rng, rng.integers(46, 151, size=k), 46)
    _span_gap(spans, m, f.p0 + rng.integers(15, 200, size=k), length)
    m = pat["two_gaps"]
    k = len(m.mem)
    g1 = f.p0 + rng.integers(10, 150, size=k)
    l1 = rng.integers(1, 46, size=k)
    g2 = f.p0 + rng.integers(200, 300, size=k)
    l2 = rng.integers(1, 46, size=k)
    spans.add(m.mem, m.since, g1 - 1, m.product)
    spans.add(m.mem, g1 + l1, g2 - 1, m.product)
    spans.add(m.mem, g2 + l2, m.tail, m.product, m.tail_open)


def _joins_and_leaves(rng, spans: _Spans, f: EnrollmentFrame, pat: dict[str, _Members]) -> None:
    """The ``late_join`` (some with an older span) and ``leaver`` members."""
    m = pat["late_join"]
    k = len(m.mem)
    short = rng.random(k) < 0.35
    late = np.where(short, rng.integers(1, 46, size=k), rng.integers(46, 301, size=k))
    late[short & (rng.random(k) < 0.15)] = 45
    late[~short & (rng.random(k) < 0.15)] = 46
    spans.add(m.mem, f.p0 + late, m.tail, m.product, m.tail_open)
    old_end = f.p0 - rng.integers(60, 1000, size=k)
    old_start = old_end - rng.integers(30, 1500, size=k)
    old = (rng.random(k) < 0.3) & (old_start >= m.birth)
    spans.add(m.mem[old], old_start[old], old_end[old], m.product[old])
    m = pat["leaver"]
    k = len(m.mem)
    early = _exact_some(rng, rng.integers(1, 301, size=k), 1)
    spans.add(m.mem, m.since, f.p1 - early, m.product)


def _switches_and_overlaps(rng, spans: _Spans, f: EnrollmentFrame, pat: dict) -> None:
    """The ``switch``, ``renewal`` and ``overlap`` members (spans that touch or overlap)."""
    m = pat["switch"]
    switch = f.p0 + rng.integers(30, 336, size=len(m.mem))
    spans.add(m.mem, m.since, switch - 1, m.product)
    spans.add(m.mem, switch, m.tail, m.other, m.tail_open)
    m = pat["renewal"]
    spans.add(m.mem, np.minimum(m.since, f.p0 - 1), f.p0 - 1, m.product)
    spans.add(m.mem, f.p0, f.p1, m.product)
    spans.add(m.mem, f.p1 + 1, np.maximum(m.tail, f.p1 + 1), m.product, m.tail_open)
    m = pat["overlap"]
    k = len(m.mem)
    inside = rng.random(k) < 1 / 3
    same = rng.random(k) < 0.5
    second = np.where(same, m.product, m.other)
    y = f.p0 + rng.integers(20, 305, size=k)
    x = y + rng.integers(0, 61, size=k)  # the first span ends on or after the second starts
    o = ~inside
    spans.add(m.mem[o], m.since[o], x[o], m.product[o])
    spans.add(m.mem[o], y[o], m.tail[o], second[o], m.tail_open[o])
    short_end = np.minimum(y + rng.integers(10, 91, size=k), f.p1 - 1)
    spans.add(
        m.mem[inside], m.since[inside], m.tail[inside], m.product[inside], m.tail_open[inside]
    )
    spans.add(m.mem[inside], y[inside], short_end[inside], second[inside])


def _pattern_members(rng, f: EnrollmentFrame, pattern, birth, age, product) -> dict:
    """Each pattern's members (:class:`_Members`) with their first enrolled day, last span's end
    and products: the other product of a ``part_d`` member is ``medicaid`` or ``commercial``,
    of a member of 64 or over ``part_d``, of the others ``commercial`` or ``medicaid``."""
    k = len(pattern)
    since = np.minimum(f.book_start, f.p0) - rng.integers(1, 3651, size=k)
    since = np.minimum(np.maximum(since, birth), f.p0)
    tail_open = rng.random(k) < 0.5
    tail = np.maximum(f.book_end, f.p1) + rng.integers(0, 731, size=k)
    other = np.where(
        product == PART_D,
        np.where(rng.random(k) < 0.5, MEDICAID, COMMERCIAL),
        np.where(age >= 64, PART_D, MEDICAID + COMMERCIAL - product),
    ).astype(np.int8)
    out = {}
    for name in PATTERNS:
        sel = np.flatnonzero(pattern == _CODES[name])
        out[name] = _Members(
            sel, since[sel], tail[sel], tail_open[sel], product[sel], other[sel], birth[sel]
        )
    return out


def _date_array(days: np.ndarray, null: np.ndarray | None = None) -> pa.Array:
    """Day numbers as a date32 array (``null`` marks nulls)."""
    values = pa.array(np.asarray(days, np.int32), type=pa.int32(), mask=null)
    return values.view(pa.date32())


def _member_ids(f: EnrollmentFrame, first: int, n: int, extra: np.ndarray) -> pa.Array:
    """Ids of the block's claims members (as in the claims), then of its extra members
    (``M`` + ``members + first + i + 1`` for block member ``i``: beyond every claims id)."""
    ids = digit_strings(b"M", np.arange(first + 1, first + n + 1), f.id_width)
    numbers = f.members + first + 1 + np.flatnonzero(extra)
    width = max(f.id_width, len(str(2 * f.members)))
    return pa.concat_arrays([ids, digit_strings(b"M", numbers, width)])


def enrollment_tables(
    rng: np.random.Generator,
    frame: EnrollmentFrame,
    first: int,
    n: int,
    adult: np.ndarray | None = None,
) -> tuple[pa.Table, pa.Table, dict]:
    """The eligibility and members rows of block members ``first .. first + n - 1``.

    Parameters
    ----------
    rng : numpy.random.Generator
        The block's enrollment stream (never the claims' stream).
    frame : EnrollmentFrame
        The book's size, id width and dates.
    first, n : int
        The block's first member (0-based) and its number of members.
    adult : numpy.ndarray, optional
        Block members drawn as adults (bool, ``n``): the claims' chronic opioid users,
        shoppers and MAT members, so that the measures' denominators hold them.

    Returns
    -------
    tuple
        ``(eligibility, members, counts)``: tables of :data:`ELIGIBILITY_SCHEMA` and
        :data:`MEMBERS_SCHEMA` (rows by member id: the block's claims members, then its extra
        members; spans by start), and the counts of the summary (members per pattern,
        ``extra_members``, ``no_members_row``, ``feb_29``, ``near_18``).
    """
    extra = rng.random(n) < P_EXTRA_MEMBER
    total = n + int(extra.sum())
    grown = np.zeros(total, bool)
    if adult is not None:
        grown[:n] = adult
    birth, counts = birth_days(rng, frame.year, total, grown)
    age = ages_on_january_first(birth, frame.year)
    product = products_by_age(rng, age)
    pattern = draw_from_cdf(rng, np.cumsum(PATTERN_WEIGHTS) / sum(PATTERN_WEIGHTS), total)
    pattern[n:][pattern[n:] == _CODES["no_eligibility"]] = _CODES["full_year"]
    pat = _pattern_members(rng, frame, pattern, birth, age, product)
    spans = _Spans()
    m = pat["full_year"]
    spans.add(m.mem, m.since, m.tail, m.product, m.tail_open)
    _gaps(rng, spans, frame, pat)
    _joins_and_leaves(rng, spans, frame, pat)
    _switches_and_overlaps(rng, spans, frame, pat)
    mem, start, end, open_end, prod = spans.arrays()
    no_row = (rng.random(total) < P_NO_MEMBERS_ROW) & (pattern != _CODES["no_eligibility"])
    ids = _member_ids(frame, first, n, extra)
    products = pa.DictionaryArray.from_arrays(pa.array(prod, pa.int8()), pa.array(PRODUCTS))
    eligibility = pa.Table.from_arrays(
        [ids.take(pa.array(mem)), _date_array(start), _date_array(end, open_end),
         products.cast(pa.string())],
        schema=ELIGIBILITY_SCHEMA,
    )  # fmt: skip
    keep = np.flatnonzero(~no_row)
    members = pa.Table.from_arrays(
        [ids.take(pa.array(keep)), _date_array(birth[keep])], schema=MEMBERS_SCHEMA
    )
    counts.update({name: int((pattern == _CODES[name]).sum()) for name in PATTERNS})
    counts.update(extra_members=int(extra.sum()), no_members_row=int(no_row.sum()))
    return eligibility, members, counts
