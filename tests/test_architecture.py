"""The house shows its architecture: subpackages by flow, imports one way, no cycles.

The layered contract lives in ``pyproject.toml`` (``[tool.importlinter]``) and is checked by
import-linter itself; the cycle check walks grimp's import graph (import-linter's own engine).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import grimp

import charlab

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = Path(charlab.__file__).parent
MAX_TOP_LEVEL_MODULES = 6  # __init__, __main__, api, config, errors: the rest lives in a stage's package
STAGES = {"data", "nn", "models", "inference", "rundir", "training", "diagnostics", "report", "experiments", "cli"}


def test_lint_imports_keeps_every_contract():
    exe = shutil.which("lint-imports") or str(Path(sys.executable).parent / "lint-imports")
    done = subprocess.run([exe, "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]


def test_top_level_is_a_handful_of_modules_and_the_stages():
    modules = sorted(p.name for p in PACKAGE.glob("*.py"))
    packages = {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file()}
    assert len(modules) <= MAX_TOP_LEVEL_MODULES, modules
    assert packages == STAGES, packages ^ STAGES


def _cycle(graph: grimp.ImportGraph) -> list[str] | None:
    """One import cycle among charlab's modules (function-level imports included), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: finished
    path: list[str] = []

    def visit(module: str) -> list[str] | None:
        state[module] = 1
        path.append(module)
        for nxt in sorted(graph.find_modules_directly_imported_by(module)):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        path.pop()
        state[module] = 2
        return None

    for module in sorted(graph.modules):
        if module not in state and (found := visit(module)):
            return found
    return None


def _parent_and_child(a: str, b: str) -> bool:
    return a.startswith(b + ".") or b.startswith(a + ".")


def test_no_import_cycles():
    graph = grimp.build_graph("charlab")
    for module in sorted(graph.modules):  # a package re-exporting its own modules is not a cycle
        for imported in sorted(graph.find_modules_directly_imported_by(module)):
            if _parent_and_child(module, imported):
                graph.remove_import(importer=module, imported=imported)
    cycle = _cycle(graph)
    assert cycle is None, " -> ".join(cycle)
