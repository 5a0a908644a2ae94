"""``seamline train classifier``: crops from a synthetic set, production prompt, loss on the answer only."""

import json
import subprocess
import sys

import numpy as np
import pytest

from cloud.classifiers.prompts import PromptConfig, system_prompt
from cloud.learning.classifier_data import load_crops
from cloud.learning.classifier_training import ClassifierTrainConfig, PromptEncoder, train_classifier
from seamline.config.taxonomy import default_taxonomy

pytestmark = pytest.mark.integration
TAXONOMY = default_taxonomy()


def test_synthetic_crops_cover_defects_and_distractors(small_synth):
    crops = load_crops(small_synth, TAXONOMY)
    types = {c.target["type"] for c in crops}
    assert "normal" in types and len(types) >= 5
    normal = sum(c.target["type"] == "normal" for c in crops)
    assert 0 < normal <= 0.31 * len(crops)  # distractors capped at 30 %
    assert all(c.jpeg[:2] == b"\xff\xd8" for c in crops)


def test_training_batch_masks_everything_but_the_answer(small_synth, tiny_qwen_dir):
    from transformers import AutoProcessor

    encoder = PromptEncoder(
        AutoProcessor.from_pretrained(tiny_qwen_dir), TAXONOMY, PromptConfig(style="v2-structured")
    )
    assert system_prompt(TAXONOMY, PromptConfig(style="v2-structured")) in encoder.prompt
    examples = load_crops(small_synth, TAXONOMY)[:3]
    batch = encoder.training_batch(examples)
    for row, example in enumerate(examples):
        labelled = batch["labels"][row][batch["labels"][row] != -100].tolist()
        text = encoder.tokenizer.decode(labelled)
        assert text == example.target_json() + "<|im_end|>\n"
    assert batch["pixel_values"].shape[0] == int(batch["image_grid_thw"].prod(dim=1).sum())


def test_loss_falls_and_the_model_card_says_what_was_trained(small_synth, tmp_path):
    cfg = ClassifierTrainConfig(
        data=small_synth,
        out_dir=tmp_path / "cls",
        steps=30,
        batch_size=2,
        lr=2e-3,
        warmup_steps=3,
        log_every=5,
        eval_examples=4,
        max_new_tokens=48,
    )
    result = train_classifier(cfg, show_progress=False)
    losses = [json.loads(line)["loss"] for line in (tmp_path / "cls" / "log.jsonl").read_text().splitlines()]
    assert np.mean(losses[-2:]) < 0.6 * np.mean(losses[:2]), losses
    card = json.loads((result.model_dir / "seamline_model.json").read_text())
    assert (
        card["mode"] == "full"
        and card["prompt_style"] == "v2-structured"
        and card["metrics"]["examples"] == 4
    )
    assert "Defect-type accuracy" in (result.model_dir / "README.md").read_text()

    from transformers import AutoProcessor, Qwen2_5_VLForConditionalGeneration

    assert Qwen2_5_VLForConditionalGeneration.from_pretrained(result.model_dir) is not None
    assert AutoProcessor.from_pretrained(result.model_dir).tokenizer is not None


def test_cli_rejects_bad_settings(small_synth, tmp_path):
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "seamline",
            "train",
            "classifier",
            str(small_synth),
            "-o",
            str(tmp_path),
            "--mode",
            "half",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 2 and "mode" in run.stderr
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "seamline",
            "train",
            "classifier",
            str(tmp_path / "x.txt"),
            "-o",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 2 and "expected a `seamline synth` folder or a .jsonl export" in run.stderr
