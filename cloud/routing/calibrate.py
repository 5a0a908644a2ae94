"""Routing calibrated to a guaranteed accuracy: the lowest ``auto_threshold`` whose automatic decisions are,
with a stated confidence, at least as accurate as a target (issue 16; ``seamline routing calibrate``).

What is guaranteed. With probability at least ``confidence`` over the verified garments, the accuracy of the
automatic decisions at the chosen threshold — the share of automatically settled garments whose decision
(pass or reject) is the one a person gives — is at least ``target``. "Accuracy" is that of the window's mix
of garments: it carries over to the garments to come as long as they come from the same line, models and
process (a new fabric, camera or model needs a new calibration). A reviewer's decision is taken as the truth.

The method, Learn then Test with fixed-sequence testing (Angelopoulos, Bates, Candès, Jordan, Lei 2021):

1. Every garment of the window is replayed once under the current policy's knobs (cloud/routing/replay.py):
   its routing confidence, and the decision an automatic verdict would give. Only ``auto_threshold`` moves;
   the detector rules stay, and the priority bands are capped at the new threshold.
2. Candidate thresholds are the replayed confidences at which the automated share grows by ``step`` (0.5 %)
   of the window's garments, and the current threshold; highest first. They come from the confidences
   alone, never from the labels, so the sequence is fixed before anything is tested.
3. At each candidate ``t`` the null hypothesis "accuracy(t) < target" is rejected when the exact lower bound
   on accuracy(t) at ``confidence`` (``replay.accuracy_bounds``) reaches the target: a level
   ``1 - confidence`` test.
4. The candidates are tested from the highest down; the sequence stops at the first one not rejected, and
   the chosen threshold is the lowest rejected one. Because the order is fixed in advance, the chance of
   certifying any threshold whose accuracy is below the target is at most ``1 - confidence`` (family-wise),
   with no Bonferroni penalty for the number of candidates. Candidates whose sample could not certify the
   target had they erred at a quarter of the allowed rate (``START_ERROR_SHARE``) are not tested: that
   depends on sample sizes only, so validity holds, and testing them would mostly end the sequence for lack
   of data, not of accuracy.

Sampling bias. Routed garments (below the threshold in force) are all reviewed; automatically settled ones
only as audit samples, a small share (2 % by default, per line; cloud/routing/audit.py). Pooling the two as
one sample would weigh the unsure routed garments fifty times too much. So each garment belongs to a
stratum fixed by how it was recorded (``RoutingPoint.stratum``): ``routed``, or ``auto:<line>:<policy>``
for automatic verdicts of one line under one policy version (the audit share may differ per line, and the
set that was settled automatically changes with each policy). Each stratum's verified garments are a
uniform sample of it; at a threshold each stratum weighs its share of *all* automated garments, counted
from every recorded verdict (verified or not); the bound is the weighted sum of per-stratum Clopper-Pearson
bounds, with ``1 - confidence`` split between strata (a union bound, in proportion to each stratum's share of
the standard error, ``w / sqrt(n)``). The weights are counted, not estimated, so the guarantee is for the
window's mix of strata. At or above the current threshold only audit samples are automated, and the bound
is the plain exact binomial one; just below it the split costs a little (the chart shows the step).
Garments whose verdict came from another policy version are replayed exactly under the current knobs; their
version only fixes their stratum. Review items not decided yet are left out (assumed missing at random:
reviewers take them in queue order, and audit items are drawn by a hash of the garment id).

Too few labels. With fewer than ``min_samples`` verified garments, or when no candidate is certified, the
current policy is kept and the report says why.

Per decision. ``RoutingPolicyConfig`` has one threshold; ``per_decision`` certifies pass and reject
separately (each at half the error budget, so both together still hold at ``confidence``) and says what a
per-decision policy would automate. It is a report, not a policy: the policy cannot carry it yet.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import date

from cloud.routing.policy import RoutingPolicyConfig
from cloud.routing.replay import (
    AccuracyBounds,
    RoutingPoint,
    ThresholdCounts,
    accuracy_bounds,
    share_grid,
    threshold_counts,
    with_threshold,
)
from seamline.domain import Decision
from seamline.errors import InputError

DEFAULT_STEP = 0.005  # the candidate grid: one threshold per 0.5 % of automated share
DEFAULT_MIN_SAMPLES = 100
# A candidate is tested only if its sample would certify the target had each stratum erred at this share of
# the allowed error rate (1 - target). 0 would test anything that can pass with no error at all, and a
# single early error would then end the sequence; 0.5 would skip thresholds a good model can certify.
# On synthetic draws (tests/unit/cloud/test_calibrate.py's model) 0.25 balanced the two: fewer early stops
# than 0, fewer windows left uncertified than 0.5.
START_ERROR_SHARE = 0.25


@dataclass(frozen=True)
class TestedThreshold:
    """One candidate of the sequence and its test."""

    counts: ThresholdCounts
    bounds: AccuracyBounds  # one-sided: ``low`` is the lower bound at the calibration's confidence
    certified: bool  # the null "accuracy < target" rejected


@dataclass(frozen=True)
class Calibration:
    """What calibration found: the tests in the order made, the threshold chosen (if any) and why."""

    target: float
    confidence: float
    current: RoutingPolicyConfig
    verified: int  # verified garments in the window (routed and audit)
    tested: tuple[TestedThreshold, ...]  # in order; the last one failed unless every candidate passed
    chosen: TestedThreshold | None  # the lowest certified threshold
    reason: str  # one sentence: why this threshold, or why the policy is kept

    @property
    def threshold(self) -> float:
        """The threshold to run with: the chosen one, or the current one when none was certified."""
        return self.chosen.counts.threshold if self.chosen else self.current.auto_threshold

    @property
    def changed(self) -> bool:
        return self.chosen is not None and self.chosen.counts.threshold != self.current.auto_threshold


def check_arguments(
    *,
    target: float | None = None,
    confidence: float,
    min_samples: int = 1,
    step: float = DEFAULT_STEP,
) -> None:
    """Raise InputError naming the argument that cannot be used (``target`` None: not asked for)."""
    if target is not None and not 0 < target < 1:
        raise InputError(f"--target-accuracy must be between 0 and 1 (exclusive), got {target:g}")
    if not 0 < confidence < 1:
        raise InputError(f"--confidence must be between 0 and 1 (exclusive), got {confidence:g}")
    if min_samples < 1:
        raise InputError(f"--min-samples must be at least 1, got {min_samples}")
    if not 0 < step <= 0.5:
        raise InputError(f"--step must be in (0, 0.5], got {step:g}")


def fewest_samples(target: float, confidence: float) -> int:
    """The fewest verified garments that certify ``target`` at all: all of them right (``alpha^(1/n)``
    is the exact lower bound for n successes in n)."""
    return math.ceil(math.log(1 - confidence) / math.log(target))


def calibrate(
    points: Sequence[RoutingPoint],
    current: RoutingPolicyConfig,
    *,
    target: float,
    confidence: float,
    min_samples: int = DEFAULT_MIN_SAMPLES,
    step: float = DEFAULT_STEP,
    garments: int | None = None,
) -> Calibration:
    """The lowest ``auto_threshold`` certified to give automatic decisions of accuracy >= ``target``.

    Args:
        points: the window's garments replayed under ``current``'s knobs (``replay.routing_points``).
        current: the policy in force (kept when nothing can be certified).
        target: the accuracy the automatic decisions must reach, in (0, 1).
        confidence: the probability that the guarantee holds, in (0, 1).
        min_samples: fewer verified garments than this and the policy is kept without testing.
        step: the candidate grid, as a share of the window's garments.
        garments: the automated share's denominator, when ``points`` is a subset of the window.

    Returns:
        The calibration; ``chosen`` is None when the current policy is kept.
    """
    check_arguments(target=target, confidence=confidence, min_samples=min_samples, step=step)
    verified = sum(p.human is not None for p in points)
    kept = Calibration(target, confidence, current, verified, (), None, "")
    if verified < min_samples:
        return replace(
            kept,
            reason=f"{verified} verified garments in the window, fewer than the {min_samples} asked for "
            "(--min-samples): the current policy is kept",
        )
    thresholds = sorted(
        {*share_grid(points, step=step, garments=garments), current.auto_threshold}, reverse=True
    )
    tested: list[TestedThreshold] = []
    for counts in threshold_counts(points, thresholds, garments=garments):
        if not _could_certify(counts, target, confidence):
            continue
        bounds = accuracy_bounds(counts.strata, confidence)
        tested.append(TestedThreshold(counts, bounds, bounds.low >= target))
        if not tested[-1].certified:
            break
    certified = [t for t in tested if t.certified]
    chosen = certified[-1] if certified else None
    result = replace(kept, tested=tuple(tested), chosen=chosen)
    return replace(result, reason=_reason(result, points, garments))


def _could_certify(counts: ThresholdCounts, target: float, confidence: float) -> bool:
    # Would this sample certify the target had each stratum erred at START_ERROR_SHARE of the allowed rate?
    if not counts.automated:
        return False
    rate = 1 - (1 - target) * START_ERROR_SHARE
    hypothetical = [replace(s, correct=math.floor(s.labelled * rate + 0.5)) for s in counts.strata]
    return accuracy_bounds(hypothetical, confidence).low >= target


def _reason(result: Calibration, points: Sequence[RoutingPoint], garments: int | None) -> str:
    target, current = result.target, result.current.auto_threshold
    goal = f"accuracy >= {target:g} at {result.confidence:.0%} confidence"
    if not result.tested:
        (at_current,) = threshold_counts(points, [current], garments=garments)
        return (
            f"no threshold has enough verified automatic garments to certify {goal} "
            f"(at the current threshold {current:g}: {at_current.labelled} verified of "
            f"{at_current.automated} automated; certifying needs at least "
            f"{fewest_samples(target, result.confidence)} even with no error, more with some): "
            "the current policy is kept; collect more audit samples (cloud.audit.auto_share) or lower the "
            "target"
        )
    if result.chosen is None:
        first = result.tested[0]
        return (
            f"even the most conservative testable threshold {first.counts.threshold:g} is not certified: "
            f"the lower bound on its accuracy is {first.bounds.low:.4f} < {target:g} "
            f"({first.counts.labelled} verified garments): the current policy is kept"
        )
    chosen = result.chosen
    at = (
        f"{chosen.counts.threshold:g} (automated share {chosen.counts.share:.1%}, accuracy lower bound "
        f"{chosen.bounds.low:.4f})"
    )
    if not result.changed:
        return f"the current threshold {at} is the lowest certified for {goal}: the current policy is kept"
    if chosen.counts.threshold > current:
        return (
            f"the current threshold {current:g} is NOT certified for {goal}; the lowest certified is {at}: "
            "raise it"
        )
    return f"the lowest threshold certified for {goal} is {at}"


def calibrated_version(old: str, target: float, on: date) -> str:
    """``<old>-cal-YYYYMMDD-t<target>``, replacing an earlier calibration's suffix rather than stacking."""
    return f"{old.split('-cal-')[0]}-cal-{on:%Y%m%d}-t{target:g}"


def calibrated_policy(result: Calibration, on: date) -> RoutingPolicyConfig | None:
    """The new policy (a new version, only ``auto_threshold`` moved), or None when the policy is kept."""
    if not result.changed:
        return None
    version = calibrated_version(result.current.version, result.target, on)
    return with_threshold(result.current, result.threshold, version=version)


@dataclass(frozen=True)
class PerDecision:
    """Pass and reject certified separately, each at half the error budget (both hold at ``confidence``)."""

    by_decision: dict[Decision, Calibration]
    share: float  # what both thresholds together would automate
    single_share: float  # what the one global threshold automates


def per_decision(
    points: Sequence[RoutingPoint],
    current: RoutingPolicyConfig,
    global_result: Calibration,
    *,
    min_samples: int = DEFAULT_MIN_SAMPLES,
    step: float = DEFAULT_STEP,
) -> PerDecision:
    """What a policy with one threshold per decision would buy, under the same guarantee.

    Each decision's accuracy at its own threshold is at least the target with probability ``1 - alpha / 2``;
    both at once with ``1 - alpha``, and then so is their mix.
    """
    alpha = 1 - global_result.confidence
    by_decision = {}
    automated = 0
    for decision in (Decision.PASS, Decision.REJECT):
        subset = [p for p in points if p.decision is decision]
        result = calibrate(
            subset,
            current,
            target=global_result.target,
            confidence=1 - alpha / 2,
            min_samples=min_samples,
            step=step,
            garments=len(points),
        )
        by_decision[decision] = result
        (counts,) = threshold_counts(subset, [result.threshold], garments=len(points))
        automated += counts.automated
    (single,) = threshold_counts(points, [global_result.threshold])
    return PerDecision(by_decision, automated / len(points) if points else 0.0, single.share)
