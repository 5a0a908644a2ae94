"""The README's demo command on the shipped demo models: every garment gets exactly one line command, over
a real broker, a real cloud service with vLLM serving the demo classifier, and the edge on ONNX Runtime;
garments routed to people are decided in the real review console and reported."""

import json
import subprocess
import sys

import pytest

from seamline.demo.settings import DemoSettings

pytestmark = [pytest.mark.integration, pytest.mark.vllm]


def test_demo_runs_the_whole_loop_on_the_shipped_models(tmp_path, tiny_models):
    defaults = DemoSettings()
    assert defaults.detector.exists() and defaults.classifier.exists(), (
        "the demo models must ship with the repository"
    )
    out = tmp_path / "demo"
    run = subprocess.run(
        [sys.executable, "-m", "seamline", "demo", "-n", "12", "--rate", "2", "-o", str(out), "--no-live"],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())["stats"]
    assert summary["garments"] == 12 and summary["invalid_messages"] == 0 and summary["errors"] == 0
    assert sum(summary["actions"].values()) == 12 and summary["with_truth"] == 12
    assert summary["latency_ms"]["n"] >= 1 and summary["latency_ms"]["p50"] > 0
    assert "verdict" in summary["causes"] or "no_detection" in summary["causes"]
    assert "# Seamline demo summary" in (out / "summary.md").read_text()
    assert (out / "seamline.yaml").exists() and (out / "logs" / "cloud.log").exists()
    # people's half of the loop: every garment routed to people was decided in the review console (by the
    # simulated reviewer, over HTTP), its final verdict came back over MQTT, and the weekly report counts it
    routed = summary["routes"].get("human", 0)
    review = summary["extra"]["review"]
    assert summary["reviewed"] == routed == review["reviewed"], review
    assert review["bot_errors"] == [] and review["total_reviews"] == routed
    assert sum(review["garments"].values()) == routed
    report = json.loads((out / "review" / "report.json").read_text())
    assert report["total_reviews"] == routed and (out / "review" / "errors.png").exists()
    assert "reviewed" in (out / "summary.md").read_text() and (out / "review-login.txt").exists()
