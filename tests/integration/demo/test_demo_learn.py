"""`seamline demo --learn` in a short form, on the shipped models and real parts: the line's reviews fill the
verified store, `seamline learn run` trains and gates a candidate from the champion, a second vLLM serves it,
the running cloud service takes it as a canary, the line runs again on new garments, and the rollout report's
recommendation is acted on (promote, or roll back)."""

import json
import subprocess
import sys

import pytest
import yaml

from cloud.learning.registry import ModelRegistry, RegistryConfig

pytestmark = [pytest.mark.integration, pytest.mark.vllm, pytest.mark.slow]
GARMENTS = 20


def _seamline(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "seamline", *args], capture_output=True, text=True, timeout=1200, check=False
    )


def test_the_demo_learns_one_cycle_and_acts_on_the_rollout_report(tmp_path, tiny_models):
    out = tmp_path / "demo"
    run = _seamline(
        "demo",
        "--learn",
        "-n",
        str(GARMENTS),
        "--rate",
        "2",
        "--learn-steps",
        "10",
        "-o",
        str(out),
        "--no-live",
    )
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-4000:]
    summary = json.loads((out / "summary.json").read_text())["stats"]
    assert summary["garments"] == GARMENTS and summary["invalid_messages"] == 0
    learning = summary["extra"]["learning"]

    # the job: a trigger fired on the reviews of run 1, the candidate was trained from the champion and gated
    job = learning["job"]
    assert job["state"] == "passed", job
    assert any("new verified labels" in t for t in job["triggers"]), job["triggers"]
    assert job["models"]["classifier"]["champion"] == "1" and job["models"]["classifier"]["gate"] == "pass"
    assert learning["champion"] == "classifier@1" and learning["candidate"] == "classifier@2"
    config = out / "seamline.yaml"
    registry = ModelRegistry(RegistryConfig(), yaml.safe_load(config.read_text())["storage"]["data_dir"])
    candidate = registry.version("classifier", "2")
    assert candidate.tags["gate.result"] == "pass" and candidate.tags["gate.champion"] == "1"

    # run 2: every new garment got its line command; the canary split them between the two versions
    run2 = learning["run2"]
    assert run2["garments"] == GARMENTS and run2["invalid_messages"] == 0 and run2["errors"] == 0
    arms = learning["compare"]
    assert arms["run 2: champion arm"]["garments"] > 0 and arms["run 2: candidate arm"]["garments"] > 0
    assert arms["run 2: champion arm"]["garments"] + arms["run 2: candidate arm"]["garments"] == run2[
        "garments"
    ] - run2["causes"].get("no_detection", 0)
    report = learning["report"]["classifier"]
    assert set(report) == {"classifier@1", "classifier@2"}  # the report window is run 2's
    assert report["classifier@2"]["arms"] == {"candidate": arms["run 2: candidate arm"]["garments"]}

    # the decision follows the report's recommendation, and the rollout and the registry record it
    action = learning["recommendation"]["action"]
    assert learning["action"] == ("promoted" if action == "promote" else "rolled_back")
    status = _seamline("rollout", "classifier", "status", "--config", str(config))
    assert status.returncode == 0, status.stderr
    modes = [state["mode"] for state in json.loads(status.stdout)]
    assert modes[:2] == [learning["action"], "canary"], modes
    champion = registry.alias_version("classifier", "champion")
    assert champion == ("2" if learning["action"] == "promoted" else "1")

    text = (out / "summary.md").read_text()
    assert "## The learning cycle" in text and "run 2: candidate arm" in text
    assert (out / "rollout" / "report.md").is_file() and (out / "seamline-canary.yaml").is_file()
    assert (out / "logs" / "learn.log").is_file() and (out / "logs" / "candidate-vllm.log").is_file()
