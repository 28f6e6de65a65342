"""The settings of a search, as plain dataclasses: ``SearchConfig`` and its sections, among them
``ProxyConfig``, the small model every trial trains.

A run is described by a preset YAML (``maitsearch/presets/``, shipped in the wheel; the checkout's
``searches/`` points there) or a run's own ``search.yaml``, with CLI flags layered on top. The
fully resolved config is written to ``results/<run>/search.yaml``, and
``maitsearch run --config results/<run>/search.yaml`` reproduces the run. No torch in
here: reading and comparing configs is instant.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from .errors import ConfigError, check_field_types, file_kind



def shipped_presets():
    """The presets folder inside the package (package data), so a preset name works wherever
    maitsearch is installed, a wheel included."""
    return resources.files("maitsearch") / "presets"


@dataclass
class ProxyConfig:
    """A proxy MaiT: the search's layers and heads, at a width, resolution and budget that train
    in minutes on a CPU. Defaults are measured, not guessed: see docs/PROXY.md, "The default proxy"."""

    layers: int = 24
    heads: int = 3
    width: int = 48  # 16 per head at 3 heads; narrower is barely faster (per-op overhead dominates)
    mlp_ratio: float = 2.0  # half of DeiT's 4: the MLP dominates a narrow model's step time
    # digits-shift is made at 24x24; patch 3 cuts it into the 8x8 grid that locality needs
    patch_size: int = 3
    image_size: int = 24
    # a digit somewhere on a canvas, 539 training digits: the data-limited, translation-varied
    # regime where locality should help (plain centred digits rank nothing; see README)
    data: str = "digits-shift"
    data_dir: str | None = None  # where torchvision sets live (the embedded tasks need none)
    # training images per source digit, as a multiple of the task's own (digits-shift: 539 x this):
    # more positions of the same digits, the validation and test images unchanged, so accuracies
    # compare across training-set sizes (the scaling and transfer studies, issue 29)
    train_copies: int = 1
    # 30 epochs suffice once the shifts and the sin-cos start below are on: 3 paired seeds
    # resolve 0.6 points there (60 epochs of the old recipe resolved 2.4)
    epochs: int = 30
    # shift each training image by up to this many pixels (zero-padded random crop), a fresh
    # shift every epoch: with 539 digits the unmasked model otherwise memorises positions, and
    # Sch.1's masked head stays near uniform (normalized ALS 0.1-0.2 instead of 0.3-0.5)
    shift_augment: int = 4
    # learned: timm's init; sincos: learned, but initialised from 2D sin-cos, so the patches
    # start out knowing where their neighbours are (lifts the unmasked baseline by 6 points)
    pos_embed: str = "sincos"
    # token: a class token reads the image, as in DeiT and the paper. avg: no class token, the
    # mean of the patches feeds the head; the class token is a global relay that every masked
    # patch can reach, and with it masking every head costs a long-range task almost nothing.
    # map: no class token; one learned query attends the last layer's patches (timm's attention
    # pooling), a relay only after the last block
    pool: str = "token"
    batch_size: int = 32  # small batches: more optimizer steps from few images
    eval_every: int = 5  # validate every n epochs (and after the last); pruners see only these
    # AdamW. DeiT's 5e-4 per 512 images would be 3e-5 here, far too slow; 3e-3 beat 1e-3 by 6-10
    # points at 12 layers and doubled the masked head's locality
    lr: float = 3e-3
    min_lr: float = 1e-5
    warmup_epochs: float = 2.0  # as DeiT: full lr on random attention weights destabilises training
    weight_decay: float = 0.05  # DeiT's value
    label_smoothing: float = 0.1  # DeiT's value
    drop_path: float = 0.0  # the paper finds 0 better for small MaiTs (section 5.2)
    layer_scale: float | None = 0.1  # MaiT* (paper Table 4); measured 57% -> 71% with it at 24 layers
    grad_clip: float | None = 1.0
    # soft-mask alphas learn at this multiple of lr, without weight decay (decay would pull
    # theta to 0, alpha to 0.5, the undecided middle): at 1x they did not move in 60 epochs
    alpha_lr_scale: float = 10.0
    alpha_weight_decay: float = 0.0
    # timm's "moco" init (xavier, qkv split in three): at width 48 it learns about twice as fast
    # as the default trunc-normal 0.02, which is scaled for widths of 192 and up
    weight_init: str = "moco"
    seed: int = 0
    device: str = "auto"  # auto: cuda when available, else cpu
    amp: bool = True  # bf16 autocast, on CUDA only
    compile: bool = False  # torch.compile the model, on CUDA only

    def replace(self, **changes: Any) -> "ProxyConfig":
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @property
    def grid(self) -> tuple[int, int]:
        side = self.image_size // self.patch_size
        return side, side


@dataclass
class AlsSettings:
    """The paper's 3-step strategy (section 4.2) reads the masked head's normalized ALS per layer
    (0: uniform attention, 1: all of it inside the window; docs/DESIGN.md, section 3)."""

    # absolute: the levels below; rank: levels read off this run's own step-1 ALS, because a
    # short proxy compresses the scale (its masked heads may never come near "close to 1")
    thresholds: str = "rank"
    als_high: float = 0.5  # absolute: "close to 1", mask every head of the layer
    als_low: float = 0.05  # absolute: "close to 0", remove the layer's mask (step 2) or a head's (step 3)
    promote: float = 0.33  # rank: this fraction of layers, the most local, get every head masked
    remove: float = 0.17  # rank: this fraction, the least local, lose their mask


@dataclass
class OptunaSettings:
    space: str = "counts"  # counts: masked heads per layer, canonical, (H+1)^L; full: 2^(L*H); blocks: Sch.2 shapes
    sampler: str = "tpe"  # tpe | nsga2 | gp | random
    pruner: str = "median"  # median | hyperband | none: per-epoch validation accuracy feeds it
    objectives: list[str] = field(default_factory=lambda: ["accuracy"])  # add attention_cost for a Pareto front
    storage: str | None = None  # None: the run's own study.db (study.journal for several workers)
    warm_start: list[str] = field(default_factory=lambda: ["sch1", "sch2", "none"])  # enqueued first; as baselines
    heartbeat_interval: int = 20  # seconds between a running trial's heartbeats
    grace_period: int = 60  # a trial silent this long belongs to a dead worker: failed and retried once
    # attention_cost's patch grid, rows and cols (or one side): the deployed model's, where the
    # masks' saving is spent (14 for 224 px at patch 16: a masked head keeps 5.1% of its logit
    # work there, 14.5% on the proxy's 8x8). None: the proxy's grid, as every run before it
    cost_grid: list[int] | int | None = None

    def attention_cost_grid(self, proxy_grid: tuple[int, int]) -> tuple[int, int]:
        """The grid attention_cost is computed on: ``cost_grid``, else the proxy's."""
        if self.cost_grid is None:
            return tuple(proxy_grid)
        grid = [self.cost_grid] * 2 if isinstance(self.cost_grid, int) else list(self.cost_grid)
        if len(grid) != 2 or not all(isinstance(side, int) and not isinstance(side, bool) and side > 0
                                     for side in grid):
            raise ConfigError(f"optuna.cost_grid: expected rows and cols, or one side, as positive integers; "
                              f"got {self.cost_grid!r}")
        return grid[0], grid[1]


@dataclass
class SoftSettings:
    """Soft masks (section 4.3): one training learns alpha per head; a hard placement follows.
    How fast alphas learn is the proxy's setting (``ProxyConfig.alpha_lr_scale``)."""

    initial: str = "all"  # all: every head soft; sch3: the paper's Sch.3, soft in the first 7/8 of layers
    alpha_init: float = 0.5  # sigmoid(0): no prior towards local or global
    alpha_hard: float = 0.1  # alpha at or below this becomes a hard mask
    alpha_none: float = 0.9  # alpha at or above this becomes an unmasked head
    # round the heads in between to the nearer of hard and unmasked, so the derived placement is
    # hard (the sparse, cheap kind); False keeps them soft at their learned alpha
    round: bool = True
    verify: bool = True  # train the derived placement once more to measure it


@dataclass
class SupernetSettings:
    """One-shot weight sharing (SPOS, docs/DESIGN.md section 8): one proxy trained with a placement
    drawn at every step scores any placement with its inherited weights in one forward pass, so a
    search can score thousands; only the few best are retrained from scratch. The space, the
    sampler and the objectives are the Optuna section's (``optuna.space``, ``sampler``,
    ``objectives``, ``warm_start``): the search over inherited weights is an Optuna study."""

    # the placement each training step draws. counts: every layer's count of masked heads uniform
    # over 0..H, the lowest heads masked (the counts space's canonical placements); heads: every
    # head masked with probability 1/2, any subset (the full space needs it); fair: counts drawn
    # so that each count comes once per layer in every H+1 steps (FairNAS's strict fairness);
    # staircase: uniform over the blocks space's staircases
    sampling: str = "counts"
    # None: twice the proxy's epochs, since a head trains under each of its roles about half the
    # time (the probe: 60 epochs for the default proxy's 30, about 3 trial-seeds of cost)
    epochs: int | None = None
    supernets: int = 1  # supernets trained (seeds proxy.seed, +1, ...); a placement's score is their mean
    # Scores are read on this fraction of the training images, held out of the supernets' training
    # (stratified by class, the same images for every supernet): not on validation, so the
    # validation set that ranks the retrained candidates never chose them, and not on test,
    # which no choice may read
    holdout: float = 0.2
    # each held-out image in this many copies, the first as it is, the others shifted by the proxy's
    # own augmentation (drawn once, with a fixed seed), as validation reads each digit at 3 spots.
    # A score is a forward pass over them: on the default proxy about 0.3 s per view of the 109
    # held-out digits on one core, so 1,000 scores of 1 view cost about a trial-seed and a half
    views: int = 1
    evaluations: int = 1000  # placements the search scores (the warm start included)
    # placements asked of the sampler at a time (TPE with a constant liar); each batch is scored
    # in parallel chunks of about batch / workers: larger batches idle the workers less, smaller
    # ones let the sampler learn more often
    batch: int = 50
    top: int = 3  # the highest-scoring placements, retrained from scratch with the run's seeds
    # fine-tune a copy of the inherited weights for this many steps with the placement fixed
    # before scoring it (at a tenth of the proxy's lr): costs steps x a training step per score
    finetune_steps: int = 0
    # Kendall's tau between supernet scores and stand-alone means over a spread of placements.
    # found: over those whose stand-alone means this run, the trial cache or a run folder beside
    # it holds (free); train: train the missing ones too, with the run's seeds; off: none
    fidelity: str = "found"


@dataclass
class SearchConfig:
    """Everything a search run computes from, and how it runs.

    Lifecycle: built from a preset or a run's ``search.yaml`` (``load_config``), with CLI flags
    layered on by ``replace``; written, with storage passwords redacted, to the run folder
    before the first trial; compared with that file on a re-run (``search.launch.config_digest``,
    which ignores the execution-only settings), so a resumed run computes what it started to.
    The proxy always takes the search's layers and heads.
    """

    strategy: str = "als"  # als | optuna | soft | supernet | presets (train the baselines only)
    layers: int = 24
    heads: int = 3
    window: list[int] = field(default_factory=lambda: [3, 3])
    semantics: str = "paper"
    seeds: int = 3  # every placement is trained with seeds 0..seeds-1 and ranked by the mean
    trials: int = 20  # optuna: trials in the study, counted over all workers
    # placements trained alongside, with the same seeds: presets (name@RxC sets a preset's own
    # window), spec files or compact text (3310, as tables print a placement)
    baselines: list[str] = field(default_factory=lambda: ["none", "sch1"])
    jobs: int = 0  # trials trained at once here, one process each; 0 = one per GPU or free core (launch.py)
    max_failures: int = 3  # failed trials tolerated before the search stops
    keep_checkpoints: bool = False  # save each trial's first-seed weights (for similarity plots)
    cache: str | None = None  # trial cache folder; None: $MAITSEARCH_CACHE, else .maitsearch-cache beside results
    description: str = ""
    proxy: ProxyConfig = field(default_factory=ProxyConfig)
    als: AlsSettings = field(default_factory=AlsSettings)
    optuna: OptunaSettings = field(default_factory=OptunaSettings)
    soft: SoftSettings = field(default_factory=SoftSettings)
    supernet: SupernetSettings = field(default_factory=SupernetSettings)

    def __post_init__(self):
        # The proxy is the search's model: its depth and width in heads are the search's.
        self.proxy = dataclasses.replace(self.proxy, layers=self.layers, heads=self.heads)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def replace(self, **changes: Any) -> "SearchConfig":
        return dataclasses.replace(self, **changes)


_SECTIONS = {"proxy": ProxyConfig, "als": AlsSettings, "optuna": OptunaSettings, "soft": SoftSettings,
             "supernet": SupernetSettings}


def _build(cls, data, where: str):
    """``cls(**data)`` for a dataclass, refusing keys it does not have and values of the wrong
    type with one clear line."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping of fields")
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(f"{where}: unknown field(s) {', '.join(unknown)}; known: {', '.join(sorted(names))}")
    check_field_types(cls, data, where)
    try:
        return cls(**data)
    except TypeError as err:
        raise ConfigError(f"{where}: {err}") from None


def config_from_dict(data: dict, where: str = "config") -> SearchConfig:
    """Strict: unknown keys are errors that name the file and the key."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: a search config is a mapping of fields")
    values = dict(data)
    for section, cls in _SECTIONS.items():
        if section in values:
            values[section] = _build(cls, values[section] or {}, f"{where}: {section}")
    return _build(SearchConfig, values, where)


def preset_names() -> list[str]:
    """The presets shipped with the package."""
    return sorted(entry.name[:-len(".yaml")] for entry in shipped_presets().iterdir()
                  if entry.name.endswith(".yaml"))


def resolve_config_path(name_or_path: str | Path, flag: str = "--config"):
    """A YAML file's path, or a preset name (``quick``): ``./searches/NAME.yaml`` first (a user's
    own presets beside their results), then the presets shipped in the package. ``flag``: the
    option an error names (``transfer`` takes two configs, as ``--proxy`` and ``--target``)."""
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") or path.exists():
        if not path.is_file():
            raise ConfigError(f"{flag} {path}: no such file")
        return path
    local = Path.cwd() / "searches" / f"{name_or_path}.yaml"
    if local.is_file():
        return local
    shipped = shipped_presets() / f"{name_or_path}.yaml"
    if shipped.is_file():
        return shipped
    raise ConfigError(f"{flag} {name_or_path}: no such file or preset (presets: {', '.join(preset_names())})")


def load_config(name_or_path: str | Path, flag: str = "--config") -> SearchConfig:
    path = resolve_config_path(name_or_path, flag)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        line = f":{mark.line + 1}" if mark else ""
        raise ConfigError(f"{path}{line}: invalid YAML: {getattr(err, 'problem', err)}") from None
    kind = file_kind(data)
    if kind == "mask spec":
        raise ConfigError(f"{flag} {path}: a mask spec, not a search config; train it with maitsearch train --spec "
                          f"{path}, or search beside it with --baselines none,{path}")
    if kind == "training config":
        raise ConfigError(f"{flag} {path}: a training config (maitsearch train -c), not a search config")
    return config_from_dict(data, where=str(path))


def config_to_yaml(config: SearchConfig) -> str:
    return yaml.safe_dump(config.to_dict(), sort_keys=False)


# Proxy options newer than run names derived from the digest, at the value that computes as
# before: left out of it, so a run named by default before the option existed keeps its name and
# resumes (runs/cache.py keeps trial-cache keys the same way).
DIGEST_NEUTRAL = {"train_copies": 1}


# Sections added after runs were named by their digest: left out of it at their defaults.
SECTIONS_NEWER_THAN_RUN_NAMES = {"supernet": SupernetSettings}


def key_device(device: str) -> str:
    """A device setting as a run's identity holds it: any list of GPUs is ``cuda``; ``auto`` and
    ``cpu`` stay as written."""
    return "cuda" if str(device).startswith("cuda") else device


def config_identity(config: SearchConfig, leave_out=(), leave_out_proxy=()) -> str:
    """A short identity of what ``config`` computes, without the top-level settings ``leave_out``
    and the proxy's ``leave_out_proxy``. Numbers are compared as values: a YAML's ``2`` and
    ``2.0`` are the same setting. Run names and resume checks use it through
    ``search.launch.config_digest``; transfer studies match proxies with it."""
    def normal(value):
        if isinstance(value, dict):
            return {k: normal(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [normal(v) for v in value]
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        return value

    data = {k: v for k, v in config.to_dict().items() if k not in leave_out}
    if "proxy" in data:
        data["proxy"] = {k: v for k, v in data["proxy"].items() if k not in leave_out_proxy
                         and not (k in DIGEST_NEUTRAL and DIGEST_NEUTRAL[k] == v)}
        if "device" in data["proxy"]:  # which GPUs a search got changes nothing it computes
            data["proxy"]["device"] = key_device(data["proxy"]["device"])
    if "optuna" in data and data["optuna"].get("cost_grid") is None:  # newer than run names, unset
        data["optuna"] = {k: v for k, v in data["optuna"].items() if k != "cost_grid"}
    for name, settings in SECTIONS_NEWER_THAN_RUN_NAMES.items():  # at their defaults: as before they existed
        if normal(data.get(name)) == normal(dataclasses.asdict(settings())):
            data.pop(name)
    return hashlib.sha1(json.dumps(normal(data), sort_keys=True, default=str).encode()).hexdigest()[:6]
