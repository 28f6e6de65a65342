"""MaskSpec: which heads of which layers are masked to a window of patches (docs/DESIGN.md, section 4).

A spec is plain data: no torch in here, so reading or validating one is instant and a spec can
travel between processes, Optuna user attributes and YAML files unchanged.

Its rules live in spec_rules.py; YAML errors are reported as one line ``path:line: field: message``.
"""

from __future__ import annotations

import dataclasses
import json
import math
import random as _random
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import yaml

from . import atomic
from .errors import SpecError, choice_message
from .spec_rules import VERSION, field_name, first_problem, line_of, reject_duplicate_keys

PRESETS = ("none", "sch1", "sch2", "sch3", "all", "random")


@dataclass(frozen=True)
class MaskSpec:
    """A mask placement for a ViT with ``layers`` blocks of ``heads`` heads.

    ``masks[l]`` lists the hard-masked heads of layer l. ``soft[l][h]`` is the soft-mask alpha of
    head h (0 for hard-masked heads, 1 for unmasked ones), or ``soft`` is None when nothing is soft.
    ``pattern='random'`` replaces each masked head's window by a seeded random key set of the same
    size: the pruning-only control of the paper's section 5.5.
    """

    layers: int
    heads: int
    masks: tuple[tuple[int, ...], ...]
    window: tuple[int, int] = (3, 3)
    semantics: str = "paper"
    soft: tuple[tuple[float, ...], ...] | None = None
    pattern: str = "window"
    pattern_seed: int = 0
    meta: dict = field(default_factory=dict)

    def __post_init__(self):
        raw = {"version": VERSION, "layers": self.layers, "heads": self.heads, "window": self.window,
               "semantics": self.semantics, "pattern": self.pattern, "pattern_seed": self.pattern_seed,
               "masks": [list(layer) for layer in self.masks], "soft": self.soft, "meta": self.meta}
        problem = first_problem(raw)
        if problem:
            path, message = problem
            raise SpecError(None, None, field_name(path), message)
        # Normalise containers so that specs built from lists compare equal to loaded ones.
        object.__setattr__(self, "masks", tuple(tuple(sorted(layer)) for layer in self.masks))
        object.__setattr__(self, "window", tuple(self.window))
        if self.soft is not None:
            object.__setattr__(self, "soft", tuple(tuple(float(a) for a in layer) for layer in self.soft))
        object.__setattr__(self, "meta", dict(self.meta or {}))

    # ---- views ---------------------------------------------------------------------------
    def alphas(self) -> tuple[tuple[float, ...], ...]:
        """Per layer, per head: 0 = hard mask, 1 = no mask, in between = soft mask."""
        if self.soft is not None:
            return self.soft
        return tuple(tuple(0.0 if h in layer else 1.0 for h in range(self.heads)) for layer in self.masks)

    def matrix(self) -> tuple[tuple[bool, ...], ...]:
        """The L x H placement: True where a head is hard-masked."""
        return tuple(tuple(h in layer for h in range(self.heads)) for layer in self.masks)

    def counts(self) -> tuple[int, ...]:
        return tuple(len(layer) for layer in self.masks)

    @property
    def is_soft(self) -> bool:
        return self.soft is not None and any(0.0 < a < 1.0 for layer in self.soft for a in layer)

    @property
    def num_masked(self) -> int:
        """Hard-masked heads."""
        return sum(self.counts())

    @property
    def num_soft(self) -> int:
        """Soft-masked heads (alpha strictly between 0 and 1)."""
        return sum(1 for row in self.alphas() for a in row if 0.0 < a < 1.0)

    def label(self) -> str:
        """The compact form, and the soft heads it cannot show: ``0000 +12 soft``."""
        return self.compact() + (f" +{self.num_soft} soft" if self.num_soft else "")

    def compact(self) -> str:
        """Hex digits of head bits per layer, layer 0 first (bit h = head h is hard-masked)."""
        digits = _hex_digits(self.heads)
        return "".join(f"{sum(1 << h for h in layer):0{digits}x}" for layer in self.masks)

    def canonical(self) -> "MaskSpec":
        """The same experiment with each layer's heads reordered: hard masks on the lowest indices,
        then soft heads by ascending alpha, then unmasked heads. Heads of a layer are identically
        initialised, so any permutation of them is the same experiment."""
        if self.soft is None:
            masks = tuple(tuple(range(len(layer))) for layer in self.masks)
            return dataclasses.replace(self, masks=masks)
        soft = tuple(tuple(sorted(layer)) for layer in self.soft)
        masks = tuple(tuple(h for h, a in enumerate(layer) if a == 0.0) for layer in soft)
        return dataclasses.replace(self, masks=masks, soft=soft)

    def key(self) -> str:
        """Identity of the experiment, for de-duplication: placement plus every setting that
        changes the trained model. Meta is provenance and does not count."""
        spec = self.canonical()
        parts = [spec.compact(), f"w{spec.window[0]}x{spec.window[1]}", spec.semantics]
        if spec.pattern != "window":
            parts.append(f"{spec.pattern}{spec.pattern_seed}")
        if spec.soft is not None:
            parts.append(";".join(",".join(f"{a:.4f}" for a in layer) for layer in spec.soft))
        return "/".join(parts)

    def unmasked_in(self, layers: Iterable[int]) -> "MaskSpec":
        """This placement with every head of ``layers`` unmasked (hard and soft)."""
        drop = set(layers)
        masks = tuple(() if index in drop else layer for index, layer in enumerate(self.masks))
        soft = None if self.soft is None else tuple(
            (1.0,) * self.heads if index in drop else layer for index, layer in enumerate(self.soft))
        return dataclasses.replace(self, masks=masks, soft=soft)

    def with_meta(self, **updates: Any) -> "MaskSpec":
        return dataclasses.replace(self, meta={**self.meta, **updates})

    # ---- YAML ----------------------------------------------------------------------------
    def to_dict(self) -> dict:
        data: dict[str, Any] = {
            "version": VERSION,
            "layers": self.layers,
            "heads": self.heads,
            "window": list(self.window),
            "semantics": self.semantics,
        }
        if self.pattern != "window":
            data["pattern"] = self.pattern
            data["pattern_seed"] = self.pattern_seed
        data["masks"] = [list(layer) for layer in self.masks]
        data["soft"] = None if self.soft is None else [[round(a, 6) for a in layer] for layer in self.soft]
        data["meta"] = dict(self.meta)
        return data

    def to_yaml(self) -> str:
        return yaml.dump(self.to_dict(), Dumper=_SpecDumper, sort_keys=False, allow_unicode=True)

    def save(self, path: str | Path) -> Path:
        return atomic.write_text(path, self.to_yaml())

    @classmethod
    def from_dict(cls, data: dict) -> "MaskSpec":
        """Build from already-validated plain data (the output of ``to_dict`` or YAML)."""
        return cls(
            layers=data["layers"],
            heads=data["heads"],
            masks=data["masks"],
            window=tuple(data.get("window", (3, 3))),
            semantics=data.get("semantics", "paper"),
            soft=data.get("soft"),
            pattern=data.get("pattern", "window"),
            pattern_seed=data.get("pattern_seed", 0),
            meta=data.get("meta") or {},
        )

    # ---- other constructors --------------------------------------------------------------
    @classmethod
    def from_matrix(cls, matrix: Sequence[Sequence[bool]], **kwargs: Any) -> "MaskSpec":
        masks = [[h for h, masked in enumerate(row) if masked] for row in matrix]
        return cls(layers=len(masks), heads=len(matrix[0]) if masks else 0, masks=masks, **kwargs)

    @classmethod
    def from_counts(cls, counts: Sequence[int], heads: int, **kwargs: Any) -> "MaskSpec":
        """The canonical placement with ``counts[l]`` masked heads in layer l."""
        return cls(layers=len(counts), heads=heads, masks=[range(int(c)) for c in counts], **kwargs)

    @classmethod
    def from_compact(cls, text: str, heads: int, **kwargs: Any) -> "MaskSpec":
        digits = _hex_digits(heads)
        text = text.strip().lower()
        if not text or len(text) % digits or any(c not in "0123456789abcdef" for c in text):
            raise SpecError(None, None, "compact",
                            f"expected {digits} hex digit(s) per layer for {heads} heads, got {text!r}")
        masks = []
        for start in range(0, len(text), digits):
            bits = int(text[start:start + digits], 16)
            if bits >> heads:
                raise SpecError(None, None, "compact", f"layer {start // digits} sets a head >= {heads} in {text!r}")
            masks.append([h for h in range(heads) if bits >> h & 1])
        return cls(layers=len(masks), heads=heads, masks=masks, **kwargs)


def preset(name: str, layers: int, heads: int, *, seed: int = 0, alpha: float = 0.5, **kwargs: Any) -> MaskSpec:
    """The paper's reference placements (docs/DESIGN.md, section 4), for any depth and width.

    - ``none``: DeiT, nothing masked.
    - ``sch1``: head 0 masked in every layer.
    - ``sch2``: H-1 heads (at least one) in the first third of the layers, one head in the middle,
      none in the last sixth (the paper's 0-7 / 8-19 / 20-23 split at 24 layers).
    - ``sch3``: every head soft (initial ``alpha``) in the first 7/8 of the layers, none after
      (the paper's soft masking in layers 0-20 of 24).
    - ``all``: every head masked.
    - ``random``: ``sch1``'s placement with each mask replaced by a seeded random key set of the
      window's size, the section 5.5 control for "is it locality or just pruning?".
    """
    if name == "none":
        counts = [0] * layers
    elif name in ("sch1", "random"):
        counts = [1] * layers
    elif name == "sch2":
        first, last = round(layers / 3), round(layers / 6)
        counts = [max(heads - 1, 1)] * first + [1] * (layers - first - last) + [0] * last
    elif name == "sch3":
        soft_layers = round(layers * 7 / 8)
        soft = [[alpha] * heads] * soft_layers + [[1.0] * heads] * (layers - soft_layers)
        return MaskSpec(layers=layers, heads=heads, masks=[[]] * layers, soft=soft, **kwargs).with_meta(preset=name)
    elif name == "all":
        counts = [heads] * layers
    else:
        raise SpecError(None, None, "preset", choice_message(name, PRESETS))
    if name == "random":
        kwargs = {**kwargs, "pattern": "random", "pattern_seed": seed}
    return MaskSpec.from_counts(counts, heads, **kwargs).with_meta(preset=name)


def named_preset(text: str, layers: int, heads: int, *, window: Sequence[int] = (3, 3), **kwargs: Any) -> MaskSpec:
    """A preset by name, where the name may carry its own window: ``sch1@5x5`` (else ``window``).
    The spec's ``meta.preset`` keeps the name as written."""
    name, _, own = text.partition("@")
    if own:
        try:
            rows, cols = (int(part) for part in own.lower().split("x"))
        except ValueError:
            raise SpecError(None, None, "preset", f"{text}: expected a window such as {name}@3x5") from None
        window = (rows, cols)
    return preset(name, layers, heads, window=tuple(window), **kwargs).with_meta(
        preset=f"{name}@{window[0]}x{window[1]}" if own else name)


def uniform_als(grid: Sequence[int], window: Sequence[int]) -> float:
    """The ALS of attention spread evenly over the patches: the mean window size over N.

    Windows are truncated at the border, so it is the product of a row and a column count:
    on 8x8 with 3x3, (2 + 6*3 + 2)^2 / 64^2 = 0.118."""
    def covered(size: int, extent: int) -> int:
        half = extent // 2
        return sum(min(i + half, size - 1) - max(i - half, 0) + 1 for i in range(size))

    rows, cols = grid
    return covered(rows, window[0]) * covered(cols, window[1]) / (rows * cols) ** 2


def normalize_als(als: float, uniform: float) -> float:
    """(ALS - u) / (1 - u): 0 for uniform attention, 1 for all attention inside the window, below
    0 for attention that avoids the window. Comparable across grids and windows."""
    return (als - uniform) / (1.0 - uniform) if uniform < 1.0 else 0.0


def random_placement(layers: int, heads: int, masked_fraction: float, seed: int, **kwargs: Any) -> MaskSpec:
    """A seeded random placement with about ``masked_fraction`` of all heads hard-masked."""
    rng = _random.Random(seed)
    matrix = [[rng.random() < masked_fraction for _ in range(heads)] for _ in range(layers)]
    return MaskSpec.from_matrix(matrix, **kwargs)


# The compact text form of a spec: hex head bits per layer (``MaskSpec.compact``), optionally a
# window and a semantics: ``31``, ``31@3x5``, ``31:local``, ``31@3x5:local``. Only hex digits,
# ``@``, ``x`` and ``:``: never a spec file's name (those end in .yaml), so never read as a path.
COMPACT_TEXT = re.compile(r"^(?P<bits>[0-9a-fA-F]+)(?:@(?P<rows>\d+)x(?P<cols>\d+))?(?::(?P<semantics>[a-z]+))?$")


def is_compact_text(text: str) -> bool:
    return bool(COMPACT_TEXT.match(text.strip()))


def parse_compact_text(text: str, heads: int, *, window: Sequence[int] = (3, 3), semantics: str = "paper") -> MaskSpec:
    """A spec from its compact text form (``COMPACT_TEXT``) for a model with ``heads`` heads;
    ``window`` and ``semantics`` where the text names none (a search passes its own, as it does
    for presets)."""
    match = COMPACT_TEXT.match(text.strip())
    if match is None:
        raise SpecError(None, None, "compact", f"expected hex digits per layer, then optionally @ROWSxCOLS and "
                                               f":paper or :local (31@3x3:paper), got {text!r}")
    window = (int(match["rows"]), int(match["cols"])) if match["rows"] else tuple(window)
    return MaskSpec.from_compact(match["bits"], heads, window=window, semantics=match["semantics"] or semantics)


def compact_text(spec: MaskSpec) -> str | None:
    """The compact text form of ``spec``, or None when it has soft heads, a random pattern or
    meta that the text cannot hold."""
    if spec.soft is not None or spec.pattern != "window":
        return None
    return f"{spec.compact()}@{spec.window[0]}x{spec.window[1]}:{spec.semantics}"


def spec_from_dict(data: Any, source: str = "mask_spec") -> MaskSpec:
    """A spec from plain data with the YAML's fields (as a model config stores it inline),
    checked by the same rules as a file; the first broken rule raises a one-line ``SpecError``."""
    problem = first_problem(data)
    if problem:
        path, message = problem
        raise SpecError(source, None, field_name(path), message)
    return MaskSpec.from_dict(data)


def inline_dict(spec: MaskSpec) -> dict:
    """``spec.to_dict()`` safe for JSON (a model's config.json): meta is kept when JSON can hold it."""
    data = spec.to_dict()
    try:
        data["meta"] = json.loads(json.dumps(data["meta"]))
    except (TypeError, ValueError):
        data["meta"] = {}
    return data


# ---- loading -------------------------------------------------------------------------------
def load_spec(path: str | Path) -> MaskSpec:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError(str(path), None, "file", "no such file") from None
    except (OSError, UnicodeDecodeError) as err:
        raise SpecError(str(path), None, "file", f"cannot read: {err}") from None
    return parse_spec(text, source=str(path))


def parse_spec(text: str, source: str = "<string>") -> MaskSpec:
    """Parse YAML v1 text with ``yaml.SafeLoader`` only, checking every rule; the first broken
    rule raises a one-line ``SpecError``."""
    loader = yaml.SafeLoader(text)
    try:
        root = loader.get_single_node()
        if root is None:
            raise SpecError(source, 1, "spec", "the file is empty")
        reject_duplicate_keys(root, source)
        data = loader.construct_document(root)
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        line = mark.line + 1 if mark else None
        problem = (err.problem or err.context or "invalid YAML").strip()
        if "could not determine a constructor" in problem:
            problem = f"tag not allowed in a mask spec ({problem.split('tag', 1)[-1].strip()})"
        raise SpecError(source, line, "yaml", problem) from None
    except yaml.YAMLError as err:
        raise SpecError(source, None, "yaml", str(err).splitlines()[0]) from None
    finally:
        loader.dispose()
    problem = first_problem(data)
    if problem:
        path, message = problem
        raise SpecError(source, line_of(root, path), field_name(path), message)
    return MaskSpec.from_dict(data)


def _hex_digits(heads: int) -> int:
    return max(1, math.ceil(heads / 4))


class _SpecDumper(yaml.SafeDumper):
    """Writes lists of scalars in flow style (``[0, 1]``), so a spec reads one layer per line,
    and indents block lists under their key (docs/DESIGN.md, section 4)."""

    def increase_indent(self, flow: bool = False, indentless: bool = False):
        return super().increase_indent(flow, False)


def _represent_list(dumper: yaml.SafeDumper, data: list) -> yaml.Node:
    flow = all(not isinstance(item, (list, tuple, dict)) for item in data)
    return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=flow)


_SpecDumper.add_representer(list, _represent_list)
_SpecDumper.add_representer(tuple, _represent_list)
