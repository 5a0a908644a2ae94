"""The gate's statistics and decisions on constructed per-example results (the models' part is in
tests/integration/learning/test_registry_and_gate.py)."""

import numpy as np
import pytest
from scipy.stats import binomtest

from cloud.learning.config import GateConfig
from cloud.learning.gate import (
    Answer,
    automatic_accuracy,
    mcnemar_check,
    mcnemar_p,
    paired_ratio_bootstrap,
    per_class_checks,
    routing_check,
)
from cloud.routing.policy import RoutingPolicy, RoutingPolicyConfig
from seamline.domain import Severity

CFG = GateConfig()


def _classes(rng, per_class=100, accuracy=0.85, worse=None, flips=5):
    """Champion and candidate correctness per class; the candidate loses ``flips`` right ones on ``worse``."""
    data = {}
    for label in ("hole", "stain", "tear"):
        champ = rng.random(per_class) < accuracy
        cand = champ.copy()
        if label == worse:
            right = np.flatnonzero(cand)
            cand[right[:flips]] = False
        data[label] = (cand, champ, np.ones(per_class))
    return data


def test_an_identical_candidate_passes_every_class_with_a_zero_width_interval():
    data = _classes(np.random.default_rng(0))
    criteria, rows = per_class_checks("golden", data, CFG)
    assert [c.passed for c in criteria] == [True, True, True]
    assert all(r.diff == r.low == r.high == 0 for r in rows)


def test_five_points_worse_on_one_class_fails_that_class_and_names_it():
    data = _classes(np.random.default_rng(1), worse="stain", flips=5)  # 100 crops: -0.05
    criteria, rows = per_class_checks("golden", data, CFG)
    failing = [c for c in criteria if not c.passed]
    assert [c.subject for c in failing] == ["stain"]
    assert failing[0].label == "per_class[golden:stain]"
    stain = next(r for r in rows if r.label == "stain")
    assert stain.diff == pytest.approx(-0.05) and stain.low < -0.02 < stain.high + 0.05


def test_one_point_worse_passes_and_too_few_examples_are_not_compared():
    # -0.01 on 1,000 crops: the interval's lower end stays above -0.02. (On 100 crops one lost answer already
    # puts it below: a small golden set tolerates no regression on a class.)
    data = _classes(np.random.default_rng(2), per_class=1000, worse="hole", flips=10)
    data["snag"] = (np.zeros(10, bool), np.ones(10, bool), np.ones(10))  # far worse, but only 10 crops
    criteria, rows = per_class_checks("golden", data, CFG)
    assert all(c.passed for c in criteria)
    assert {c.subject for c in criteria} == {"hole", "stain", "tear"}
    assert next(r for r in rows if r.label == "snag").compared is False


def test_the_detector_bootstrap_weights_images_by_their_boxes():
    # Per image: boxes found by each model out of the image's boxes; recall = sum(found) / sum(boxes).
    boxes = np.array([2, 1, 3, 0, 2] * 10)
    champ = np.minimum(boxes, np.array([2, 1, 2, 0, 1] * 10))
    diff, low, high = paired_ratio_bootstrap(champ, champ, boxes, resamples=500, interval=0.95)
    assert diff == low == high == 0
    worse = champ.copy()
    worse[::5] = 0  # every first image loses its two boxes
    diff, low, high = paired_ratio_bootstrap(worse, champ, boxes, resamples=500, interval=0.95)
    assert diff == pytest.approx(-20 / 80) and low < diff < high <= 0


@pytest.mark.parametrize("b,c", [(0, 0), (3, 0), (10, 4), (40, 25), (200, 180)])
def test_mcnemar_matches_the_exact_binomial_test(b, c):
    expected = 1.0 if b + c == 0 else binomtest(min(b, c), b + c, 0.5).pvalue
    assert mcnemar_p(b, c) == pytest.approx(expected, rel=1e-9)


def test_mcnemar_fails_a_candidate_worse_overall_only():
    champ = np.array([True] * 60 + [False] * 40)
    cand = champ.copy()
    cand[:15] = False  # 15 right only for the champion
    assert not mcnemar_check("golden", cand, champ, 0.05).passed
    assert mcnemar_check("golden", champ, cand, 0.05).passed  # better is never a failure


def _answers(confidences, right):
    return [
        Answer("hole", "severe", "reject", conf, "reject" if ok else "pass")
        for conf, ok in zip(confidences, right, strict=True)
    ]


def test_routing_replay_fails_a_candidate_whose_automatic_decisions_are_less_accurate():
    policy = RoutingPolicy(RoutingPolicyConfig(), reject_at=Severity.SEVERE)
    champion = _answers([0.99] * 20, [True] * 19 + [False])
    same, numbers = routing_check("golden", champion, champion, policy, 0.0)
    assert same.passed and numbers["candidate"]["automated"] == 20
    worse = _answers([0.99] * 20, [True] * 16 + [False] * 4)
    criterion, numbers = routing_check("golden", worse, champion, policy, 0.0)
    assert not criterion.passed and numbers["candidate"]["accuracy"] == pytest.approx(0.8)
    # Sent to people instead (low confidence): nothing automatic is wrong, so nothing is lowered.
    unsure = _answers([0.3] * 20, [False] * 20)
    assert routing_check("golden", unsure, champion, policy, 0.0)[0].passed
    # One wrong of one against one wrong of five is no measurement: too few to compare, not a failure.
    one = _answers([0.99] + [0.3] * 19, [False] * 20)
    few = _answers([0.99] * 5 + [0.3] * 15, [True] + [False] * 19)
    criterion, _ = routing_check("golden", one, few, policy, 0.0)
    assert criterion.passed and "too few automatic decisions to compare" in criterion.detail
    assert not routing_check("golden", one, few, policy, 0.0, min_automated=1)[0].passed


def test_the_routing_replay_reads_each_crops_detector_score():
    """A sure 'normal' on a crop the detector was nearly sure of goes to a person (the policy's detector veto,
    0.9); on a crop it barely saw, the same answer passes automatically. Taking every score as 1.0 (as the
    replay once did) vetoed every automatic pass."""
    policy = RoutingPolicy(RoutingPolicyConfig(), reject_at=Severity.SEVERE)
    normal = Answer("normal", "none", "pass", 0.99, "pass", detector_score=0.35)
    assert automatic_accuracy([normal], policy) == (1, 1)
    vetoed = Answer("normal", "none", "pass", 0.99, "pass", detector_score=0.95)
    unknown = Answer("normal", "none", "pass", 0.99, "pass")
    assert automatic_accuracy([vetoed], policy) == automatic_accuracy([unknown], policy) == (0, 0)
