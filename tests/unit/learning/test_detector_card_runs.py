"""A detector's model card lists every training run of its lineage: each run starts from the previous one's
weights, and the card keeps the history it started from."""

import json

from cloud.learning.model_card import detector_card, previous_runs, run_summary


def _card(version: str, init: str, steps: int, map50: float, *, backbone: str | None = None) -> dict:
    metrics = {"map50": map50, "map50_95": map50 / 2, "precision": 0.5, "recall": 0.6, "threshold": 0.25,
               "images": 400, "instances": 372,
               "per_class": {"defect": {"ap50": map50, "ap50_95": map50 / 2, "precision": 0.5, "recall": 0.6,
                                        "instances": 372}}}  # fmt: skip
    training = {"init": init, "init_backbone": backbone, "batch_size": 8, "lr": 4e-4, "warmup_steps": 50,
                "focal_alpha": 0.75, "focal_gamma": 2.0, "repeat_threshold": 0.1,
                "augment": {"enabled": True}, "val_data": "val"}  # fmt: skip
    return {"model": "RT-DETR", "version": version, "labels": ["defect"], "input_size": 320,
            "parameters": 5e6,
            "data": {"source": "train", "train_images": 4000, "held_out_images": 400, "train_instances": {}},
            "training": training, "metrics": metrics, "steps": steps, "seconds": 600.0, "device": "CPU",
            "command": f"seamline train detector train --version {version}"}  # fmt: skip


def test_a_model_built_from_config_has_no_history(tmp_path):
    assert previous_runs("tiny") == [] and previous_runs(str(tmp_path)) == []


def test_the_runs_of_the_checkpoint_come_first_and_the_card_shows_them_all(tmp_path):
    first = _card("1", "tiny", 1200, 0.3, backbone="efficientnet-lite0")
    first["runs"] = [run_summary(first)]
    (tmp_path / "seamline_model.json").write_text(json.dumps(first))
    second = _card("2", str(tmp_path), 800, 0.45)
    second["runs"] = previous_runs(str(tmp_path)) + [run_summary(second)]
    assert [(r["version"], r["steps"], r["map50"]) for r in second["runs"]] == [
        ("1", 1200, 0.3),
        ("2", 800, 0.45),
    ]
    text = detector_card(second)
    assert "## Training runs" in text
    assert "| 1 | 1 | efficientnet-lite0 | 1200 |" in text and f"| 2 | 2 | {tmp_path} | 800 |" in text
    # Both commands reproduce the model, in order.
    assert text.index("--version 1") < text.index("--version 2")


def test_a_card_written_before_runs_were_recorded_counts_as_one_run(tmp_path):
    (tmp_path / "seamline_model.json").write_text(json.dumps(_card("2", "tiny", 3000, 0.169)))
    [run] = previous_runs(str(tmp_path))
    assert run["version"] == "2" and run["steps"] == 3000 and run["map50"] == 0.169
    # A single run needs no table.
    single = _card("1", "tiny", 10, 0.1)
    single["runs"] = [run_summary(single)]
    assert "## Training runs" not in detector_card(single)
