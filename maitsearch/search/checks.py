"""Every setting of a run, checked before anything is written: a mistake costs one line and
leaves no run folder behind. ``run_search`` calls ``check_config`` first; the CLI calls it too,
before it draws a progress bar."""

from __future__ import annotations

import os
from pathlib import Path

from ..atomic import check_writable
from ..config import ProxyConfig, SearchConfig
from ..data import check_train_copies
from ..errors import AT_LEAST_0, FRACTION, POSITIVE, ConfigError, check_bounds
from ..runs.cache import CACHE_ENV, cache_folder
from ..spec import preset
from ..training.proxy import check_model_choices
from .base import Strategy
from .devices import check_devices
from .registry import make_strategy


def check_config(config: SearchConfig, results_root: str | Path | None = None,
                 strategy: Strategy | None = None) -> Strategy:
    """Raise a one-line ``MaitsearchError`` for the first bad setting; return the strategy (its
    constructor checks its own settings, its ``spec_of`` every baseline)."""
    for name, value, least in (("--layers", config.layers, 1), ("--heads", config.heads, 1),  # the proxy's too
                               ("--seeds", config.seeds, 1), ("--trials", config.trials, 1),
                               ("--jobs", config.jobs, 0), ("--max-failures", config.max_failures, 0)):
        if not isinstance(value, int) or isinstance(value, bool) or value < least:
            raise ConfigError(f"{name} {value!r}: expected a whole number of at least {least}")
    check_proxy(config.proxy)
    preset("none", config.layers, config.heads, window=tuple(config.window), semantics=config.semantics)
    if config.strategy == "presets" and not config.baselines:
        raise ConfigError("--baselines: the presets strategy trains these side by side; name at least one, such as "
                          "none,sch1")
    strategy = strategy or make_strategy(config)
    for name in config.baselines:
        strategy.spec_of(name)
    if results_root is not None:
        check_writable(Path(results_root), "--results")
        named_by = "--cache" if config.cache or not os.environ.get(CACHE_ENV) else f"${CACHE_ENV}"
        check_writable(cache_folder(results_root, config.cache), named_by)
    return strategy


# the proxy's numbers that are not whole numbers (checked first, with the grid they make)
PROXY_BOUNDS = {"lr": POSITIVE, "alpha_lr_scale": POSITIVE, "mlp_ratio": POSITIVE, "min_lr": AT_LEAST_0,
                "weight_decay": AT_LEAST_0, "alpha_weight_decay": AT_LEAST_0, "warmup_epochs": AT_LEAST_0,
                "label_smoothing": FRACTION, "drop_path": FRACTION,
                "grad_clip": (AT_LEAST_0[0], "expected a gradient norm (0 or null: no clipping)")}


def check_proxy(proxy: ProxyConfig) -> None:
    for name in ("layers", "heads", "width", "patch_size", "image_size", "epochs", "batch_size", "eval_every"):
        value = getattr(proxy, name)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ConfigError(f"proxy.{name} {value!r}: expected a positive whole number")
    if proxy.image_size % proxy.patch_size:
        raise ConfigError(f"proxy.image_size {proxy.image_size} is not a multiple of proxy.patch_size "
                          f"{proxy.patch_size}: the patches must tile the image")
    if proxy.width % proxy.heads:
        near = proxy.heads * max(1, round(proxy.width / proxy.heads))
        raise ConfigError(f"proxy.width {proxy.width} does not split into {proxy.heads} heads: give --width (or "
                          f"proxy.width) a multiple of {proxy.heads}, such as {near}")
    check_bounds(proxy, PROXY_BOUNDS, lambda name: f"proxy.{name}")
    check_model_choices(proxy)
    if proxy.shift_augment < 0:
        raise ConfigError(f"proxy.shift_augment {proxy.shift_augment}: a shift in pixels, at least 0")
    check_train_copies(proxy.data, proxy.train_copies)
    check_devices(proxy.device)
