"""`seamline learn run --once` on a small verified store: a trigger fires, a tiny detector candidate is
trained, registered in a real MLflow store (SQLite + a folder), gated, and the job is recorded and announced
on MQTT."""

import json
import time
from pathlib import Path

import pytest

from cloud.learning import jobs
from cloud.learning.registry import ModelRegistry, RegistryConfig
from harness.learning import render_line, verified_from_line
from seamline.comms.mqtt import MqttBus
from seamline.config.models import MqttConfig
from seamline.contract.mqtt import topic_specs, validate_payload
from tests.integration.learning.test_registry_and_gate import seamline, stores, write_learning_config
from tests.waiting import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow]

DETECTOR_SETTINGS = {
    "steps": 4,
    "batch_size": 2,
    "warmup_steps": 1,
    "eval_every": 0,
    "eval_images": 4,
    "checkpoint_every": 1000,
    "class_agnostic": True,
    "input_size": 128,
    "augment": {"enabled": False},
}


def test_learn_run_once_trains_registers_gates_and_records_a_job(tmp_path, mqtt_broker):
    data_dir = tmp_path / "data"
    store, crops = stores(data_dir)
    made = verified_from_line(store, crops, render_line(tmp_path / "synth", 40, seed=5), max_normals=20)
    root = f"learn{time.time_ns()}"
    config = write_learning_config(
        tmp_path / "seamline.yaml",
        data_dir,
        mqtt_url=mqtt_broker.url,
        learning={
            "triggers": {"min_new_verified": 30},
            "train": {"models": ["detector"], "detector": DETECTOR_SETTINGS},
        },
    )
    raw = config.read_text().replace("mqtt:\n", f"mqtt:\n  topic_root: {root}\n", 1)
    config.write_text(raw)
    assert len(made) >= 30

    events = []
    bus = MqttBus(
        MqttConfig(url=mqtt_broker.url), client_id=f"learn-rec-{time.time_ns()}", persistent_session=False
    )
    topic = topic_specs()["learning"].pattern.format(root=root, site="site1")
    bus.subscribe(topic, lambda _t, payload: events.append(json.loads(payload)))
    bus.start()
    assert bus.wait_connected(10)
    try:
        run = seamline("learn", "run", "--config", str(config), "--once")
        assert run.returncode == 0, run.stderr[-4000:]
        outcome = json.loads(run.stdout.strip().splitlines()[-1])
        assert outcome["state"] == "passed", outcome
        assert any(f"{len(made)} new verified labels" in t for t in outcome["triggers"])

        job = jobs.job(store.engine, outcome["job_id"])
        assert job["state"] == "passed" and job["finished_at"] is not None
        assert len(job["data_sha256"]) == 64 and job["golden_sha256"]
        detector = job["models"]["detector"]
        assert detector["gate"] == "pass" and detector["champion"] is None

        registry = ModelRegistry(RegistryConfig(), data_dir)
        version = registry.version("detector", detector["version"])
        assert version.tags["data_sha256"] == job["data_sha256"]
        assert version.tags["gate.result"] == "pass" and version.aliases == ["candidate"]
        assert "learn run (job" in version.tags["command"] and version.description.startswith("---")
        assert registry.alias_version("detector", "champion") is None  # a pass never promotes
        folder = registry.download("detector", "candidate", tmp_path / "dl")
        assert (folder / "detector.onnx").is_file() and (folder / "seamline_model.json").is_file()
        assert (Path(detector["report"]) / "report.md").is_file()

        assert wait_until(lambda: len(events) >= 2, 10), events
        for event in events:
            validate_payload("learning", event)
        assert [e["state"] for e in events][0] == "running" and events[-1]["state"] == "passed"
        assert events[-1]["models"]["detector"]["version"] == detector["version"]
        assert jobs.recent_jobs(store.engine)[0]["job_id"] == outcome["job_id"]

        again = seamline("learn", "run", "--config", str(config), "--once")
        assert again.returncode == 0, again.stderr[-2000:]
        assert json.loads(again.stdout.strip().splitlines()[-1])["state"] == "idle"  # no new labels since

        # Promoted, then new labels: the next job resumes from the champion and is judged against it.
        promoted = seamline("models", "promote", "detector", "candidate", "--config", str(config))
        assert promoted.returncode == 0, promoted.stderr
        more = verified_from_line(
            store, crops, render_line(tmp_path / "synth2", 30, seed=6), max_normals=10, prefix="vh"
        )
        assert len(more) >= 30
        second = seamline("learn", "run", "--config", str(config), "--once")
        outcome = json.loads(second.stdout.strip().splitlines()[-1])
        assert outcome["state"] in ("passed", "failed"), outcome
        assert second.returncode == (0 if outcome["state"] == "passed" else 1)
        job = jobs.job(store.engine, outcome["job_id"])
        assert job["models"]["detector"]["champion"] == detector["version"]
        retrained = registry.version("detector", job["models"]["detector"]["version"])
        assert retrained.tags["gate.champion"] == detector["version"]
        card = json.loads(
            (
                registry.download("detector", retrained.version, tmp_path / "dl2") / "seamline_model.json"
            ).read_text()
        )
        assert card["training"]["init"].endswith("/champion/detector/model")
        gate = json.loads((Path(job["models"]["detector"]["report"]) / "report.json").read_text())
        assert [row["label"] for row in gate["classes"]] == ["defect"]  # compared with the champion
        assert any(c["name"] == "per_class" and c["set"] == "golden" for c in gate["criteria"])
    finally:
        bus.stop()


def test_one_job_runs_at_a_time_and_a_silent_one_is_abandoned(tmp_path):
    store, _ = stores(tmp_path / "data")
    first = jobs.claim(store.engine, "w1", ["test"], {})
    assert first is not None
    assert jobs.claim(store.engine, "w2", ["test"], {}) is None
    time.sleep(1.1)
    assert jobs.abandon_stale(store.engine, stale_s=1.0) == 1
    assert jobs.job(store.engine, first)["state"] == "abandoned"
    assert jobs.claim(store.engine, "w2", ["test"], {}) is not None


def test_the_worker_checks_on_its_schedule_and_stops_on_sigterm(tmp_path):
    import signal
    import subprocess
    import sys

    from tests.integration.learning.test_registry_and_gate import REPO

    config = write_learning_config(
        tmp_path / "seamline.yaml", tmp_path / "data", learning={"check_interval_s": 0.5}
    )
    log = tmp_path / "worker.log"
    with open(log, "wb") as out:
        worker = subprocess.Popen(
            [sys.executable, "-m", "seamline", "learn", "run", "--config", str(config)],
            cwd=REPO,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        checks = lambda: [  # noqa: E731
            json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")
        ]
        assert wait_until(lambda: len(checks()) >= 3, 60), log.read_text()[-3000:]
        assert {c["state"] for c in checks()} == {"idle"}  # an empty store: nothing fires
        assert "no trigger fired (0 new verified labels)" in checks()[0]["detail"]
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(30) == 128 + signal.SIGTERM
    finally:
        if worker.poll() is None:
            worker.kill()


def test_a_forced_job_on_an_empty_store_ends_in_error_and_says_why(tmp_path):
    config = write_learning_config(tmp_path / "seamline.yaml", tmp_path / "data")
    run = seamline("learn", "run", "--config", str(config), "--once", "--force")
    assert run.returncode == 1, run.stderr[-3000:]
    outcome = json.loads(run.stdout.strip().splitlines()[-1])
    assert outcome["state"] == "error" and outcome["triggers"] == ["asked for (--force)"]
    assert "no golden set: 0 verified garment(s)" in outcome["detail"]
    store, _ = stores(tmp_path / "data")
    job = jobs.job(store.engine, outcome["job_id"])
    assert job["state"] == "error" and "no golden set" in job["error"]
