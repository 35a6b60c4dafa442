"""Explanations as files: Grad-CAM overlays (PNG), an interactive Grad-CAM page (Plotly, offline),
highlighted text (HTML and PNG) and a JSON summary."""

from __future__ import annotations

import html
import json
import re
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from skulens.evaluation.html_page import figure_div, page
from skulens.explain.gradcam import ImageMap
from skulens.explain.product import ProductExplanation
from skulens.explain.text_attribution import TextAttribution
from skulens.extras import require_extra

#: Opacity of the heat map over the photo.
OVERLAY_ALPHA = 0.45
SUPPORT_RGB = (22, 163, 74)  # green: the word pushed towards the class
OPPOSE_RGB = (220, 38, 38)  # red: it pushed away


def heat_colours(cam: np.ndarray) -> np.ndarray:
    """A (h, w) map in [0, 1] as (h, w, 3) uint8 colours (matplotlib's "jet")."""
    from matplotlib import colormaps

    return (colormaps["jet"](np.clip(cam, 0.0, 1.0))[..., :3] * 255).astype(np.uint8)


def cam_at(cam: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``cam`` resized to ``size`` (width, height): the map on the original photo (the network saw it squashed)."""
    resized = Image.fromarray((np.clip(cam, 0, 1) * 255).astype(np.uint8)).resize(size, Image.BILINEAR)
    return np.asarray(resized, dtype=np.float32) / 255.0


def overlay(image: Image.Image, cam: np.ndarray, alpha: float = OVERLAY_ALPHA) -> Image.Image:
    """The photo with the Grad-CAM map blended over it (strongest where the map is highest)."""
    base = np.asarray(image.convert("RGB"), dtype=np.float32)
    heat = cam_at(cam, image.size)
    colours = heat_colours(heat).astype(np.float32)
    weight = alpha * (0.3 + 0.7 * heat)[..., None]
    return Image.fromarray((base * (1 - weight) + colours * weight).clip(0, 255).astype(np.uint8))


def gradcam_figure(image: Image.Image, image_map: ImageMap):
    """An interactive Plotly figure: the photo and the Grad-CAM map as a semi-transparent heat map (hover: values)."""
    require_extra("explain", "plotly", feature="the interactive Grad-CAM figure")
    import plotly.graph_objects as go

    width, height = image.size
    heat = cam_at(image_map.cam, (width, height))
    step = max(1, max(width, height) // 160)  # hover grid of about 160 cells a side keeps the page small
    figure = go.Figure()
    figure.add_trace(go.Image(z=np.asarray(image.convert("RGB")), hoverinfo="skip"))
    figure.add_trace(
        go.Heatmap(
            z=heat[::step, ::step],
            x=np.arange(0, width, step),
            y=np.arange(0, height, step),
            colorscale="Jet",
            zmin=0,
            zmax=1,
            opacity=OVERLAY_ALPHA,
            colorbar={"title": "Grad-CAM"},
            hovertemplate="x %{x}, y %{y}<br>Grad-CAM %{z:.2f}<extra></extra>",
        )
    )
    figure.update_layout(
        title=f"{image_map.encoder}: where the photo supports '{image_map.target}'",
        yaxis={"autorange": "reversed", "scaleanchor": "x", "visible": False},
        xaxis={"visible": False},
        margin={"l": 10, "r": 10, "t": 50, "b": 10},
        height=520,
    )
    return figure


def _word_colour(score: float, peak: float) -> str:
    strength = min(abs(score) / peak, 1.0) if peak > 0 else 0.0
    r, g, b = SUPPORT_RGB if score >= 0 else OPPOSE_RGB
    return f"rgba({r},{g},{b},{0.08 + 0.72 * strength:.2f})" if strength > 0 else "transparent"


def text_html(attribution: TextAttribution, scores: list[float] | None = None) -> str:
    """The text with each word's background showing its score (green: supports the class, red: against);
    hovering a word shows its score. ``scores`` (aligned with the words) default to the combined ones."""
    scores = [w.score for w in attribution.words] if scores is None else scores
    peak = max((abs(s) for s in scores), default=0.0)
    parts, cursor = [], 0
    for word, score in zip(attribution.words, scores):
        parts.append(html.escape(attribution.text[cursor : word.start]))
        parts.append(
            f"<span class='w' title='{score:+.3f}' data-score='{score:.6f}' "
            f"style='background:{_word_colour(score, peak)}'>{html.escape(word.text)}</span>"
        )
        cursor = word.end
    parts.append(html.escape(attribution.text[cursor:]))
    return f"<p class='attributed' style='line-height:1.9;font-size:1.05em'>{''.join(parts)}</p>"


def text_png(attribution: TextAttribution, width: int = 900, font_size: int = 22) -> Image.Image:
    """The highlighted text as a picture (for documents that cannot show coloured HTML)."""
    font = ImageFont.load_default(size=font_size)
    scores = [w.score for w in attribution.words]
    peak = max((abs(s) for s in scores), default=0.0)
    tokens = [(m.group(), m.start()) for m in re.finditer(r"\S+", attribution.text)]
    by_start = {w.start: w for w in attribution.words}
    margin, line_height, space = 16, int(font_size * 1.6), font.getlength(" ")
    lines: list[list[tuple[str, int]]] = [[]]
    x = margin
    for token, start in tokens:
        length = font.getlength(token)
        if x + length > width - margin and lines[-1]:
            lines.append([])
            x = margin
        lines[-1].append((token, start))
        x += length + space
    canvas = Image.new("RGB", (width, margin * 2 + line_height * len(lines)), "white")
    draw = ImageDraw.Draw(canvas, "RGBA")
    for row, line in enumerate(lines):
        x, y = margin, margin + row * line_height
        for token, start in line:
            cursor = x
            for match in re.finditer(r"\w+|\W+", token):  # colour only the word part of "pan," etc.
                piece = match.group()
                length = font.getlength(piece)
                word = by_start.get(start + match.start())
                if word is not None and peak > 0 and word.score != 0:
                    strength = min(abs(word.score) / peak, 1.0)
                    rgb = SUPPORT_RGB if word.score > 0 else OPPOSE_RGB
                    draw.rectangle(
                        [cursor - 1, y - 2, cursor + length + 1, y + font_size + 4], fill=(*rgb, int(30 + 170 * strength))
                    )
                draw.text((cursor, y), piece, fill="black", font=font)
                cursor += length
            x += font.getlength(token) + space
    return canvas


def _modality_html(explanation: ProductExplanation) -> str:
    m = explanation.modality
    rows = []
    for name, view, shift in (("photo", m.image, m.image_shift), ("text", m.text, m.text_shift)):
        if view is None:
            continue
        moved = "" if shift is None else f"{shift:+.2f}"
        rows.append(
            f"<tr><td>{name}</td><td>{html.escape(view.top)} ({view.top_probability:.1%})</td>"
            f"<td>{view.target_probability:.1%}</td><td>{moved}</td></tr>"
        )
    table = (
        "<table><tr><th>modality</th><th>alone predicts</th><th>alone gives the target</th>"
        "<th>moved the target's fused log-odds by</th></tr>" + "".join(rows) + "</table>"
        if rows
        else ""
    )
    flag = "<p><strong>Conflict: photo and text disagree.</strong></p>" if m.conflict else ""
    return f"<h2>Photo and text</h2>{flag}<p>{html.escape(m.statement)}</p>{table}"


def explanation_page(explanation: ProductExplanation, with_figures: bool = True) -> str:
    """One self-contained HTML page: prediction, modality contributions, Grad-CAM figures, highlighted text."""
    top = "".join(f"<li>{html.escape(c)}: {p:.1%}</li>" for c, p in explanation.top())
    body = [
        f"<p>Explained class: <strong>{html.escape(explanation.target)}</strong> "
        f"({explanation.proba[explanation.classes.index(explanation.target)]:.1%}); predicted: "
        f"{html.escape(explanation.predicted)}.</p><ul>{top}</ul>",
        _modality_html(explanation),
    ]
    if explanation.image is not None and explanation.image_maps and with_figures:
        body.append("<h2>Where the photo supports the class (Grad-CAM)</h2>")
        body.extend(figure_div(gradcam_figure(explanation.image, m)) for m in explanation.image_maps)
    if explanation.text is not None:
        body.append(
            "<h2>Which words support the class</h2><p class='note'>Green: the word pushed towards the class, red: away; "
            "hover a word for its score (change of the class's fused log-odds, nats).</p>"
        )
        body.append(text_html(explanation.text))
        for name, scores in explanation.text.blocks.items():
            body.append(f"<h3>{html.escape(name)}</h3><p class='note'>{html.escape(explanation.text.methods[name])}</p>")
            body.append(text_html(explanation.text, scores))
    if explanation.notes:
        body.append("<h2>Notes</h2><ul>" + "".join(f"<li>{html.escape(n)}</li>" for n in explanation.notes) + "</ul>")
    return page(f"Why {explanation.target}?", "".join(body), with_plotly=with_figures and bool(explanation.image_maps))


def save_explanation(explanation: ProductExplanation, out: str | Path) -> list[Path]:
    """Write ``explanation.json``, ``explanation.html`` (interactive), ``gradcam-<encoder>.png`` overlays and
    ``text.html`` / ``text.png`` into ``out``; returns the paths written."""
    folder = Path(out).expanduser()
    folder.mkdir(parents=True, exist_ok=True)
    written = [folder / "explanation.json", folder / "explanation.html"]
    written[0].write_text(json.dumps(explanation.to_dict(), indent=2), encoding="utf-8")
    written[1].write_text(explanation_page(explanation), encoding="utf-8")
    if explanation.image is not None:
        for image_map in explanation.image_maps:
            path = folder / f"gradcam-{re.sub(r'[^A-Za-z0-9_.-]+', '_', image_map.encoder)}.png"
            overlay(explanation.image, image_map.cam).save(path)
            written.append(path)
    if explanation.text is not None and explanation.text.words:
        (folder / "text.html").write_text(page(f"Words for {explanation.target}", text_html(explanation.text)), encoding="utf-8")
        text_png(explanation.text).save(folder / "text.png")
        written += [folder / "text.html", folder / "text.png"]
    return written
