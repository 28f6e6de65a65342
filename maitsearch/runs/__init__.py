"""The runs layer: what a search leaves on disk, and reading it back (docs/DESIGN.md, section 9).

- ``record``: ``TrialRecord``, one trained placement, as a mask spec with metrics in ``meta``.
- ``folder``: ``RunStore``, atomic writes into ``results/<run>/``, and safe run names.
- ``study_storage``: the Optuna storages (SQLite, journal file, PostgreSQL) and redaction.
- ``reading``: ``load_run`` / ``list_runs`` as DataFrames, figures; no search code needed.
- ``report``, ``plots``: report.md and PNGs.
"""

from .folder import RunStore, validate_run_name
from .reading import Run, list_runs, load_run
from .record import TrialRecord

__all__ = ["RunStore", "validate_run_name", "Run", "list_runs", "load_run", "TrialRecord"]
