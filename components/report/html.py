"""Minimal HTML building for the report: escaping, number formatting, tables, figures, one inline stylesheet.

Why no template engine: the report must open offline from a single file, and these few helpers are all it needs;
everything user-provided (file names, reject reasons, channel names) goes through :func:`esc`.
"""
from __future__ import annotations

import html
import math
from typing import Any, Iterable, Sequence

CSS = """
body{font:14px/1.45 -apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;margin:0;color:#1d2330;background:#f5f6f8}
header{background:#1d2330;color:#fff;padding:18px 32px}header h1{margin:0;font-size:22px}
header p{margin:4px 0 0;color:#b9c0cc}
main{max-width:1180px;margin:0 auto;padding:8px 24px 40px}
section{background:#fff;border:1px solid #dde1e7;border-radius:6px;margin:18px 0;padding:6px 20px 16px}
h2{font-size:18px;border-bottom:1px solid #e6e9ee;padding-bottom:6px}h3{font-size:15px;margin:18px 0 6px}
table{border-collapse:collapse;margin:6px 0 12px;font-size:13px}
th,td{border:1px solid #e0e3e8;padding:4px 9px;text-align:right;white-space:nowrap}
th{background:#f0f2f5}td.l,th.l{text-align:left;white-space:normal}
tr.best td{background:#eef8ee}
img{max-width:100%;height:auto;display:block;margin:6px 0}
.note{color:#5b6474;font-size:13px}.warn{color:#9a3b00}
.kpis{display:flex;flex-wrap:wrap;gap:10px;margin:10px 0}
.kpi{border:1px solid #dde1e7;border-radius:6px;padding:8px 14px;min-width:120px}
.kpi b{display:block;font-size:18px}.kpi span{color:#5b6474;font-size:12px}
"""


def esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def fmt(value: Any, digits: int = 4) -> str:
    """Numbers compactly (``n/a`` for None/NaN), everything else escaped."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return esc(value)


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]], left: int = 1,
          highlight: set[int] | None = None) -> str:
    """A table; the first ``left`` columns are left-aligned text, cells are formatted with :func:`fmt`."""
    head = "".join(f'<th class="l">{esc(h)}</th>' if i < left else f"<th>{esc(h)}</th>"
                   for i, h in enumerate(headers))
    body = []
    for r, row in enumerate(rows):
        cells = "".join(f'<td class="l">{fmt(c)}</td>' if i < left else f"<td>{fmt(c)}</td>"
                        for i, c in enumerate(row))
        body.append(f'<tr{" class=best" if highlight and r in highlight else ""}>{cells}</tr>')
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def figure(png_base64: str | None, alt: str) -> str:
    if not png_base64:
        return ""
    return f'<img alt="{esc(alt)}" src="data:image/png;base64,{png_base64}">'


def kpis(items: Iterable[tuple[str, Any]]) -> str:
    return '<div class="kpis">' + "".join(f'<div class="kpi"><b>{fmt(v)}</b><span>{esc(k)}</span></div>'
                                          for k, v in items) + "</div>"


def section(title: str, body: str, anchor: str) -> str:
    return f'<section id="{esc(anchor)}"><h2>{esc(title)}</h2>{body}</section>'


def page(title: str, subtitle: str, sections: Sequence[str]) -> str:
    return ("<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\"><title>{esc(title)}</title>"
            f"<style>{CSS}</style></head><body><header><h1>{esc(title)}</h1><p>{esc(subtitle)}</p></header>"
            f"<main>{''.join(sections)}</main></body></html>\n")
