"""``skulens audit``: find the listings that are probably wrong (category, photo/title, attributes, duplicates)."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Annotated

import typer

from skulens.cli.output import console, fail, note, warn
from skulens.cli.sources import Columns, ImageRoots, Label, Source, label_value, load_source

Corrections = Annotated[
    Path | None,
    typer.Option(
        "--corrections",
        metavar="FILE",
        help="A corrections file (id, column, old, new, source) applied before anything else; refused rows are reported.",
        show_default=False,
    ),
]


def apply_corrections_file(catalog, corrections: Path | None):
    """The catalog with ``corrections`` applied (exits 2 on an unreadable file; refused rows are warned)."""
    if corrections is None:
        return catalog
    from skulens.catalog import CatalogError
    from skulens.catalog.corrections import apply_corrections, read_corrections

    try:
        result = apply_corrections(catalog, read_corrections(corrections), source_name=str(corrections))
    except CatalogError as exc:
        raise fail(str(exc)) from None
    for issue in result.refused:
        warn(issue.message)
    note(f"{corrections}: {result.applied} correction(s) applied, {len(result.refused)} refused")
    return result.catalog


def audit(
    source: Source,
    out: Annotated[Path, typer.Option("--out", "-o", metavar="DIR", help="Folder for report.html, findings.csv, audit.json.")],
    label: Label = "0",
    model: Annotated[
        Path | None,
        typer.Option(
            metavar="MODEL",
            help="A `categorize train` model folder: its encoders are used, and on a catalog without labels its "
            "photo-only and text-only predictions give the photo/title conflicts.",
            show_default=False,
        ),
    ] = None,
    encoders: Annotated[
        list[str] | None,
        typer.Option(
            "--encoders", "-e", metavar="NAME", help="Encoders of the probes (default: efficientnet-lite0, minilm, tfidf)."
        ),
    ] = None,
    attributes: Annotated[
        str | None,
        typer.Option(
            metavar="COL,COL", help="Categorical columns to audit and fill, e.g. colour,gender,usage,season.", show_default=False
        ),
    ] = None,
    corrections: Corrections = None,
    folds: Annotated[int, typer.Option(metavar="N", help="Grouped cross-validation folds.")] = 5,
    max_values: Annotated[int, typer.Option(metavar="N", help="An attribute keeps at most its N most frequent values.")] = 30,
    seed: Annotated[int, typer.Option(metavar="N", help="Random seed (folds and probes).")] = 0,
    columns: Columns = None,
    image_root: ImageRoots = None,
) -> None:
    """Audit a catalog: probable mislabels (cleanlab on cross-validated photo + text probabilities) with the
    suggested category, photo/title conflicts, wrong or missing attributes, near-duplicate groups.

    Example: skulens audit myntra --label articleType --attributes colour,gender,usage,season --out runs/audit
    """
    from skulens.catalog import CatalogError
    from skulens.evaluation.audit import AuditSettings, CatalogAuditor
    from skulens.evaluation.audit_report import write_audit_report
    from skulens.heads import HeadError
    from skulens.tasks.model_folder import ModelFolderError

    names = [a.strip() for a in (attributes or "").split(",") if a.strip()]
    level = None if label.lower() in ("", "none") else label_value(label)
    catalog = load_source(source, columns, image_root, uses=[label, *names])
    catalog = apply_corrections_file(catalog, corrections)
    predictor = None
    try:
        if model is not None:
            from skulens.tasks.categorize import CategoryPredictor

            predictor = CategoryPredictor.load(model)
            encoders = encoders or list(predictor.encoders)
        settings = AuditSettings(label=level, attributes=tuple(names), folds=folds, seed=seed, max_values=max_values)
        if encoders:
            settings = AuditSettings(**{**settings.__dict__, "encoders": tuple(encoders)})
        result = CatalogAuditor(settings, progress=note).run(catalog, predictor)
        result.summary["source"] = str(Path(source).resolve()) if Path(source).exists() else source
        command = "skulens " + shlex.join(sys.argv[1:]) if sys.argv and Path(sys.argv[0]).name == "skulens" else ""
        paths = write_audit_report(result, catalog, out, command=command or f"skulens audit {source} --label {label}")
    except (CatalogError, HeadError, ModelFolderError, ValueError) as exc:
        raise fail(str(exc)) from None
    for line in result.notes:
        warn(line)
    counts = ", ".join(f"{n} {kind}" for kind, n in result.summary["counts"].items())
    console.print(f"{len(result.findings):,} findings ({counts})")
    console.print(f"report: {paths['html']}  findings: {paths['csv']}  summary: {paths['json']}")


def register(app: typer.Typer) -> None:
    app.command("audit")(audit)
