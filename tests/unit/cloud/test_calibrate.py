"""Routing calibration (cloud/routing/calibrate.py) and the threshold replay beneath it (routing/replay.py).

Synthetic garments with a known accuracy: routing confidence ``c ~ Uniform(0, 1)`` and
``P(correct | c) = 1 - K (1 - c)^2``, so the accuracy of the garments automated at threshold ``t`` is exactly
``1 - K (1 - t)^2 / 3``. The policy in force settles ``c >= 0.9`` automatically; a share of those is
reviewed as audit samples, every garment below is reviewed (routed) — the sampling design of production.
"""

from __future__ import annotations

import math
import random
import statistics
from datetime import date

import pytest

from cloud.routing.bounds import lower_bound
from cloud.routing.calibrate import (
    calibrate,
    calibrated_policy,
    calibrated_version,
    fewest_samples,
    per_decision,
)
from cloud.routing.policy import RoutingPolicy, RoutingPolicyConfig
from cloud.routing.replay import (
    RecordedGarment,
    RoutingPoint,
    StratumCounts,
    accuracy_bounds,
    replay,
    routing_points,
    share_grid,
    threshold_counts,
    with_threshold,
)
from seamline.domain import Decision, Route, Severity

PASS, REJECT = Decision.PASS, Decision.REJECT
CURRENT = RoutingPolicyConfig(version="p1", auto_threshold=0.9, medium_priority_below=0.85)
TARGET = 0.97


def accuracy_above(threshold: float, k: float) -> float:
    """The true accuracy of the garments automated at ``threshold`` (the integral of P(correct | c))."""
    return 1 - k * (1 - threshold) ** 2 / 3


def draw(
    seed: int,
    *,
    garments: int,
    audit_share: float,
    k: float = 4.0,
    current: float = 0.9,
    correct_given=None,  # P(correct | c), default 1 - k (1 - c)^2
) -> list[RoutingPoint]:
    rng = random.Random(seed)
    correct_given = correct_given or (lambda c: 1 - k * (1 - c) ** 2)
    points = []
    for i in range(garments):
        c = rng.random()
        ai = PASS if rng.random() < 0.7 else REJECT
        truth = ai if rng.random() < correct_given(c) else (REJECT if ai is PASS else PASS)
        automatic = c >= current
        verified = not automatic or rng.random() < audit_share
        points.append(
            RoutingPoint(
                item_id=f"g{i}",
                line_id="l1",
                confidence=c,
                decision=ai,
                deciding_type="normal" if ai is PASS else "hole",
                recorded_route=Route.AUTO if automatic else Route.HUMAN,
                recorded_policy="p1",
                human=truth if verified else None,
            )
        )
    return points


# the guarantee --------------------------------------------------------------------------------------------


def test_the_guarantee_holds_over_repeated_draws():
    # 200 draws of 3,000 garments, audit share 50 % (a stand-in for a larger window at 2 %: what matters is
    # the number of audit samples, ~150 here), 90 % confidence. The chosen threshold's true accuracy must be
    # below the target in at most alpha * R + 3 sigma of the draws (binomial noise on R draws).
    runs, confidence, k = 200, 0.90, 4.0
    alpha = 1 - confidence
    allowed = alpha * runs + 3 * math.sqrt(runs * alpha * (1 - alpha))  # 20 + 12.7
    ours = naive = certified = 0
    for seed in range(runs):
        points = draw(seed, garments=3000, audit_share=0.5, k=k)
        result = calibrate(points, CURRENT, target=TARGET, confidence=confidence)
        if result.chosen is not None:
            certified += 1
            ours += accuracy_above(result.threshold, k) < TARGET
        # The control: the lowest threshold whose (correctly weighted) point estimate reaches the target,
        # with no bound and no sequence. It must fail often, or this test could not see a violation at all.
        estimates = [(c.threshold, _estimate(c.strata)) for c in threshold_counts(points, share_grid(points))]
        lowest = min((t for t, e in estimates if e is not None and e >= TARGET), default=1.0)
        naive += accuracy_above(lowest, k) < TARGET
    assert ours <= allowed, f"{ours} of {runs} calibrations certified a threshold below the target"
    assert certified >= runs // 2, "the guarantee held only because nothing was ever certified"
    assert naive > allowed, "the control never broke the target: the draws cannot show a violation"


def _estimate(strata: tuple[StratumCounts, ...]) -> float | None:
    # the stratified point estimate alone (accuracy_bounds also computes the bound, which the control skips)
    verified = [s for s in strata if s.labelled]
    weight = sum(s.automated for s in verified)
    return sum(s.automated * s.correct / s.labelled for s in verified) / weight if verified else None


def test_plentiful_data_gets_close_to_the_oracle():
    # 10,000 garments, ~500 audit samples: the oracle (true accuracy known) automates 1 - t* = 15 %.
    k = 4.0
    oracle = math.sqrt((1 - TARGET) * 3 / k)  # accuracy_above(1 - oracle) == TARGET
    shares = []
    for seed in range(8):
        result = calibrate(
            draw(seed, garments=10_000, audit_share=0.5, k=k), CURRENT, target=TARGET, confidence=0.9
        )
        assert result.chosen is not None, result.reason
        shares.append(result.chosen.counts.share)
    assert statistics.median(shares) >= 0.6 * oracle, (shares, oracle)
    assert max(shares) <= oracle + 0.01  # never past it by more than the grid


def test_the_sequence_stops_at_the_first_threshold_that_fails():
    # All garments automatic and verified: 400 very sure and right, then 100 with 30 errors, then 3,000 right.
    # Pooled, the lowest threshold is 98.9 % accurate and would pass; the sequence never gets there.
    points = []
    for i, (c, right) in enumerate(
        [(0.99 - i * 1e-5, True) for i in range(400)]
        + [(0.95 - i * 1e-5, i >= 30) for i in range(100)]
        + [(0.90 - i * 1e-5, True) for i in range(3000)]
    ):
        points.append(
            RoutingPoint(f"g{i}", "l1", c, PASS, "normal", Route.AUTO, "p1", PASS if right else REJECT)
        )
    low = RoutingPolicyConfig(
        version="p1", auto_threshold=0.5, medium_priority_below=0.5, high_priority_below=0.5
    )
    result = calibrate(points, low, target=TARGET, confidence=0.95, step=0.02)
    assert not result.tested[-1].certified
    assert (
        0.95 < result.tested[-1].counts.threshold <= 0.99 or 0.9 < result.tested[-1].counts.threshold < 0.95
    )
    assert result.chosen is not None and result.chosen.counts.threshold > 0.95
    (bottom,) = threshold_counts(points, [0.85])
    assert accuracy_bounds(bottom.strata, 0.95).low >= TARGET  # it would have passed on its own


# too few labels -------------------------------------------------------------------------------------------


def test_too_few_verified_garments_keep_the_policy():
    points = draw(1, garments=400, audit_share=0.5)
    result = calibrate(points, CURRENT, target=TARGET, confidence=0.95, min_samples=1000)
    assert result.chosen is None and not result.changed and result.tested == ()
    assert "fewer than the 1000 asked for (--min-samples)" in result.reason
    assert calibrated_policy(result, date(2026, 12, 7)) is None


def test_too_few_audit_samples_keep_the_policy_and_say_what_is_needed():
    # Thousands of routed garments verified, but only a handful of audit samples: nothing can be certified.
    points = draw(2, garments=5000, audit_share=0.01)
    result = calibrate(points, CURRENT, target=TARGET, confidence=0.95)
    assert result.chosen is None and not result.changed
    assert "no threshold has enough verified automatic garments" in result.reason
    assert f"at least {fewest_samples(TARGET, 0.95)}" in result.reason
    assert fewest_samples(TARGET, 0.95) == 99  # 0.05 ** (1 / 99) >= 0.97 > 0.05 ** (1 / 98)


def test_arguments_out_of_range_are_refused():
    from seamline.errors import InputError

    with pytest.raises(InputError, match="--target-accuracy must be between 0 and 1"):
        calibrate([], CURRENT, target=1.2, confidence=0.95)
    with pytest.raises(InputError, match="--confidence"):
        calibrate([], CURRENT, target=0.9, confidence=1.0)


# the sampling bias ----------------------------------------------------------------------------------------


def _two_strata(audit_accuracy: float, routed_accuracy: float, *, n_auto=2000, n_routed=2000, share=0.05):
    # Deterministic counts at one threshold below the current one: half the automated set was settled
    # automatically (audit-sampled at ``share``), half was routed (all reviewed).
    audited = round(n_auto * share)
    return [
        StratumCounts("auto:l1:p1", n_auto, audited, round(audited * audit_accuracy)),
        StratumCounts("routed", n_routed, n_routed, round(n_routed * routed_accuracy)),
    ]


def _pooled_lower_bound(strata, confidence):
    # What ignoring the design does: every verified garment counts once, whatever its stratum.
    return lower_bound(sum(s.correct for s in strata), sum(s.labelled for s in strata), confidence)


def test_pooling_audit_and_routed_samples_would_certify_a_threshold_below_the_target():
    # An over-confident model: its automatic verdicts are 94 % right, the routed band just below 99.5 %.
    # The automated set is half each: truly 96.75 % accurate, below the 97 % target.
    strata = _two_strata(audit_accuracy=0.94, routed_accuracy=0.995)
    truth = 0.5 * 0.94 + 0.5 * 0.995
    assert truth < TARGET
    assert _pooled_lower_bound(strata, 0.95) > TARGET  # 100 audit samples drowned in 2,000 routed ones
    stratified = accuracy_bounds(strata, 0.95)
    assert stratified.low < TARGET
    assert stratified.estimate == pytest.approx(truth, abs=1e-3)


def test_pooling_would_also_underrate_a_good_model():
    # The usual case: automatic verdicts 99 % right, routed 95 %: pooling sees mostly the routed ones.
    strata = _two_strata(audit_accuracy=0.99, routed_accuracy=0.95)
    pooled = sum(s.correct for s in strata) / sum(s.labelled for s in strata)
    assert accuracy_bounds(strata, 0.95).estimate == pytest.approx(0.97)
    assert pooled < 0.953


def test_each_policy_version_is_its_own_stratum():
    # 2,000 automatic verdicts under p1 (audit share 50 %, 99 % right) and 2,000 under p2 (5 %, 93 % right):
    # the automated set is 96 % right. Merging the two versions' audit samples would see mostly p1's.
    rng = random.Random(7)
    points = []
    for version, share, right in (("p1", 0.5, 0.99), ("p2", 0.05, 0.93)):
        for i in range(2000):
            audited = rng.random() < share
            human = (PASS if rng.random() < right else REJECT) if audited else None
            points.append(
                RoutingPoint(f"{version}-{i}", "l1", 0.99, PASS, "normal", Route.AUTO, version, human)
            )
    (counts,) = threshold_counts(points, [0.95])
    assert [s.stratum for s in counts.strata] == ["auto:l1:p1", "auto:l1:p2"]
    assert accuracy_bounds(counts.strata, 0.95).estimate == pytest.approx(0.96, abs=0.02)
    merged = counts.correct / counts.labelled
    assert merged > 0.98


def test_one_stratum_is_the_exact_clopper_pearson_bound_and_unverified_strata_count_as_wrong():
    (alone,) = [StratumCounts("auto:l1:p1", 5000, 400, 396)]
    assert accuracy_bounds([alone], 0.95).low == pytest.approx(lower_bound(396, 400, 0.95))
    blind = StratumCounts("auto:l2:p1", 5000, 0, 0)  # a line whose audit share is 0
    both = accuracy_bounds([alone, blind], 0.95)
    assert both.low == pytest.approx(0.5 * lower_bound(396, 400, 0.95))
    assert both.unverified_share == 0.5 and both.estimate == pytest.approx(0.99)


# per decision ---------------------------------------------------------------------------------------------


def test_per_decision_thresholds_say_what_a_per_decision_policy_would_buy():
    # Automatic rejects are right far more often than automatic passes: one threshold is held back by the
    # passes, a reject threshold of its own can go much lower.
    rng = random.Random(5)
    points = []
    for i in range(8000):
        c = rng.random()
        ai = PASS if i % 2 else REJECT
        p_right = 1 - (0.2 if ai is REJECT else 8.0) * (1 - c) ** 2
        truth = ai if rng.random() < p_right else (REJECT if ai is PASS else PASS)
        automatic = c >= 0.9
        human = truth if not automatic or rng.random() < 0.5 else None
        route = Route.AUTO if automatic else Route.HUMAN
        points.append(RoutingPoint(f"g{i}", "l1", c, ai, "x", route, "p1", human))
    single = calibrate(points, CURRENT, target=TARGET, confidence=0.9)
    split = per_decision(points, CURRENT, single)
    reject = split.by_decision[REJECT]
    assert reject.chosen is not None and reject.threshold < single.threshold
    assert split.share > split.single_share


# the policy written ---------------------------------------------------------------------------------------


def test_the_new_policy_moves_only_the_threshold_and_names_its_calibration():
    current = RoutingPolicyConfig(version="p1", detector_veto_score=0.8)
    result = calibrate(draw(3, garments=10_000, audit_share=0.5), current, target=TARGET, confidence=0.9)
    new = calibrated_policy(result, date(2026, 12, 7))
    assert new is not None and new.auto_threshold == result.threshold < 0.95
    assert new.version == "p1-cal-20261207-t0.97"
    assert new.medium_priority_below == min(0.85, new.auto_threshold)
    assert new.detector_veto_score == 0.8 and new.min_detector_score_for_auto_reject == 0.5
    RoutingPolicyConfig.model_validate(new.model_dump())
    assert calibrated_version("p1-cal-20261101-t0.95", 0.99, date(2026, 12, 7)) == "p1-cal-20261207-t0.99"


# replay: one point per garment says what every threshold does ---------------------------------------------


def _verdict(rng: random.Random, i: int) -> dict:
    defects = []
    for c in range(rng.randint(1, 3)):
        kind = rng.choice(
            ["normal", "normal", "stain", "hole", "unknown"] if i % 7 == 0 else ["normal", "stain", "hole"]
        )
        severity = "none" if kind in ("normal", "unknown") else rng.choice(["minor", "moderate", "severe"])
        rejects = kind not in ("normal", "unknown") and Severity(severity).rank >= Severity.MODERATE.rank
        decision = (
            rng.choice(["pass", "review", "reject"])
            if rng.random() < 0.1
            else ("reject" if rejects else "pass")
        )
        scores = {"detector": round(rng.random(), 6), "classifier": round(rng.random() ** 0.3, 6)}
        if rng.random() < 0.5:
            scores["agreement"] = round(rng.random() ** 0.2, 6)
        defects.append(
            {"crop_id": f"c{c}", "type": kind, "severity": severity, "decision": decision, "scores": scores}
        )
    return {
        "source": "cloud",
        "item_id": f"g{i}",
        "line_id": "l1",
        "route": "auto",
        "decision": "pass",
        "confidence": 0.99,
        "models": {"detector": "d", "policy": "p0"},
        "defects": defects,
        "error": {"code": "classifier_failed", "message": "timeout"} if i % 7 == 0 else None,
    }


def test_a_replayed_point_says_what_a_replay_at_any_threshold_decides():
    rng = random.Random(11)
    verdicts = [_verdict(rng, i) for i in range(400)]
    config = RoutingPolicyConfig(version="p2", detector_veto_score=0.85)
    policy = RoutingPolicy(config, reject_at=Severity.MODERATE)
    points = routing_points([RecordedGarment(v, None, None) for v in verdicts], policy)
    assert any(p.decision is REJECT for p in points) and any(p.decision is None for p in points)
    for threshold in (0.3, 0.7, 0.9, 0.95, 0.99):
        moved = RoutingPolicy(with_threshold(config, threshold), reject_at=Severity.MODERATE)
        for verdict, point in zip(verdicts, points):
            decided = replay(verdict, moved)
            assert (decided.route is Route.AUTO) == point.automated(threshold), verdict["item_id"]
            if decided.route is Route.AUTO:
                assert decided.decision is point.decision and decided.confidence == point.confidence
    assert all(p.stratum == "auto:l1:p0" for p in points)


def test_moving_the_threshold_keeps_the_bands_ordered_and_every_other_knob():
    moved = with_threshold(RoutingPolicyConfig(detector_veto_score=0.8), 0.6, version="x")
    assert (moved.high_priority_below, moved.medium_priority_below, moved.auto_threshold) == (0.6, 0.6, 0.6)
    assert moved.detector_veto_score == 0.8 and moved.version == "x"
    raised = with_threshold(RoutingPolicyConfig(), 0.99)
    assert (raised.high_priority_below, raised.medium_priority_below) == (0.70, 0.85)
