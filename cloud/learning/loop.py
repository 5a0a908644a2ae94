"""What both trainers' loops share: the learning-rate schedule, one optimizer step, the run log, progress,
checkpoints and resume (Accelerate states plus the step number)."""

from __future__ import annotations

import json
import math
import platform
import shutil
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from cloud.learning.coco_data import DatasetError
from seamline.config.base import StrictModel
from seamline.config.paths import ConfigPath

STATE_FILE = "seamline_state.json"


class TrainRunConfig(StrictModel):
    """Settings every training run has (each trainer adds its own and may change the defaults)."""

    val_fraction: float = Field(
        default=0.2,
        gt=0,
        lt=1,
        title="Held-out share",
        description="Share held out when no separate held-out data is given (the seed: 20 %).",
    )
    out_dir: ConfigPath = Field(
        title="Output folder", description="Model, checkpoints, log and metrics go here."
    )
    steps: int = Field(default=2000, ge=1, title="Steps", description="Optimizer steps.")
    batch_size: int = Field(default=8, ge=1, title="Batch size", description="Examples per step.")
    lr: float = Field(default=2e-4, gt=0, title="Learning rate", description="AdamW peak learning rate.")
    weight_decay: float = Field(default=1e-4, ge=0, title="Weight decay", description="AdamW weight decay.")
    warmup_steps: int = Field(
        default=50, ge=0, title="Warm-up steps", description="Linear warm-up, then cosine decay to 10 %."
    )
    grad_clip: float = Field(default=0.1, gt=0, title="Gradient clip", description="Max gradient norm.")
    checkpoint_every: int = Field(
        default=250,
        ge=1,
        title="Checkpoint every",
        description="Steps between saved training states (and the last step).",
    )
    keep_checkpoints: int = Field(
        default=2, ge=1, title="Checkpoints kept", description="Older states are deleted."
    )
    log_every: int = Field(default=10, ge=1, title="Log every", description="Steps between log lines.")
    mixed_precision: Literal["no", "fp16", "bf16"] = Field(
        default="no",
        title="Mixed precision",
        description="Accelerate's mixed precision (bf16 on a recent GPU).",
    )
    cpu: bool = Field(
        default=False, title="Force CPU", description="Train on the CPU even if a GPU is present."
    )
    seed: int = Field(
        default=0, ge=0, title="Seed", description="Seed of weights, sampling and augmentation."
    )
    version: str = Field(
        default="1", title="Version", description="Model version recorded in the card (and on verdicts)."
    )
    golden: ConfigPath | None = Field(
        default=None,
        title="Golden set",
        description="A golden set folder (`seamline golden freeze`): refuse data holding any of its "
        "garments. "
        "Data that is itself a golden set is always refused.",
    )


@dataclass
class TrainResult:
    """Where a run put its model, the held-out metrics, steps done and wall time."""

    model_dir: Path
    metrics: Any
    steps: int
    seconds: float


def warmup_cosine(total_steps: int, warmup_steps: int) -> Callable[[int], float]:
    """LR factor: linear warm-up, then cosine decay to 10 % at ``total_steps``."""

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    return factor


def optimizer_step(
    accelerator: Any,
    loss: Any,
    params: Iterable[Any],
    optimizer: Any,
    scheduler: Any,
    *,
    clip: float,
    step: int,
) -> float:
    """Backward, clip, step, schedule; returns the loss. A non-finite loss stops the run with advice."""
    import torch

    if not torch.isfinite(loss):
        raise FloatingPointError(f"loss is {loss.item()} at step {step}: lower the learning rate")
    accelerator.backward(loss)
    accelerator.clip_grad_norm_(params, clip)
    optimizer.step()
    scheduler.step()
    optimizer.zero_grad(set_to_none=True)
    return float(loss.item())


class RunLog:
    """``OUT/log.jsonl``: one JSON object per logged step or evaluation."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def write(self, record: dict[str, Any]) -> None:
        with self.path.open("a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")


def progress_bar(label: str, *, show: bool) -> Any:
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    return Progress(
        TextColumn(label),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        disable=not show,
    )


def save_state(accelerator: Any, out: Path, step: int, keep: int) -> None:
    """Save the training state as ``OUT/checkpoints/step-N`` and delete all but the newest ``keep``."""
    target = out / "checkpoints" / f"step-{step:07d}"
    accelerator.save_state(str(target))
    (target / STATE_FILE).write_text(json.dumps({"step": step}) + "\n", encoding="utf-8")
    states = sorted((out / "checkpoints").glob("step-*"))
    for old in states[:-keep]:
        shutil.rmtree(old, ignore_errors=True)


def resume(accelerator: Any, out: Path) -> tuple[int, Path]:
    """Load the newest state under ``OUT/checkpoints``; returns (its step, its folder)."""
    states = sorted((out / "checkpoints").glob("step-*"), key=lambda p: int(p.name.split("-")[1]))
    if not states:
        raise DatasetError(f"--resume: no checkpoint under {out / 'checkpoints'}")
    accelerator.load_state(str(states[-1]))
    return json.loads((states[-1] / STATE_FILE).read_text())["step"], states[-1]


def device_name(accelerator: Any) -> str:
    import torch

    if accelerator.device.type == "cuda":
        return torch.cuda.get_device_name(accelerator.device)
    return f"CPU: {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"
