"""Layout: modules import in one direction (no cycles inside a package), and each imports on its own."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"


def imported_modules(path: Path, package: str) -> set[str]:
    """The ``skulens...`` modules that the file at ``path`` imports anywhere (module level or inside functions)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            base = node.module if node.level == 0 else package.rsplit(".", node.level - 1)[0] + f".{node.module}"
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {name for name in found if name.startswith("skulens.")}


def package_graph(package: str) -> dict[str, set[str]]:
    """Each module of ``package`` (not its ``__init__``) and the modules of the same package it imports."""
    folder = SRC.joinpath(*package.split("."))
    modules = {f"{package}.{path.stem}": path for path in folder.glob("*.py") if path.stem != "__init__"}
    return {name: imported_modules(path, package) & set(modules) for name, path in modules.items()}


@pytest.mark.parametrize("package", ["skulens.engines", "skulens.training"])
def test_no_import_cycle_inside_the_package(package):
    graph = package_graph(package)
    assert graph, f"{package} has no modules"
    try:
        order = list(TopologicalSorter(graph).static_order())
    except CycleError as exc:
        pytest.fail(f"import cycle in {package}: {' -> '.join(exc.args[1])}")
    assert set(order) == set(graph)


def test_the_cycle_finder_sees_a_cycle(tmp_path):
    """The graph above is built from real imports: a function-level import back up is an edge too."""
    (tmp_path / "a.py").write_text("from skulens.engines.b import x\n")
    (tmp_path / "b.py").write_text("def f():\n    from skulens.engines.a import y\n")
    graph = {f"skulens.engines.{p.stem}": imported_modules(p, "skulens.engines") for p in tmp_path.glob("*.py")}
    with pytest.raises(CycleError):
        list(TopologicalSorter({k: v & set(graph) for k, v in graph.items()}).static_order())


# The package's __init__ (which imports every module) is replaced by a bare package, so the module and what it
# imports load in their own order: a module-level cycle fails here as "partially initialized module".
ALONE = """
import importlib, sys, types
from pathlib import Path
import skulens
package = types.ModuleType("skulens.engines")
package.__path__ = [str(Path(skulens.__file__).parent / "engines")]
sys.modules["skulens.engines"] = package
importlib.import_module("skulens.engines." + sys.argv[1])
"""


@pytest.mark.parametrize("module", ["output", "jobs", "local", "ray_engine", "dispatch"])
def test_each_engine_module_imports_on_its_own(module):
    env = {**os.environ, "PYTHONPATH": str(SRC) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    done = subprocess.run([sys.executable, "-c", ALONE, module], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr


def test_the_training_loop_stays_low_level():
    """heads/ trains through the loop, so the loop imports nothing of skulens but the progress helper and the
    error root (``skulens.errors``, which imports nothing)."""
    loop = SRC / "skulens" / "training" / "loop.py"
    allowed = {"skulens.progress", "skulens.progress.progress_bar", "skulens.errors", "skulens.errors.SkulensError"}
    assert imported_modules(loop, "skulens.training") == allowed
    package = ast.parse((SRC / "skulens" / "training" / "__init__.py").read_text())
    assert not [node for node in ast.walk(package) if isinstance(node, ast.Import | ast.ImportFrom)]
