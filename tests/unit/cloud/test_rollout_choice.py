"""Which garments a rollout gives the candidate: the hash split, its stability, and the state's rules."""

import math

import pytest
from pydantic import ValidationError

from cloud.classifiers.config import ClassifierRolloutConfig
from cloud.learning.config import PromotionConfig
from cloud.learning.rollout_report import recommend
from cloud.routing.audit import sampled
from cloud.storage.rollout_state import Endpoint, RolloutState

CANDIDATE = Endpoint(version="classifier@7", model="cand-7")
IDS = [f"line1-0-{i:06d}" for i in range(2000)]


def test_a_10_percent_canary_splits_2000_garments_within_a_binomial_bound_and_is_stable_on_replay():
    state = RolloutState(revision=3, mode="canary", share=0.1, candidate=CANDIDATE)
    arms = [state.arm_for(i) for i in IDS]
    k = arms.count("candidate")
    # 4 standard deviations of Binomial(2000, 0.1): fails by chance about once in 16,000 runs of new ids
    assert abs(k - 200) <= 4 * math.sqrt(2000 * 0.1 * 0.9), k
    # a replay (another replica, a retry, a later state object with the same candidate) picks the same arm
    again = RolloutState.model_validate(state.model_dump(mode="json"))
    assert [again.arm_for(i) for i in IDS] == arms


def test_a_larger_share_keeps_the_garments_of_a_smaller_one():
    small = RolloutState(mode="canary", share=0.05, candidate=CANDIDATE)
    large = RolloutState(mode="canary", share=0.2, candidate=CANDIDATE)
    picked = {i for i in IDS if small.arm_for(i) == "candidate"}
    assert picked and picked <= {i for i in IDS if large.arm_for(i) == "candidate"}


def test_the_canary_is_drawn_independently_of_the_audit_sample():
    # the same hash for both would put every audit sample in the canary (or none): the champion's accuracy
    # could then not be measured
    state = RolloutState(mode="canary", share=0.5, candidate=CANDIDATE)
    audited = [i for i in IDS if sampled(i, 0.2)]
    in_canary = sum(state.arm_for(i) == "candidate" for i in audited)
    n = len(audited)
    assert abs(in_canary - n / 2) <= 4 * math.sqrt(n / 4), (in_canary, n)


def test_only_a_canary_gives_garments_to_the_candidate_and_only_a_shadow_shadows():
    for mode in ("off", "rolled_back", "promoted"):
        state = RolloutState(mode=mode, candidate=CANDIDATE)
        assert {state.arm_for(i) for i in IDS[:200]} == {"champion"}
        assert not any(state.shadowed(i) for i in IDS[:200])
    shadow = RolloutState(mode="shadow", share=0.3, candidate=CANDIDATE)
    assert {shadow.arm_for(i) for i in IDS} == {"champion"}
    assert 0.2 < sum(shadow.shadowed(i) for i in IDS) / len(IDS) < 0.4
    assert all(shadow.model_copy(update={"share": 1.0}).shadowed(i) for i in IDS[:50])


def test_bad_states_are_refused_with_the_reason():
    with pytest.raises(ValidationError, match="canary needs a candidate"):
        RolloutState(mode="canary", share=0.1)
    with pytest.raises(ValidationError, match="off: share must be 0"):
        RolloutState(mode="off", share=0.1)
    with pytest.raises(ValidationError, match="less than or equal to 1"):
        RolloutState(mode="canary", share=1.5, candidate=CANDIDATE)
    with pytest.raises(ValidationError, match="http"):
        Endpoint(version="v", model="m", base_url="ftp://x")
    with pytest.raises(ValidationError, match="shadow needs a candidate"):
        ClassifierRolloutConfig(mode="shadow", share=0.5)
    assert ClassifierRolloutConfig().state() is None  # unset: leaves the CLI's state alone
    assert ClassifierRolloutConfig(mode="rolled_back", share=0.3, candidate=CANDIDATE).state().share == 0


def _row(garments, auto, n, correct, p95=100.0, late=0.0, arm="champion"):
    return {
        "garments": garments,
        "arms": {arm: garments},
        "automated_share": auto,
        "audit_samples_decided": n,
        "accuracy": correct / n if n else None,
        "accuracy_interval_95": None,
        "classify_ms_p95": p95,
        "late_share": late,
    }


def _report(champion, candidate):
    from cloud.routing.bounds import clopper_pearson

    for row in (champion, candidate):
        n = row["audit_samples_decided"]
        if n:
            k = round(row["accuracy"] * n)
            row["accuracy_interval_95"] = list(clopper_pearson(k, n, 0.95))
    return {
        "rollout": {"mode": "canary", "candidate": {"version": "cand"}},
        "classifier": {"champ": champion, "cand": candidate},
    }


def test_the_recommendation_waits_for_samples_then_promotes_or_rolls_back():
    criteria = PromotionConfig(min_audit_samples=30)
    few = _report(_row(500, 0.6, 40, 38), _row(50, 0.6, 10, 10, arm="candidate"))
    assert recommend(few, criteria)["action"] == "keep"
    assert "candidate has 10 decided audit samples" in recommend(few, criteria)["reasons"][0]
    good = _report(_row(500, 0.6, 200, 190), _row(400, 0.62, 150, 143, arm="candidate"))
    assert recommend(good, criteria)["action"] == "promote"
    worse = _report(_row(500, 0.6, 200, 194), _row(400, 0.6, 150, 120, arm="candidate"))
    assert recommend(worse, criteria)["action"] == "rollback"
    slow = _report(_row(500, 0.6, 200, 190), _row(400, 0.6, 150, 143, p95=400.0, arm="candidate"))
    assert recommend(slow, criteria)["action"] == "rollback"
    assert "p95 classify" in recommend(slow, criteria)["reasons"][0]
    less_automated = _report(_row(500, 0.6, 200, 190), _row(400, 0.3, 150, 143, arm="candidate"))
    assert recommend(less_automated, criteria)["action"] == "keep"
    assert recommend({"rollout": {"mode": "off"}, "classifier": {}}, criteria)["action"] == "none"


def test_a_champion_that_settles_almost_nothing_is_not_compared_with_the_bar_is():
    """The demo's case: the champion automates 2 % of garments (1 audit sample), so the candidate's automatic
    decisions are held to min_automatic_accuracy (0.90) instead of to the champion's."""
    criteria = PromotionConfig(min_audit_samples=5)
    bad = _report(_row(52, 0.02, 1, 0), _row(57, 0.40, 23, 14, arm="candidate"))
    found = recommend(bad, criteria)
    assert found["action"] == "rollback", found
    assert (
        "below min_automatic_accuracy 0.9" in found["reasons"][0]
        and "too few to compare with" in found["reasons"][0]
    )
    good = _report(_row(52, 0.02, 1, 1), _row(57, 0.40, 40, 39, arm="candidate"))
    assert recommend(good, criteria)["action"] == "promote"
    unsure = _report(_row(52, 0.02, 1, 1), _row(57, 0.40, 12, 11, arm="candidate"))  # 0.917, upper 0.998
    assert (
        recommend(unsure, PromotionConfig(min_audit_samples=5, min_automatic_accuracy=0.95))["action"]
        == "keep"
    )
    slow = _report(_row(52, 0.02, 1, 1), _row(57, 0.40, 40, 39, p95=400.0, arm="candidate"))
    assert recommend(slow, criteria)["action"] == "rollback"
