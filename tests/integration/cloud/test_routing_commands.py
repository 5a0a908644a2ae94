"""``seamline routing calibrate`` and ``seamline routing replay`` as an operator runs them, on a real SQLite
audit store filled through the service's own code paths: garments accepted, classified answers routed by the
real policy into real verdicts (build_verdict), recorded with their review items (routed, or audit samples
chosen by cloud/routing/audit.py's hash), and decided by a reviewer through the review queue.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import yaml

from cloud.classifiers.answer import RegionAnswer
from cloud.classifiers.vllm_backend import RegionClassification
from cloud.publishing.verdicts import build_verdict
from cloud.records import CropRecord, GarmentRecord
from cloud.review.decision import CropLabel, HumanDecision
from cloud.review.queue import ReviewQueue
from cloud.routing.audit import sampled
from cloud.routing.policy import RoutingPolicy, RoutingPolicyConfig
from cloud.routing.regions import region_results
from cloud.routing.replay import recorded_garments, replay
from cloud.storage.audit import AuditStore
from cloud.storage.crop_store import LocalCropStore
from harness.review import VIEW, crop_jpeg
from seamline.config.taxonomy import default_taxonomy
from seamline.domain import Decision, Route, Severity

REPO = Path(__file__).resolve().parents[3]
TAXONOMY = default_taxonomy()
POLICY = RoutingPolicyConfig(version="p1", auto_threshold=0.9, medium_priority_below=0.85)
AUDIT_SHARE = 0.5  # production's is 2 %; a larger share keeps the store small
GARMENTS = 240


def _answer(reject: bool) -> RegionAnswer:
    if reject:
        return RegionAnswer("hole", Severity.MODERATE, Decision.REJECT, "A hole.")
    return RegionAnswer("normal", None, Decision.PASS, "Looks fine.")


def _fill(store: AuditStore, crop_store: LocalCropStore) -> dict[str, int]:
    """GARMENTS garments, confidence spread over [0.8, 1): the AI is always right from 0.85 up and wrong on
    three in ten below. Returns how many went where."""
    rng = random.Random(16)
    policy = RoutingPolicy(POLICY, reject_at=TAXONOMY.reject_at_severity, normal_id=TAXONOMY.normal.id)
    queue = ReviewQueue(store.engine, TAXONOMY)
    truth: dict[str, str] = {}
    counts = {"auto": 0, "audit": 0, "routed": 0}
    base = datetime.now(timezone.utc) - timedelta(hours=1)
    for i in range(GARMENTS):
        item_id = f"cal-{i:04d}"
        confidence = round(0.8 + 0.2 * (i + 0.5) / GARMENTS, 6)
        reject = rng.random() < 0.3
        captured = base + timedelta(seconds=i)
        data = crop_jpeg(i)
        box, crop_box = (116.0, 100.0, 180.0, 164.0), (100.0, 84.0, 196.0, 180.0)
        crop = CropRecord("c0", 0, box, crop_box, 0.7, "defect", "jpeg", data, 96, 96)
        record = GarmentRecord(
            item_id=item_id,
            site_id="s1",
            line_id="l1",
            station_id="st1",
            agent_id="agent-1",
            captured_at=captured,
            deadline_at=None,
            received_at=captured,
            detector_version="det@1",
            views=(VIEW,),
            crops=(crop,),
        )
        assert store.accept(record, {"c0": crop_store.put(f"{item_id}/c0", data, "jpeg")})
        classified = [RegionClassification("c0", _answer(reject), confidence, None, None, 0.1, 1)]
        routing = policy.decide(region_results(record, classified))
        verdict = build_verdict(
            record, classified, routing, classifier_version="qwen@1", prompt_version="v3@en",
            policy_version=POLICY.version, classify_s=0.1,
        )  # fmt: skip
        if routing.route is Route.HUMAN:
            priority, kind = routing.priority.value, "routed"
        elif sampled(item_id, AUDIT_SHARE):
            priority, kind = "low", "audit"
        else:
            priority, kind = None, "routed"
        store.record_verdict(verdict, review_priority=priority, review_kind=kind)
        counts["auto" if priority is None else kind] += 1
        right = confidence >= 0.85 or rng.random() >= 0.3
        truth[item_id] = ("reject" if reject else "pass") if right else ("pass" if reject else "reject")
    while True:
        item, _ = queue.take_next("ann")
        if item is None:
            break
        decision = truth[item.item_id]
        label = CropLabel(crop_id="c0", type="hole", severity="moderate") if decision == "reject" else None
        label = label or CropLabel(crop_id="c0", type="normal", severity="none")
        queue.decide("ann", item.item_id, HumanDecision(decision=decision, crops=[label]))
    return counts


def _config(path: Path, data_dir: Path, audit_url: str | None, *, cloud: bool = True) -> Path:
    config = {
        "site": {"site_id": "s1", "line_id": "l1", "station_id": "st1"},
        "storage": {"data_dir": str(data_dir)},
    }
    if cloud:
        config["cloud"] = {"routing": POLICY.model_dump(), **({"audit_url": audit_url} if audit_url else {})}
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("routing")
    url = f"sqlite:///{root / 'audit.db'}"
    store = AuditStore.from_url(url)
    try:
        counts = _fill(store, LocalCropStore(root / "crops"))
    finally:
        store.engine.dispose()
    return {
        "root": root,
        "url": url,
        "config": _config(root / "seamline.yaml", root / "data", url),
        "counts": counts,
    }


def seamline(*args: str | Path, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "seamline", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=timeout,
    )


def test_the_store_holds_both_kinds_of_review(site):
    counts = site["counts"]
    assert counts["routed"] == GARMENTS // 2 and counts["audit"] > 40 and counts["auto"] > 40, counts


def test_calibrate_writes_a_policy_that_loads_and_a_report_with_its_curve(site, tmp_path):
    out = tmp_path / "cal"
    run = seamline(
        "routing", "calibrate", "--config", site["config"], "--target-accuracy", "0.9", "--confidence", "0.9",
        "--min-samples", "50", "--out", out,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith("calibrated: auto_threshold 0.9 -> "), run.stdout
    policy = RoutingPolicyConfig.model_validate(yaml.safe_load((out / "policy.yaml").read_text())["routing"])
    assert policy.version.startswith("p1-cal-") and policy.version.endswith("-t0.9")
    assert 0.8 < policy.auto_threshold < 0.9  # the routed band's sure half (0.85-0.9) joins the automated set
    assert policy.medium_priority_below <= policy.auto_threshold
    assert policy.model_dump(
        exclude={"version", "auto_threshold", "medium_priority_below"}
    ) == POLICY.model_dump(exclude={"version", "auto_threshold", "medium_priority_below"})

    report = json.loads((out / "report.json").read_text())
    assert report["changed"] is True and report["new_policy"]["auto_threshold"] == policy.auto_threshold
    strata = report["window"]["strata"]
    assert strata["routed"]["verified"] == GARMENTS // 2
    assert strata["auto:l1:p1"]["verified"] == site["counts"]["audit"]
    assert strata["auto:l1:p1"]["garments"] == site["counts"]["audit"] + site["counts"]["auto"]
    chosen = report["chosen"]
    assert chosen["lower_bound"] >= 0.9 and chosen["threshold"] == policy.auto_threshold
    assert set(chosen["strata"]) == {"routed", "auto:l1:p1"}
    assert [r["threshold"] for r in report["curve"]] == sorted(
        (r["threshold"] for r in report["curve"]), reverse=True
    )
    tests = [r["test"] for r in report["curve"] if r["test"] in ("certified", "not certified")]
    assert len(tests) == report["tested"] and tests[:-1] == ["certified"] * (len(tests) - 1)
    assert set(report["by_decision"]) == {"pass", "reject"}
    assert "Learn then Test" in report["method"]
    markdown = (out / "report.md").read_text()
    assert "## Samples per stratum" in markdown and "## The curve" in markdown and "## Method" in markdown
    assert (out / "curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # The new policy, replayed for real on every recorded verdict, automates what the report says.
    store = AuditStore.from_url(site["url"])
    try:
        moved = RoutingPolicy(policy, reject_at=TAXONOMY.reject_at_severity, normal_id=TAXONOMY.normal.id)
        automated = sum(replay(g.verdict, moved).route is Route.AUTO for g in recorded_garments(store.engine))
    finally:
        store.engine.dispose()
    assert automated == chosen["automated"]


def test_too_few_labels_keep_the_policy_and_say_so(site, tmp_path):
    out = tmp_path / "kept"
    out.mkdir()
    (out / "policy.yaml").write_text("routing: {}\n")  # left by an earlier run in the same folder
    run = seamline(
        "routing", "calibrate", "-c", site["config"], "--target-accuracy", "0.97", "--min-samples", "1000",
        "--out", out,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith("kept policy p1 (auto_threshold 0.9): ")
    assert "fewer than the 1000 asked for (--min-samples)" in run.stdout
    assert not (out / "policy.yaml").exists()
    report = json.loads((out / "report.json").read_text())
    assert report["changed"] is False and report["new_policy"] is None and report["chosen"] is None
    assert "Policy kept" in (out / "report.md").read_text()


def test_a_target_the_data_cannot_certify_keeps_the_policy(site, tmp_path):
    # ~60 audit samples cannot show 99.9 % (that needs thousands)
    run = seamline(
        "routing",
        "calibrate",
        "-c",
        site["config"],
        "--target-accuracy",
        "0.999",
        "--out",
        tmp_path / "strict",
    )
    assert run.returncode == 0, run.stderr
    assert "kept policy p1" in run.stdout and "collect more audit samples" in run.stdout
    assert not (tmp_path / "strict" / "policy.yaml").exists()


def test_replay_compares_the_recorded_policy_with_another_file(site, tmp_path):
    other = tmp_path / "other.yaml"
    lower = {**POLICY.model_dump(), "version": "p2", "auto_threshold": 0.85, "medium_priority_below": 0.85}
    other.write_text(yaml.safe_dump({"routing": lower}))
    out = tmp_path / "replay"
    run = seamline("routing", "replay", "-c", site["config"], "--policy", other, "--out", out)
    assert run.returncode == 0, run.stderr
    assert "automated share" in run.stdout and "p2" in run.stdout and "recorded (p1)" in run.stdout
    report = json.loads((out / "report.json").read_text())
    recorded, replayed = report["recorded"], report["other"]
    automatic = site["counts"]["audit"] + site["counts"]["auto"]
    assert recorded["automated"] == automatic and recorded["decisions"]["review"] == GARMENTS // 2
    assert (
        replayed["automated"] > automatic and report["verdicts_changed"] == replayed["automated"] - automatic
    )
    assert recorded["verified"] == site["counts"]["audit"] and recorded["accuracy"] == 1.0
    low, high = replayed["interval"]
    assert low < replayed["accuracy"] <= high <= 1.0
    assert (out / "curve.png").exists() and "# Routing replay" in (out / "report.md").read_text()

    bare = tmp_path / "bare.yaml"  # the RoutingPolicyConfig mapping alone works too
    bare.write_text(yaml.safe_dump({**POLICY.model_dump(), "version": "p3"}))
    run = seamline("routing", "replay", "-c", site["config"], "--policy", bare)
    assert run.returncode == 0, run.stderr
    assert "0 garments get another verdict under p3" in run.stdout


@pytest.mark.parametrize(
    "args, message",
    [
        (
            ["--target-accuracy", "1.5"],
            "error: --target-accuracy must be between 0 and 1 (exclusive), got 1.5",
        ),
        (["--target-accuracy", "0.97", "--confidence", "0"], "error: --confidence must be between 0 and 1"),
        (
            ["--target-accuracy", "0.97", "--since", "last week"],
            "error: --since: 'last week' is not an ISO date",
        ),
    ],
)
def test_bad_arguments_exit_2_naming_the_argument(site, args, message):
    run = seamline("routing", "calibrate", "-c", site["config"], *args)
    assert run.returncode == 2 and message in run.stderr, run.stderr


def test_bad_input_exits_2_with_a_precise_message(site, tmp_path):
    no_cloud = _config(tmp_path / "edge-only.yaml", tmp_path / "data", None, cloud=False)
    run = seamline("routing", "calibrate", "-c", no_cloud, "--target-accuracy", "0.97")
    assert run.returncode == 2 and f"error: {no_cloud}: no cloud: section" in run.stderr, run.stderr

    missing = _config(tmp_path / "missing.yaml", tmp_path / "nothing-here", None)
    run = seamline("routing", "calibrate", "-c", missing, "--target-accuracy", "0.97")
    assert run.returncode == 2 and "error: no audit store at sqlite:///" in run.stderr, run.stderr
    assert not (tmp_path / "nothing-here").exists()  # nothing created by looking

    empty_url = f"sqlite:///{tmp_path / 'empty.db'}"
    AuditStore.from_url(empty_url).engine.dispose()
    empty = _config(tmp_path / "empty.yaml", tmp_path / "data", empty_url)
    run = seamline("routing", "calibrate", "-c", empty, "--target-accuracy", "0.97")
    assert run.returncode == 2 and "holds no cloud verdicts: nothing to replay" in run.stderr, run.stderr
    later = seamline(
        "routing", "calibrate", "-c", site["config"], "--target-accuracy", "0.97", "--since", "2999-01-01"
    )
    assert later.returncode == 2 and "holds no cloud verdicts since 2999-01-01T00:00:00+00:00" in later.stderr

    bad_policy = tmp_path / "bad.yaml"
    bad_policy.write_text("routing:\n  auto_threshold: 2\n")
    run = seamline("routing", "replay", "-c", site["config"], "--policy", bad_policy)
    assert run.returncode == 2 and f"{bad_policy}:2: routing.auto_threshold" in run.stderr, run.stderr
