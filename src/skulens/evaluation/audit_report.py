"""The audit report: ``findings.csv``, ``audit.json`` and a self-contained ``report.html`` (inline
thumbnails, a filter per kind and category, a text filter, sortable columns, counts per category)."""

from __future__ import annotations

import html
import json
from pathlib import Path

import pandas as pd

from skulens.catalog.images import ImageLoadError, decode_image
from skulens.catalog.schema import Catalog
from skulens.evaluation.audit import KINDS, AuditResult
from skulens.evaluation.html_page import page, table, thumbnail_uri
from skulens.evaluation.model_report import _image_bytes
from skulens.outputs import write_csv

#: Rows shown with a thumbnail in the HTML (the rest are in findings.csv).
HTML_ROWS = 500

SCRIPT = """
const rows=[...document.querySelectorAll('#findings tbody tr')];
function apply(){const k=document.getElementById('kind').value,c=document.getElementById('cat').value,
q=document.getElementById('q').value.toLowerCase();let n=0;
for(const r of rows){const ok=(!k||r.dataset.kind===k)&&(!c||r.dataset.cat===c)&&(!q||r.textContent.toLowerCase().includes(q));
r.style.display=ok?'':'none';n+=ok}document.getElementById('shown').textContent=n}
for(const id of ['kind','cat','q'])document.getElementById(id).addEventListener('input',apply);
document.querySelectorAll('#findings th[data-col]').forEach((th,i)=>th.addEventListener('click',()=>{
const col=+th.dataset.col,num=th.dataset.num==='1',dir=th.dataset.dir==='1'?-1:1;th.dataset.dir=dir===1?'1':'0';
const body=document.querySelector('#findings tbody');
rows.sort((a,b)=>{const x=a.children[col].textContent,y=b.children[col].textContent;
return dir*(num?parseFloat(x)-parseFloat(y):x.localeCompare(y))}).forEach(r=>body.appendChild(r))}));
apply();
"""

EXTRA_STYLE = (
    "<style>#findings img{width:72px;height:72px;object-fit:contain}#findings th[data-col]{cursor:pointer}"
    ".filters{display:flex;gap:1em;margin:1em 0}</style>"
)

COLUMNS = [
    "rank",
    "photo",
    "id",
    "kind",
    "column",
    "given",
    "suggested",
    "score",
    "photo_says",
    "text_says",
    "title",
    "category",
    "evidence",
]


def _with_context(result: AuditResult, catalog: Catalog) -> pd.DataFrame:
    """Findings with each row's title and current category (for filters)."""
    frame = result.findings.copy()
    titles = catalog.frame.set_index("id")["title"] if "title" in catalog.frame.columns else pd.Series(dtype=object)
    frame["title"] = frame["id"].map(titles).fillna("")
    label = result.summary.get("label", {}).get("column")
    categories = catalog.labels(label) if label is not None else pd.Series([None] * len(catalog))
    frame["category"] = frame["id"].map(dict(zip(catalog.ids, categories))).fillna("")
    return frame


def write_audit_report(result: AuditResult, catalog: Catalog, out: Path, command: str = "") -> dict[str, Path]:
    """Write findings.csv, audit.json and report.html into ``out``; returns their paths."""
    out.mkdir(parents=True, exist_ok=True)
    frame = _with_context(result, catalog)
    paths = {"csv": out / "findings.csv", "json": out / "audit.json", "html": out / "report.html"}
    write_csv(frame, paths["csv"])  # formula-like cells escaped (the audit page reads them back unescaped)
    document = {"command": command, "catalog": catalog.name, **result.summary, "findings": frame.to_dict(orient="records")}
    paths["json"].write_text(json.dumps(document, indent=2, default=str) + "\n")
    paths["html"].write_text(_html(frame, result, catalog, command))
    return paths


def _thumbnail(catalog: Catalog, row: int | None) -> str:
    """An ``<img>`` with the row's photo as an inline thumbnail ('' without a readable photo)."""
    data = _image_bytes(catalog, row) if row is not None else None
    if not data:
        return ""
    try:
        return f"<img src='{thumbnail_uri(decode_image(data, name=catalog.ids[row]))}' alt=''>"
    except ImageLoadError:
        return ""


def _html(frame: pd.DataFrame, result: AuditResult, catalog: Catalog, command: str) -> str:
    row_of = {row_id: i for i, row_id in enumerate(catalog.ids)}
    counts = [{"kind": kind, "findings": int((frame["kind"] == kind).sum())} for kind in KINDS]
    per_category = (
        frame.groupby(["category", "kind"]).size().unstack(fill_value=0).reset_index()
        if len(frame)
        else pd.DataFrame(columns=["category"])
    )
    shown = frame.head(HTML_ROWS)
    body_rows = []
    for record in shown.to_dict(orient="records"):
        photo = _thumbnail(catalog, row_of.get(record["id"]))
        cells = []
        for column in COLUMNS:
            if column == "photo":
                cells.append(f"<td>{photo}</td>")
            elif column == "score":
                cells.append(f"<td>{record[column]:.3f}</td>")
            else:
                cells.append(f"<td>{html.escape(str(record[column]))}</td>")
        kind, cat = html.escape(record["kind"]), html.escape(str(record["category"]))
        body_rows.append(f"<tr data-kind='{kind}' data-cat='{cat}'>{''.join(cells)}</tr>")
    head = "".join(
        f"<th data-col='{i}' data-num='{int(c in ('rank', 'score'))}'>{c}</th>" if c != "photo" else "<th>photo</th>"
        for i, c in enumerate(COLUMNS)
    )
    kinds = "".join(f"<option>{k}</option>" for k in KINDS)
    cats = "".join(f"<option>{html.escape(str(c))}</option>" for c in sorted(frame["category"].astype(str).unique()) if c)
    notes = "".join(f"<li>{html.escape(n)}</li>" for n in result.notes)
    body = (
        EXTRA_STYLE
        + f"<p class='note'>{len(catalog):,} products audited; command: <code>{html.escape(command)}</code></p>"
        + (f"<ul class='note'>{notes}</ul>" if notes else "")
        + "<h2>Findings per kind</h2>"
        + table(counts)
        + "<h2>Findings per category</h2>"
        + table(per_category.to_dict(orient="records"))
        + f"<h2>Ranked findings</h2><p class='note'>{len(shown):,} of {len(frame):,} shown here (all in findings.csv); "
        "click a column to sort. <span id='shown'></span> match the filters.</p>"
        + "<div class='filters'><label>kind <select id='kind'><option value=''>all</option>"
        + kinds
        + "</select></label><label>category <select id='cat'><option value=''>all</option>"
        + cats
        + "</select></label><label>text <input id='q' placeholder='id, title, value'></label></div>"
        + f"<table id='findings'><thead><tr>{head}</tr></thead><tbody>{''.join(body_rows)}</tbody></table>"
    )
    return page(f"Catalog audit: {catalog.name}", body, script=SCRIPT)
