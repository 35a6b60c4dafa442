"""One report, two renderings: ``report.md`` (figures linked as PNG files beside it) and a self-contained
``report.html`` (inline CSS, figures and thumbnails as base64 data URIs; no script, no external asset)."""

from __future__ import annotations

import base64
import html
import io
import re
from collections.abc import Sequence
from pathlib import Path

CSS = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2em auto; max-width: 1200px; color: #222; padding: 0 1em; }
h1 { font-size: 1.6em; } h2 { font-size: 1.25em; border-bottom: 1px solid #ddd; padding-bottom: .2em; margin-top: 1.8em; }
h3 { font-size: 1.05em; }
table { border-collapse: collapse; margin: .6em 0 1.2em; font-size: 13px; }
th, td { border: 1px solid #ddd; padding: 4px 8px; text-align: left; vertical-align: top; }
th { background: #f3f5f8; } tr:nth-child(even) td { background: #fafbfc; }
code { background: #f3f3f3; padding: 1px 4px; border-radius: 3px; font-size: 12px; word-break: break-word; }
figure { display: inline-block; margin: .5em 1em .5em 0; vertical-align: top; }
figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { font-size: 12px; color: #555; }
.gallery { display: flex; flex-wrap: wrap; gap: 10px; }
.card { width: 170px; border: 1px solid #ddd; border-radius: 4px; padding: 6px; font-size: 12px; }
.card img { width: 156px; height: 156px; object-fit: contain; background: #f6f6f6; display: block; margin-bottom: 4px; }
.card .noimg { width: 156px; height: 156px; background: #eee; color: #888; display: flex; align-items: center; justify-content: center; }
.true { color: #2a7a2a; } .pred { color: #b3261e; }
"""


def data_uri(data: bytes, mime: str) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def thumbnail_uri(image_bytes: bytes, size: int = 156) -> str | None:
    """A JPEG thumbnail of encoded image bytes as a data URI (``None`` if the bytes do not decode)."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(image_bytes)) as image:
            image.draft("RGB", (size * 2, size * 2))
            image = image.convert("RGB")
            image.thumbnail((size, size))
            buffer = io.BytesIO()
            image.save(buffer, format="JPEG", quality=80)
    except (OSError, ValueError, Image.DecompressionBombError):
        return None
    return data_uri(buffer.getvalue(), "image/jpeg")


def _inline(text: str) -> str:
    """Escaped text with markdown's `code` and **bold** turned into HTML."""
    text = html.escape(text)
    text = re.sub(r"`([^`]+)`", r"<code>\1</code>", text)
    return re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", text)


def _cell(value) -> str:
    if isinstance(value, float):
        return f"{value:.3f}"
    if isinstance(value, (list, tuple)):
        return " + ".join(map(str, value))
    return "" if value is None else str(value)


class Report:
    """Sections added in order; :meth:`write` renders both files into one folder."""

    def __init__(self, title: str) -> None:
        self.title = title
        self.md: list[str] = [f"# {title}", ""]
        self.html: list[str] = [f"<h1>{html.escape(title)}</h1>"]

    def heading(self, text: str, level: int = 2) -> None:
        self.md += ["#" * level + " " + text, ""]
        self.html.append(f"<h{level}>{_inline(text)}</h{level}>")

    def paragraph(self, text: str) -> None:
        self.md += [text, ""]
        self.html.append(f"<p>{_inline(text)}</p>")

    def table(self, rows: Sequence[dict], columns: Sequence[tuple[str, str]]) -> None:
        """``columns`` are (key, header); floats get 3 decimals, lists are joined with ' + '."""
        cells = self._markdown_table(rows, columns)
        head = "".join(f"<th>{html.escape(h)}</th>" for _, h in columns)
        body = "".join("<tr>" + "".join(f"<td>{_inline(c)}</td>" for c in row) + "</tr>" for row in cells)
        self.html.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")

    def _markdown_table(self, rows: Sequence[dict], columns: Sequence[tuple[str, str]]) -> list[list[str]]:
        cells = [[_cell(row.get(key)) for key, _ in columns] for row in rows]
        self.md.append("| " + " | ".join(h for _, h in columns) + " |")
        self.md.append("|" + "|".join("---" for _ in columns) + "|")
        self.md += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in cells]
        self.md.append("")
        return cells

    def figures(self, figures: Sequence[tuple[Path, str]]) -> None:
        """PNG files (written beside the report) shown side by side, each with a caption."""
        self.md += [" ".join(f"![{caption}]({path.name})" for path, caption in figures), ""]
        for path, caption in figures:
            uri = data_uri(Path(path).read_bytes(), "image/png")
            self.html.append(
                f'<figure><img src="{uri}" alt="{html.escape(caption)}"><figcaption>{_inline(caption)}</figcaption></figure>'
            )

    def gallery(self, items: Sequence[dict]) -> None:
        """Product cards: ``thumbnail`` (data URI or None), ``title``, ``true``, ``predicted``, ``confidence``.
        The markdown gets the same rows as a table (no thumbnails)."""
        self._markdown_table(
            items, [("title", "title"), ("true", "true class"), ("predicted", "predicted"), ("confidence", "confidence")]
        )
        self.md.append("(Thumbnails are in report.html.)")
        self.md.append("")
        cards = []
        for item in items:
            picture = (
                f'<img src="{item["thumbnail"]}" alt="product image">'
                if item.get("thumbnail")
                else '<div class="noimg">no image</div>'
            )
            cards.append(
                f'<div class="card">{picture}<div>{html.escape(str(item.get("title", ""))[:90])}</div>'
                f'<div class="true">true: {html.escape(str(item["true"]))}</div>'
                f'<div class="pred">predicted: {html.escape(str(item["predicted"]))} ({float(item["confidence"]):.2f})</div></div>'
            )
        self.html.append('<div class="gallery">' + "".join(cards) + "</div>")

    def render_html(self) -> str:
        return (
            '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{html.escape(self.title)}</title><style>{CSS}</style></head><body>\n"
            + "\n".join(self.html)
            + "\n</body></html>\n"
        )

    def write(self, out: Path, stem: str = "report") -> Path:
        """Write ``<stem>.md`` and ``<stem>.html`` into ``out``; returns the HTML path."""
        out.mkdir(parents=True, exist_ok=True)
        (out / f"{stem}.md").write_text("\n".join(self.md) + "\n", encoding="utf-8")
        path = out / f"{stem}.html"
        path.write_text(self.render_html(), encoding="utf-8")
        return path
