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
CategorySep = Annotated[
    str | None,
    typer.Option(
        "--category-sep",
        metavar="SEP",
        help="How category paths are written: '>>', '>', '|' or '/' (detected when not given), e.g. --category-sep '>' "
        "for 'Apparel > Topwear > Tshirts'.",
        show_default=False,
    ),
]
CategoryColumns = Annotated[
    str | None,
    typer.Option(
        "--category-columns",
        metavar="COL,COL,...",
        help="Build the category path from one column per level, coarse to fine, e.g. masterCategory,subCategory,articleType.",
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


def load_source(
    source: str,
    columns: str | None = None,
    image_roots: Sequence[Path] | None = None,
    uses: Iterable[str] = (),
    category_sep: str | None = None,
    category_columns: str | None = None,
):
    """A catalog by dataset name or file, reporting how its columns were mapped (exits 2 on bad input).

    ``uses`` names extra columns the command reads (a label or grouping column), so they are not
    reported as ignored; ``category_sep`` / ``category_columns`` (comma-separated) say how category paths
    are written.
    """
    from skulens.catalog import ADAPTERS, load_catalog, parse_columns

    roots = list(image_roots or [])
    for root in roots:
        if not root.is_dir():
            raise fail(f"--image-root {root} is not a folder")
    from skulens.catalog.schema import CATEGORY_SEPARATORS

    if category_sep is not None and category_sep not in CATEGORY_SEPARATORS:
        raise fail(f"--category-sep {category_sep!r} is not one of {', '.join(CATEGORY_SEPARATORS)}")
    levels = [c.strip() for c in category_columns.split(",") if c.strip()] if category_columns else None
    catalog = load_catalog(
        source, columns=parse_columns(columns), image_roots=roots, category_sep=category_sep, category_columns=levels
    )
    if source not in ADAPTERS:
        report_mapping(catalog, [*uses, *(levels or [])])
        if catalog.has("category") and catalog.category_sep != ">>" and not levels:
            note(f"category paths of {catalog.name} are split on '{catalog.category_sep}'")
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
            f"{len(unused)} column(s) of {catalog.name} are not used by this command: {shown}; it reads id, title, "
            "description, image, category, rating, review_text (map one with --columns SCHEMA=COLUMN); other columns "
            "serve as --label COLUMN, --attributes, caption attributes and search --where filters"
        )


def report_issues(
    catalog: Catalog, found: Sequence[RowIssue] = (), issues_file: Path | None = None, images: bool = True
) -> list[RowIssue]:
    """The run's row issues (the catalog's own plus ``found``; image problems only when the run read
    ``images``): written to ``issues_file`` (when given) and counted in one warning line. Returned so the
    command can fill its ``issue`` column."""
    from skulens.catalog import issue_summary, row_issues, write_issues

    issues = row_issues(catalog, found if images else [i for i in found if i.column != "image"])
    if issues_file is not None:
        issues_file.parent.mkdir(parents=True, exist_ok=True)
        write_issues(issues, issues_file)
    line = issue_summary(catalog, issues, str(issues_file) if issues_file is not None else None)
    if line is not None:
        if any("outside the image roots" in issue.message for issue in issues):
            line += " (declare image folders with --image-root DIR)"
        warn(line)
    return issues


def reads_images(encoders: Iterable[str]) -> bool:
    """Whether any of the named encoders reads images (from the registry, without loading a model)."""
    from skulens.encoders import encoder_info

    return any(encoder_info(name).modality == "image" for name in encoders)
