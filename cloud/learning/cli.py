"""``seamline train ...``: fine-tune the edge detector and the cloud classifier."""

from __future__ import annotations

import logging
import shlex
import sys
from pathlib import Path

import typer
from pydantic import ValidationError

from seamline.errors import InputError

logger = logging.getLogger(__name__)

app = typer.Typer(help="Train the detector and the classifier.", no_args_is_help=True)


def _command() -> str:
    return (
        "seamline " + " ".join(shlex.quote(a) for a in sys.argv[1:])
        if sys.argv[0].endswith("seamline")
        else shlex.join(sys.argv)
    )


def _settings_error(exc: ValidationError) -> InputError:
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or "settings"
    return InputError(f"{where}: {first['msg']}")


@app.command("detector")
def detector(
    data: Path = typer.Argument(
        ..., help="COCO file, or a folder with annotations.json (e.g. from `seamline synth`)."
    ),
    out: Path = typer.Option(
        ..., "--out", "-o", help="Output folder: model/, checkpoints/, log.jsonl, metrics.json."
    ),
    val_data: Path | None = typer.Option(
        None, "--val", help="A separate held-out COCO set (default: hold out --val-fraction)."
    ),
    val_fraction: float = typer.Option(
        0.2, "--val-fraction", help="Share of garments held out without --val."
    ),
    init: str = typer.Option(
        "tiny", "--init", help="tiny, r18 or l from config, or a checkpoint folder / hub id."
    ),
    input_size: int | None = typer.Option(
        None, "--input-size", help="Square input side (default the model's)."
    ),
    class_agnostic: bool = typer.Option(
        False, "--class-agnostic", help="One 'defect' class (candidate regions)."
    ),
    tiles: str = typer.Option(
        "1x1",
        "--tiles",
        help="COLSxROWS sliced inference the model is trained for, e.g. 2x2 (small defects).",
    ),
    steps: int = typer.Option(2000, "--steps", help="Optimizer steps."),
    batch_size: int = typer.Option(8, "--batch-size", help="Images per step."),
    lr: float = typer.Option(2e-4, "--lr", help="Peak learning rate."),
    backbone_lr_scale: float = typer.Option(
        1.0, "--backbone-lr-scale", help="Backbone LR as a share of --lr (0.1 for a pretrained model)."
    ),
    focal_gamma: float = typer.Option(2.0, "--focal-gamma", help="Focal loss gamma."),
    repeat_threshold: float = typer.Option(
        0.1, "--repeat-threshold", help="Oversample labels rarer than this (0: off)."
    ),
    eval_every: int = typer.Option(
        500, "--eval-every", help="Steps between held-out evaluations (0: end only)."
    ),
    checkpoint_every: int = typer.Option(250, "--checkpoint-every", help="Steps between checkpoints."),
    workers: int = typer.Option(0, "--workers", help="Data loading processes."),
    mixed_precision: str = typer.Option("no", "--mixed-precision", help="no, fp16 or bf16."),
    no_augment: bool = typer.Option(False, "--no-augment", help="Train without augmentation."),
    cpu: bool = typer.Option(False, "--cpu", help="Train on the CPU even if a GPU is present."),
    seed: int = typer.Option(0, "--seed", help="Seed of weights, sampling and augmentation."),
    version: str = typer.Option("1", "--version", help="Model version for the card and verdicts."),
    resume: bool = typer.Option(False, "--resume", help="Continue from the latest checkpoint in --out."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar."),
) -> None:
    """Fine-tune an RT-DETR on COCO data, evaluate it on held-out images and write a model card."""
    from cloud.learning.augment import AugmentConfig
    from cloud.learning.detector_training import DetectorTrainConfig, train_detector

    try:
        grid = tuple(int(v) for v in tiles.lower().split("x"))
    except ValueError:
        raise InputError(f"--tiles {tiles!r}: expected COLSxROWS, e.g. 2x2") from None
    try:
        cfg = DetectorTrainConfig(
            data=data,
            val_data=val_data,
            val_fraction=val_fraction,
            out_dir=out,
            init=init,
            input_size=input_size,
            class_agnostic=class_agnostic,
            tiles=grid,
            steps=steps,
            batch_size=batch_size,
            lr=lr,
            backbone_lr_scale=backbone_lr_scale,
            focal_gamma=focal_gamma,
            repeat_threshold=repeat_threshold,
            eval_every=eval_every,
            checkpoint_every=checkpoint_every,
            num_workers=workers,
            mixed_precision=mixed_precision,
            cpu=cpu,
            seed=seed,
            version=version,
            augment=AugmentConfig(enabled=not no_augment),
        )
    except ValidationError as exc:
        raise _settings_error(exc) from None
    result = train_detector(cfg, resume_run=resume, command=_command(), show_progress=progress)
    typer.echo(result.metrics.table())
    typer.echo(f"model: {result.model_dir} ({result.steps} steps, {result.seconds / 60:.1f} min)")


@app.command("classifier")
def classifier(
    data: Path = typer.Argument(
        ...,
        help="A `seamline synth` folder (crops of its defects and distractors) or a verified-store .jsonl.",
    ),
    out: Path = typer.Option(
        ..., "--out", "-o", help="Output folder: model/, checkpoints/, log.jsonl, metrics.json."
    ),
    val_data: Path | None = typer.Option(
        None, "--val", help="Separate held-out data (default: hold out --val-fraction)."
    ),
    val_fraction: float = typer.Option(0.2, "--val-fraction", help="Share held out without --val."),
    base: str = typer.Option(
        "tiny", "--base", help="tiny or small (from config) or a Qwen2.5-VL folder / hub id."
    ),
    mode: str = typer.Option("auto", "--mode", help="full, lora or auto (LoRA above 200 M parameters)."),
    prompt_style: str = typer.Option(
        "v2-structured",
        "--prompt-style",
        help="The prompt the service will use: v1-compact, v2-structured or v3-fewshot.",
    ),
    language: str = typer.Option("en", "--language", help="Prompt language: en, ko, zh or ja."),
    steps: int = typer.Option(1500, "--steps", help="Optimizer steps."),
    batch_size: int = typer.Option(8, "--batch-size", help="Crops per step."),
    lr: float = typer.Option(1e-3, "--lr", help="Peak learning rate (about 1e-4 for LoRA)."),
    aux_vision_loss: float = typer.Option(
        1.0, "--aux-vision-loss", help="Full training: weight of the vision tower's type loss (0: off)."
    ),
    eval_examples: int = typer.Option(400, "--eval-examples", help="Most held-out crops evaluated."),
    max_examples: int | None = typer.Option(None, "--max-examples", help="Cap on training crops read."),
    mixed_precision: str = typer.Option("no", "--mixed-precision", help="no, fp16 or bf16."),
    cpu: bool = typer.Option(False, "--cpu", help="Train on the CPU even if a GPU is present."),
    seed: int = typer.Option(0, "--seed", help="Seed."),
    version: str = typer.Option("1", "--version", help="Model version for the card."),
    resume: bool = typer.Option(False, "--resume", help="Continue from the latest checkpoint in --out."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar."),
) -> None:
    """Teach a Qwen2.5-VL checkpoint the verdict JSON (full training for the tiny model, LoRA for 3B/7B).

    Then evaluate it on held-out crops.
    """
    from cloud.classifiers.prompts import PromptConfig
    from cloud.learning.classifier_training import ClassifierTrainConfig, train_classifier

    try:
        cfg = ClassifierTrainConfig(
            data=data,
            val_data=val_data,
            val_fraction=val_fraction,
            out_dir=out,
            base=base,
            mode=mode,
            prompt=PromptConfig(style=prompt_style, language=language),
            steps=steps,
            batch_size=batch_size,
            lr=lr,
            aux_vision_loss=aux_vision_loss,
            eval_examples=eval_examples,
            max_examples=max_examples,
            mixed_precision=mixed_precision,
            cpu=cpu,
            seed=seed,
            version=version,
        )
    except ValidationError as exc:
        raise _settings_error(exc) from None
    result = train_classifier(cfg, resume_run=resume, command=_command(), show_progress=progress)
    typer.echo(result.metrics.table())
    typer.echo(f"model: {result.model_dir} ({result.steps} steps, {result.seconds / 60:.1f} min)")
