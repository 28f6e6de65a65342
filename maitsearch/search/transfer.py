"""Does a proxy's answer carry? Train the same placements on a proxy and on a target.

A search is worth its answer only if the placement it picks is also good where the user trains
for real. A transfer study trains the same placements, with the same seeds, on the proxy and on
a target that may change anything (width, depth, data, grid, epochs), and measures whether the
two rank them alike (``runs/transfer_report.py``).

Each side is an ordinary presets run (``strategy: presets``, the placements as ``baselines``)
in the transfer folder, ``results/<name>/proxy`` and ``results/<name>/target``, so each resumes,
caches and reports like any run. Both use the trial cache beside the top-level results folder
(not one inside the transfer folder): a presets run of the same config, placements and seeds
made anywhere else on the machine is all cache hits here, and the reverse.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path

from ..config import SearchConfig, load_config
from ..errors import ConfigError, SearchError
from ..events import EventFn
from ..runs import RunStore
from ..runs.cache import cache_folder
from ..runs.folder import run_folder
from ..runs.transfer_report import SIDES, analyse_transfer, proxy_identity, write_transfer_files
from .calibrate import REFERENCES
from .checks import check_config
from .confirm import run_placements
from .launch import RunSummary, config_digest, run_search
from .presets import PresetsStrategy

MIN_SEEDS = 2  # one seed has no noise to judge the regret by
TOP = 3  # a --from run's most accurate placements added, beside its answer


@dataclass
class TransferPlan:
    """Everything a study trains, checked before anything is written."""

    name: str
    folder: Path
    configs: dict[str, SearchConfig]  # side ("proxy", "target") -> its presets run's config
    sources: dict[str, str]  # side -> the config as the user named it
    placements: list[str]  # as given: presets and spec files
    labels: list[str]  # as the runs name them: a spec file results/RUN/best.yaml is RUN/best
    command: str


@dataclass
class TransferOutcome:
    plan: TransferPlan
    summaries: dict[str, RunSummary]
    result: dict
    report: Path


def default_name(target: str) -> str:
    """``transfer-<target config stem>``; a target preset already named ``transfer-...`` keeps its name."""
    stem = Path(target).stem if target.endswith((".yaml", ".yml")) else target
    if stem == "search" and target.endswith((".yaml", ".yml")):  # a run's search.yaml: name it by its run
        stem = Path(target).parent.name
    return stem if stem.startswith("transfer-") else f"transfer-{stem}"


def plan_transfer(proxy: str, target: str, *, placements: list[str] | None = None, from_run: str | None = None,
                  top: int | None = None, seeds: int | None = None, name: str | None = None,
                  results_root: str | Path = "results", jobs: int | None = None,
                  cache: str | None = None, device: str | None = None) -> TransferPlan:
    """The two sides' configs: each config as a presets run of ``placements`` (default: the
    calibration's references none, sch1, sch2, all and random), plus with ``from_run`` that
    finished run's ``top`` (default 3) most accurate placements and its answer, on ``seeds``
    seeds (default: the proxy config's) from the proxy's first seed, on both sides; ``device``
    (as ``run --device``) overrides both configs' ``proxy.device``."""
    sources = {"proxy": proxy, "target": target}
    loaded = {side: load_config(source, flag=f"--{side}") for side, source in sources.items()}
    count = seeds if seeds is not None else loaded["proxy"].seeds
    if not isinstance(count, int) or isinstance(count, bool) or count < MIN_SEEDS:
        given, way_out = ((f"--seeds {count}", "") if seeds is not None
                          else (f"--proxy {proxy}: seeds {count}", f"; give --seeds {MIN_SEEDS}"))
        raise ConfigError(f"{given}: a transfer pairs at least {MIN_SEEDS} seeds per placement; one seed leaves no "
                          f"seed noise to judge the regret by{way_out}")
    if from_run is None and top is not None:
        raise ConfigError(f"--top {top}: the number of a --from run's placements to add; give --from RUN")
    top = TOP if top is None else top
    if top < 1:
        raise ConfigError(f"--top {top}: take at least one of the run's placements")
    chosen = list(dict.fromkeys(p.strip() for p in (placements or REFERENCES) if p.strip()))
    taken = {PresetsStrategy(loaded["proxy"]).spec_of(p).key() for p in chosen}  # a name that is no placement: here
    if from_run is not None:
        chosen += run_placements(RunStore(results_root, from_run), top, taken)
    if len(chosen) < 2:
        raise ConfigError(f"--placements {','.join(chosen) or repr('')}: a ranking needs at least 2 different "
                          "placements")
    name = name or default_name(target)
    folder = run_folder(results_root, name)  # checks the name: one path component inside the results folder
    cache_path = cache_folder(results_root, cache)
    first_seed = loaded["proxy"].proxy.seed
    configs = {}
    for side, config in loaded.items():
        configs[side] = config.replace(
            strategy="presets", baselines=chosen, seeds=count,
            proxy=config.proxy.replace(seed=first_seed, device=device or config.proxy.device),
            optuna=dataclasses.replace(config.optuna, storage=None),  # a presets run keeps no study
            cache=_shown(cache_path), jobs=jobs if jobs is not None else config.jobs,
            description=f"the {side} side of transfer study {name}" + (f": {config.description}"
                                                                         if config.description else ""))
        check_config(configs[side], folder)  # every placement must fit both sides' shapes
        _check_existing(RunStore(folder, side), configs[side], name)
    labels = [PresetsStrategy(configs["proxy"]).spec_of(p).meta["preset"] for p in chosen]
    shared = sorted({label for label in labels if labels.count(label) > 1})
    if shared:
        raise ConfigError(f"--placements: {', '.join(p for p, label in zip(chosen, labels) if label in shared)} "
                          f"would share the name {shared[0]} in the runs' tables; copy one to a file of its own name")
    command = transfer_command(sources, placements, from_run, top, count, name, results_root, device)
    return TransferPlan(name, folder, configs, sources, chosen, labels, command)


def _check_existing(store: RunStore, config: SearchConfig, name: str) -> None:
    """A study re-run with other settings would mix two experiments in one folder: refused with
    the way out (the trial cache keeps every seed, so a new name retrains nothing twice)."""
    if not store.exists():
        return
    try:
        previous = store.load_config()
    except ValueError as err:
        raise SearchError(f"transfer {name}: cannot read {store.path / 'search.yaml'} ({err})") from None
    if config_digest(previous) != config_digest(config):
        raise SearchError(f"transfer {name} exists with another {store.name} config or other placements or seeds; "
                          "pick another --name (the trial cache keeps every trained seed, so nothing trains twice)")


def transfer_command(sources: dict[str, str], placements: list[str] | None, from_run: str | None, top: int,
                     seeds: int, name: str, results_root: str | Path, device: str | None = None) -> str:
    parts = ["maitsearch transfer", f"--proxy {sources['proxy']}", f"--target {sources['target']}"]
    if placements:
        parts.append(f"--placements {','.join(placements)}")
    if from_run is not None:
        parts.append(f"--from {from_run} --top {top}")
    parts += [f"--seeds {seeds}", f"--name {name}", f"--results {_shown(Path(results_root))}"]
    if device is not None:
        parts.append(f"--device {device}")
    return " ".join(parts)


def run_transfer(plan: TransferPlan, *, data: dict | None = None, on_event: EventFn | None = None) -> TransferOutcome:
    """Train (or resume) both sides, then write transfer.yaml, report.md and scatter.png.
    ``data`` may hold each side's loaded ``ImageData`` (side -> data); the runs load it otherwise."""
    from ..runs.report import write_report
    from ..runs.study_storage import redacted_config

    data = data or {}
    plan.folder.mkdir(parents=True, exist_ok=True)
    summaries = {side: run_search(plan.configs[side], results_root=plan.folder, name=side, data=data.get(side),
                                  on_event=on_event) for side in SIDES}
    values = {side: side_values(summaries[side], plan.labels) for side in SIDES}
    result = analyse_transfer(plan.labels, values["proxy"], values["target"])
    specs = {r.step: r.spec for r in summaries["target"].records}
    given = dict(zip(plan.labels, plan.placements))
    for row in result["placements"]:  # what each placement is, for tables and the scaling view
        row.update(given=given[row["placement"]], compact=specs[row["placement"]].compact(),
                   masked=specs[row["placement"]].num_masked)
    first = plan.configs["proxy"].proxy.seed
    result = {"name": plan.name, "command": plan.command, "verdict": result.pop("verdict"),
              "seed_list": list(range(first, first + result["seeds"])),
              **{side: describe_side(side, plan.sources[side], plan.configs[side]) for side in SIDES}, **result}
    report = write_transfer_files(plan.folder, result)
    for side in SIDES:  # again, now that the study exists: each side's report links it
        write_report(RunStore(plan.folder, side), redacted_config(plan.configs[side]), summaries[side])
    return TransferOutcome(plan, summaries, result, report)


def side_values(summary: RunSummary, labels: list[str]) -> dict[str, list[float]]:
    """Each placement's validation top-1 per seed on one side, by the name its run gave it (a
    presets run's step); a placement that did not finish there is one line naming it and why."""
    by_step = {record.step: record for record in summary.records}
    values = {}
    for name in labels:
        record = by_step.get(name)
        if record is None or record.state != "complete" or len(record.val_top1) != len(record.seeds):
            why = "not trained" if record is None else f"{record.state}: {record.reason or 'no result'}"
            raise SearchError(f"transfer: placement {name} did not finish in {summary.path} ({why}); "
                              "run the same command again to retry it")
        values[name] = list(record.val_top1)
    return values


def describe_side(side: str, source: str, config: SearchConfig) -> dict:
    proxy = config.proxy
    copies = f", train copies {proxy.train_copies}" if proxy.train_copies != 1 else ""
    return {"source": source, "run": side, "identity": proxy_identity(config), "data": proxy.data,
            "train_copies": proxy.train_copies, "layers": config.layers, "heads": config.heads,
            "about": f"{proxy.data}{copies}, {config.layers} layers x {config.heads} heads, width {proxy.width}, "
                     f"image {proxy.image_size} / patch {proxy.patch_size}, {proxy.epochs} epochs"}


def _shown(path: Path) -> str:
    """A path as the search.yaml and the command show it: relative to where the command runs,
    when it is below."""
    path = Path(path)
    try:
        return os.path.relpath(path) if path.resolve().is_relative_to(Path.cwd().resolve()) else str(path)
    except ValueError:
        return str(path)

