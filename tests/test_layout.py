"""The layout: scripts on top, packages in layers, every import pointing down, no cycles.

Read from the source (ast), so every import counts, also those inside functions. The layers (a
package may import its own modules and any package of a lower layer, never one of its own layer
or above):

    6  the entry scripts (SCRIPTS)
    5  cli, benchmarks                  shared script parts, the benchmark's sections
    4  training, evaluation, serving    above the Colorizer; independent of each other
    3  inference                        the Colorizer, full-resolution photos
    2  models                           one file per model, the registry
    1  loaders, priors                  data readers and generator; ImageNet classifiers
    0  core                             color spaces, run folders, grids, TensorBoard files
"""
from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

from conftest import ROOT

LAYERS = {
    "core": 0,
    "loaders": 1, "priors": 1,
    "models": 2,
    "inference": 3,
    "training": 4, "evaluation": 4, "serving": 4,
    "cli": 5, "benchmarks": 5,
}
SCRIPTS = {"train", "predict", "evaluate", "compare", "colorize", "bench", "export", "demo", "dataset"}
SCRIPT_LAYER = max(LAYERS.values()) + 1


def project_modules() -> dict[str, Path]:
    """{dotted module name: file} for every module of the project outside tests/."""
    modules = {p.stem: p for p in ROOT.glob("*.py")}
    for init in ROOT.glob("*/__init__.py"):
        for path in init.parent.rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


MODULES = project_modules()
UNITS = set(LAYERS) | SCRIPTS          # what a module belongs to: its top-level package or script


def unit(module: str) -> str:
    return module.split(".")[0]


def layer(module: str) -> int:
    return SCRIPT_LAYER if unit(module) in SCRIPTS else LAYERS[unit(module)]


def _resolve(module: str, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    is_package = MODULES[module].name == "__init__.py"
    base = module.split(".")[: len(module.split(".")) - node.level + (1 if is_package else 0)]
    return ".".join(base + ([node.module] if node.module else []))


def imports_of(module: str) -> set[str]:
    """The project modules ``module`` imports (``from core import runs`` -> core.runs, and core)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(MODULES[module].read_text())):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            target = _resolve(module, node)
            names = [f"{target}.{a.name}" if f"{target}.{a.name}" in MODULES else target for a in node.names]
        else:
            continue
        for name in names:
            while name and name not in MODULES:   # keras.layers -> not ours; core.runs.X -> core.runs
                name = name.rpartition(".")[0]
            if name and unit(name) in UNITS:
                found.add(name)
                if unit(name) != unit(module):
                    found.add(unit(name))       # importing a package's module runs its __init__ first
    found.discard(module)
    return found


GRAPH = {m: imports_of(m) for m in MODULES}


def test_every_module_belongs_to_a_layer():
    """A new top-level file or package must be placed in LAYERS or SCRIPTS (and in docs/layout.md)."""
    assert {unit(m) for m in MODULES} == UNITS
    top_level_files = {p.stem for p in ROOT.glob("*.py")}
    assert top_level_files == SCRIPTS, "only the entry scripts stay at the top; libraries go in a package"
    assert len(top_level_files) <= 10, f"{len(top_level_files)} scripts at the top: at most 10"


def test_imports_point_down_the_layers():
    wrong = [f"{m} (layer {layer(m)}) imports {d} (layer {layer(d)})"
             for m, deps in GRAPH.items() for d in deps
             if unit(d) != unit(m) and layer(d) >= layer(m)]
    assert not wrong, "\n".join(wrong)


def test_no_import_cycles():
    cycles, state = [], {}

    def visit(m: str, path: list[str]) -> None:
        state[m] = "open"
        for d in sorted(GRAPH[m]):
            if state.get(d) == "open":
                cycles.append(" -> ".join(path[path.index(d):] + [d]))
            elif d not in state:
                visit(d, path + [d])
        state[m] = "done"

    for m in sorted(GRAPH):
        if m not in state:
            visit(m, [m])
    assert not cycles, "\n".join(cycles)


def test_the_checker_sees_what_it_should():
    """The graph is read right: known edges exist (a checker that found none would pass vacuously)."""
    assert "core.runs" in GRAPH["inference.colorizer"] and "core" in GRAPH["inference.colorizer"]
    assert "priors.torch_checkpoint" in GRAPH["priors.efficientnet_lite0"]       # a relative import
    assert "evaluation.scoring" in GRAPH["evaluation.report"]
    assert not GRAPH["core.colorspace"]


@pytest.mark.parametrize("module", sorted(m for m in MODULES if unit(m) not in SCRIPTS))
def test_every_module_imports(module):
    importlib.import_module(module)
