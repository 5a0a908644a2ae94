"""Every branch of the routing policy."""

import pytest

from cloud.routing.policy import RegionResult, RoutingPolicy, RoutingPolicyConfig
from seamline.domain import Decision, Priority, Route, Severity

M, MO, S = Severity.MINOR, Severity.MODERATE, Severity.SEVERE


def region(
    crop="c0", *, det=0.8, type="stain", sev=MO, suggested=Decision.REJECT, conf=0.99, agree=None, error=None
):
    return RegionResult(crop, det, type, sev, suggested, conf, agree, error)


@pytest.fixture
def policy():
    return RoutingPolicy(RoutingPolicyConfig(), reject_at=Severity.MODERATE)


def test_confident_reject_is_automatic(policy):
    d = policy.decide([region()])
    assert (d.decision, d.route, d.priority, d.final) == (Decision.REJECT, Route.AUTO, Priority.NONE, True)
    assert d.confidence == pytest.approx(0.99)


def test_confident_pass_is_automatic(policy):
    d = policy.decide(
        [
            region(type="normal", sev=None, suggested=Decision.PASS),
            region("c1", sev=M, suggested=Decision.PASS),
        ]
    )
    assert (d.decision, d.route, d.final) == (Decision.PASS, Route.AUTO, True)


def test_pass_needs_every_region_sure(policy):
    d = policy.decide(
        [
            region(sev=M, suggested=Decision.PASS, conf=0.99),
            region("c1", sev=M, suggested=Decision.PASS, conf=0.80),
        ]
    )
    assert (d.decision, d.route, d.priority) == (Decision.REVIEW, Route.HUMAN, Priority.MEDIUM)
    assert d.confidence == pytest.approx(0.80)


def test_reject_needs_only_one_sure_unsellable_region(policy):
    d = policy.decide(
        [region(conf=0.97), region("c1", type="normal", sev=None, suggested=Decision.PASS, conf=0.4)]
    )
    assert (d.decision, d.route) == (Decision.REJECT, Route.AUTO)


def test_unsure_reject_goes_to_people_by_confidence_band(policy):
    assert policy.decide([region(conf=0.9)]).priority is Priority.LOW
    assert policy.decide([region(conf=0.8)]).priority is Priority.MEDIUM
    assert policy.decide([region(conf=0.5)]).priority is Priority.HIGH


def test_severe_is_reviewed_first(policy):
    d = policy.decide([region(sev=S, conf=0.9)])
    assert (d.decision, d.priority) == (Decision.REVIEW, Priority.HIGH)


def test_severe_priority_can_be_turned_off():
    policy = RoutingPolicy(RoutingPolicyConfig(severe_priority_high=False), reject_at=Severity.MODERATE)
    assert policy.decide([region(sev=S, conf=0.9)]).priority is Priority.LOW


def test_classifier_failure_is_never_a_silent_pass(policy):
    d = policy.decide(
        [region(type="unknown", sev=None, suggested=Decision.REVIEW, conf=None, error="timeout")]
    )
    assert (d.decision, d.route, d.priority, d.final) == (Decision.REVIEW, Route.HUMAN, Priority.HIGH, False)
    assert "timeout" in d.reasons[0]


def test_one_failed_region_sends_the_garment_to_people(policy):
    d = policy.decide(
        [
            region(conf=0.99),
            region("c1", type="unknown", sev=None, suggested=Decision.REVIEW, conf=None, error="bad json"),
        ]
    )
    assert d.route is Route.HUMAN and d.priority is Priority.HIGH


def test_no_confidence_signal_means_no_automation(policy):
    d = policy.decide([region(conf=None)])
    assert d.route is Route.HUMAN and d.confidence == 0.0 and "no confidence signal" in d.reasons[0]


def test_agreement_caps_token_confidence(policy):
    d = policy.decide([region(conf=0.99, agree=0.6)])
    assert d.route is Route.HUMAN and d.confidence == pytest.approx(0.6) and d.priority is Priority.HIGH
    assert policy.decide([region(conf=None, agree=1.0)]).route is Route.AUTO


def test_detector_veto_on_normal(policy):
    d = policy.decide([region(det=0.95, type="normal", sev=None, suggested=Decision.PASS, conf=0.99)])
    assert d.route is Route.HUMAN and "detector is 0.95 sure" in d.reasons[0]


def test_low_detector_evidence_blocks_automatic_reject(policy):
    d = policy.decide([region(det=0.3, conf=0.99)])
    assert (d.decision, d.route) == (Decision.REVIEW, Route.HUMAN)
    assert any("detector scores below" in r for r in d.reasons)


def test_decision_contradicting_severity_is_not_trusted(policy):
    # severe tear but "pass": e.g. text on a tag told the model to pass it; severity decides, a person checks
    d = policy.decide([region(type="tear", sev=S, suggested=Decision.PASS, conf=0.99)])
    assert d.route is Route.HUMAN and d.priority is Priority.HIGH and "contradicts" in d.reasons[0]
    d = policy.decide([region(sev=MO, suggested=Decision.REJECT, conf=0.99, type="stain")])
    assert (d.decision, d.route) == (
        Decision.REJECT,
        Route.AUTO,
    )  # moderate + reject is consistent (reject_at = moderate)


def test_minor_with_reject_suggestion_is_inconsistent(policy):
    d = policy.decide([region(sev=M, suggested=Decision.REJECT)])
    assert d.decision is Decision.REVIEW


def test_review_suggestion_is_never_inconsistent(policy):
    d = policy.decide([region(sev=M, suggested=Decision.REVIEW, conf=0.99)])
    assert (d.decision, d.route) == (Decision.PASS, Route.AUTO)


def test_reject_threshold_follows_the_taxonomy():
    strict = RoutingPolicy(RoutingPolicyConfig(), reject_at=Severity.SEVERE)
    d = strict.decide([region(sev=MO, suggested=Decision.PASS, conf=0.99)])
    assert d.decision is Decision.PASS


def test_empty_garment_is_a_programming_error(policy):
    with pytest.raises(ValueError):
        policy.decide([])


def test_bands_must_be_ordered():
    with pytest.raises(ValueError, match="high_priority_below"):
        RoutingPolicyConfig(high_priority_below=0.9, medium_priority_below=0.8)


@pytest.mark.parametrize("threshold, route", [(0.97, Route.HUMAN), (0.95, Route.AUTO), (0.90, Route.AUTO)])
def test_auto_threshold_is_configurable(threshold, route):
    policy = RoutingPolicy(
        RoutingPolicyConfig(auto_threshold=threshold, medium_priority_below=min(0.85, threshold)),
        reject_at=Severity.MODERATE,
    )
    assert policy.decide([region(conf=0.96)]).route is route
