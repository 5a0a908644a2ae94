"""Verified data leaves as COCO, classifier JSONL, Label Studio tasks; the weekly report counts it right."""

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest

from cloud.learning.classifier_data import jsonl_crops
from cloud.learning.config import TriggerConfig
from cloud.records import CropRecord, DroppedGarmentRecord, GarmentRecord
from cloud.review.decision import CropLabel, HumanDecision, MissedDefect
from cloud.review.export import ExportError, export_verified
from cloud.review.queue import ReviewQueue
from cloud.review.report import iso_week, report_markdown, week_label, weekly_report
from cloud.storage.audit import AuditStore
from cloud.storage.crop_store import LocalCropStore
from harness.review import queue_garments, write_config
from seamline.config.taxonomy import default_taxonomy

TAXONOMY = default_taxonomy()
DECIDED_AT = datetime(2026, 11, 25, 10, 30, tzinfo=UTC)  # a Wednesday of ISO week 2026-W48


@pytest.fixture
def reviewed(tmp_path):
    """Four reviewed garments (AI per garment i: c0 = AI_TYPES[i], c1 = AI_TYPES[i+1]) with known outcomes."""
    store = AuditStore.from_url(f"sqlite:///{tmp_path / 'data' / 'cloud' / 'audit.db'}")
    crops = LocalCropStore(tmp_path / "data" / "cloud" / "crops")
    queue_garments(store, crops, 4, priorities=("high",))
    queue = ReviewQueue(store.engine, TAXONOMY)
    decisions = [
        # rv-0000 AI: c0 stain/moderate/review, c1 hole/severe/reject -> reject; person agrees: agreement
        HumanDecision(
            decision="reject",
            crops=[
                CropLabel(crop_id="c0", type="stain", severity="moderate"),
                CropLabel(crop_id="c1", type="hole", severity="severe"),
            ],
        ),
        # rv-0001 AI: c0 hole/reject, c1 normal/pass -> reject; person passes: false positive
        HumanDecision(
            decision="pass",
            crops=[
                CropLabel(crop_id="c0", type="normal", severity="none"),
                CropLabel(crop_id="c1", type="normal", severity="none"),
            ],
        ),
        # rv-0002 AI: c0 normal/pass, c1 tear/minor/review -> review;
        # person: tear is a stain, plus a missed hole inside c0
        HumanDecision(
            decision="reject",
            crops=[
                CropLabel(crop_id="c0", type="normal", severity="none"),
                CropLabel(crop_id="c1", type="stain", severity="minor"),
            ],
            missed=[
                MissedDefect(view_index=0, box=(70, 95, 110, 135), type="hole", severity="moderate"),
                MissedDefect(view_index=0, box=(500, 400, 560, 460), type="hole", severity="minor"),
            ],
        ),
        # rv-0003 AI: c0 tear/minor/review, c1 stain/moderate/review -> review;
        # person: a tear is a tear, c1 fine: FP region
        HumanDecision(
            decision="pass",
            crops=[
                CropLabel(crop_id="c0", type="tear", severity="minor"),
                CropLabel(crop_id="c1", type="normal", severity="none"),
            ],
        ),
    ]
    for d in decisions:
        item, _ = queue.take_next("alice")
        queue.decide("alice", item.item_id, d, now=DECIDED_AT)
    return store, crops, tmp_path


def test_weekly_report_counts(reviewed):
    store, _, _ = reviewed
    start = iso_week("2026-W48")
    report = weekly_report(store.engine, start, TAXONOMY)
    assert report["total_reviews"] == 4
    assert report["garments"] == {
        "agreement": 1,
        "false_positive": 2,
        "false_negative": 1,
        "misclassification": 0,
        "unanswered": 0,
    }
    assert report["agreement_rate"] == 0.25
    assert report["regions"]["false_negative"] == 2 and report["regions"]["misclassification"] == 1
    assert report["per_class"]["hole"] == {
        "tp": 1,
        "predicted": 2,
        "actual": 3,
        "precision": 0.5,
        "recall": round(1 / 3, 4),
    }
    assert report["per_class"]["stain"]["predicted"] == 2 and report["per_class"]["stain"]["tp"] == 1
    patterns = {(p["kind"], p["ai"], p["human"]): p["count"] for p in report["top_error_patterns"]}
    assert patterns[("false_negative", "(missed by detector)", "hole")] == 2
    assert patterns[("misclassification", "tear", "stain")] == 1
    # 0.75 disagreement, but on routed garments (the unsure ones): no retraining trigger from them
    assert report["routed_reviews"] == 4 and report["automatic"]["audit_samples_decided"] == 0
    assert not any("disagreement" in r for r in report["retrain"]["reasons"])
    assert sum(day["reviews"] for day in report["daily"]) == 4 and len(report["trend"]) == 8
    assert report["trend"][-1]["label"] == week_label(start) and report["trend"][-1]["reviews"] == 4
    assert "| hole | 2 | 3 | 0.50 | 0.33 |" in report_markdown(report)
    previous = weekly_report(store.engine, start - timedelta(days=7), TAXONOMY)
    assert previous["total_reviews"] == 0 and previous["agreement_rate"] is None


def test_the_accuracy_of_automatic_decisions_comes_from_blind_audit_samples(tmp_path):
    """Five automatically settled garments sampled for audit (four confirmed, one contradicted) beside two
    routed ones (both contradicted): the accuracy of automatic decisions, its exact interval and the samples
    behind it come from the audit samples alone; the disagreement trigger reads them, not the routed ones."""
    store = AuditStore.from_url(f"sqlite:///{tmp_path / 'audit.db'}")
    crops = LocalCropStore(tmp_path / "crops")
    queue_garments(store, crops, 2, prefix="rt", priorities=("high",))
    audit_ids = queue_garments(store, crops, 5, prefix="au", audit=True)
    queue = ReviewQueue(store.engine, TAXONOMY)

    def contradicting(verdict: dict) -> HumanDecision:
        if verdict["decision"] == "reject":
            labels = [
                CropLabel(crop_id=d["crop_id"], type="normal", severity="none") for d in verdict["defects"]
            ]
            return HumanDecision(decision="pass", crops=labels)
        labels = [CropLabel(crop_id=d["crop_id"], type="hole", severity="severe") for d in verdict["defects"]]
        return HumanDecision(decision="reject", crops=labels)

    def confirming(verdict: dict) -> HumanDecision:
        labels = [
            CropLabel(crop_id=d["crop_id"], type=d["type"], severity=d["severity"])
            for d in verdict["defects"]
        ]
        return HumanDecision(decision=verdict["decision"], crops=labels)

    while True:
        item, _ = queue.take_next("alice")
        if item is None:
            break
        ai = store.garment(item.item_id)["verdict"]
        if item.kind == "audit" and item.item_id != audit_ids[-1]:
            queue.decide("alice", item.item_id, confirming(ai))
        else:
            routed_ai = {**ai, "decision": "reject"} if ai["decision"] == "review" else ai
            queue.decide("alice", item.item_id, contradicting(routed_ai))

    start = iso_week(week_label(datetime.now(UTC)))
    report = weekly_report(store.engine, start, TAXONOMY)
    automatic = report["automatic"]
    assert automatic["settled_automatically"] == 5 and automatic["audit_samples_queued"] == 5
    assert (automatic["audit_samples_decided"], automatic["correct"], automatic["accuracy"]) == (5, 4, 0.8)
    assert automatic["accuracy_interval_95"] == [0.2836, 0.9949]  # Clopper-Pearson for 4 of 5
    assert automatic["agreement"] == 0.8
    assert report["routed_reviews"] == 2 and report["agreement_rate"] == 0.0
    assert not report["retrain"]["triggered"]  # the trigger needs 20 audit samples by default
    configured = weekly_report(store.engine, start, TAXONOMY, triggers=TriggerConfig(min_audit_samples=5))
    assert configured["retrain"]["triggered"]
    assert "disagreement 0.20 on 5 audit samples" in configured["retrain"]["reasons"][0]
    text = report_markdown(report)
    assert (
        "accuracy of automatic decisions **80.0%** (95 % interval 28.4%-99.5%) on 5 blind audit samples"
        in text
    )
    assert "on the 2 garments routed to people (the unsure ones): **0.0%**" in text


def test_weekly_report_counts_the_garments_dropped_at_the_edge(audit_store):
    """The week's garments in the audit store, by capture time: sent for inspection, and dropped by reason."""
    captured = DECIDED_AT - timedelta(hours=2)
    crop = CropRecord(
        "c0", 0, (1.0, 1.0, 9.0, 9.0), (0.0, 0.0, 10.0, 10.0), 0.7, "defect", "jpeg", b"", 10, 10
    )
    sent = GarmentRecord(
        "sent-1", "s1", "l1", "st1", "agent-1", captured, None, captured, "d@1", ((0, 64, 64),), (crop,)
    )
    assert audit_store.accept(sent, {"c0": "file:///crops/sent-1/c0.jpg"})
    for item_id, reason, at in (
        ("drop-1", "detector_behind", captured),
        ("drop-2", "detector_behind", captured + timedelta(hours=1)),
        ("drop-3", "edge_error", captured),
        ("drop-old", "detector_behind", captured - timedelta(days=7)),  # the week before
    ):
        drop = DroppedGarmentRecord(
            item_id, "s1", "l1", "st1", "agent-1", at, None, at, at, reason, "", "divert_review"
        )
        assert audit_store.record_drop(drop)
    report = weekly_report(audit_store.engine, iso_week("2026-W48"), TAXONOMY)
    assert report["line"] == {
        "garments": 4,
        "sent_for_inspection": 1,
        "dropped_at_edge": 3,
        "dropped_by_reason": {"detector_behind": 2, "edge_error": 1},
    }
    assert (
        "- Garments recorded: **4** (sent for inspection 1, dropped at the edge 3: detector_behind 2, "
        "edge_error 1)" in report_markdown(report)
    )
    before = weekly_report(audit_store.engine, iso_week("2026-W47"), TAXONOMY)["line"]
    assert before["dropped_by_reason"] == {"detector_behind": 1} and before["sent_for_inspection"] == 0


def test_coco_export_holds_crops_and_every_verified_box_inside_them(reviewed, tmp_path):
    from faster_coco_eval import COCO

    store, crops, _ = reviewed
    summary = export_verified(store.engine, crops, TAXONOMY, tmp_path / "coco", "coco")
    assert summary.images == 8 and summary.labels == 10
    assert summary.labels_without_pixels == 1  # the hole drawn at (500, 400) has no crop around it
    coco = COCO(str(tmp_path / "coco" / "annotations.json"))
    assert len(coco.getImgIds()) == 8
    hole = coco.getCatIds(catNms=["hole"])[0]
    rv2_c0 = next(i for i in coco.dataset["images"] if i["file_name"].endswith("rv-0002__c0.jpg"))
    anns = coco.loadAnns(coco.getAnnIds(imgIds=[rv2_c0["id"]]))
    assert [a["category_id"] for a in anns] == [
        hole
    ]  # the normal crop label is not a box; the missed hole is
    x, y, w, h = anns[0]["bbox"]
    assert (x, y, w, h) == (10.0, 11.0, 40.0, 40.0)  # (70, 95)-(110, 135) in a crop cut at (60, 84), scale 1
    assert (tmp_path / "coco" / rv2_c0["file_name"]).read_bytes()[:2] == b"\xff\xd8"


def test_jsonl_export_is_what_classifier_training_reads(reviewed, tmp_path):
    store, crops, _ = reviewed
    export_verified(store.engine, crops, TAXONOMY, tmp_path / "jsonl", "jsonl")
    examples = jsonl_crops(tmp_path / "jsonl" / "crops.jsonl", TAXONOMY)
    assert len(examples) == 8
    # each crop keeps the detector's score, which the gate's routing replay needs
    assert all(e.detector_score is not None and 0 < e.detector_score <= 1 for e in examples)
    targets = sorted((e.key, e.target["type"], e.target["severity"]) for e in examples)
    assert ("images/rv-0002__c1.jpg", "stain", "minor") in targets and (
        "images/rv-0001__c0.jpg",
        "normal",
        "none",
    ) in targets


def test_label_studio_export(reviewed, tmp_path):
    store, crops, _ = reviewed
    export_verified(store.engine, crops, TAXONOMY, tmp_path / "ls", "labelstudio")
    tasks = json.loads((tmp_path / "ls" / "tasks.json").read_text())
    assert len(tasks) == 8
    task = next(t for t in tasks if t["data"]["image"].endswith("rv-0000__c1.jpg"))
    boxes = [r for r in task["annotations"][0]["result"] if r["type"] == "rectanglelabels"]
    assert [b["value"]["rectanglelabels"] for b in boxes] == [["hole"]]
    v = boxes[0]["value"]
    assert all(0 <= v[k] <= 100 for k in ("x", "y", "width", "height"))
    assert '<RectangleLabels name="defect"' in (tmp_path / "ls" / "label_config.xml").read_text()
    with pytest.raises(ExportError, match="choose one of"):
        export_verified(store.engine, crops, TAXONOMY, tmp_path / "x", "yolo")


def test_report_and_export_commands(reviewed, tmp_path, mqtt_broker):
    _, _, root = reviewed
    config = write_config(root / "seamline.yaml", mqtt_url=mqtt_broker.url, data_dir=root / "data")

    def seamline(*args):
        return subprocess.run(
            [sys.executable, "-m", "seamline", *args], capture_output=True, text=True, timeout=120
        )

    done = seamline(
        "report", "weekly", "-c", str(config), "--week", "2026-W48", "--out", str(tmp_path / "report")
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["total_reviews"] == 4
    assert {p.name for p in (tmp_path / "report").iterdir()} == {
        "report.json",
        "report.md",
        "daily.png",
        "trend.png",
        "errors.png",
        "classes.png",
    }
    bad = seamline("report", "weekly", "-c", str(config), "--week", "2026-48")
    assert bad.returncode == 2 and "YYYY-Www" in bad.stderr
    done = seamline(
        "review", "export", "-c", str(config), "--format", "coco", "--out", str(tmp_path / "export")
    )
    assert done.returncode == 0 and json.loads(done.stdout)["images"] == 8
    bad = seamline(
        "review", "export", "-c", str(config), "--format", "yolo", "--out", str(tmp_path / "export2")
    )
    assert bad.returncode == 2 and "choose one of" in bad.stderr
    added = subprocess.run(
        [sys.executable, "-m", "seamline", "review", "add-reviewer", "carol", "-c", str(config)],
        input="short\n",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert added.returncode == 2 and "at least 8 characters" in added.stderr
