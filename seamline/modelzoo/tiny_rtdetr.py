"""RT-DETR detectors built from config (random weights, no download) in three sizes.

``tiny`` (~3.5 M parameters) is the test and demo detector; ``r18`` (~20 M) and ``l`` (HGNetV2-L backbone,
~32.8 M, the seed's RT-DETR-L) give realistic export and latency figures before any training. Each is saved as
an ordinary Hugging Face directory (``RTDetrForObjectDetection.from_pretrained``) with the PIL image
processor's config, so training, ONNX export and the edge runtime load it like a fine-tuned checkpoint.

A freshly initialised RT-DETR is a poor test subject: batch norms start with weights ~N(0, 0.01), and after
export the comparison of runtimes can degenerate into comparing ties. The builder therefore uses ordinary
batch norms (``freeze_backbone_batch_norms=False``) reset to unit weight, re-estimates their statistics from a
few train-mode passes over synthetic garment-like images, and perturbs the zero-initialised box heads, so
scores and boxes depend on the input and the top scores differ.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from seamline.optional import require
from seamline.torch_compat import ensure_cpu_torch_compat

if TYPE_CHECKING:
    from transformers import RTDetrConfig

logger = logging.getLogger(__name__)

# Bump when the builder's output changes: the model cache is keyed by it.
BUILDER_VERSION = "1"
DetectorSize = Literal["tiny", "r18", "l"]
DEFAULT_LABELS = ("defect",)  # the seed's class-agnostic "defect region" detector
# Square input side the saved image processor resizes to.
INPUT_SIZE: dict[str, int] = {"tiny": 320, "r18": 640, "l": 640}
# Focal-loss prior for the class biases: RT-DETR's own start (with 80 COCO classes the default gives ~0.012;
# with one class it would give 0.5 and every query would score ~0.9).
PRIOR_PROB = 0.01
_CALIBRATION_BATCHES = 4
_CALIBRATION_BATCH_SIZE = 2
_HEAD_NOISE_STD = 0.02


def rtdetr_config(size: DetectorSize, labels: list[str] | tuple[str, ...] = DEFAULT_LABELS) -> RTDetrConfig:
    """The RT-DETR config for ``size`` with ``labels`` as its classes (ids in list order)."""
    transformers = require("transformers", "Building an RT-DETR detector", extra="train")
    labels = list(labels)
    if not labels or len(set(labels)) != len(labels):
        raise ValueError(f"detector labels must be non-empty and unique, got {labels!r}")
    out_features = ["stage2", "stage3", "stage4"]
    if size == "tiny":
        backbone = transformers.RTDetrResNetConfig(
            embedding_size=32,
            hidden_sizes=[32, 64, 128, 256],
            depths=[1, 1, 1, 1],
            layer_type="basic",
            out_features=out_features,
        )
        head: dict[str, Any] = {
            "encoder_in_channels": [64, 128, 256],
            "encoder_hidden_dim": 128,
            "encoder_ffn_dim": 512,
            "encoder_attention_heads": 4,
            "hidden_expansion": 0.5,
            "d_model": 128,
            "decoder_in_channels": [128, 128, 128],
            "decoder_ffn_dim": 512,
            "decoder_attention_heads": 4,
            "decoder_layers": 3,
        }
    elif size == "r18":  # PekingU/rtdetr_r18vd's shape
        backbone = transformers.RTDetrResNetConfig(
            embedding_size=64,
            hidden_sizes=[64, 128, 256, 512],
            depths=[2, 2, 2, 2],
            layer_type="basic",
            out_features=out_features,
        )
        head = {"encoder_in_channels": [128, 256, 512], "hidden_expansion": 0.5, "decoder_layers": 3}
    elif size == "l":  # RT-DETR-L: HGNetV2's defaults are the L backbone
        backbone = transformers.HGNetV2Config(out_features=out_features)
        head = {"encoder_in_channels": [512, 1024, 2048], "decoder_layers": 6}
    else:
        raise ValueError(f"unknown detector size {size!r}; choose tiny, r18 or l")
    return transformers.RTDetrConfig(
        backbone_config=backbone,
        num_labels=len(labels),
        id2label=dict(enumerate(labels)),
        label2id={label: i for i, label in enumerate(labels)},
        freeze_backbone_batch_norms=False,
        initializer_bias_prior_prob=PRIOR_PROB,
        **head,
    )


def synthetic_garment_images(count: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """``count`` float32 images (N, 3, size, size) in [0, 1]: a shaded fabric colour with a few darker or
    lighter patches, lines and specks, enough spatial structure for batch-norm statistics."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    images = np.empty((count, 3, size, size), dtype=np.float32)
    for i in range(count):
        base = rng.uniform(0.15, 0.85, size=(3, 1, 1)).astype(np.float32)
        shade = 0.08 * np.sin(2 * np.pi * (xx * rng.uniform(1, 4) + yy * rng.uniform(1, 4)))
        image = base + shade[None] + rng.normal(0, 0.02, size=(3, size, size)).astype(np.float32)
        for _ in range(int(rng.integers(1, 6))):
            h, w = (int(v) for v in rng.integers(size // 40 + 1, size // 5, size=2))
            y, x = int(rng.integers(0, size - h)), int(rng.integers(0, size - w))
            image[:, y : y + h, x : x + w] = rng.uniform(0, 1, size=(3, 1, 1))
        images[i] = np.clip(image, 0.0, 1.0)
    return images


def _condition_random_init(model: Any, input_size: int, seed: int) -> None:
    """Unit batch-norm weights with statistics from synthetic images, non-zero box heads (see module doc)."""
    torch = require("torch", "Building an RT-DETR detector", extra="train")
    norms = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    with torch.no_grad():
        for norm in norms:
            norm.weight.fill_(1.0)
            norm.bias.zero_()
            norm.reset_running_stats()
            norm.momentum = None  # cumulative average over the calibration passes
        model.train()
        rng = np.random.default_rng(seed)
        for _ in range(_CALIBRATION_BATCHES):
            batch = synthetic_garment_images(_CALIBRATION_BATCH_SIZE, input_size, rng)
            model(pixel_values=torch.from_numpy(batch))
        model.eval()
        for norm in norms:
            norm.momentum = 0.1  # PyTorch's default, for whoever fine-tunes this checkpoint
        generator = torch.Generator().manual_seed(seed + 1)
        for layer in model.model.decoder.bbox_embed:
            last = layer.layers[-1]
            last.weight.copy_(torch.randn(last.weight.shape, generator=generator) * _HEAD_NOISE_STD)
            last.bias.copy_(torch.randn(last.bias.shape, generator=generator) * _HEAD_NOISE_STD)


def build_tiny_rtdetr(
    out_dir: Path,
    *,
    labels: list[str] | None = None,
    size: DetectorSize = "tiny",
    seed: int = 0,
) -> Path:
    """Build an RT-DETR of ``size`` with random, conditioned weights and save it with its image processor.

    Args:
        out_dir: Target directory; created if missing. Files already there are overwritten.
        labels: Class names in id order; defaults to the single class ``"defect"``. Pass the taxonomy's
            ``type_ids`` for a per-type detector.
        size: ``"tiny"`` (~3.5 M params, 320 px input), ``"r18"`` (~20 M, 640 px) or ``"l"`` (~32.8 M,
            640 px).
        seed: Seed for the weights and the calibration images.

    Returns:
        ``out_dir``, loadable with ``RTDetrForObjectDetection.from_pretrained`` and the PIL image processor.
    """
    ensure_cpu_torch_compat()  # transformers' model modules import torchaudio
    torch = require("torch", "Building an RT-DETR detector", extra="train")
    transformers = require("transformers", "Building an RT-DETR detector", extra="train")
    from transformers.models.rt_detr.image_processing_pil_rt_detr import RTDetrImageProcessorPil

    started = time.perf_counter()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    config = rtdetr_config(size, labels or DEFAULT_LABELS)
    input_size = INPUT_SIZE[size]

    torch.manual_seed(seed)
    model = transformers.RTDetrForObjectDetection(config)
    _condition_random_init(model, input_size, seed)
    model.save_pretrained(out_dir, safe_serialization=True)
    # The PIL processor: the torchvision one needs a torchvision build that matches torch.
    RTDetrImageProcessorPil(size={"height": input_size, "width": input_size}).save_pretrained(out_dir)
    params = sum(p.numel() for p in model.parameters())
    note = {
        "model": f"RT-DETR {size} (random conditioned weights, for tests, export and demos only)",
        "builder": "seamline.modelzoo.tiny_rtdetr.build_tiny_rtdetr",
        "size": size,
        "labels": list(config.id2label.values()),
        "input_size": input_size,
        "seed": seed,
        "parameters": params,
    }
    (out_dir / "seamline_model.json").write_text(json.dumps(note, indent=2) + "\n", encoding="utf-8")
    logger.info(
        "built RT-DETR %s (%.1f M params) in %s (%.1f s)",
        size,
        params / 1e6,
        out_dir,
        time.perf_counter() - started,
    )
    return out_dir
