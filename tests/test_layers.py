"""The package's layers import one way only (docs/DESIGN.md, section 2):

    base (spec, spec_rules, config, errors, events, atomic, stats) <- model <- data <- training <- runs <- search <- cli

An AST walk of every module, imports inside functions included, so a lazy import cannot
sneak a dependency the wrong way.
"""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "maitsearch"
LAYERS = ["base", "model", "data", "training", "runs", "search", "cli"]
BASE_MODULES = {"spec", "spec_rules", "config", "errors", "events", "atomic", "stats"}
RENDERING = {"rich", "typer", "click"}  # only the CLI renders


def layer_of(dotted: str) -> str:
    """``maitsearch.search.runner`` -> ``search``; base modules -> ``base``."""
    parts = dotted.split(".")
    top = parts[1] if len(parts) > 1 else ""
    if top in BASE_MODULES:
        return "base"
    if top in LAYERS:
        return top
    if top == "__main__":
        return "cli"
    raise AssertionError(f"{dotted}: not in any layer; add it to LAYERS or BASE_MODULES")


def module_name(path: Path) -> tuple[str, bool]:
    relative = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(relative.parts)
    is_package = parts[-1] == "__init__"
    if is_package:
        parts = parts[:-1]
    return ".".join(parts), is_package


def is_module(dotted: str) -> bool:
    path = PACKAGE.parent.joinpath(*dotted.split("."))
    return path.with_suffix(".py").exists() or (path / "__init__.py").exists()


def imported_modules(source: str, name: str, is_package: bool) -> list[tuple[int, str]]:
    """(line, absolute module) for every import in ``source``; ``from .x import y`` counts as
    ``pkg.x.y`` when y may be a module, which only makes the check stricter."""
    package = name if is_package else name.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module
            if node.module is None:  # from . import x: x is a module, or a name in the package
                found += [(node.lineno, f"{target}.{alias.name}" if is_module(f"{target}.{alias.name}") else target)
                          for alias in node.names]
            else:
                found.append((node.lineno, target))
    return found


def violations(source: str, name: str, is_package: bool) -> list[str]:
    own = layer_of(name) if name != "maitsearch" else None
    problems = []
    for line, target in imported_modules(source, name, is_package):
        root = target.split(".")[0]
        if root in RENDERING and own != "cli":
            problems.append(f"{name}:{line}: imports {target}, but only the CLI renders")
        if root != "maitsearch" or own is None or target == "maitsearch":
            continue
        theirs = layer_of(target)
        if LAYERS.index(theirs) > LAYERS.index(own):
            problems.append(f"{name}:{line}: {own} imports {target} ({theirs}), a layer above it")
    return problems


MODULES = sorted(PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_point_down_the_layers(path):
    name, is_package = module_name(path)
    assert violations(path.read_text(encoding="utf-8"), name, is_package) == []


def test_the_checker_catches_upward_and_rendering_imports():
    """The check above must be able to fail: an upward import, a lazy one inside a function,
    a relative one, and rich in library code are each reported."""
    source = ("from ..search import runner\n"
              "def f():\n    from maitsearch.cli import app\n"
              "from .. import spec\n"
              "import rich\n")
    found = violations(source, "maitsearch.model.attention", is_package=False)
    assert sorted(line.split(":")[1] for line in found) == ["1", "3", "5"], found
    assert violations("from ..model import apply_mask_spec\n", "maitsearch.search.runner", False) == []
    assert violations("from . import kernels\n", "maitsearch.model", True) == []
    assert violations("from .. import __version__\n", "maitsearch.cli.app", False) == []


def test_every_layer_is_a_package_and_the_listing_is_the_architecture():
    packages = {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").exists()}
    assert packages == set(LAYERS) - {"base"}
    flat = {p.stem for p in PACKAGE.glob("*.py")} - {"__init__", "__main__"}
    assert flat == BASE_MODULES


NOTEBOOK_API = {"MaskSpec", "load_spec", "apply_mask_spec", "measure_als", "ProxyConfig", "fit",
                "SearchConfig", "run_search", "calibrate", "load_run", "list_runs"}


@pytest.mark.slow
def test_the_public_api_is_what_a_notebook_needs_and_loads_no_torch():
    """``import maitsearch`` stays light (the CLI's --help and spec check start in a fraction of
    a second), yet every public name resolves and timm still finds the mait_* models."""
    import subprocess
    import sys

    probe = ("import sys, maitsearch\n"
             "light = 'torch' not in sys.modules\n"
             "names = sorted(maitsearch.__all__)\n"
             "resolved = all(getattr(maitsearch, n) is not None for n in names)\n"
             "import timm\n"
             "offered = set(dir(maitsearch)) - set(names)\n"
             "print(light, resolved, ','.join(names), 'mait_tiny_patch16_224' in timm.list_models('mait_*'),\n"
             "      ','.join(sorted(offered)))\n")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout.split()
    assert out[0] == "True", "import maitsearch must not import torch"
    assert out[1] == "True"
    assert set(out[2].split(",")) == NOTEBOOK_API
    assert out[3] == "True", "timm knows the mait_* models after import maitsearch"
    offered = set(out[4].split(","))  # tab completion: the layer packages loaded by then, not sys or importlib
    package = {path.stem for path in PACKAGE.iterdir() if not path.name.startswith("_")}
    assert "__version__" in offered and {"model", "spec"} <= offered <= {"__version__", *package}
