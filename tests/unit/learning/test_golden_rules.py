"""The golden set's sampling rules and the training commands' refusal, on plain data."""

import json

import pytest

from cloud.learning.coco_data import DatasetError
from cloud.learning.golden import GOLDEN_FILE, choose, folder_sha256, refuse_golden, stratum_of


def test_a_garment_is_in_the_stratum_of_its_most_severe_defect():
    labels = [
        {"type": "stain", "severity": "minor"},
        {"type": "hole", "severity": "severe"},
        {"type": "normal", "severity": "none"},
    ]
    assert stratum_of(labels, "normal") == "hole/severe"
    assert stratum_of([{"type": "normal", "severity": "none"}], "normal") == "normal"


def test_each_stratum_gives_its_share_at_least_the_minimum_never_more_than_half():
    strata = {
        "hole/severe": [f"h{i}" for i in range(400)],  # share 0.15: 60
        "stain/minor": [f"s{i}" for i in range(60)],  # share gives 9, the minimum 20 wins
        "tear/minor": [f"t{i}" for i in range(10)],  # the minimum would take 10: half keeps 5 for training
        "snag/minor": ["n0"],  # one garment: it stays for training
    }
    chosen = choose(strata, share=0.15, least=20, most=500)
    assert {k: len(v) for k, v in chosen.items()} == {"hole/severe": 60, "stain/minor": 20, "tear/minor": 5}
    assert choose(strata, share=0.15, least=20, most=500) == chosen  # by hash: the same every time
    assert len(choose(strata, share=0.15, least=20, most=30)["hole/severe"]) == 30


def _golden(tmp_path, items):
    golden = tmp_path / "golden"
    (golden / "coco" / "images").mkdir(parents=True)
    (golden / "coco" / "images" / f"{items[0]}__c0.jpg").write_bytes(b"x")
    sha = folder_sha256(golden)
    record = {
        "sha256": sha,
        "path": str(golden),
        "garments": len(items),
        "labels": len(items),
        "strata": {},
        "created_at": "2026-12-07T00:00:00+00:00",
        "created_by": "test",
        "items": items,
    }
    (golden / GOLDEN_FILE).write_text(json.dumps(record))
    return golden, sha


def test_training_refuses_a_golden_set_and_data_holding_its_garments(tmp_path):
    golden, sha = _golden(tmp_path, ["g-1", "g-2"])
    with pytest.raises(DatasetError, match=f"golden set {sha[:12]}"):
        refuse_golden(golden / "coco", None)
    export = tmp_path / "export"
    (export / "images").mkdir(parents=True)
    (export / "images" / "a-1__c0.jpg").write_bytes(b"x")
    refuse_golden(export, golden)  # no overlap: fine
    (export / "images" / "g-2__c0.jpg").write_bytes(b"x")
    with pytest.raises(DatasetError, match="holds 1 garment.*g-2"):
        refuse_golden(export / "annotations.json", golden)


def test_the_hash_covers_names_and_bytes_but_not_the_record(tmp_path):
    golden, sha = _golden(tmp_path, ["g-1"])
    (golden / GOLDEN_FILE).write_text("{}")
    assert folder_sha256(golden) == sha
    (golden / "coco" / "images" / "g-1__c0.jpg").write_bytes(b"y")
    assert folder_sha256(golden) != sha
