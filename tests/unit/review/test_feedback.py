import pytest

from cloud.review.feedback import Outcome, ai_call, garment_outcome, region_outcome

A, FP, FN, MIS, UN = (
    Outcome.AGREEMENT,
    Outcome.FALSE_POSITIVE,
    Outcome.FALSE_NEGATIVE,
    Outcome.MISCLASSIFICATION,
    Outcome.UNANSWERED,
)


@pytest.mark.parametrize(
    ("ai", "ai_sev", "human", "human_sev", "outcome", "severity_agrees"),
    [
        ("stain", "minor", "stain", "minor", A, True),
        ("stain", "minor", "stain", "severe", A, False),
        ("normal", "none", "normal", "none", A, None),
        ("stain", "minor", "normal", "none", FP, None),
        ("normal", "none", "hole", "severe", FN, None),
        ("stain", "moderate", "tear", "moderate", MIS, None),
        ("unknown", "none", "tear", "minor", UN, None),
        (None, None, "tear", "minor", FN, None),  # a box the reviewer drew: the detector missed it
    ],
)
def test_region_outcomes(ai, ai_sev, human, human_sev, outcome, severity_agrees):
    result = region_outcome(ai, ai_sev, human, human_sev)
    assert result.outcome is outcome
    assert result.severity_agrees is severity_agrees


def test_ai_call_from_region_suggestions():
    assert ai_call(["pass", "reject"]) == "reject"
    assert ai_call(["pass", "pass"]) == "pass"
    assert ai_call(["pass", "review"]) == "review"
    assert ai_call([]) == "review"


@pytest.mark.parametrize(
    ("ai", "human", "regions", "outcome"),
    [
        ("reject", "pass", [FP], FP),  # the seed's false positive
        ("pass", "reject", [A], FN),  # the seed's false negative, even if the regions agree on type
        ("reject", "reject", [A, A], A),  # the seed would have called this a classification error
        ("reject", "reject", [MIS, A], MIS),
        ("review", "reject", [MIS, FP, FN], FN),  # the worst region error decides
        ("review", "pass", [FP, MIS], FP),
        ("review", "pass", [UN, UN], UN),  # the classifier answered nothing: not held against it
        ("review", "reject", [UN, A], A),
    ],
)
def test_garment_outcomes(ai, human, regions, outcome):
    assert garment_outcome(ai, human, regions) is outcome
