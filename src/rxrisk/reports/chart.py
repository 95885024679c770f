"""The daily MME chart of a profile: inline SVG with one point per lookback day, the 50 and 90
MME reference lines, overlap shading and ED visit and overdose markers."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rxrisk.days import date_of
from rxrisk.reports.markup import esc
from rxrisk.reports.wording import CATEGORY_BIT, fmt_date, num

REFERENCE_LINES = (50.0, 90.0)  # CDC: reassess at 50 MME/day, avoid or justify 90 MME/day
_W, _H, _L, _R, _T, _B = 960, 300, 56, 64, 16, 44

LEGEND = (
    '<div class="legend">'
    '<span><i class="sw" style="background:#1f4e99"></i>Daily MME</span>'
    '<span><i class="sw dash" style="border-color:#b9770e"></i>50 MME</span>'
    '<span><i class="sw dash" style="border-color:#c0392b"></i>90 MME</span>'
    '<span><i class="sw box" style="background:#f8d49c"></i>Opioid + benzodiazepine</span>'
    '<span><i class="sw box" style="background:#ead7f0"></i>Opioid + other CNS depressant</span>'
    '<span><i class="tri" style="color:#6c3483">&#9650;</i>ED visit</span>'
    '<span><i class="tri" style="color:#c0392b">&#9670;</i>Opioid overdose</span>'
    "</div>"
)


def _nice_axis(top: float) -> tuple[float, float]:
    for step in (10, 20, 25, 50, 100, 200, 250, 500, 1000, 2000, 2500, 5000, 10000, 20000):
        if top / step <= 7:
            return float(np.ceil(top / step) * step), float(step)
    step = 10 ** np.ceil(np.log10(top / 6))
    return float(np.ceil(top / step) * step), float(step)


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    d = np.diff(np.r_[0, mask.astype(np.int8), 0])
    return list(
        zip(np.flatnonzero(d == 1).tolist(), (np.flatnonzero(d == -1) - 1).tolist(), strict=True)
    )


@dataclass(frozen=True)
class _Plot:
    """The chart's geometry: days ``first .. last`` across, 0 .. ``ymax`` MME up."""

    n: int
    first: int
    ymax: float
    step: float
    pw: float = _W - _L - _R
    ph: float = _H - _T - _B

    @property
    def last(self) -> int:
        return self.first + self.n - 1

    @property
    def dx(self) -> float:
        return self.pw / max(self.n, 1)

    def x(self, i) -> float:
        return _L + (i + 0.5) * self.dx

    def y(self, v) -> float:
        return _T + self.ph * (1.0 - v / self.ymax)


def chart_svg(view, ctx) -> str:
    """The daily MME chart of one member.

    Parameters
    ----------
    view : rxrisk.reports.view.MemberView
        The member (``mme``, ``benzo``, ``cns`` per lookback day, and ``events``).
    ctx : rxrisk.reports.view.ReportContext
        The report (its first lookback day).

    Returns
    -------
    str
        The ``<svg>`` element.
    """
    n = len(view.mme)
    peak = float(view.mme.max()) if n else 0.0
    g = _Plot(n, ctx.first_day, *_nice_axis(max(100.0, peak * 1.08)))
    title = f"Daily MME from {fmt_date(g.first)} to {fmt_date(g.last)}"
    o = [
        f'<svg class="chart" viewBox="0 0 {_W} {_H}" role="img" '
        f'aria-label="{esc(title)}" data-days="{n}" data-ymax="{g.ymax:g}">',
        f"<title>{esc(title)}</title>",
        f'<rect class="plot" x="{_L}" y="{_T}" width="{g.pw}" height="{g.ph}" fill="#fbfcfd" '
        f'stroke="#c9d1d9"/>',
    ]
    o += _overlaps(g, view)
    o += _axes(g)
    o += _mme_lines(g, view.mme)
    o += _event_markers(g, view.events)
    o.append("</svg>")
    return "".join(o)


def _overlaps(g: _Plot, view) -> list[str]:
    """Shaded runs of days with an opioid and another CNS depressant, then a benzodiazepine."""
    o = []
    for cls, mask, color in (
        ("cns-overlap", view.cns, "#c39bd3"),
        ("benzo-overlap", view.benzo, "#f39c12"),
    ):
        what = "benzodiazepine" if cls == "benzo-overlap" else "other CNS depressant"
        for s, e in _runs(mask):
            o.append(
                f'<rect class="{cls}" x="{_L + s * g.dx:.1f}" y="{_T}" '
                f'width="{(e - s + 1) * g.dx:.1f}" height="{g.ph}" fill="{color}" '
                f'fill-opacity="0.28"><title>{esc(fmt_date(g.first + s))}'
                f" to {esc(fmt_date(g.first + e))}: {what} overlap ({e - s + 1} days)</title></rect>"
            )
    return o


def _axes(g: _Plot) -> list[str]:
    """Grid lines with their MME, month ticks, the first and the as-of date, the axis title."""
    o = []
    v = 0.0
    while v <= g.ymax + 1e-9:
        o.append(
            f'<line class="grid" x1="{_L}" x2="{_L + g.pw}" y1="{g.y(v):.1f}" y2="{g.y(v):.1f}" '
            f'stroke="#e3e8ee"/><text x="{_L - 6}" y="{g.y(v) + 4:.1f}" text-anchor="end" '
            f'class="tick">{num(v)}</text>'
        )
        v += g.step
    bottom = _T + g.ph
    shown_year = False
    for i in range(g.n):
        d = date_of(g.first + i)
        if d.day == 1 or i == 0:
            label = d.strftime("%b") if d.day == 1 else ""
            if d.day == 1 and (d.month == 1 or not shown_year):
                label += f" {d.year}"
                shown_year = True
            o.append(
                f'<line class="xtick" x1="{_L + i * g.dx:.1f}" x2="{_L + i * g.dx:.1f}" '
                f'y1="{bottom}" y2="{bottom + 5}" stroke="#8a96a3"/>'
            )
            if label:
                o.append(
                    f'<text class="tick" x="{_L + i * g.dx + 3:.1f}" y="{bottom + 17}">'
                    f"{esc(label)}</text>"
                )
    o.append(
        f'<text class="tick" x="{_L + g.pw}" y="{bottom + 34}" text-anchor="end">as of '
        f"{esc(fmt_date(g.last))}</text>"
        f'<text class="tick" x="{_L}" y="{bottom + 34}">{esc(fmt_date(g.first))}</text>'
        f'<text class="axis" transform="translate(14 {_T + g.ph / 2:.0f}) rotate(-90)" '
        f'text-anchor="middle">MME per day</text>'
    )
    return o


def _mme_lines(g: _Plot, mme: np.ndarray) -> list[str]:
    """The area under mme(d), the reference lines, and the mme(d) line over them."""
    o = []
    pts = " ".join(f"{g.x(i):.1f},{g.y(float(v)):.1f}" for i, v in enumerate(mme))
    if g.n:
        o.append(
            f'<polygon class="mme-area" points="{g.x(0):.1f},{g.y(0):.1f} {pts} '
            f'{g.x(g.n - 1):.1f},{g.y(0):.1f}" fill="#1f4e99" fill-opacity="0.10"/>'
        )
    for ref, color in zip(REFERENCE_LINES, ("#b9770e", "#c0392b"), strict=True):
        o.append(
            f'<line class="ref ref-{ref:g}" data-mme="{ref:g}" x1="{_L}" x2="{_L + g.pw}" '
            f'y1="{g.y(ref):.1f}" y2="{g.y(ref):.1f}" stroke="{color}" stroke-width="1.5" '
            f'stroke-dasharray="6 4"/><text class="reflabel" x="{_L + g.pw + 4}" '
            f'y="{g.y(ref) + 4:.1f}" fill="{color}">{ref:g} MME</text>'
        )
    o.append(
        f'<polyline class="mme-line" points="{pts}" fill="none" stroke="#1f4e99" '
        f'stroke-width="2" stroke-linejoin="round"/>'
    )
    return o


def _event_markers(g: _Plot, events: list) -> list[str]:
    """A marker per overdose and ED visit day in the lookback."""
    o = []
    bottom = _T + g.ph
    for day, mask, codes, _ in events:
        if not g.first <= day <= g.last:
            continue
        xi = g.x(day - g.first)
        tip = esc(f"{fmt_date(day)}: " + ", ".join(codes))
        if mask & CATEGORY_BIT["opioid_overdose"]:
            o.append(
                f'<g class="event od-marker"><title>Opioid overdose {tip}</title>'
                f'<line x1="{xi:.1f}" x2="{xi:.1f}" y1="{_T}" y2="{bottom}" stroke="#c0392b" '
                f'stroke-width="1.5"/><path d="M{xi:.1f} {_T - 1} l7 8 l-7 8 l-7 -8 z" '
                f'fill="#c0392b"/></g>'
            )
        if mask & CATEGORY_BIT["ed_visit"]:
            o.append(
                f'<g class="event ed-marker"><title>ED visit {tip}</title>'
                f'<line x1="{xi:.1f}" x2="{xi:.1f}" y1="{_T}" y2="{bottom}" stroke="#6c3483" '
                f'stroke-dasharray="2 3"/><path d="M{xi:.1f} {bottom - 12} l7 12 h-14 z" '
                f'fill="#6c3483"/></g>'
            )
    return o
