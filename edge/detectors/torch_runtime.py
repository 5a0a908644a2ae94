"""PyTorch detector: the reference runtime, straight from a Hugging Face RT-DETR checkpoint.

Pre- and post-processing are the same numpy code as every other runtime; only ``forward`` is PyTorch.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import Field

from edge.detectors.base import DetectorRuntime, RawOutputs
from edge.detectors.config import BaseDetectorConfig
from edge.detectors.meta import DetectorLoadError, DetectorMeta, read_hf_checkpoint_meta
from seamline.config.paths import ConfigPathOrName
from seamline.optional import require
from seamline.torch_compat import ensure_cpu_torch_compat

logger = logging.getLogger(__name__)

KEY = "torch"


class TorchDetectorConfig(BaseDetectorConfig):
    """Run a Hugging Face RT-DETR / RT-DETRv2 checkpoint with PyTorch."""

    type: Literal["torch"] = Field(default="torch", title="Runtime", description="torch")
    checkpoint: ConfigPathOrName = Field(
        title="Checkpoint",
        description="A local checkpoint directory, or a hub id (on machines that reach the hub).",
    )
    device: str = Field(default="cpu", title="Device", description="cpu, cuda or cuda:N.")
    dtype: Literal["float32", "float16", "bfloat16"] = Field(
        default="float32", title="Dtype", description="Weights and activations dtype."
    )


class TorchDetector(DetectorRuntime):
    key = KEY

    def __init__(self, config: TorchDetectorConfig) -> None:
        torch = require("torch", "The torch detector runtime", extra="train")
        transformers = require("transformers", "The torch detector runtime", extra="train")
        ensure_cpu_torch_compat()
        local = Path(config.checkpoint)
        if local.exists():
            meta = read_hf_checkpoint_meta(local)
        else:
            from transformers import AutoConfig, AutoImageProcessor

            hf_config = AutoConfig.from_pretrained(config.checkpoint)
            processor = AutoImageProcessor.from_pretrained(config.checkpoint)
            size = processor.size["height"]
            meta = DetectorMeta(
                version=f"{config.checkpoint}@hub",
                input_size=int(size),
                labels=tuple(hf_config.id2label[i] for i in range(len(hf_config.id2label))),
                image_mean=tuple(processor.image_mean) if processor.do_normalize else None,
                image_std=tuple(processor.image_std) if processor.do_normalize else None,
            )
        super().__init__(
            meta,
            score_threshold=config.score_threshold,
            top_k=config.top_k,
            class_agnostic=config.class_agnostic,
            tiles=config.tiles,
        )
        self._torch = torch
        self.device = torch.device(config.device)
        self.dtype = getattr(torch, config.dtype)
        try:
            self.model = transformers.AutoModelForObjectDetection.from_pretrained(
                config.checkpoint, dtype=self.dtype
            )
        except OSError as exc:
            raise DetectorLoadError(f"cannot load checkpoint {config.checkpoint!r}: {exc}") from exc
        self.model.to(self.device).eval()

    def forward(self, batch: np.ndarray) -> RawOutputs:
        torch = self._torch
        with torch.inference_mode():
            pixels = torch.from_numpy(batch).to(self.device, self.dtype)
            out = self.model(pixel_values=pixels)
            return RawOutputs(
                logits=out.logits.float().cpu().numpy(), boxes=out.pred_boxes.float().cpu().numpy()
            )
