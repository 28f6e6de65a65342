"""One TrialRecord from a proposal's per-seed TrialResults."""

from __future__ import annotations

import dataclasses
import math

from ..runs import TrialRecord
from ..training import TrialResult
from .base import Proposal


def aggregate(number: int, proposal: Proposal, results: list[TrialResult], seeds: list[int],
              cached: frozenset[int] = frozenset()) -> TrialRecord:
    """The record's state is the first non-complete state among the seeds; its metrics are the
    seeds' means. ``cached`` holds the seed indices that came from the trial cache: they count
    in the metrics and not in the training time this run spent."""
    state = next((r.status for r in results if r.status != "complete"), "complete")
    reason = next((r.reason for r in results if r.reason), "")
    extra = {"key": proposal.key()}
    if proposal.proxy_changes:
        extra["proxy_changes"] = dict(proposal.proxy_changes)
    spec = proposal.spec
    learned = [r.alphas for r in results if r.alphas]
    if learned:  # soft masks: the trial's spec carries the alphas its seeds learned, averaged
        spec = learned_spec(spec, learned)
    measured = [r for r in results if r.val_top1 is not None and r.status in ("complete", "pruned")]
    # every seed's parts, or none: a mean over some seeds would not be comparable with val_top1
    by_part = ({name: [r.val_top1_by_part[name] for r in measured] for name in measured[0].val_top1_by_part}
               if measured and all(r.val_top1_by_part for r in measured) else None)
    histories = [{int(epoch): rows for epoch, rows in r.alpha_history.items()} for r in results if r.alpha_history]
    return TrialRecord(
        number=number, step=proposal.step, spec=spec, state=state, seeds=list(seeds),
        val_top1=[r.val_top1 for r in measured], val_top1_by_part=by_part,
        test_top1=[r.test_top1 for r in results if r.test_top1 is not None],
        loss=[r.val_loss for r in results if r.val_loss is not None and math.isfinite(r.val_loss)],
        als=mean_matrix([r.als for r in results if r.als]), als_seeds=[r.als for r in results if r.als] or None,
        als_uniform=next((r.als_uniform for r in results if r.als_uniform is not None), None),
        alpha_history={epoch: mean_matrix([h[epoch] for h in histories if epoch in h])
                       for epoch in sorted(set().union(*histories))} if histories else None,
        seconds=sum(r.seconds for i, r in enumerate(results) if i not in cached), cached=len(cached),
        epochs=max((r.epochs for r in results), default=0), reason=reason, extra=extra)


def mean_matrix(matrices: list[list[list[float]]]) -> list[list[float]] | None:
    """Element-wise mean of (L, H) matrices, rounded to 6 digits; None for none."""
    if not matrices:
        return None
    layers, heads = len(matrices[0]), len(matrices[0][0])
    return [[round(sum(m[l][h] for m in matrices) / len(matrices), 6) for h in range(heads)] for l in range(layers)]


def learned_spec(spec, learned: list[list[list[float]]]):
    """``spec`` with its soft heads' alphas replaced by the mean learned alphas. Hard heads stay
    hard (alpha 0) and learned values are kept strictly above 0 so they stay soft."""
    rows = []
    for layer, initial in enumerate(spec.alphas()):
        rows.append([0.0 if a == 0.0 else (1.0 if a == 1.0 else
                     min(1.0, max(1e-6, round(sum(s[layer][h] for s in learned) / len(learned), 6))))
                     for h, a in enumerate(initial)])
    return dataclasses.replace(spec, soft=rows)
