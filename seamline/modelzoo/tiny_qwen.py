"""A tiny, randomly initialised Qwen2.5-VL saved as an ordinary Hugging Face directory.

It exercises exactly the loading path of a real checkpoint
(``Qwen2_5_VLForConditionalGeneration.from_pretrained``, ``AutoProcessor.from_pretrained``,
``vllm serve DIR``) in seconds and megabytes, with no download: the classifier service, its tests and the demo
point at this directory where production points at ``Qwen/Qwen2.5-VL-7B-Instruct``. Its answers are noise;
structured outputs still make them valid JSON.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from seamline.modelzoo.qwen_tokenizer import (
    QWEN2_VL_CHAT_TEMPLATE,
    added_token_ids,
    build_tiny_qwen_tokenizer,
)
from seamline.optional import require
from seamline.torch_compat import ensure_cpu_torch_compat

if TYPE_CHECKING:
    from transformers import Qwen2_5_VLConfig

logger = logging.getLogger(__name__)

# Bump when the builder's output changes: the model cache is keyed by it.
BUILDER_VERSION = "1"

# Image tokens: a 28x28 pixel cell (14-pixel patches merged 2x2) becomes one token, so bounding the pixels
# bounds the tokens. 224x224 -> 8x8 cells -> 64 tokens, the most an image (or a video frame pair) may take.
PATCH_SIZE = 14
MERGE_SIZE = 2
TEMPORAL_PATCH_SIZE = 2
MAX_IMAGE_TOKENS = 64
MIN_IMAGE_TOKENS = 4
_CELL = PATCH_SIZE * MERGE_SIZE
MAX_PIXELS = MAX_IMAGE_TOKENS * _CELL * _CELL  # 50,176 = 224 * 224
MIN_PIXELS = MIN_IMAGE_TOKENS * _CELL * _CELL  # 3,136 = 56 * 56 (Qwen's own minimum)
MAX_POSITION_EMBEDDINGS = 4096

# Text: head_dim 64 (a size vLLM's CPU attention supports); mrope sections sum to head_dim / 2.
_TEXT = {
    "hidden_size": 128,
    "intermediate_size": 256,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "num_key_value_heads": 1,
    "hidden_act": "silu",
    "rms_norm_eps": 1e-6,
    "max_position_embeddings": MAX_POSITION_EMBEDDINGS,
    "use_sliding_window": False,
    "max_window_layers": 2,
    "rope_parameters": {"rope_type": "default", "rope_theta": 1_000_000.0, "mrope_section": [8, 12, 12]},
}
_VISION = {
    "depth": 2,
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_heads": 2,
    "hidden_act": "silu",
    "in_channels": 3,
    "patch_size": PATCH_SIZE,
    "spatial_merge_size": MERGE_SIZE,
    "temporal_patch_size": TEMPORAL_PATCH_SIZE,
    "tokens_per_second": 2,
    "window_size": 112,
    "fullatt_block_indexes": [1],
}


# "small": the demo classifier's base — a vision tower wide and deep enough to learn defect textures from
# scratch (the tiny one only separates colours); still a few million parameters and CPU-trainable.
_SMALL_VISION = {
    "depth": 4,
    "hidden_size": 128,
    "intermediate_size": 512,
    "num_heads": 2,
    "fullatt_block_indexes": [1, 3],
}
QwenSize = Literal["tiny", "small"]


def tiny_qwen2_5_vl_config(
    token_ids: dict[str, int], vocab_size: int, size: QwenSize = "tiny"
) -> Qwen2_5_VLConfig:
    """The tiny (or small) model's config with the tokenizer's special-token ids wired in.

    Args:
        token_ids: Ids of Qwen's added tokens (``qwen_tokenizer.added_token_ids``).
        vocab_size: Embedding rows; at least the tokenizer's length (padded to a multiple of 64, like Qwen's).
        size: ``tiny`` (tests) or ``small`` (a larger vision tower, the demo classifier's base).
    """
    transformers = require("transformers", "Building the tiny Qwen2.5-VL", extra="train")
    eos, pad = token_ids["<|im_end|>"], token_ids["<|endoftext|>"]
    text = dict(_TEXT, vocab_size=vocab_size, bos_token_id=pad, eos_token_id=eos, pad_token_id=pad)
    vision = dict(_VISION, **(_SMALL_VISION if size == "small" else {}), out_hidden_size=_TEXT["hidden_size"])
    return transformers.Qwen2_5_VLConfig(
        text_config=text,
        vision_config=vision,
        image_token_id=token_ids["<|image_pad|>"],
        video_token_id=token_ids["<|video_pad|>"],
        vision_start_token_id=token_ids["<|vision_start|>"],
        vision_end_token_id=token_ids["<|vision_end|>"],
        # Older readers (vLLM's processors among them) look for these at the top level as well.
        vision_token_id=token_ids["<|vision_pad|>"],
        bos_token_id=pad,
        eos_token_id=eos,
        pad_token_id=pad,
        tie_word_embeddings=False,
    )


def _build_processor(tokenizer: Any) -> Any:
    transformers = require("transformers", "Building the tiny Qwen2.5-VL processor", extra="train")
    from transformers.models.qwen2_vl.image_processing_qwen2_vl import Qwen2VLImageProcessor
    from transformers.models.qwen2_vl.video_processing_qwen2_vl import Qwen2VLVideoProcessor

    pixel_bounds = {"shortest_edge": MIN_PIXELS, "longest_edge": MAX_PIXELS}
    common = {"patch_size": PATCH_SIZE, "temporal_patch_size": TEMPORAL_PATCH_SIZE, "merge_size": MERGE_SIZE}
    image_processor = Qwen2VLImageProcessor(
        size=pixel_bounds, min_pixels=MIN_PIXELS, max_pixels=MAX_PIXELS, **common
    )
    video_processor = Qwen2VLVideoProcessor(
        size=pixel_bounds,
        min_pixels=MIN_PIXELS,
        max_pixels=MAX_PIXELS,
        cap_pixels_per_frame=True,
        max_video_tokens=MAX_POSITION_EMBEDDINGS // 2,
        **common,
    )
    return transformers.Qwen2_5_VLProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        video_processor=video_processor,
        chat_template=QWEN2_VL_CHAT_TEMPLATE,
    )


def build_tiny_qwen2_5_vl(out_dir: Path, *, seed: int = 0, size: QwenSize = "tiny") -> Path:
    """Build a tiny random Qwen2.5-VL in ``out_dir``: tokenizer, processor, configs and bf16 weights.

    Args:
        out_dir: Target directory; created if missing. Files already there are overwritten.
        seed: Seed for the random weights (the tokenizer is deterministic regardless).
        size: ``tiny`` (tests, ~0.8 M parameters) or ``small`` (the demo classifier's base: a deeper, wider
            vision tower).

    Returns:
        ``out_dir``, loadable with ``from_pretrained`` and by ``vllm serve``.
    """
    ensure_cpu_torch_compat()  # transformers imports torchaudio; the Qwen2-VL processors import torchvision
    torch = require("torch", "Building the tiny Qwen2.5-VL", extra="train")
    transformers = require("transformers", "Building the tiny Qwen2.5-VL", extra="train")
    started = time.perf_counter()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)

    tokenizer = build_tiny_qwen_tokenizer(model_max_length=MAX_POSITION_EMBEDDINGS)
    token_ids = added_token_ids(tokenizer)
    vocab_size = -(-len(tokenizer) // 64) * 64
    config = tiny_qwen2_5_vl_config(token_ids, vocab_size, size)

    torch.manual_seed(seed)
    model = transformers.Qwen2_5_VLForConditionalGeneration(config).to(torch.bfloat16).eval()
    model.generation_config = transformers.GenerationConfig(
        bos_token_id=token_ids["<|endoftext|>"],
        eos_token_id=[token_ids["<|im_end|>"], token_ids["<|endoftext|>"]],
        pad_token_id=token_ids["<|endoftext|>"],
        do_sample=False,
    )
    model.save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)
    _build_processor(tokenizer).save_pretrained(out_dir)
    _write_provenance(out_dir, seed=seed, params=sum(p.numel() for p in model.parameters()))
    logger.info("built tiny Qwen2.5-VL in %s (%.1f s)", out_dir, time.perf_counter() - started)
    return out_dir


def _write_provenance(out_dir: Path, *, seed: int, params: int) -> None:
    # Says plainly what this checkpoint is, for anyone who finds the directory later.
    note = {
        "model": "tiny Qwen2.5-VL (random weights, for tests and demos only)",
        "builder": "seamline.modelzoo.tiny_qwen.build_tiny_qwen2_5_vl",
        "seed": seed,
        "parameters": params,
    }
    (out_dir / "seamline_model.json").write_text(json.dumps(note, indent=2) + "\n", encoding="utf-8")
