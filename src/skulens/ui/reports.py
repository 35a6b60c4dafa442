"""Finding and reading saved evaluation reports, confined to one reports root (no Streamlit here).

A report folder holds ``report.md``, ``metrics.json`` and/or ``report.html`` (what ``skulens evaluate``,
``skulens benchmark`` and ``skulens demo`` write). Every path the UI reads is resolved (symlinks
included) and must lie inside the configured reports root.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from skulens.errors import SkulensError

REPORT_FILES = ("report.md", "metrics.json", "report.html")
#: Folders never searched: hidden ones, environments, caches.
SKIP_DIRS = {"__pycache__", "node_modules", ".venv", "venv", "site-packages", "cache", ".cache"}
MAX_DEPTH = 4
MAX_FOLDERS = 5_000


class ReportPathError(SkulensError, ValueError):
    """A folder the Report page may not read: outside the reports root, or not a folder."""

    code = "report_path"


def inside(root: Path, path: Path) -> Path:
    """``path`` with symlinks resolved, if it lies inside ``root`` (also resolved); else :class:`ReportPathError`."""
    resolved_root, resolved = root.resolve(), path.resolve()
    if resolved != resolved_root and resolved_root not in resolved.parents:
        raise ReportPathError(f"{path} is outside the reports folder {resolved_root}; only folders under it are shown")
    return resolved


def subfolder(root: Path, text: str) -> Path:
    """The folder a user typed, relative to ``root`` (or absolute), confined to ``root``."""
    typed = Path(text.strip()).expanduser() if text.strip() else Path(".")
    folder = inside(root, typed if typed.is_absolute() else root / typed)
    if not folder.is_dir():
        raise ReportPathError(f"{typed} is not a folder under {root.resolve()}")
    return folder


def find_reports(folder: Path, root: Path) -> list[Path]:
    """Report folders under ``folder`` (itself included), newest first.

    The walk does not follow symlinks, skips hidden and cache folders, goes at most ``MAX_DEPTH`` levels
    down and looks at no more than ``MAX_FOLDERS`` folders, so a large tree cannot stall the page.
    """
    folder = inside(root, folder)
    found: dict[Path, float] = {}
    seen = 0
    for current, dirs, files in os.walk(folder):
        seen += 1
        depth = len(Path(current).relative_to(folder).parts)
        dirs[:] = [] if depth >= MAX_DEPTH or seen > MAX_FOLDERS else sorted(d for d in dirs if not skipped(d))
        present = [f for f in REPORT_FILES if f in files]
        if present:
            found[Path(current)] = max((Path(current) / f).stat().st_mtime for f in present)
    return sorted(found, key=lambda p: (-found[p], str(p)))


def skipped(name: str) -> bool:
    return name.startswith(".") or name in SKIP_DIRS


@dataclass
class Report:
    """What one report folder holds, read and checked."""

    folder: Path
    markdown: str | None
    html: str | None
    metrics: dict
    metrics_error: str | None
    images: list[Path]

    @property
    def headline(self) -> dict[str, float]:
        """Accuracy, macro-F1, ECE and row count when the metrics have them at the top level."""
        keys = ("accuracy", "macro_f1", "ece", "n")
        return {k: self.metrics[k] for k in keys if isinstance(self.metrics.get(k), (int, float))}

    def per_class(self) -> pd.DataFrame | None:
        """The per-class table from ``metrics.json``, unless ``report.md`` already shows one."""
        table = per_class_metrics(self.metrics)
        if table is None:
            return None
        if self.markdown and all(f"| {name} |" in self.markdown for name in table.index):
            return None
        return table


def per_class_metrics(metrics: dict) -> pd.DataFrame | None:
    """``per_class`` at the top of the metrics, or in one of its sections (e.g. the demo's ``fused``)."""
    candidates = [metrics.get("per_class")] + [v.get("per_class") for v in metrics.values() if isinstance(v, dict)]
    for per_class in candidates:
        if isinstance(per_class, dict) and per_class and all(isinstance(v, dict) for v in per_class.values()):
            frame = pd.DataFrame(per_class).T
            frame.index.name = "class"
            return frame
    return None


def read_report(folder: Path, root: Path) -> Report:
    """Read ``folder``'s report files (each confined to ``root``); images are listed, not loaded."""
    folder = inside(root, folder)

    def text(name: str) -> str | None:
        path = folder / name
        return inside(root, path).read_text(errors="replace") if path.is_file() else None

    markdown = text("report.md")
    if markdown is not None:
        markdown = re.sub(r"!\[[^\]]*\]\([^)]*\)", "", markdown)  # the images are shown on their own
    metrics, error = {}, None
    raw = text("metrics.json")
    if raw is not None:
        try:
            loaded = json.loads(raw)
            metrics = loaded if isinstance(loaded, dict) else {}
        except json.JSONDecodeError as exc:
            error = f"{folder / 'metrics.json'} is not valid JSON: {exc}"
    images = []
    for png in sorted(folder.glob("*.png")):
        try:
            images.append(inside(root, png))
        except ReportPathError:
            continue  # a link out of the reports folder is not shown
    return Report(folder, markdown, text("report.html") if markdown is None else None, metrics, error, images)
