"""The rollout report on an audit store holding a canary's verdicts and their blind audit reviews, and the
learning worker acting on it only with auto_promote on."""

import json
import subprocess
import sys
from datetime import timedelta

import pytest

from cloud.config import CloudConfig
from cloud.learning.worker import LearningWorker
from cloud.storage import rollouts
from cloud.storage.rollout_state import Endpoint, RolloutState
from cloud.storage.tables import garments, review_decisions, review_items
from seamline.clock import utcnow
from seamline.config.models import load_config, load_section
from tests.integration.learning.test_registry_and_gate import stores, write_learning_config

pytestmark = pytest.mark.integration
CANDIDATE = Endpoint(version="cls@2", model="cand")


def _fill(engine, *, candidate_accuracy: float, n: int = 60) -> None:
    """``n`` audited automatic verdicts per arm (the champion right 95 %), plus a few routed ones."""
    now = utcnow()
    rows, items, decisions = [], [], []
    for arm, version, accuracy in (("champion", "cls@1", 0.95), ("candidate", "cls@2", candidate_accuracy)):
        for i in range(n + 10):
            item_id = f"{arm}-{i:04d}"
            audited, routed = i < n, i >= n + 5
            ai = "reject" if i % 2 else "pass"
            verdict = {
                "source": "cloud",
                "decision": "review" if routed else ai,
                "route": "human" if routed else "auto",
                "models": {"detector": "det@1", "classifier": version},
                "rollout": {"revision": 1, "mode": "canary", "share": 0.5, "arm": arm},
                "timings_ms": {"classify": 100.0, "edge_detect": 20.0 + i % 10},
                "timestamps": {"captured_at": now.isoformat(), "decided_at": now.isoformat()},
                "defects": [],
            }
            rows.append(
                dict(
                    item_id=item_id,
                    site_id="site1",
                    line_id="line1",
                    station_id="st1",
                    agent_id="a",
                    captured_at=now - timedelta(hours=1),
                    received_at=now,
                    detector_version="det@1",
                    views=[],
                    sensor_readings={},
                    status="published",
                    verdict_id=f"v-{item_id}",
                    verdict=verdict,
                )
            )
            if audited or routed:
                right = i < round(accuracy * n) if audited else True
                human = ai if right else ("pass" if ai == "reject" else "reject")
                items.append(
                    dict(
                        item_id=item_id,
                        site_id="site1",
                        line_id="line1",
                        priority="low",
                        priority_rank=2,
                        status="decided",
                        verdict_id=f"v-{item_id}",
                        queued_at=now,
                        kind="audit" if audited else "routed",
                    )
                )
                decisions.append(
                    dict(
                        item_id=item_id,
                        reviewer_id="ada",
                        decision=human,
                        decided_at=now,
                        ai_verdict_id=f"v-{item_id}",
                        ai_call=verdict["decision"],
                        outcome="agreement" if right else "false_positive",
                        verdict_id=f"h-{item_id}",
                        verdict={"models": {"detector": "det@1"}, "defects": []},
                    )
                )
    with engine.begin() as conn:
        conn.execute(garments.insert(), rows)
        conn.execute(review_items.insert(), items)
        conn.execute(review_decisions.insert(), decisions)


def _setup(tmp_path, *, auto_promote: bool, candidate_accuracy: float):
    data_dir = tmp_path / "data"
    store, _ = stores(data_dir)
    _fill(store.engine, candidate_accuracy=candidate_accuracy)
    rollouts.write(store.engine, RolloutState(mode="canary", share=0.5, candidate=CANDIDATE, set_by="ada"))
    path = write_learning_config(
        tmp_path / "seamline.yaml", data_dir, learning={"promotion": {"auto_promote": auto_promote}}
    )
    config = load_config(path)
    return path, store, LearningWorker(config, load_section(path, config, "cloud", CloudConfig))


def test_the_report_compares_the_arms_on_their_audit_samples_and_the_worker_promotes(tmp_path):
    path, store, worker = _setup(tmp_path, auto_promote=True, candidate_accuracy=0.95)
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "seamline",
            "rollout",
            "report",
            "--config",
            str(path),
            "--out",
            str(tmp_path / "r"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout)
    champion, candidate = report["classifier"]["cls@1"], report["classifier"]["cls@2"]
    assert champion["audit_samples_decided"] == candidate["audit_samples_decided"] == 60
    assert champion["accuracy"] == 0.95 and candidate["accuracy"] == 0.95
    low, high = candidate["accuracy_interval_95"]
    assert low < 0.95 < high
    assert champion["automated_share"] == round(65 / 70, 4) and champion["routed_reviews"] == 5
    assert report["recommendation"]["action"] == "promote"
    detector = report["detector"]["det@1"]
    assert detector["garments"] == 140 and detector["late_share"] == 0.0
    assert 28.0 <= detector["detect_ms_p95"] <= 29.0  # edge_detect 20-29 ms
    assert detector["passed_samples"] == 0 and detector["missed_per_1000"] is None
    assert "Recommendation: promote" in (tmp_path / "r" / "report.md").read_text()
    assert worker.act_on_rollout() == "promote"
    state = rollouts.current(store.engine)
    assert state.mode == "promoted" and state.champion.version == "cls@2"


def test_a_worse_candidate_is_rolled_back_and_nothing_happens_without_auto_promote(tmp_path):
    _, store, worker = _setup(tmp_path / "a", auto_promote=True, candidate_accuracy=0.70)
    assert worker.act_on_rollout() == "rollback"
    assert rollouts.current(store.engine).mode == "rolled_back"
    _, store, worker = _setup(tmp_path / "b", auto_promote=False, candidate_accuracy=0.70)
    assert worker.act_on_rollout() is None
    assert rollouts.current(store.engine).mode == "canary"


def _report_cli(path, *extra):
    return subprocess.run(
        [sys.executable, "-m", "seamline", "rollout", "report", "--config", str(path), *extra],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_report_window_starts_at_since_and_a_bad_since_is_refused(tmp_path):
    path, _, _ = _setup(tmp_path, auto_promote=False, candidate_accuracy=0.95)
    captured = utcnow() - timedelta(hours=1)  # when _fill's garments were captured
    before = _report_cli(path, "--since", (captured - timedelta(minutes=5)).isoformat())
    assert before.returncode == 0, before.stderr
    assert set(json.loads(before.stdout)["classifier"]) == {"cls@1", "cls@2"}
    later = _report_cli(path, "--since", (captured + timedelta(minutes=5)).isoformat())
    assert later.returncode == 0, later.stderr
    report = json.loads(later.stdout)
    assert report["classifier"] == {} and report["recommendation"]["action"] == "keep"
    assert report["period"]["start"].startswith((captured + timedelta(minutes=5)).isoformat()[:16])
    naive = _report_cli(path, "--since", "2026-12-07T00:00:00")
    assert naive.returncode == 2 and "time zone" in naive.stderr
    garbage = _report_cli(path, "--since", "last tuesday")
    assert garbage.returncode == 2 and "--since" in garbage.stderr
