from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from cloud.review.decision import (
    CropLabel,
    DecisionError,
    HumanDecision,
    MissedDefect,
    check_decision,
    final_verdict,
)
from seamline.config.taxonomy import default_taxonomy
from seamline.contract.mqtt import validate_payload

TAXONOMY = default_taxonomy()
GARMENT = {
    "item_id": "g1",
    "site_id": "s1",
    "line_id": "l1",
    "station_id": "st1",
    "captured_at": datetime(2026, 11, 28, tzinfo=UTC),
    "views": [[0, 640, 480], [1, 320, 240]],
    "crops": [
        {"crop_id": "c0", "view_index": 0, "box": [10, 10, 50, 50], "crop_box": [0, 0, 60, 60]},
        {"crop_id": "c1", "view_index": 1, "box": [100, 100, 150, 150], "crop_box": [90, 90, 160, 160]},
    ],
}
AI = {
    "models": {"detector": "d@1", "classifier": "q@1", "prompt": "v2", "policy": "p@1"},
    "timestamps": {"captured_at": "2026-11-28T00:00:00+00:00"},
}


def decision(**overrides):
    base = {
        "decision": "reject",
        "crops": [
            CropLabel(crop_id="c0", type="stain", severity="moderate"),
            CropLabel(crop_id="c1", type="normal", severity="none"),
        ],
    }
    return HumanDecision(**{**base, **overrides})


def test_a_valid_decision_passes_and_becomes_a_schema_valid_final_verdict():
    d = decision(
        missed=[MissedDefect(view_index=1, box=(10, 10, 40, 40), type="hole", severity="severe")],
        note="Stain on the cuff.",
    )
    check_decision(d, GARMENT, TAXONOMY)
    verdict = final_verdict(
        d, GARMENT, AI, reviewer_id="alice", priority="high", decided_at=datetime.now(UTC), normal_id="normal"
    )
    payload = verdict.model_dump(mode="json")
    validate_payload("verdicts", payload)
    assert payload["source"] == "review" and payload["final"] is True and payload["reviewer_id"] == "alice"
    assert [(x["crop_id"], x["type"], x["decision"]) for x in payload["defects"]] == [
        ("c0", "stain", "reject"),
        ("c1", "normal", "pass"),
        ("missed#1", "hole", "reject"),
    ]
    assert payload["models"]["classifier"] == "q@1"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"crops": [CropLabel(crop_id="c0", type="stain", severity="minor")]}, "no label for crop 'c1'"),
        (
            {
                "crops": [
                    CropLabel(crop_id="c0", type="stain", severity="minor"),
                    CropLabel(crop_id="c1", type="normal", severity="none"),
                    CropLabel(crop_id="zz", type="normal", severity="none"),
                ]
            },
            "'zz' is not a crop",
        ),
        (
            {
                "crops": [
                    CropLabel(crop_id="c0", type="stain", severity="minor"),
                    CropLabel(crop_id="c0", type="normal", severity="none"),
                ]
            },
            "labelled twice",
        ),
        (
            {
                "crops": [
                    CropLabel(crop_id="c0", type="coffee", severity="minor"),
                    CropLabel(crop_id="c1", type="normal", severity="none"),
                ]
            },
            "crops[0].type: 'coffee' is not in the taxonomy",
        ),
        (
            {
                "crops": [
                    CropLabel(crop_id="c0", type="stain", severity="none"),
                    CropLabel(crop_id="c1", type="normal", severity="none"),
                ]
            },
            "crops[0].severity",
        ),
        (
            {
                "crops": [
                    CropLabel(crop_id="c0", type="normal", severity="minor"),
                    CropLabel(crop_id="c1", type="normal", severity="none"),
                ]
            },
            "crops[0].severity",
        ),
        (
            {"missed": [MissedDefect(view_index=2, box=(1, 1, 5, 5), type="hole", severity="minor")]},
            "missed[0].view_index",
        ),
        (
            {"missed": [MissedDefect(view_index=1, box=(10, 10, 400, 40), type="hole", severity="minor")]},
            "missed[0].box",
        ),
        (
            {"missed": [MissedDefect(view_index=0, box=(50, 10, 40, 40), type="hole", severity="minor")]},
            "missed[0].box",
        ),
        (
            {"missed": [MissedDefect(view_index=0, box=(1, 1, 5, 5), type="normal", severity="none")]},
            "missed[0].type",
        ),
    ],
)
def test_decisions_that_do_not_fit_the_garment_are_refused_with_the_field(overrides, message):
    with pytest.raises(
        DecisionError, match=message.replace("[", r"\[").replace("]", r"\]").replace("(", r"\(")
    ):
        check_decision(decision(**overrides), GARMENT, TAXONOMY)


def test_the_decision_shape_is_strict():
    with pytest.raises(ValidationError):
        HumanDecision.model_validate({"decision": "review", "crops": []})
    with pytest.raises(ValidationError):
        HumanDecision.model_validate({"decision": "pass", "crops": [], "reviewer_id": "mallory"})
