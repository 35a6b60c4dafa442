"""Build the API reference (HTML, one page per module) from skulens' docstrings with pdoc.

    python scripts/build_docs.py [OUT]      (default: docs/api; `make docs`, and part of `make test`)

Exits 1 when a module cannot be imported or pdoc warns about anything but the lazy names of a package's
``__all__`` (``skulens.cli.app``, ``skulens.heads.MLPProbe``: loaded on first use by design).
"""

from __future__ import annotations

import shutil
import sys
import warnings
from pathlib import Path

import pdoc
import pdoc.render

#: Modules that run something when imported: the Streamlit script and ``python -m skulens.cli``.
EXCLUDED = ("!skulens.ui.app", "!skulens.cli.__main__")
#: pdoc's warning for a name in ``__all__`` that a module-level ``__getattr__`` provides.
LAZY_NAME = "but it does not resolve"


def build(out: Path) -> list[str]:
    """Write the reference into ``out`` (emptied first); returns pdoc's warnings that are real problems."""
    if out.exists():
        shutil.rmtree(out)
    pdoc.render.configure(docformat="restructuredtext", show_source=False, footer_text="skulens API reference")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pdoc.pdoc("skulens", *EXCLUDED, output_directory=out)
    return [str(w.message) for w in caught if "pdoc" in w.filename and LAZY_NAME not in str(w.message)]


def main() -> int:
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "docs/api")
    problems = build(out)
    for problem in problems:
        print(f"error: {problem}", file=sys.stderr)
    if problems or not (out / "skulens.html").is_file():
        print(f"error: the API reference in {out} is incomplete", file=sys.stderr)
        return 1
    pages = sum(1 for _ in out.rglob("*.html"))
    print(f"API reference: {pages} pages in {out} (open {out / 'index.html'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
