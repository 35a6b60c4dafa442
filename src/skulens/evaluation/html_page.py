"""Self-contained HTML pages: inline CSS, inline plotly.js (never a CDN), inline base64 thumbnails."""

from __future__ import annotations

import base64
import html
import io
from typing import Any

from PIL import Image

STYLE = """body{font-family:system-ui,sans-serif;margin:2em auto;max-width:75em;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:.5em 0 1.5em}td,th{border:1px solid #ccc;padding:3px 8px;text-align:left;font-size:.9em}
th{background:#f3f3f3}h2{border-bottom:2px solid #ddd;padding-bottom:.2em;margin-top:2em}
.thumbs{display:flex;flex-wrap:wrap;gap:6px}.thumbs figure{margin:0;width:110px;font-size:.7em}
.thumbs img{width:96px;height:96px;object-fit:contain;background:#fafafa;border:1px solid #eee}
.note{color:#666;font-size:.9em}"""


def thumbnail_uri(image: Image.Image, size: int = 96) -> str:
    """A JPEG thumbnail (longest side ``size``) as a ``data:`` URI."""
    copy = image.copy()
    copy.thumbnail((size, size))
    buffer = io.BytesIO()
    copy.convert("RGB").save(buffer, format="JPEG", quality=80)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def table(rows: list[dict[str, Any]], columns: list[str] | None = None, table_id: str | None = None) -> str:
    """An HTML table of ``rows`` (floats with 3 decimals); every cell escaped."""
    if not rows:
        return "<p class='note'>none</p>"
    columns = columns or list(rows[0])

    def cell(value: Any) -> str:
        return f"{value:.3f}" if isinstance(value, float) else html.escape(str(value))

    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{cell(row.get(c, ''))}</td>" for c in columns) + "</tr>" for row in rows)
    attribute = f" id='{table_id}'" if table_id else ""
    return f"<table{attribute}><tr>{head}</tr>{body}</table>"


def figure_div(figure: Any, div_id: str | None = None) -> str:
    """A Plotly figure as a ``<div>`` (plotly.js comes once from :func:`page`)."""
    return figure.to_html(full_html=False, include_plotlyjs=False, div_id=div_id, config={"displaylogo": False})


def page(title: str, body: str, with_plotly: bool = False, script: str = "") -> str:
    """A complete HTML document; ``with_plotly`` embeds plotly.js inline."""
    plotly_js = ""
    if with_plotly:
        from plotly.offline import get_plotlyjs

        plotly_js = f"<script>{get_plotlyjs()}</script>"
    return (
        f"<!doctype html>\n<html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{STYLE}</style>{plotly_js}</head><body><h1>{html.escape(title)}</h1>{body}"
        f"{f'<script>{script}</script>' if script else ''}</body></html>\n"
    )
