"""Every problem a user can fix is a ``MaitsearchError``: the CLI catches that one class, prints
its one line and exits with 2. Library code raises the most specific subclass.

The subclasses also derive from the builtin a caller would expect (``ValueError`` for bad input,
``RuntimeError`` for a search that cannot go on), so ``except ValueError`` keeps working.
"""

from __future__ import annotations

import types
import typing


class MaitsearchError(Exception):
    """A problem the user can fix; ``str(err)`` is one line saying what and where."""


class ConfigError(MaitsearchError, ValueError):
    """A search, proxy or training setting that is unknown or out of range."""


class SpecError(MaitsearchError, ValueError):
    """A malformed mask spec. ``str(err)`` is ``path:line: field: message`` (or ``field: message``
    for a spec built in Python, which has no file)."""

    def __init__(self, source: str | None, line: int | None, field_name: str, message: str):
        self.source, self.line, self.field, self.message = source, line, field_name, message
        where = f"{source}:{line}: " if source and line is not None else f"{source}: " if source else ""
        super().__init__(f"{where}{field_name}: {message}")


class DataError(MaitsearchError, ValueError):
    """A dataset that cannot be found or read."""


class StorageError(MaitsearchError, ValueError):
    """An Optuna storage that cannot be used. The message never holds a password."""


class RunNameError(MaitsearchError, ValueError):
    """A run name that is not one safe path component."""


class ResumeError(MaitsearchError, ValueError):
    """A training folder whose checkpoint cannot be continued with these settings."""


class SearchError(MaitsearchError, RuntimeError):
    """A search that cannot start or go on (a changed config, too many failed trials)."""


class DiskError(MaitsearchError, OSError):
    """A folder that became read-only, full or over quota while a file was written in it. Every
    write is atomic (``atomic.py``), so the file before the fault is still whole and a re-run
    after the fault is fixed resumes."""


class MissingExtraError(MaitsearchError, ImportError):
    """An optional dependency that is not installed; the message names the pip command."""


class ExportError(MaitsearchError, RuntimeError):
    """A model that cannot be exported or saved as asked (no weights, a run with no trained model)."""


def choice_message(value, allowed) -> str:
    """The one wording of a value that is not among the named choices, with the nearest choice
    when one is nearer than all others (``sch9`` is as near to sch1 as to sch3: no guess)."""
    import difflib

    names = [str(a) for a in allowed]
    nearness = sorted(((difflib.SequenceMatcher(None, str(value), name).ratio(), name) for name in names), reverse=True)
    clear = nearness and nearness[0][0] >= 0.6 and (len(nearness) == 1 or nearness[0][0] > nearness[1][0])
    return f"unknown {value!r}; choose one of {', '.join(names)}" + (f" (did you mean {nearness[0][1]}?)" if clear else "")


def check_choice(what: str, value, allowed) -> None:
    """``value`` is one of ``allowed``, else a ``ConfigError``:
    ``proxy.pool: unknown 'max'; choose one of ...``."""
    if value not in allowed:
        raise ConfigError(f"{what}: {choice_message(value, allowed)}")


# (holds, what a value must be): the bounds of numeric settings, for ``check_bounds``
AT_LEAST_1 = (lambda value: value >= 1, "expected at least 1")
POSITIVE = (lambda value: value > 0, "expected above 0")
AT_LEAST_0 = (lambda value: value >= 0, "expected at least 0")
# a rate such as label smoothing or stochastic depth: at 1 every label is flat, or every block dropped
FRACTION = (lambda value: 0 <= value < 1, "expected at least 0 and below 1")
PROBABILITY = (lambda value: 0 <= value <= 1, "expected a probability in [0, 1]")


def check_bounds(settings, bounds: dict, name_of) -> None:
    """Each field of ``settings`` named in ``bounds`` holds its bound, else a ``ConfigError``
    naming it as ``name_of(field)`` says (``--drop-path 2.0: expected at least 0 and below 1``).
    None, where a field takes it, means its default and is not checked."""
    for name, (holds, expected) in bounds.items():
        value = getattr(settings, name)
        if value is not None and not holds(value):  # so a NaN, which fails every comparison, fails
            raise ConfigError(f"{name_of(name)} {value}: {expected}")


def file_kind(data) -> str | None:
    """Which of the project's YAML files a mapping is, by the keys only that kind has ("mask
    spec", "search config", "training config"), or None: so a file given where another kind goes
    is named as what it is, not reported key by key as unknown fields."""
    if not isinstance(data, dict):
        return None
    keys = set(data)
    if {"version", "masks"} <= keys:
        return "mask spec"
    if {"proxy", "strategy", "baselines"} & keys:
        return "search config"
    if {"recipe", "model"} & keys:  # train writes both into every config.yaml
        return "training config"
    return None


_KINDS = {bool: ("true or false", "true/false values"), int: ("a whole number", "whole numbers"),
          float: ("a number", "numbers"), str: ("a string", "strings"), type(None): ("null", "nulls")}


def check_field_types(cls, data: dict, where: str) -> None:
    """Each value in ``data`` (a YAML's fields for the dataclass ``cls``) has its field's
    annotated type, else a ``ConfigError`` such as ``x.yaml: proxy: lr: expected a number, got
    'fast'``: a wrong type is caught where it was written, not as a traceback deep in a run."""
    hints = typing.get_type_hints(cls)
    for name, value in data.items():
        if not _fits(value, hints[name]):
            numeric_text = isinstance(value, str) and _fits(0.5, hints[name]) and _parses_as_number(value)
            raise ConfigError(f"{where}: {name}: expected {_kind(hints[name])}, got {value!r}"
                              + (" (YAML reads 1e-3 as text: write 0.001 or 1.0e-3)" if numeric_text else ""))


def _fits(value, hint) -> bool:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_fits(value, arg) for arg in typing.get_args(hint))
    if origin is list:
        return isinstance(value, list) and all(_fits(item, typing.get_args(hint)[0]) for item in value)
    if hint in (int, float):  # YAML's 2 is a fine float; true is no number
        return isinstance(value, (int, hint)) and not isinstance(value, bool)
    return not isinstance(hint, type) or isinstance(value, hint)


def _kind(hint, plural: bool = False) -> str:
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return " or ".join(_kind(arg, plural) for arg in typing.get_args(hint))
    if typing.get_origin(hint) is list:
        return f"a list of {_kind(typing.get_args(hint)[0], plural=True)}"
    names = _KINDS.get(hint, (getattr(hint, "__name__", str(hint)),) * 2)
    return names[plural]


def _parses_as_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
