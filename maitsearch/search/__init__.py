"""The search layer: strategies propose placements, the runner trains them on an executor and
writes the run folder; calibrate measures whether a proxy can rank placements at all
(docs/DESIGN.md, section 8).

- ``base``: the ``Strategy`` ask/tell interface and ``Proposal``; ``registry``: strategies by name.
- ``als_guided``, ``soft_masks``, ``optuna_study``, ``supernet``, ``presets``: one strategy per module
  (the supernet's jobs in ``supernet_jobs``, its ranking fidelity in ``fidelity``).
- ``executors``: trials in this process or in a pool of one-thread processes.
- ``runner``: ``run_search``, seeds, de-duplication, resume; ``calibrate``: the proxy's noise.
"""

from .base import Proposal, Strategy
from .calibrate import calibrate
from .launch import RunSummary, run_search
from .registry import STRATEGIES, make_strategy

__all__ = ["Proposal", "Strategy", "calibrate", "STRATEGIES", "make_strategy", "RunSummary", "run_search"]
