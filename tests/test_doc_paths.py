"""Every source path and module the docs name exists: ``src/skulens/...`` files, ``benchmarks/`` and ``tests/``
files, package-relative paths such as ``heads/caption_vocab.py``, and dotted names such as ``skulens.tasks.inputs``
(a module, or a name defined in one)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "skulens"
DOCS = sorted((ROOT / "docs").glob("*.md")) + [ROOT / "README.md"]

#: ``src/skulens/x/y.py``, ``skulens/x.py``, ``benchmarks/x.py``, ``tests/test_x.py`` or ``heads/x.py`` (in backticks).
PATH = re.compile(r"`((?:src/)?(?:skulens/|benchmarks/|tests/|[a-z_]+/)[A-Za-z0-9_/]*[A-Za-z0-9_]\.py)`")
#: ``skulens.tasks.inputs.as_catalog``: a module, optionally followed by a name defined in it.
DOTTED = re.compile(r"\bskulens(?:\.[A-Za-z_][A-Za-z0-9_]*)+")


def _file_of(path: str) -> Path | None:
    """Where a path named in the docs lies, or None when it names nothing in this repository."""
    if path.startswith(("src/", "benchmarks/", "tests/")):
        candidate = ROOT / path
    elif path.startswith("skulens/"):
        candidate = ROOT / "src" / path
    else:  # relative to the package: heads/caption_vocab.py
        candidate = PACKAGE / path
    return candidate if candidate.exists() else None


def _dotted_exists(name: str) -> bool:
    """``skulens.a.b`` is a module or package, or ``skulens.a.b.c`` where ``c`` is defined in module ``skulens.a.b``."""
    parts = name.split(".")[1:]
    for cut in range(len(parts), -1, -1):
        base = PACKAGE.joinpath(*parts[:cut])
        module = base / "__init__.py" if base.is_dir() else base.with_suffix(".py")
        if module.exists():
            rest = parts[cut:]
            if not rest:
                return True
            source = module.read_text()
            return len(rest) == 1 and re.search(rf"\b{rest[0]}\b", source) is not None
    return False


def _named(doc: Path) -> tuple[list[str], list[str]]:
    text = doc.read_text()
    return sorted(set(PATH.findall(text))), sorted(set(DOTTED.findall(text)))


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_every_path_and_module_a_doc_names_exists(doc):
    paths, modules = _named(doc)
    missing = [p for p in paths if _file_of(p) is None] + [m for m in modules if not _dotted_exists(m)]
    assert not missing, f"{doc.relative_to(ROOT)} names what does not exist: {missing}"


def test_the_checker_finds_a_stale_path(tmp_path):
    stale = tmp_path / "stale.md"
    stale.write_text("loop in `src/skulens/tasks/finetune_training.py`; see `skulens.tasks.no_such_module` and `heads/linear.py`")
    paths, modules = _named(stale)
    assert paths == ["heads/linear.py", "src/skulens/tasks/finetune_training.py"]
    assert [p for p in paths if _file_of(p) is None] == ["src/skulens/tasks/finetune_training.py"]
    assert [m for m in modules if not _dotted_exists(m)] == ["skulens.tasks.no_such_module"]
