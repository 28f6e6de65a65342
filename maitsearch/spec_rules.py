"""The rules a mask spec's data obeys (docs/DESIGN.md, section 4), and where in a YAML file a broken
one sits.

One set of rules validates YAML input, inline config dicts and specs built in Python alike, so a
spec is never valid in one form and not in another. Each rule yields (path, message) and the
first one ends the check: the user fixes one line at a time. tests/test_spec.py reads the messages
from ``_problems``'s source and checks that every one is reachable.
"""

from __future__ import annotations

import math
from typing import Any, Iterator, Sequence

import yaml

from .errors import SpecError, file_kind

VERSION = 1
SEMANTICS = ("paper", "local")
PATTERNS = ("window", "random")

REQUIRED = ("version", "layers", "heads", "masks")
OPTIONAL = ("window", "semantics", "pattern", "pattern_seed", "soft", "meta")
FIELDS = REQUIRED + OPTIONAL


# ---- the rules -----------------------------------------------------------------------------
def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return (_is_int(value) or isinstance(value, float)) and math.isfinite(value)


def _type_name(value: Any) -> str:
    return {str: "text", bool: "a boolean", list: "a list", dict: "a mapping", type(None): "null"}.get(
        type(value), type(value).__name__)


def first_problem(data: Any) -> tuple[tuple, str] | None:
    """The first broken rule as (path, message), or None. Works on plain data from YAML or
    from ``MaskSpec.to_dict``."""
    return next(_problems(data), None)


def _problems(data: Any) -> Iterator[tuple[tuple, str]]:
    if not isinstance(data, dict):
        yield (), f"a mask spec is a mapping of fields, got {_type_name(data)}"
        return
    kind = None if "version" in data else file_kind(data)  # a spec with a stray key is still a spec
    if kind == "search config":
        yield (), "a search config, not a mask spec: run it with maitsearch run --config"
        return
    if kind == "training config":
        yield (), "a training config, not a mask spec: pass it to maitsearch train -c"
        return
    for key in data:
        if key not in FIELDS:
            yield (key,), f"unknown field; allowed fields are {', '.join(FIELDS)}"
            return
    for key in REQUIRED:
        if key not in data:
            yield (key,), "required field is missing"
            return

    if not (_is_int(data["version"]) and data["version"] == VERSION):
        yield ("version",), f"unsupported version {data['version']!r}; this maitsearch reads version {VERSION}"
        return
    for key in ("layers", "heads"):
        if not _is_int(data[key]) or data[key] < 1:
            yield (key,), f"must be a positive integer, got {data[key]!r}"
            return
    layers, heads = data["layers"], data["heads"]

    window = data.get("window", [3, 3])
    if not (isinstance(window, (list, tuple)) and len(window) == 2 and all(_is_int(w) for w in window)):
        yield ("window",), f"must be [rows, cols], two odd integers, got {window!r}"
        return
    if any(w < 1 or w % 2 == 0 for w in window):
        yield ("window",), f"window sizes must be odd and positive (centred on the patch), got {list(window)}"
        return

    semantics = data.get("semantics", "paper")
    if semantics not in SEMANTICS:
        yield ("semantics",), f"must be one of {', '.join(SEMANTICS)}, got {semantics!r}"
        return
    pattern = data.get("pattern", "window")
    if pattern not in PATTERNS:
        yield ("pattern",), f"must be one of {', '.join(PATTERNS)}, got {pattern!r}"
        return
    if not _is_int(data.get("pattern_seed", 0)):
        yield ("pattern_seed",), f"must be an integer, got {data['pattern_seed']!r}"
        return

    masks = data["masks"]
    if not isinstance(masks, (list, tuple)):
        yield ("masks",), f"must be a list with one list of masked heads per layer, got {_type_name(masks)}"
        return
    if len(masks) != layers:
        yield ("masks",), f"has {len(masks)} layer entries but layers is {layers}"
        return
    for l, layer in enumerate(masks):
        if not isinstance(layer, (list, tuple)):
            yield ("masks", l), f"must be a list of head indices (use [] for no mask), got {layer!r}"
            return
        for i, h in enumerate(layer):
            if not _is_int(h):
                yield ("masks", l, i), f"head index must be an integer, got {h!r}"
                return
            if not 0 <= h < heads:
                yield ("masks", l, i), f"head {h} is out of range: heads are 0..{heads - 1}"
                return
        if len(set(layer)) != len(layer):
            yield ("masks", l), f"lists a head twice: {list(layer)}"
            return

    soft = data.get("soft")
    if soft is not None:
        if not isinstance(soft, (list, tuple)) or len(soft) != layers:
            yield ("soft",), f"must be null or one list of {heads} alphas per layer ({layers} lists)"
            return
        for l, layer in enumerate(soft):
            if not isinstance(layer, (list, tuple)) or len(layer) != heads:
                yield ("soft", l), f"must list {heads} alphas, one per head, got {layer!r}"
                return
            for h, alpha in enumerate(layer):
                if isinstance(alpha, str):
                    yield ("soft", l, h), (f"expected a number, got the text {alpha!r} "
                                           "(YAML reads 1e-3 as text: write 0.001 or 1.0e-3)")
                    return
                if not _is_number(alpha):
                    yield ("soft", l, h), f"expected a number in [0, 1], got {alpha!r}"
                    return
                if not 0.0 <= alpha <= 1.0:
                    yield ("soft", l, h), f"alpha must be in [0, 1], got {alpha}"
                    return
                if (alpha == 0.0) != (h in masks[l]):
                    message = (f"head {h} is hard-masked, so its alpha must be 0, got {alpha}" if h in masks[l]
                               else f"alpha 0 is a hard mask: list head {h} in masks[{l}] instead")
                    yield ("soft", l, h), message
                    return

    meta = data.get("meta")
    if meta is not None and not isinstance(meta, dict):
        yield ("meta",), f"must be a mapping, got {_type_name(meta)}"


# ---- where in the YAML ---------------------------------------------------------------------
def reject_duplicate_keys(node: yaml.Node, source: str, where: tuple = ()) -> None:
    """PyYAML keeps the last of two equal keys without a word; a spec with ``masks`` twice is a
    mistake the user should hear about, so this runs on the node tree before construction."""
    if isinstance(node, yaml.MappingNode):
        seen: set = set()
        for key_node, value_node in node.value:
            key = key_node.value
            if key in seen:
                raise SpecError(source, key_node.start_mark.line + 1, field_name(where + (key,)), "duplicate key")
            seen.add(key)
            reject_duplicate_keys(value_node, source, where + (key,))
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            reject_duplicate_keys(item, source, where + (index,))


def line_of(root: yaml.Node, path: tuple) -> int:
    """The line of the deepest node along ``path`` that exists (1-based)."""
    node, line = root, root.start_mark.line + 1
    for step in path:
        if isinstance(node, yaml.MappingNode):
            match = [(k, v) for k, v in node.value if k.value == step]
            if not match:
                break
            key_node, node = match[0]
            line = key_node.start_mark.line + 1
        elif isinstance(node, yaml.SequenceNode) and isinstance(step, int) and step < len(node.value):
            node = node.value[step]
            line = node.start_mark.line + 1
        else:
            break
    return line


def field_name(path: Sequence) -> str:
    name = ""
    for step in path:
        name += f"[{step}]" if isinstance(step, int) else (f".{step}" if name else str(step))
    return name or "spec"
