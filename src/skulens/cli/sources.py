"""Reading catalogs and reviews from the command line: the shared options (``--columns``,
``--image-root``, ``--label``), the mapping line and warnings, and the one-line image summary."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from skulens.cli.output import fail, note, warn

if TYPE_CHECKING:
    from skulens.catalog import Catalog, RowIssue

SOURCE_HELP = "A built-in dataset (flipkart, myntra, reviews) or your file (CSV, TSV, Parquet, JSON Lines)."

Source = Annotated[str, typer.Argument(metavar="DATA", help=SOURCE_HELP, show_default=False)]
Columns = Annotated[
    str | None,
    typer.Option(
        "--columns",
        metavar="SCHEMA=COLUMN,...",
        help="Map your column names to skulens' (id, title, description, image, category, rating, review_text), "
        "e.g. title=product_name,image=img. Common names are detected without it.",
        show_default=False,
    ),
]
ImageRoots = Annotated[
    list[Path] | None,
    typer.Option(
        "--image-root",
        metavar="DIR",
        help="A folder images may be read from besides the catalog's own (repeat for several; symlinks are resolved).",
        show_default=False,
    ),
]
Label = Annotated[
    str,
    typer.Option(metavar="LEVEL|COLUMN", help="Category level (0 = coarsest) or a column name, e.g. masterCategory."),
]


def label_value(value: str) -> int | str:
    """``"0"`` -> level 0; anything else is a column name."""
    return int(value) if value.isdigit() else value


def load_source(source: str, columns: str | None = None, image_roots: Sequence[Path] | None = None, uses: Iterable[str] = ()):
    """A catalog by dataset name or file, reporting how its columns were mapped (exits 2 on bad input).

    ``uses`` names extra columns the command reads (a label or grouping column), so they are not
    reported as ignored.
    """
    from skulens.catalog import ADAPTERS, load_catalog, parse_columns

    roots = list(image_roots or [])
    for root in roots:
        if not root.is_dir():
            raise fail(f"--image-root {root} is not a folder")
    catalog = load_catalog(source, columns=parse_columns(columns), image_roots=roots)
    if source not in ADAPTERS:
        report_mapping(catalog, uses)
    return catalog


def load_reviews_source(source: str, columns: str | None = None, uses: Iterable[str] = ()):
    """Reviews by dataset name (``reviews``) or file, with the same mapping and notes as catalogs."""
    from skulens.catalog import ADAPTERS, load_catalog, parse_columns, read_reviews

    if source in ADAPTERS:
        return load_catalog(source, columns=parse_columns(columns))
    catalog = read_reviews(Path(source), columns=parse_columns(columns))
    report_mapping(catalog, uses)
    return catalog


def report_mapping(catalog: Catalog, uses: Iterable[str] = ()) -> None:
    """Print which columns were mapped (given or detected) and warn about the columns left unused."""
    mapping = catalog.mapping
    parts = [f"{schema} <- {source}" for schema, source in mapping.given.items()]
    parts += [f"{schema} <- {source} (detected)" for schema, source in mapping.detected.items()]
    if parts:
        note(f"columns of {catalog.name}: " + ", ".join(parts))
    used = set(uses)
    replaced = {c: why for c, why in mapping.ignored.items() if c not in used and why.startswith("replaced")}
    unused = [c for c, why in mapping.ignored.items() if c not in used and c not in replaced]
    for column, why in replaced.items():
        warn(f"column '{column}' is ignored: {why}")
    if unused:
        shown = ", ".join(f"'{c}'" for c in unused[:12]) + (f" and {len(unused) - 12} more" if len(unused) > 12 else "")
        warn(
            f"{len(unused)} column(s) of {catalog.name} are not used: {shown}; skulens reads id, title, description, "
            "image, category, rating, review_text (map one with --columns SCHEMA=COLUMN)"
        )


def report_images(catalog: Catalog, found: Sequence[RowIssue] = (), issues_file: Path | None = None, images: bool = True) -> None:
    """Write every row issue to ``issues_file`` (when given) and, when the run read ``images``, print one
    line counting the images that could not be used."""
    from skulens.catalog import image_summary, write_issues

    if issues_file is not None:
        issues_file.parent.mkdir(parents=True, exist_ok=True)
        write_issues([*catalog.issues, *found], issues_file)
    line = image_summary(catalog, found) if images else None
    if line is None:
        return
    if "outside the image roots" in line:
        line += " (declare their folder with --image-root DIR)"
    warn(line + (f" — see {issues_file}" if issues_file is not None else ""))


def reads_images(encoders: Iterable[str]) -> bool:
    """Whether any of the named encoders reads images (from the registry, without loading a model)."""
    from skulens.encoders import encoder_info

    return any(encoder_info(name).modality == "image" for name in encoders)
