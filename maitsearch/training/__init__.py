"""The training layer: the shared loop (``loop``), one proxy trial (``proxy.fit``) and full-size
training with a found spec (``full.train``). Knows models and data; knows nothing of searches
or run folders (docs/DESIGN.md, section 7).
"""

from .full import TrainConfig, train
from .loop import build_optimizer, evaluate, train_one_epoch
from .proxy import Pruned, TrialResult, build_proxy_model, fit

__all__ = ["TrainConfig", "train", "build_optimizer", "evaluate", "train_one_epoch", "Pruned", "TrialResult",
           "build_proxy_model", "fit"]
