"""``skulens explore`` (EDA report and embedding maps) and ``skulens drift`` (reference vs current catalog)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from skulens.cli.commands import Command, flag
from skulens.cli.output import console, fail, note
from skulens.cli.sources import Columns, ImageRoots, Label, Source, label_value, load_source

Out = Annotated[Path, typer.Option("--out", "-o", metavar="DIR", help="Folder for the HTML report.")]


def explore(
    source: Source,
    out: Out,
    maps: Annotated[bool, flag("--maps", help="Also write maps.html: t-SNE and UMAP maps of each encoder's embeddings.")] = False,
    encoders: Annotated[
        list[str] | None,
        typer.Option(
            "--encoders", "-e", metavar="NAME", help="Encoders for --maps (default: tfidf, minilm, efficientnet-lite0)."
        ),
    ] = None,
    methods: Annotated[str, typer.Option(metavar="tsne,umap", help="Map projections for --maps.")] = "tsne,umap",
    label: Label = "0",
    max_images: Annotated[int, typer.Option(metavar="N", help="Images sampled for size/colour statistics.")] = 2000,
    max_map_rows: Annotated[int, typer.Option(metavar="N", help="Rows sampled for the maps.")] = 2000,
    columns: Columns = None,
    image_root: ImageRoots = None,
) -> None:
    """Write an exploration report of a catalog: classes and balance, text lengths, images, duplicates, examples.

    Example: skulens explore flipkart --out runs/explore --maps
    """
    from skulens.catalog import CatalogError
    from skulens.encoders import EncoderError
    from skulens.evaluation.explore import explore_catalog

    catalog = load_source(source, columns, image_root, uses=[label])
    maps_page = None
    try:
        if maps:
            from skulens.evaluation.maps import write_maps

            chosen = encoders or [
                name
                for name, needed in (("tfidf", "title"), ("minilm", "title"), ("efficientnet-lite0", "image"))
                if catalog.has(needed)
            ]
            wanted = [m.strip() for m in methods.split(",") if m.strip()]
            maps_page = write_maps(
                catalog, chosen, out, label=label_value(label), methods=wanted, max_rows=max_map_rows, log=note
            ).name
        page = explore_catalog(catalog, out, max_images=max_images, maps_page=maps_page)
    except (CatalogError, EncoderError, ValueError) as exc:
        raise fail(str(exc)) from None
    console.print(f"report: {page}" + (f"; maps: {out / maps_page}" if maps_page else ""))


def drift(
    reference: Annotated[str, typer.Argument(metavar="REFERENCE", help="The catalog the model was built for (DATA).")],
    current: Annotated[str, typer.Argument(metavar="CURRENT", help="The catalog to check against it (DATA).")],
    model: Annotated[
        Path, typer.Option("--model", "-m", metavar="MODEL", help="A model folder from `skulens categorize train`.")
    ],
    out: Out,
    max_rows: Annotated[int, typer.Option(metavar="N", help="Rows sampled from each catalog.")] = 500,
    alpha: Annotated[float, typer.Option(metavar="P", help="Significance level for the whole family of tests.")] = 0.05,
    permutations: Annotated[int, typer.Option(metavar="N", help="Permutations for the embedding (MMD) tests.")] = 500,
    fail_on_drift: Annotated[
        bool, flag("--fail-on-drift", help="Exit with code 1 when drift is found (for monitoring jobs).")
    ] = False,
    columns: Columns = None,
    image_root: ImageRoots = None,
) -> None:
    """Compare two catalogs through a model: embedding shift per encoder, prediction/label/confidence shift.

    Example: skulens drift last_month.csv this_month.csv --model runs/flipkart-model --out runs/drift
    """
    from skulens.evaluation.drift import detect_drift, write_drift_report
    from skulens.tasks.categorize import CategoryPredictor

    predictor = CategoryPredictor.load(model)
    ref_catalog = load_source(reference, columns, image_root)
    cur_catalog = load_source(current, columns, image_root)
    report = detect_drift(ref_catalog, cur_catalog, predictor, alpha=alpha, max_rows=max_rows, permutations=permutations)
    page = write_drift_report(report, out)
    for test in report.tests:
        console.print(
            f"  {test.name:<28} {test.kind:<10} p = {test.p_value:.4g}{'  DRIFT' if test.name in report.drifted else ''}"
        )
    console.print(f"verdict: {report.verdict} (threshold p < {report.threshold:.4g}); report: {page}")
    if fail_on_drift and report.drifted:
        raise typer.Exit(code=1)


def register(main: typer.Typer) -> None:
    """Add ``explore`` and ``drift``."""
    main.command("explore", cls=Command, rich_help_panel="Monitoring")(explore)
    main.command("drift", cls=Command, rich_help_panel="Monitoring")(drift)
