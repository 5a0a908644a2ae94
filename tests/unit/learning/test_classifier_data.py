"""Classifier targets follow the taxonomy's rule; verified-store exports load or fail with a line number."""

import json

import pytest

from cloud.learning.classifier_data import NORMAL_REASON, CropExample, jsonl_crops, split_crops, target_for
from cloud.learning.coco_data import DatasetError
from seamline.config.taxonomy import default_taxonomy

TAXONOMY = default_taxonomy()


def test_targets_follow_the_reject_rule():
    assert target_for(TAXONOMY, "stain", "minor") == {
        "type": "stain",
        "severity": "minor",
        "decision": "pass",
        "reason": "Stain, minor.",
    }
    assert target_for(TAXONOMY, "tear", "moderate")["decision"] == "reject"  # reject_at_severity: moderate
    assert target_for(TAXONOMY, "normal", None) == {
        "type": "normal",
        "severity": "none",
        "decision": "pass",
        "reason": NORMAL_REASON,
    }


def test_target_json_is_compact_in_schema_order():
    example = CropExample("k", b"", target_for(TAXONOMY, "hole", "severe"))
    assert (
        example.target_json()
        == '{"type":"hole","severity":"severe","decision":"reject","reason":"Hole, severe."}'
    )


def test_jsonl_export_loads_and_bad_lines_are_named(tmp_path):
    (tmp_path / "a.jpg").write_bytes(b"jpeg")
    good = {
        "image": "a.jpg",
        "target": {"type": "snag", "severity": "minor", "decision": "pass", "reason": "A pulled loop."},
    }
    path = tmp_path / "verified.jsonl"
    path.write_text(json.dumps(good) + "\n")
    [example] = jsonl_crops(path, TAXONOMY)
    assert example.jpeg == b"jpeg" and example.target["reason"] == "A pulled loop."
    bad = dict(good, target=dict(good["target"], type="smudge"))
    path.write_text(json.dumps(good) + "\n" + json.dumps(bad) + "\n")
    with pytest.raises(DatasetError, match=r"verified.jsonl:2: .*smudge"):
        jsonl_crops(path, TAXONOMY)


def test_split_keeps_crops_of_one_image_together():
    examples = [CropExample(f"images/g{i // 3}.jpg#{i}", b"", {"type": "normal"}) for i in range(300)]
    train, val = split_crops(examples, 0.25)
    assert not {e.key.split("#")[0] for e in train} & {e.key.split("#")[0] for e in val}
    assert len(train) + len(val) == 300 and val
