"""The markup every report page shares: escaping, the page shell (inline style sheet and a
Content-Security-Policy that forbids loading anything) and the figure tiles.

Every data value goes through :func:`esc` (``html.escape``); only numbers the report computes
itself (coordinates) are written unescaped.
"""

from __future__ import annotations

import html

from rxrisk.version import __version__


def esc(value) -> str:
    """Escape any value for HTML text and attributes.

    Parameters
    ----------
    value : object
        Any value; None becomes empty.

    Returns
    -------
    str
        ``str(value)`` with ``& < > " '`` escaped.
    """
    return html.escape("" if value is None else str(value), quote=True)


def tile(label: str, value: str, hot: bool = False, sub: str = "", small=False) -> str:
    """One figure of a tile row: the value large, its label small.

    Parameters
    ----------
    label, value : str
        What the figure is, and the figure.
    hot : bool
        Whether to draw it as a warning.
    sub : str
        A line under the label.
    small : bool
        A smaller value (dates).

    Returns
    -------
    str
        The tile's markup.
    """
    cls = "tile hot" if hot else "tile"
    cls += " small" if small else ""
    sub = f"<small>{esc(sub)}</small>" if sub else ""
    return f'<div class="{cls}"><b>{esc(value)}</b><span>{esc(label)}</span>{sub}</div>'


_CSS = """
*{box-sizing:border-box}
body{margin:0;background:#f3f5f7;color:#1b1f24;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif}
main{max-width:1120px;margin:0 auto;padding:20px}
section.member,section.cover{background:#fff;border:1px solid #d9dee3;border-radius:8px;padding:20px 26px;margin:0 0 28px}
h1{font-size:24px;margin:0 0 2px}h2{font-size:16px;margin:22px 0 8px}h3{font-size:14px;margin:14px 0 6px}
.sub{color:#5b6570;margin:0}
.badge{display:inline-block;vertical-align:middle;font-size:12px;letter-spacing:.06em;background:#b42318;color:#fff;border-radius:4px;padding:2px 8px;margin-left:8px}
.reasons{border-left:8px solid #b42318;background:#fef3f2;padding:12px 18px 8px;margin:16px 0;border-radius:4px}
.reasons h2{color:#b42318;margin:0 0 6px;font-size:13px;text-transform:uppercase;letter-spacing:.06em}
.reasons ul{margin:0;padding-left:22px}
.reasons li{font-size:20px;line-height:1.35;margin:6px 0 10px;font-weight:600}
.reasons .anchor{display:block;font-size:12px;color:#5b6570;font-weight:400}
.chip{display:inline-block;font:12px ui-monospace,Menlo,Consolas,monospace;background:#fff;border:1px solid #e4b4ae;border-radius:10px;padding:1px 8px;margin:0 4px 4px 0;color:#7a271a}
.tiles{display:grid;grid-template-columns:repeat(auto-fill,minmax(160px,1fr));gap:10px}
.tile{border:1px solid #d9dee3;border-radius:6px;padding:8px 10px;background:#fff}
.tile b{display:block;font-size:22px;line-height:1.2}.tile span{font-size:12px;color:#5b6570}
.tile.small b{font-size:18px;white-space:nowrap}.counts td{border:none;font-size:17px;font-weight:600;padding:2px 6px}
.counts td.num{width:3em}.tile small{display:block;font-size:11px;color:#5b6570}.tile.hot{border-color:#b42318;background:#fef3f2}.tile.hot b{color:#b42318}
svg.chart{width:100%;height:auto;display:block;font:12px system-ui,Arial,sans-serif}
svg .tick{fill:#5b6570;font-size:11px}svg .axis{fill:#5b6570;font-size:12px}svg .reflabel{font-size:11px;font-weight:600}
.legend{font-size:12px;color:#36404a;margin:4px 0 6px}.legend span{margin-right:16px;white-space:nowrap}
.sw{display:inline-block;width:18px;height:3px;vertical-align:middle;margin-right:5px}
.sw.dash{height:0;border-top:2px dashed}.sw.box{height:12px;width:14px}
.tri{font-style:normal;margin-right:4px}
table{border-collapse:collapse;width:100%;font-size:13px}
th,td{border-bottom:1px solid #e3e8ee;padding:4px 6px;text-align:left;vertical-align:top}
th{background:#eef1f4;font-weight:600}.num{text-align:right;font-variant-numeric:tabular-nums}
td.d,.nw{white-space:nowrap}.scroll{overflow-x:auto}td small{display:block;color:#5b6570;font-size:11px}
tr.c-opioid td:first-child{border-left:4px solid #1f4e99}tr.c-benzodiazepine td:first-child{border-left:4px solid #f39c12}
tr.mine td,tr.mine{background:#fff4c2}tr.hot td{background:#fdf0ef}
.mine-note{background:#fff4c2;padding:6px 10px;border-radius:4px}
.two{display:grid;grid-template-columns:1fr 1fr;gap:18px}
.foot{color:#5b6570;font-size:12px;margin-top:14px}
a{color:#1f4e99}
@media print{body{background:#fff}main{padding:0}section.member{break-before:page;border:none}}
"""

_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'"


FOOT = "protected health information for the care of this patient."


def document(title: str, body: str, *, foot: str = FOOT, css: str = "") -> str:
    """A whole page: the shell with the style sheet, the policy that loads nothing, the footer.

    Parameters
    ----------
    title : str
        The page title (escaped here).
    body : str
        The markup inside ``<main>``.
    foot : str
        What the page holds, after "Confidential: " in the footer (escaped here).
    css : str
        Style rules appended to the shared sheet (the caller's own text, not data).

    Returns
    -------
    str
        The HTML document.
    """
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">'
        '<meta name="referrer" content="no-referrer"><meta name="robots" content="noindex">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(title)}</title><style>{_CSS}{css}</style></head><body><main>{body}</main>"
        f'<p class="foot" style="text-align:center">rxrisk {esc(__version__)}. Confidential: '
        f"{esc(foot)}</p></body></html>\n"
    )
