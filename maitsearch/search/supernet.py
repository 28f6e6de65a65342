"""One-shot weight sharing (single-path one-shot, SPOS): score thousands of placements with one
trained supernet, retrain the best few (docs/DESIGN.md, section 8).

1. supernets:  one job per supernet (``supernet.supernets``), and beside them on the executor
               as many baselines as fill its other workers: each job trains the proxy with a
               placement drawn at every step (``supernet.sampling``) on the training images
               minus a held-out part.
2. search:     an Optuna study over the run's space (``optuna.space``, ``sampler``,
               ``objectives``, warm-started with ``optuna.warm_start``) scores
               ``supernet.evaluations`` placements with the supernets' inherited weights on the
               held-out images, ``batch`` at a time, each batch in chunks that the executor's
               workers score at once. The fidelity placements are scored with the first batch.
3. candidates: the ``top`` highest-scoring networks (on the Pareto front first when
               attention_cost is an objective; placements the output cannot tell apart are
               one network, ``network_key``) train from scratch with the run's seeds, beside
               the other baselines and paired with them. best.yaml is the most accurate of
               them and the baselines; answer.yaml is the supernet's own top pick.
4. fidelity:   Kendall's tau between scores and stand-alone means (``fidelity.py``) and the costs
               go to supernet.yaml, which the report shows.

Files: ``supernet/seed-<k>.pt`` (weights) and ``.json`` (its training), ``evaluations.jsonl``
(every score, in order) and ``supernet.yaml``. A resumed run trains no supernet whose weights
exist, nor any when every score is recorded (a partial training goes on from its last epoch),
and scores nothing recorded: the study is rebuilt from evaluations.jsonl, with the sampler
reseeded per batch from the count of trials, so a run resumed between batches asks what an
uninterrupted one would.
"""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path

from .. import atomic
from ..errors import ConfigError, check_choice
from ..model.locality import attention_cost
from ..runs import TrialRecord
from ..runs.cache import TrialCache, cache_folder
from ..runs.report import fidelity_sentence
from ..runs.study_storage import experimental_optuna
from ..spec import MaskSpec
from ..stats import mean_std
from .base import Proposal, Strategy
from .fidelity import StandaloneMeans, rank_fidelity, spread_placements, unique
from .optuna_study import SPACES, check_objectives, params_for_placement, suggest_placement
from .supernet_jobs import SAMPLINGS, PlacementSampler, ScorePlacements, TrainSupernet, summary_path

SAMPLERS = ("tpe", "nsga2", "random")  # GP refits a cubic-cost model every trial: not for thousands
FIDELITY = ("found", "train", "off")
EVALUATIONS = "evaluations.jsonl"
SUMMARY = "supernet.yaml"
PRESET_ATTR = "maitsearch:preset"


class SupernetStrategy(Strategy):
    name = "supernet"

    def __init__(self, config):
        super().__init__(config)
        check_supernet_settings(config)
        self.settings = settings = config.supernet
        self.epochs = settings.epochs or 2 * config.proxy.epochs
        self.samplers = [PlacementSampler(settings.sampling, config.layers, config.heads, config.proxy.seed + k,
                                          tuple(config.window), config.semantics) for k in range(settings.supernets)]
        self.descriptor = self.samplers[0].descriptor()
        self.stage = "start"
        self.store = None
        self.rows: list[dict] = []  # evaluations.jsonl, in order
        self.scored: dict[str, dict] = {}  # network key (``network_key``) -> the row that scored it
        self.pending: dict[str, list[tuple]] = {}  # chunk file -> its (trial, spec, name) entries in flight
        self.arrived: list[tuple] = []  # (entry, result) of this round; a repeat's result is None
        self.records: list[TrialRecord] = []  # trials told: baselines, candidates, fidelity
        self.top: list[dict] = []  # rows of the placements retrained, best first
        self.later_baselines: list[Proposal] = []  # trained beside the candidates (``_baselines_beside``)
        self.study = None
        self.standalone: StandaloneMeans | None = None
        self.fidelity_set: dict[str, MaskSpec] = {}
        self.failed = ""
        self.summary: dict = {}

    # ---- wiring ---------------------------------------------------------------------------
    def attach(self, store) -> None:
        self.store = store
        self.folder = store.path / "supernet"
        path = store.path / EVALUATIONS
        lines = path.read_text().splitlines() if path.exists() else []
        self.rows = [json.loads(line) for line in lines if line.strip()]
        self.scored = {}
        for row in self.rows:  # keyed afresh: rows of a run scored before networks were told apart
            if row["duplicate_of"] is None:
                self.scored.setdefault(self._network(self._spec(row["placement"])), row)
        for leftover in (self.folder / "scores").glob("*.json"):  # chunks in flight when a run was killed
            leftover.unlink()
        cache = TrialCache(cache_folder(store.path.parent, self.config.cache))
        self.standalone = StandaloneMeans(self.config, store.path.parent, cache, own=store.name)
        if self.settings.fidelity != "off":
            self.fidelity_set = unique({**spread_placements(self.config), **self.standalone.found})

    def weights(self, sampler: PlacementSampler) -> Path:
        return self.folder / f"seed-{sampler.seed}.pt"

    # ---- ask / tell -----------------------------------------------------------------------
    def ask(self) -> list[Proposal]:
        while self.stage != "done":
            proposals = getattr(self, f"_ask_{self.stage}")()
            if proposals:
                return proposals
        return []

    def _ask_start(self) -> list[Proposal]:
        self.stage = "search"
        baselines = self.baselines()
        settings = self.settings
        jobs = [Proposal(self.descriptor, "supernet", job=TrainSupernet(sampler, self.epochs, settings.holdout,
                                                                        settings.views, str(self.weights(sampler))))
                for sampler in self.samplers if not self.weights(sampler).exists()] if self._to_score() else []
        fidelity = self._fidelity_training({p.spec.key() for p in baselines})
        early = self._baselines_beside(len(jobs), len(baselines), len(fidelity))
        self.later_baselines = baselines[early:]
        return jobs + baselines[:early] + fidelity

    def _baselines_beside(self, supernets: int, baselines: int, fidelity: int) -> int:
        """How many baselines train beside the supernets; the rest train beside the candidates.
        Each phase ends when its last unit does, so a worker left idle while a supernet trains, or
        one left alone with the candidates' last seed, is lost time: of every split, the one whose
        two phases take the least time on the run's workers (a supernet costs about its share of a
        proxy's epochs and images); of equal ones, the one with the most baselines first."""
        from .launch import resolve_jobs

        if not supernets:
            return baselines
        workers, seeds = max(1, resolve_jobs(self.config)), self.config.seeds
        supernet = self.epochs / self.config.proxy.epochs * (1 - self.settings.holdout)
        candidates = self.settings.top if self.settings.evaluations else 0

        def phases(early: int) -> float:
            first = [supernet] * supernets + [1.0] * (seeds * (early + fidelity))
            return makespan(first, workers) + makespan([1.0] * (seeds * (baselines - early + candidates)), workers)

        return min(range(baselines, -1, -1), key=phases)

    def _to_score(self) -> bool:
        """Whether anything is left to score: a finished run whose weights were not kept (they are
        large) resumes from evaluations.jsonl without training its supernets again."""
        return (len(self._searched()) < self.settings.evaluations
                or any(self._network(spec) not in self.scored for spec in self.fidelity_set.values()))

    def _fidelity_training(self, taken: set[str]) -> list[Proposal]:
        """With ``fidelity: train``, the spread placements no run beside this one has trained."""
        if self.settings.fidelity != "train":
            return []
        return [Proposal(spec, "fidelity") for spec in self.fidelity_set.values()
                if spec.key() not in taken and self.standalone.values(spec) is None]

    def _ask_search(self) -> list[Proposal]:
        if self.failed:
            self.stage = "done"
            return []
        if self.study is None:
            self.study = self._open_study()
            fidelity = [(None, spec, name) for name, spec in self.fidelity_set.items()
                        if self._network(spec) not in self.scored]
            jobs = self._score_jobs(fidelity, "fidelity")
        else:
            jobs = []
        jobs += self._next_batch()
        if not jobs:
            self.stage = "candidates"
        return jobs

    def _ask_candidates(self) -> list[Proposal]:
        self.stage = "finish"
        if self.failed:
            return []
        self.top = self._top()
        proposals = list(self.later_baselines)
        for row in self.top:
            spec = self._spec(row["placement"])
            proposals.append(Proposal(spec.with_meta(preset=row["name"]) if row.get("name") else spec, "candidate"))
        return proposals

    def _ask_finish(self) -> list[Proposal]:
        self.stage = "done"
        if self.store is not None and not self.failed:
            self.summary = self._summary()
            self.store.write_yaml(SUMMARY, self.summary)
        return []

    def tell(self, proposal: Proposal, record: TrialRecord) -> None:
        job = proposal.job
        if job is None:
            self.records.append(record)
            self.standalone.add(record)
            return
        if record.state != "complete":
            self.failed = f"{proposal.step} ({job.describe()}) ended {record.state}: {record.reason}"
            for trial, _, _ in self.pending.pop(getattr(job, "out", ""), []):
                if trial is not None:
                    from optuna.trial import TrialState

                    self.study.tell(trial, state=TrialState.FAIL)
            return
        if isinstance(job, ScorePlacements):
            self._scored(job)

    # ---- the study ------------------------------------------------------------------------
    def _open_study(self):
        """An in-memory study holding every recorded evaluation, warm starts not yet scored queued."""
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        objectives = self.config.optuna.objectives
        study = optuna.create_study(directions=["maximize"] + ["minimize"] * (len(objectives) - 1),
                                    sampler=self._sampler(0))
        for row in self._searched():
            fixed = optuna.trial.FixedTrial(row["params"])
            suggest_placement(fixed, self.config)  # the distributions the trial was asked with
            user = {PRESET_ATTR: row["name"]} if row.get("name") else {}
            study.add_trial(optuna.trial.create_trial(params=row["params"], distributions=fixed.distributions,
                                                      values=row["values"], user_attrs=user,
                                                      system_attrs=row.get("system_attrs") or {}))
        done = {row.get("name") for row in self._searched()}
        for name in self.config.optuna.warm_start[:self.settings.evaluations]:
            params = params_for_placement(self.spec_of(name), self.config)
            if name not in done and params is not None:
                study.enqueue_trial(params, user_attrs={PRESET_ATTR: name})
        return study

    def _sampler(self, trials: int):
        """A sampler seeded by the run's seed and the number of trials before this batch."""
        import optuna

        seed = self.config.proxy.seed * 100_003 + trials
        startup = max(10, self.settings.evaluations // 10)
        with experimental_optuna():
            return {"tpe": lambda: optuna.samplers.TPESampler(seed=seed, multivariate=True, n_startup_trials=startup,
                                                              constant_liar=True),
                    "nsga2": lambda: optuna.samplers.NSGAIISampler(seed=seed),
                    "random": lambda: optuna.samplers.RandomSampler(seed=seed)}[self.config.optuna.sampler]()

    def _searched(self) -> list[dict]:
        return [row for row in self.rows if row["source"] == "search"]

    def _next_batch(self) -> list[Proposal]:
        """The next batch's new placements, as score jobs. A network scored before, or already in
        this round, is not scored again: the same weights give it the same score."""
        entries: list[tuple] = []
        while not entries:
            left = (self.settings.evaluations - len(self._searched())
                    - sum(1 for (trial, _, _), _ in self.arrived if trial is not None))
            if left <= 0:
                break
            self.study.sampler = self._sampler(len(self.study.get_trials(deepcopy=False)))
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # TPE's multivariate and constant liar are "experimental"
                for _ in range(min(left, self.settings.batch)):
                    trial = self.study.ask()
                    entry = (trial, suggest_placement(trial, self.config), trial.user_attrs.get(PRESET_ATTR))
                    network = self._network(entry[1])
                    if network in self.scored or network in self._in_flight():
                        self.arrived.append((entry, None))  # a repeat: resolved when its round is in
                    else:
                        entries.append(entry)
                        self.pending.setdefault("", []).append(entry)  # in flight until its chunk is made
            if not entries and not self.pending:  # a round of repeats only: nothing to wait for
                self._commit()
        self.pending.pop("", None)
        return self._score_jobs(entries, "search")

    def _in_flight(self) -> set[str]:
        return {self._network(spec) for chunk in self.pending.values() for _, spec, _ in chunk}

    def _score_jobs(self, entries: list[tuple], label: str) -> list[Proposal]:
        """``entries`` in about one chunk per worker, each a job that writes its scores to a file."""
        from .launch import resolve_jobs

        if not entries:
            return []
        chunks = min(len(entries), max(1, resolve_jobs(self.config)))
        size = math.ceil(len(entries) / chunks)
        proposals = []
        for start in range(0, len(entries), size):
            part = entries[start:start + size]
            out = self.folder / "scores" / f"{label}-{len(self.rows)}-{start}.json"
            self.pending[str(out)] = part
            job = ScorePlacements([str(self.weights(s)) for s in self.samplers],
                                  [spec.to_dict() for _, spec, _ in part], self.settings.holdout, self.settings.views,
                                  str(out), self.settings.finetune_steps)
            proposals.append(Proposal(self.descriptor, f"score {label}", job=job))
        return proposals

    def _scored(self, job: ScorePlacements) -> None:
        out = Path(job.out)
        self.arrived += list(zip(self.pending.pop(job.out), json.loads(out.read_text())))
        out.unlink()
        if not self.pending:
            self._commit()

    def _commit(self) -> None:
        """Record a round's scores in a fixed order (fidelity placements, then trials by number),
        whatever order its chunks finished in: the file, and the study a resume rebuilds from it,
        are the same every time. A repeat follows the placement it repeats."""
        names = list(self.fidelity_set)

        def order(item):
            trial, _, name = item[0]
            return (1, trial.number) if trial is not None else (0, names.index(name) if name in names else len(names))

        for entry, result in sorted(self.arrived, key=order):
            earlier = self.scored.get(self._network(entry[1])) if result is None else None
            if earlier is not None:
                result = {"top1": earlier["top1"], "loss": earlier["losses"], "seconds": 0.0}
            self._record(entry, result, duplicate_of=earlier["index"] if earlier is not None else None)
        self.arrived = []
        self._write_rows()

    def _record(self, entry: tuple, result: dict, duplicate_of: int | None = None) -> None:
        trial, spec, name = entry
        score = mean_std(result["top1"])[0]
        values = [score]
        if "attention_cost" in self.config.optuna.objectives:
            values.append(attention_cost(spec, self.config.proxy.grid, num_prefix=1))
        row = {"index": len(self.rows), "source": "fidelity" if trial is None else "search",
               "number": None if trial is None else trial.number, "name": name, "placement": spec.compact(),
               "key": spec.key(), "score": score, "loss": mean_std(result["loss"])[0], "values": values,
               "top1": list(result["top1"]), "losses": list(result["loss"]), "seconds": round(result["seconds"], 4),
               "duplicate_of": duplicate_of}
        if trial is not None:
            self.study.tell(trial, values)
            frozen = self.study.get_trials(deepcopy=False)[trial.number]
            row.update(params=dict(trial.params), system_attrs=dict(frozen.system_attrs))
        self.rows.append(row)
        if duplicate_of is None:
            self.scored[self._network(spec)] = row

    def _write_rows(self) -> None:
        atomic.write_text(self.store.path / EVALUATIONS, "".join(json.dumps(row) + "\n" for row in self.rows))

    def _top(self) -> list[dict]:
        """The ``top`` distinct networks the search scored, by score (ties: lower held-out loss,
        then the earlier evaluation), each as the placement that first scored it; with
        attention_cost as an objective, the Pareto front's first."""
        first: dict[str, dict] = {}
        for row in self._searched():  # a repeat of a fidelity placement is a search result too
            first.setdefault(self._network(self._spec(row["placement"])), row)
        rows = sorted(first.values(), key=lambda row: (-row["score"], row["loss"], row["index"]))
        if len(self.config.optuna.objectives) > 1:  # (accuracy up, attention cost down)
            def dominated(row):
                (score, cost) = row["values"]
                return any(o["values"][0] >= score and o["values"][1] <= cost and o["values"] != row["values"]
                           for o in rows)

            rows = [row for row in rows if not dominated(row)] + [row for row in rows if dominated(row)]
        return rows[:self.settings.top]

    def _spec(self, placement: str) -> MaskSpec:
        return MaskSpec.from_compact(placement, self.config.heads, window=tuple(self.config.window),
                                     semantics=self.config.semantics)

    def _network(self, spec: MaskSpec) -> str:
        """The key of the network ``spec`` makes: placements that differ only in masks the output
        never reads are one network, scored once and retrained once (``network_key``)."""
        return network_key(spec, self.config.proxy.pool)

    # ---- the answer -----------------------------------------------------------------------
    def choose(self, records: list[TrialRecord]) -> TrialRecord | None:
        """best.yaml: the most accurate of the retrained candidates and the baselines."""
        return super().choose([r for r in records if r.step in ("baseline", "candidate")])

    def answer(self) -> TrialRecord | None:
        """The supernet's own top pick, as retrained."""
        if not self.top:
            return None
        key = self._spec(self.top[0]["placement"]).key()
        return next((r for r in self.records if r.step == "candidate" and r.spec.key() == key
                     and r.state == "complete"), None)

    def _summary(self) -> dict:
        """supernet.yaml: what each phase cost and how well the supernet ranked."""
        trainings = [json.loads(summary_path(self.weights(s)).read_text()) for s in self.samplers
                     if summary_path(self.weights(s)).exists()]
        searched = self._searched()
        scored = [row for row in self.rows if row["duplicate_of"] is None]
        seconds = sum(row["seconds"] for row in scored)
        by_step = {step: [r for r in self.records if r.step == step and r.duplicate_of is None]
                   for step in ("baseline", "candidate", "fidelity")}
        costs = {step: {"trials": len(records), "trial_seeds": sum(len(r.seeds) - r.cached for r in records),
                        "seconds": round(sum(r.seconds for r in records), 1)} for step, records in by_step.items()}
        for training in trainings:
            training.pop("history", None)
        return {"sampling": self.settings.sampling, "space": self.config.optuna.space,
                "sampler": self.config.optuna.sampler, "supernets": trainings,
                "evaluations": {"searched": len(searched), "distinct": len({r["key"] for r in searched}),
                                "fidelity": sum(1 for r in self.rows if r["source"] == "fidelity"),
                                "seconds": round(seconds, 1),
                                "seconds_each": round(seconds / len(scored), 4) if scored else None,
                                "held_out_images": trainings[0]["held_out_images"] if trainings else None,
                                "finetune_steps": self.settings.finetune_steps},
                "top": [{"placement": row["placement"], "name": row.get("name"), "score": row["score"],
                         "loss": row["loss"]} for row in self.top],
                "retraining": costs["candidate"], "baselines": costs["baseline"],
                "fidelity_training": costs["fidelity"],
                "fidelity": self._fidelity() if self.settings.fidelity != "off" else None}

    def _fidelity(self) -> dict:
        placements = dict(self.fidelity_set)
        for number, row in enumerate(self.top):
            spec = self._spec(row["placement"])
            placements.setdefault(f"candidate {number + 1}", spec)
        rows = []
        for name, spec in unique(placements).items():
            row = self.scored.get(self._network(spec))
            rows.append({"name": name, "placement": spec.compact(), "score": row["score"] if row else None,
                         "standalone": self.standalone.values(spec)})
        return rank_fidelity(rows)

    def notes(self) -> list[str]:
        if self.failed:
            return [f"stopped early: {self.failed}."]
        summary = self.summary
        if not summary:
            return []
        trained = summary["supernets"]
        evaluations, retraining = summary["evaluations"], summary["retraining"]
        lines = [f"{len(trained)} supernet(s), {self.settings.sampling} sampling, {self.epochs} epochs: "
                 f"{sum(t['seconds'] for t in trained):.0f} s of training; {evaluations['searched']} evaluations "
                 f"({evaluations['distinct']} distinct placements) and {evaluations['fidelity']} fidelity scores on "
                 f"{evaluations['held_out_images']} held-out training images: {evaluations['seconds']:.0f} s; top "
                 f"{len(self.top)} retrained with {self.config.seeds} seed(s): {retraining['seconds']:.0f} s."]
        fidelity = summary.get("fidelity")
        if fidelity:
            lines.append(fidelity_sentence(fidelity) + ".")
        return lines


def makespan(units: list[float], workers: int) -> float:
    """When the last of ``units`` (their lengths, in the order a pool starts them) ends, each
    started on the first worker free."""
    free = [0.0] * workers
    for length in units:
        free[free.index(min(free))] += length
    return max(free)


def network_key(spec: MaskSpec, pool: str) -> str:
    """``spec.key()`` of the network ``spec`` makes. With a class token (``pool: token``) the
    classifier reads only the last block's class-token output, and the class token's own row is
    never masked, so the last block's masks change neither the output nor any gradient
    (FINDINGS, current default proxy, item 3): two placements that differ only there are one
    network. On the default proxy a quarter of a search's distinct placements were such
    repeats, and its top three were one network retrained three times."""
    if pool == "token":
        spec = spec.unmasked_in([spec.layers - 1])
    return spec.key()


def check_supernet_settings(config) -> None:
    """One line per bad setting, before anything is written."""
    settings, optuna = config.supernet, config.optuna
    check_choice("supernet.sampling", settings.sampling, SAMPLINGS)
    check_choice("supernet.fidelity", settings.fidelity, FIDELITY)
    check_choice("optuna.space", optuna.space, SPACES)
    check_choice("optuna.sampler (supernet)", optuna.sampler, SAMPLERS)
    for name, least in (("supernets", 1), ("views", 1), ("evaluations", 0), ("batch", 1), ("top", 0),
                        ("finetune_steps", 0)):
        value = getattr(settings, name)
        if not isinstance(value, int) or isinstance(value, bool) or value < least:
            raise ConfigError(f"supernet.{name} {value!r}: expected a whole number of at least {least}")
    if settings.epochs is not None and (not isinstance(settings.epochs, int) or settings.epochs < 1):
        raise ConfigError(f"supernet.epochs {settings.epochs!r}: expected a whole number of at least 1, or null "
                          "for twice the proxy's")
    if not (isinstance(settings.holdout, (int, float)) and 0 < settings.holdout <= 0.5):
        raise ConfigError(f"supernet.holdout {settings.holdout!r}: a fraction of the training images above 0 and "
                          "at most 0.5")
    if settings.top and not settings.evaluations:
        raise ConfigError(f"supernet.top {settings.top}: nothing to retrain without evaluations; set "
                          "supernet.evaluations above 0, or top to 0")
    if optuna.space == "full" and settings.sampling != "heads":
        raise ConfigError(f"supernet.sampling {settings.sampling}: the full space scores any subset of heads, which "
                          "only sampling heads trains; use supernet.sampling heads")
    check_objectives(optuna.objectives)
