"""``seamline train detector`` on a small synthetic set: it learns, checkpoints, resumes and writes a card."""

import json
import subprocess
import sys

import numpy as np
import pytest

from cloud.learning.augment import AugmentConfig
from cloud.learning.detector_training import DetectorTrainConfig, train_detector
from seamline.config.taxonomy import default_taxonomy

pytestmark = pytest.mark.integration


def _seamline(*args, timeout=600):
    return subprocess.run(
        [sys.executable, "-m", "seamline", *args], capture_output=True, text=True, timeout=timeout
    )


def test_loss_falls_when_fitting_a_few_images(small_synth, tmp_path):
    cfg = DetectorTrainConfig(
        data=small_synth,
        out_dir=tmp_path / "fit",
        steps=30,
        batch_size=2,
        lr=1e-3,
        warmup_steps=5,
        eval_every=0,
        eval_images=4,
        log_every=5,
        checkpoint_every=1000,
        class_agnostic=True,
        augment=AugmentConfig(enabled=False),
    )
    result = train_detector(cfg, show_progress=False)
    losses = [
        r["loss"]
        for r in map(json.loads, (tmp_path / "fit" / "log.jsonl").read_text().splitlines())
        if "loss" in r
    ]
    assert len(losses) == 6
    assert np.mean(losses[-2:]) < 0.8 * np.mean(losses[:2]), losses
    assert (result.model_dir / "model.safetensors").exists() and result.steps == 30


def test_cli_checkpoints_resumes_and_writes_a_model_card(small_synth, tmp_path):
    out = tmp_path / "run"
    common = [
        "train",
        "detector",
        str(small_synth),
        "-o",
        str(out),
        "--batch-size",
        "2",
        "--eval-every",
        "2",
        "--checkpoint-every",
        "2",
        "--val-fraction",
        "0.3",
        "--no-progress",
    ]
    first = _seamline(*common, "--steps", "4")
    assert first.returncode == 0, first.stderr[-2000:]
    # A state every 2 steps and at the end, so a finished run can be extended with a larger --steps.
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["step-0000002", "step-0000004"]
    resumed = _seamline(*common, "--steps", "6", "--resume")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "at step 4" in resumed.stderr and "resumed from" in resumed.stderr
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert any("eval" in r for r in log) and log[-1]["step"] == 6 and "final_eval" in log[-1]
    card = json.loads((out / "model" / "seamline_model.json").read_text())
    assert card["steps"] == 6 and card["labels"] == list(default_taxonomy().type_ids)  # one class per type
    assert set(card["metrics"]) >= {"map50", "map50_95", "precision", "recall", "per_class"}
    readme = (out / "model" / "README.md").read_text()
    assert "## Held-out metrics" in readme and "seamline train detector" in readme and "--resume" in readme
    assert "AP50" in resumed.stdout  # the per-class table


def test_the_trained_checkpoint_runs_in_the_edge_torch_runtime(small_synth, tmp_path):
    from cloud.learning.coco_data import read_rgb
    from edge.detectors.torch_runtime import TorchDetector, TorchDetectorConfig

    cfg = DetectorTrainConfig(
        data=small_synth,
        out_dir=tmp_path / "t",
        steps=2,
        batch_size=2,
        eval_every=0,
        eval_images=2,
        class_agnostic=True,
        tiles=(2, 2),
    )
    model_dir = train_detector(cfg, show_progress=False).model_dir
    detector = TorchDetector(TorchDetectorConfig(checkpoint=str(model_dir), score_threshold=0.0))
    image = read_rgb(next((small_synth / "images").iterdir()))
    [found] = detector.detect([image])
    # The tile grid it was trained for travels with the checkpoint: the edge slices frames the same way.
    assert (
        detector.meta.input_size == 320 and detector.meta.labels == ("defect",) and detector.tiles == (2, 2)
    )
    assert len(found) > 0 and found.boxes[:, 2].max() <= image.shape[1] + 1


def test_bad_data_is_a_clear_error(tmp_path):
    missing = _seamline(
        "train", "detector", str(tmp_path / "nope.json"), "-o", str(tmp_path / "o"), "--no-progress"
    )
    assert missing.returncode == 2 and "no such COCO file" in missing.stderr
    bad = _seamline("train", "detector", str(tmp_path), "-o", str(tmp_path / "o"), "--steps", "0")
    assert bad.returncode == 2 and "steps" in bad.stderr


def test_a_pretrained_backbone_run_and_a_run_that_continues_it_share_one_card(small_synth, tmp_path):
    common = ["--batch-size", "2", "--eval-every", "0", "--val-fraction", "0.2", "--class-agnostic"]
    first = _seamline(
        "train", "detector", str(small_synth), "-o", str(tmp_path / "r1"), "--init-backbone",
        "efficientnet-lite0", "--steps", "2", "--version", "1", "--no-progress", *common,
    )  # fmt: skip
    assert first.returncode == 0, first.stderr[-2000:]
    card = json.loads((tmp_path / "r1" / "model" / "seamline_model.json").read_text())
    assert card["training"]["init_backbone"] == "efficientnet-lite0" and len(card["runs"]) == 1
    assert (
        json.loads((tmp_path / "r1" / "model" / "config.json").read_text())["backbone_config"]["backbone"]
        == "tf_efficientnet_lite0"
    )
    # The next run starts from those weights (not from its optimizer state) and lists both runs.
    second = _seamline(
        "train", "detector", str(small_synth), "-o", str(tmp_path / "r2"), "--init",
        str(tmp_path / "r1" / "model"), "--steps", "2", "--version", "2", "--no-progress", *common,
    )  # fmt: skip
    assert second.returncode == 0, second.stderr[-2000:]
    card = json.loads((tmp_path / "r2" / "model" / "seamline_model.json").read_text())
    assert [r["version"] for r in card["runs"]] == ["1", "2"]
    assert card["runs"][0]["init_backbone"] == "efficientnet-lite0"
    assert card["runs"][1]["init"] == str(tmp_path / "r1" / "model")
    readme = (tmp_path / "r2" / "model" / "README.md").read_text()
    assert (
        "## Training runs" in readme and readme.split("## Reproduce")[1].count("seamline train detector") == 2
    )


def test_a_pretrained_backbone_needs_the_built_head(small_synth, tmp_path):
    bad = _seamline(
        "train", "detector", str(small_synth), "-o", str(tmp_path / "o"), "--init", "r18",
        "--init-backbone", "efficientnet-lite0", "--no-progress",
    )  # fmt: skip
    assert bad.returncode == 2 and "init_backbone" in bad.stderr and "tiny" in bad.stderr
    unknown = _seamline(
        "train", "detector", str(small_synth), "-o", str(tmp_path / "o"), "--init-backbone", "resnet50"
    )
    assert unknown.returncode == 2 and "efficientnet-lite0" in unknown.stderr


def test_training_goes_on_from_the_committed_lineage(small_synth, tmp_path):
    """models/demo/detector-lite0 holds weights and a card of two runs: a third run starts from them."""
    from pathlib import Path

    lineage = Path(__file__).parents[3] / "models" / "demo" / "detector-lite0"
    cfg = DetectorTrainConfig(
        data=small_synth,
        out_dir=tmp_path / "next",
        init=str(lineage),
        steps=1,
        batch_size=2,
        eval_every=0,
        eval_images=2,
        class_agnostic=True,
        tiles=(2, 2),
        version="5",
    )
    result = train_detector(cfg, show_progress=False)
    card = json.loads((result.model_dir / "seamline_model.json").read_text())
    assert [r["version"] for r in card["runs"]] == ["3", "4", "5"]
    assert card["runs"][0]["init_backbone"] == "efficientnet-lite0" and card["runs"][2]["init"] == str(
        lineage
    )
