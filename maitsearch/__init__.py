"""maitsearch: find where locality-masked attention heads help a vision transformer (MaiT).

Importing the package registers the timm models ``mait_{xtiny,tiny,xsmall,small}_patch16_224``.
"""

from .als import measure_als
from .attention import MaskedAttention, attention_probs
from .locality import attention_cost, window_matrix
from .models import apply_mask_spec, resolve_spec
from .spec import MaskSpec, SpecError, load_spec, parse_spec, preset

__version__ = "0.1.0"


def load_run(path):
    """Read a run folder: ``.trials`` (DataFrame), ``.best`` (MaskSpec), ``.config``, ``.plot_*()``.
    (pandas is imported on first use, not with the package.)"""
    from .runs import load_run as _load_run

    return _load_run(path)


__all__ = [
    "MaskSpec", "SpecError", "load_spec", "parse_spec", "preset", "resolve_spec",
    "MaskedAttention", "attention_probs", "apply_mask_spec", "measure_als", "attention_cost", "window_matrix",
    "load_run",
]
