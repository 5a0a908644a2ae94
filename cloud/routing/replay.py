"""Replay the routing policy on published verdicts: what other thresholds would have done, and how accurate
the automatic decisions would have been.

A cloud verdict carries every input the policy used — per region the detector score, the classifier's
type, severity, decision field, token-probability confidence and self-consistency agreement, and whether the
classifier failed — so re-deciding it under another ``RoutingPolicyConfig`` is exact, with no model call.
This is the threshold simulation the evaluation work builds on; the end-to-end benchmark sweeps the bands
with it, and ``seamline routing replay`` / ``seamline routing calibrate`` (cloud/routing/cli.py) read the
audit store through it.

The pieces, in the order the commands use them:

* ``recorded_garments``: every cloud verdict in a window, with the reviewer's garment decision where a person
  checked it (routed to people, or an audit sample of an automatic one; cloud/routing/audit.py).
* ``routing_points``: each garment replayed once under a policy's knobs into a ``RoutingPoint`` — its routing
  confidence and the decision an automatic verdict would give — which says what the policy does at *every*
  ``auto_threshold`` (the confidence does not depend on the threshold; only the cut does).
* ``threshold_counts``: for a list of thresholds, how many garments are automated and, per sampling stratum,
  how many of those a person verified and how many the AI got right.
* ``accuracy_bounds``: the accuracy of the automatic decisions from those counts, weighted by stratum, with
  an exact (Clopper-Pearson) bound valid for the mix of strata — the correction for audit samples being a
  small share of automatic verdicts while routed garments are all reviewed (see ``stratum``).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from cloud.routing.bounds import lower_bound, upper_bound
from cloud.routing.policy import UNKNOWN, RegionResult, RoutingDecision, RoutingPolicy, RoutingPolicyConfig
from seamline.domain import Decision, Route, Severity

if TYPE_CHECKING:
    import sqlalchemy as sa

# The lowest auto_threshold RoutingPolicyConfig accepts is above 0: replaying there settles every garment
# whose confidence is not 0, which is what "the decision an automatic verdict would give" needs.
_FLOOR = 1e-9
ROUTED = "routed"  # the stratum of garments the policy sent to people (all reviewed)


def regions_from_verdict(verdict: dict[str, Any]) -> list[RegionResult]:
    """The policy's inputs, recovered from a cloud verdict's JSON."""
    if verdict.get("source") != "cloud":
        raise ValueError(f"verdict {verdict.get('verdict_id')}: only cloud verdicts carry classifier results")
    error = (verdict.get("error") or {}).get("message")
    regions = []
    for defect in verdict.get("defects", []):
        scores = defect.get("scores", {})
        severity = defect.get("severity")
        regions.append(
            RegionResult(
                crop_id=defect["crop_id"],
                detector_score=float(scores.get("detector", 0.0)),
                type=defect["type"],
                severity=Severity(severity) if severity not in (None, "none") else None,
                suggested=Decision(defect["decision"]),
                classifier_confidence=scores.get("classifier"),
                agreement=scores.get("agreement"),
                error=error if defect["type"] == UNKNOWN else None,
            )
        )
    return regions


def replay(verdict: dict[str, Any], policy: RoutingPolicy) -> RoutingDecision:
    """The routing ``policy`` gives for the garment behind ``verdict``."""
    return policy.decide(regions_from_verdict(verdict))


def with_threshold(
    config: RoutingPolicyConfig, threshold: float, *, version: str | None = None
) -> RoutingPolicyConfig:
    """``config`` with only ``auto_threshold`` moved (and ``version`` if given).

    The priority bands are capped at the new threshold so they stay ordered (high <= medium <= automatic);
    every other knob is kept.
    """
    data = config.model_dump()
    data.update(
        auto_threshold=threshold,
        high_priority_below=min(config.high_priority_below, threshold),
        medium_priority_below=min(config.medium_priority_below, threshold),
    )
    if version is not None:
        data["version"] = version
    return RoutingPolicyConfig.model_validate(data)


# the recorded garments ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RecordedGarment:
    """A cloud verdict from the audit store and, where a person checked the garment, their decision."""

    verdict: dict[str, Any]  # the AI's verdict as published (garments.verdict)
    human: Decision | None  # the reviewer's garment decision (pass | reject): ground truth; None if unchecked
    review_kind: str | None  # "routed" | "audit" when the garment went to review; None otherwise


def recorded_garments(
    engine: sa.Engine, *, since: datetime | None = None, line: str | None = None
) -> Iterator[RecordedGarment]:
    """Every garment with a cloud verdict classified at or after ``since`` (on ``line``), oldest first.

    Streams rows, so a long window does not sit in memory as JSON.
    """
    import sqlalchemy as sa  # only here: `seamline` on an edge box (no SQLAlchemy) loads this module

    from cloud.storage.tables import garments, review_decisions, review_items

    query = (
        sa.select(garments.c.verdict, review_decisions.c.decision, review_items.c.kind)
        .select_from(
            garments.outerjoin(review_items, review_items.c.item_id == garments.c.item_id).outerjoin(
                review_decisions, review_decisions.c.item_id == garments.c.item_id
            )
        )
        .where(garments.c.verdict.is_not(None), garments.c.status.in_(("classified", "published")))
        .order_by(garments.c.classified_at, garments.c.item_id)
    )
    if since is not None:
        query = query.where(garments.c.classified_at >= since)
    if line is not None:
        query = query.where(garments.c.line_id == line)
    with engine.connect() as conn:
        for verdict, decision, kind in conn.execution_options(yield_per=1000).execute(query):
            if verdict.get("source") != "cloud":
                continue
            yield RecordedGarment(verdict, Decision(decision) if decision else None, kind)


# one garment at every threshold ---------------------------------------------------------------------------


@dataclass(frozen=True)
class RoutingPoint:
    """One garment as threshold replay sees it: what the policy does with it at any ``auto_threshold``."""

    item_id: str
    line_id: str
    confidence: float  # the routing confidence under the replaying policy's knobs
    decision: Decision | None  # what an automatic verdict says (pass | reject); None: never automatic
    deciding_type: str  # the type of the region whose confidence decided ("normal" for most passes)
    recorded_route: Route  # how the garment was actually routed (it fixes its chance of being reviewed)
    recorded_policy: str  # the policy version on its verdict (models.policy)
    human: Decision | None = None  # the reviewer's decision; None: not verified
    awaiting_review: bool = False  # queued for a person who has not decided yet

    def automated(self, threshold: float) -> bool:
        """Would a policy with ``auto_threshold = threshold`` (other knobs the same) settle it by itself?"""
        return self.decision is not None and self.confidence >= threshold

    @property
    def correct(self) -> bool | None:
        """Is the automatic decision the reviewer's? None when not verified or never automatic."""
        if self.human is None or self.decision is None:
            return None
        return self.decision is self.human

    @property
    def stratum(self) -> str:
        """The sampling stratum: who was sure to look at this garment, and with what chance.

        Garments the policy in force sent to people are all reviewed (``routed``, whatever policy sent them).
        Garments it settled automatically are reviewed only as audit samples, a share that is configured per
        line and may change with a new policy version: one stratum per line and recorded policy version
        (``auto:<line>:<policy>``), so that each stratum's verified garments are a uniform sample of it.
        """
        if self.recorded_route is Route.HUMAN:
            return ROUTED
        return f"auto:{self.line_id}:{self.recorded_policy}"


def routing_points(recorded: Iterable[RecordedGarment], policy: RoutingPolicy) -> list[RoutingPoint]:
    """Replay each garment once under ``policy``'s knobs (its ``auto_threshold`` aside).

    Raises ValueError naming a garment whose verdict the policy cannot re-decide (no regions).
    """
    free = RoutingPolicy(
        with_threshold(policy.config, _FLOOR), reject_at=policy.reject_at, normal_id=policy.normal_id
    )
    points = []
    for garment in recorded:
        verdict = garment.verdict
        try:
            regions = regions_from_verdict(verdict)
            decided = free.decide(regions)
        except (KeyError, ValueError) as exc:
            raise ValueError(f"garment {verdict.get('item_id')}: cannot replay its verdict: {exc}") from exc
        automatic = decided.route is Route.AUTO
        points.append(
            _point(
                garment,
                decided.confidence if automatic else 0.0,
                decided.decision if automatic else None,
                _deciding_type(regions, decided, free) if automatic else UNKNOWN,
            )
        )
    return points


def recorded_point(garment: RecordedGarment) -> RoutingPoint:
    """The garment as it was decided when recorded: automated (at any threshold) iff its verdict was."""
    verdict = garment.verdict
    automatic = verdict["route"] == Route.AUTO.value
    return _point(
        garment,
        float(verdict.get("confidence", 0.0)),
        Decision(verdict["decision"]) if automatic else None,
        UNKNOWN,
    )


def _point(
    garment: RecordedGarment, confidence: float, decision: Decision | None, type_: str
) -> RoutingPoint:
    verdict = garment.verdict
    return RoutingPoint(
        item_id=verdict["item_id"],
        line_id=verdict["line_id"],
        confidence=confidence,
        decision=decision,
        deciding_type=type_,
        recorded_route=Route(verdict["route"]),
        recorded_policy=(verdict.get("models") or {}).get("policy") or "",
        human=garment.human,
        awaiting_review=garment.review_kind is not None and garment.human is None,
    )


def _deciding_type(regions: list[RegionResult], decided: RoutingDecision, policy: RoutingPolicy) -> str:
    # A reject rests on its most confident rejecting region, a pass on its least confident region: the one
    # whose confidence became the garment's.
    candidates = [r for r in regions if policy.rejects(r)] if decided.decision is Decision.REJECT else regions
    for region in candidates:
        if decided.region_confidence.get(region.crop_id) == decided.confidence:
            return region.type
    return candidates[0].type if candidates else UNKNOWN


# counts per threshold -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StratumCounts:
    """The automated garments of one sampling stratum at one threshold."""

    stratum: str
    automated: int  # garments settled automatically (verified or not): the stratum's weight
    labelled: int  # of those, verified by a person
    correct: int  # of those, where the automatic decision is the person's


@dataclass(frozen=True)
class ThresholdCounts:
    """What one ``auto_threshold`` does to the window's garments."""

    threshold: float
    garments: int  # every garment in the window (the share's denominator)
    passes: int  # automated as pass
    rejects: int  # automated as reject
    strata: tuple[StratumCounts, ...]  # only strata with automated garments

    @property
    def automated(self) -> int:
        return self.passes + self.rejects

    @property
    def share(self) -> float:
        """The automated share of the window's garments."""
        return self.automated / self.garments if self.garments else 0.0

    @property
    def labelled(self) -> int:
        return sum(s.labelled for s in self.strata)

    @property
    def correct(self) -> int:
        return sum(s.correct for s in self.strata)


def threshold_counts(
    points: Sequence[RoutingPoint], thresholds: Iterable[float], *, garments: int | None = None
) -> list[ThresholdCounts]:
    """Counts at each threshold, in the order given; one sweep down the sorted confidences.

    ``garments`` is the share's denominator (default ``len(points)``; give the window's total when
    ``points`` is a subset, e.g. one decision's garments).
    """
    total = len(points) if garments is None else garments
    ranked = sorted((p for p in points if p.decision is not None), key=lambda p: p.confidence, reverse=True)
    wanted = list(thresholds)
    by_threshold: dict[float, ThresholdCounts] = {}
    running: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])  # stratum -> automated, labelled, correct
    passes = rejects = i = 0
    for threshold in sorted(set(wanted), reverse=True):
        while i < len(ranked) and ranked[i].confidence >= threshold:
            point = ranked[i]
            counts = running[point.stratum]
            counts[0] += 1
            if point.correct is not None:
                counts[1] += 1
                counts[2] += point.correct
            passes += point.decision is Decision.PASS
            rejects += point.decision is Decision.REJECT
            i += 1
        strata = tuple(StratumCounts(key, *running[key]) for key in sorted(running))
        by_threshold[threshold] = ThresholdCounts(threshold, total, passes, rejects, strata)
    return [by_threshold[t] for t in wanted]


# the accuracy of automatic decisions, stratified ----------------------------------------------------------


@dataclass(frozen=True)
class AccuracyBounds:
    """The accuracy of automatic decisions: an estimate and a confidence interval for it."""

    estimate: float | None  # weighted by stratum over the verified strata; None when none is verified
    low: float
    high: float
    unverified_share: float  # share of the automated garments in strata with no verified garment at all


def accuracy_bounds(
    strata: Sequence[StratumCounts], confidence: float, *, two_sided: bool = False
) -> AccuracyBounds:
    """The accuracy of the automated garments from per-stratum samples, with an exact bound.

    Each stratum ``h`` weighs ``w_h = N_h / N`` (its share of the automated garments, verified or not); its
    verified garments are a uniform sample of it, so its accuracy ``p_h`` has an exact Clopper-Pearson bound.
    The accuracy is ``sum(w_h * p_h)``, and ``sum(w_h * LB_h)`` bounds it below when every ``LB_h`` holds:
    each stratum's bound is taken at level ``alpha_h``, with ``sum(alpha_h) = 1 - confidence`` (union bound).
    The split is fixed by the counts, never by the labels, so the bound stays valid; it gives each stratum its
    share of the estimate's standard error (``w_h / sqrt(n_h)``), spending the error budget where the bound
    is loosest — a small audit sample weighing a lot — rather than on a fully reviewed stratum. With one
    stratum this is exactly the Clopper-Pearson bound. A stratum nobody verified counts as 0 (below) and 1
    (above): what is not checked is not assumed right.

    Args:
        strata: the automated garments per stratum at one threshold.
        confidence: the probability that the true accuracy is at least ``low`` (one-sided), or inside
            ``[low, high]`` (two-sided: half of ``1 - confidence`` on each side).
        two_sided: also bound the accuracy from above.
    """
    alpha = 1.0 - confidence
    if two_sided:
        alpha /= 2
    total = sum(s.automated for s in strata)
    if total == 0:
        return AccuracyBounds(None, 0.0, 1.0, 0.0)
    weights = {s.stratum: s.automated / total for s in strata}
    verified = [s for s in strata if s.labelled]
    spread = {s.stratum: weights[s.stratum] / math.sqrt(s.labelled) for s in verified}
    spread_total = sum(spread.values())
    low = high = estimate = 0.0
    for s in strata:
        w = weights[s.stratum]
        if not s.labelled:
            high += w
            continue
        level = min(1.0 - alpha * spread[s.stratum] / spread_total, 1.0 - 1e-12)
        low += w * lower_bound(s.correct, s.labelled, level)
        high += w * (upper_bound(s.correct, s.labelled, level) if two_sided else 1.0)
        estimate += w * s.correct / s.labelled
    verified_weight = sum(weights[s.stratum] for s in verified)
    return AccuracyBounds(
        estimate / verified_weight if verified else None,
        low,
        min(high, 1.0),
        1.0 - verified_weight,
    )


# the curve: automated share against accuracy --------------------------------------------------------------


@dataclass(frozen=True)
class CurvePoint:
    """One threshold on the curve: what it automates, and how accurate that is (one-sided bound)."""

    counts: ThresholdCounts
    bounds: AccuracyBounds


def share_grid(
    points: Sequence[RoutingPoint], *, step: float = 0.005, garments: int | None = None
) -> list[float]:
    """Thresholds, highest first, at which the automated share grows by ``step`` of the window's garments.

    The replayed confidences at those ranks: a grid that follows where the confidences lie (token
    probabilities crowd near 1), at most ``1 / step`` long, built from confidences only, never from labels.
    """
    total = len(points) if garments is None else garments
    ranked = sorted((p.confidence for p in points if p.decision is not None), reverse=True)
    grid = {ranked[-1]} if ranked else set()
    for j in range(1, math.ceil(1 / step) + 1):
        rank = math.ceil(j * step * total) - 1
        if rank >= len(ranked):
            break
        grid.add(ranked[rank])
    return sorted(grid, reverse=True)


def accuracy_curve(
    points: Sequence[RoutingPoint],
    thresholds: Iterable[float],
    confidence: float,
    *,
    garments: int | None = None,
) -> list[CurvePoint]:
    """The automated share and the accuracy of automatic decisions (estimate, lower bound at ``confidence``)
    at each threshold, in the order given."""
    return [
        CurvePoint(counts, accuracy_bounds(counts.strata, confidence))
        for counts in threshold_counts(points, thresholds, garments=garments)
    ]
