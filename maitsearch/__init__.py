"""maitsearch: find where locality-masked attention heads help a vision transformer (MaiT).

The public API is what a notebook needs; everything else lives in the layer packages
(``model``, ``data``, ``training``, ``runs``, ``search``; docs/DESIGN.md, section 2)::

    spec = maitsearch.load_spec("results/<run>/best.yaml")
    maitsearch.apply_mask_spec(timm.create_model("deit_tiny_patch16_224"), spec)

Names are imported on first use, so ``import maitsearch`` (and the CLI's ``--help`` or
``spec check``) does not load torch. The timm models ``mait_{xtiny,tiny,xsmall,small}_patch16_224``
are registered the moment timm is imported, before or after maitsearch, so
``timm.create_model("mait_tiny_patch16_224")`` works after ``import maitsearch``.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys

__version__ = "0.1.0"

_API = {
    "MaskSpec": "spec", "load_spec": "spec",
    "ProxyConfig": "config", "SearchConfig": "config",
    "apply_mask_spec": "model.mait", "measure_als": "model.measure",
    "fit": "training.proxy",
    "run_search": "search.launch", "calibrate": "search.calibrate",
    "load_run": "runs.reading", "list_runs": "runs.reading",
}
__all__ = list(_API)


def __getattr__(name: str):
    if name not in _API:
        raise AttributeError(f"module 'maitsearch' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_API[name]}"), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    """The API and the layer packages loaded so far, not this module's own imports (``sys``,
    ``importlib``): what a notebook's tab completion should offer."""
    layers = {name for name, value in globals().items() if getattr(value, "__name__", "").startswith(f"{__name__}.")}
    return sorted({*__all__, "__version__", *layers})


_MODEL = f"{__name__}.model"  # importing the model layer registers the mait_* models with timm


class _RegisterWhenTimmLoads(importlib.abc.MetaPathFinder):
    """A one-shot import hook: lets the real finders locate timm, and registers the mait_*
    models right after timm's own module has run."""

    def find_spec(self, name, path, target=None):
        if name != "timm":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec("timm")
        if spec is None or spec.loader is None:
            return spec
        run_timm = spec.loader.exec_module

        def run_timm_then_register(module):
            run_timm(module)
            if _MODEL not in sys.modules:  # else it is being imported, and registers on its own
                importlib.import_module(_MODEL)

        spec.loader.exec_module = run_timm_then_register
        return spec


if "timm" in sys.modules:
    importlib.import_module(_MODEL)
elif not any(isinstance(finder, _RegisterWhenTimmLoads) for finder in sys.meta_path):
    sys.meta_path.insert(0, _RegisterWhenTimmLoads())
