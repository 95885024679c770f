"""The measures report's chart: each measure's rate over the periods, one inline SVG per measure."""

from __future__ import annotations

import math

from rxrisk.reports.markup import esc

_W, _H, _L, _R, _T, _B = 360, 190, 48, 14, 12, 30
ALL_COLOUR = "#1b1f24"
PALETTE = ("#1f4e99", "#c0392b", "#b9770e", "#1e8449", "#6c3483", "#117a65", "#d35400", "#7f8c8d")
CSS = (
    ".charts{display:grid;grid-template-columns:repeat(auto-fill,minmax(320px,1fr));gap:10px 18px}"
    "figure.rate-chart{margin:0}figure.rate-chart figcaption{font-weight:600;font-size:13px;"
    "margin:4px 0 0}svg.rates{font:11px system-ui,Arial,sans-serif}"
)


def product_colour(k: int, product: str) -> tuple[str, str]:
    """The colour and dash pattern of a product's line (``all`` solid black, then the palette;
    after eight products the colours repeat dashed).

    Parameters
    ----------
    k : int
        The product's position among the report's products without ``all`` (from 0).
    product : str
        The product name.

    Returns
    -------
    tuple of str
        The stroke colour and the ``stroke-dasharray`` value ("" for a solid line).
    """
    if product == "all":
        return ALL_COLOUR, ""
    return PALETTE[k % len(PALETTE)], "" if k < len(PALETTE) else "5 3"


def _axis_top(top: float) -> tuple[float, float]:
    """A round top of the y axis (percent) at or above ``top``, and its grid step."""
    top = max(top, 1.0)
    for step in (0.25, 0.5, 1, 2, 2.5, 5, 10, 20, 25):
        if top / step <= 5:
            return min(100.0, math.ceil(top / step - 1e-9) * step), float(step)
    return 100.0, 20.0


def legend(products: list[str]) -> str:
    """The products' swatches, ``all`` first.

    Parameters
    ----------
    products : list of str
        The products, ``all`` first.

    Returns
    -------
    str
        The legend's markup.
    """
    items = []
    others = [p for p in products if p != "all"]
    for p in products:
        colour, dash = product_colour(others.index(p) if p != "all" else 0, p)
        style = f"border-color:{colour}" if dash else f"background:{colour}"
        cls = "sw dash" if dash else "sw"
        items.append(f'<span><i class="{cls}" style="{style}"></i>{esc(p)}</span>')
    return f'<div class="legend">{"".join(items)}</div>'


def rate_chart(label: str, measure: str, periods: list[str], series: dict) -> str:
    """One measure's rates over the periods: a line and points per product.

    Parameters
    ----------
    label : str
        The measure's name in words (the caption).
    measure : str
        The measure's column name (kept as ``data-measure``).
    periods : list of str
        The period labels, in order (the x axis).
    series : dict
        Product -> list, per period, of ``(rate or None, numerator, denominator)`` or None when
        the product has no row in that period; ``all`` first.

    Returns
    -------
    str
        A ``<figure>`` holding the ``<svg>``.
    """
    n = len(periods)
    rates = [r[0] for rows in series.values() for r in rows if r is not None and r[0] is not None]
    top, step = _axis_top(max(rates, default=0.0) * 100 * 1.1)
    pw, ph = _W - _L - _R, _H - _T - _B

    def x(i: int) -> float:
        return _L + (i + 0.5) * pw / n

    def y(pct: float) -> float:
        return _T + ph * (1.0 - pct / top)

    o = [
        f'<svg class="chart rates" viewBox="0 0 {_W} {_H}" role="img" '
        f'aria-label="{esc(label)}: rate by period" data-periods="{n}">',
        f'<rect x="{_L}" y="{_T}" width="{pw}" height="{ph}" fill="#fbfcfd" stroke="#c9d1d9"/>',
    ]
    v = 0.0
    while v <= top + 1e-9:
        o.append(
            f'<line x1="{_L}" x2="{_L + pw}" y1="{y(v):.1f}" y2="{y(v):.1f}" stroke="#e3e8ee"/>'
            f'<text class="tick" x="{_L - 5}" y="{y(v) + 4:.1f}" text-anchor="end">{v:g}%</text>'
        )
        v += step
    every = max(1, math.ceil(n / 6))
    for i, text in enumerate(periods):
        if i % every == 0 or i == n - 1:
            o.append(
                f'<text class="tick" x="{x(i):.1f}" y="{_T + ph + 16}" text-anchor="middle">'
                f"{esc(text)}</text>"
            )
    others = [p for p in series if p != "all"]
    for product in reversed(list(series)):  # ``all`` drawn last, on top
        colour, dash = product_colour(others.index(product) if product != "all" else 0, product)
        o += _line(series[product], product, colour, dash, periods, x, y)
    o.append("</svg>")
    return (
        f'<figure class="rate-chart" data-measure="{esc(measure)}">'
        f"<figcaption>{esc(label)}</figcaption>{''.join(o)}</figure>"
    )


def _line(rows: list, product: str, colour: str, dash: str, periods: list, x, y) -> list[str]:
    """The runs of a product's line through its non-null rates, and a point per rate."""
    o = []
    width = 2.5 if product == "all" else 1.6
    run: list[str] = []
    for i, row in enumerate([*rows, None]):
        if row is not None and row[0] is not None:
            run.append(f"{x(i):.1f},{y(row[0] * 100):.1f}")
            continue
        if len(run) > 1:
            extra = f' stroke-dasharray="{dash}"' if dash else ""
            o.append(
                f'<polyline class="rate-line" data-product="{esc(product)}" '
                f'points="{" ".join(run)}" fill="none" stroke="{colour}" '
                f'stroke-width="{width}" stroke-linejoin="round"{extra}/>'
            )
        run = []
    for i, row in enumerate(rows):
        if row is None or row[0] is None:
            continue
        rate, numerator, denominator = row
        tip = f"{product}, {periods[i]}: {rate * 100:.2f}% ({numerator:,} of {denominator:,})"
        o.append(
            f'<circle class="rate-point" cx="{x(i):.1f}" cy="{y(rate * 100):.1f}" '
            f'r="{3.2 if product == "all" else 2.6}" fill="{colour}"><title>{esc(tip)}</title>'
            "</circle>"
        )
    return o
