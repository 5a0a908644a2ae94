"""A small Qwen2-style tokenizer trained locally, for the tiny Qwen2.5-VL test model.

Everything a real Qwen2.5-VL tokenizer has that loading code relies on is kept: byte-level BPE, Qwen2's
pre-tokenizer split pattern and NFC normalisation, Qwen's added tokens in Qwen's order right after the BPE
vocabulary (``<|endoftext|>`` first, ``<|im_end|>`` as eos), and Qwen2-VL's chat template. Only the vocabulary
is small (~1,000 tokens), learnt from text Seamline's classifier actually sees: the taxonomy in four
languages, prompt sentences and verdict JSON.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from typing import TYPE_CHECKING, Any

from seamline.config.taxonomy import LANGUAGES, Taxonomy, default_taxonomy
from seamline.optional import require

if TYPE_CHECKING:
    from transformers import Qwen2Tokenizer

# Qwen2's pre-tokenizer split (transformers' ``tokenization_qwen2.PRETOKENIZE_REGEX``).
QWEN2_PRETOKENIZE_REGEX = (
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"""
    r"""| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""
)

# Qwen2.5-VL's added tokens in Qwen's order, with its ``special`` flags (ids 151643.. in the real model).
QWEN_ADDED_TOKENS: tuple[tuple[str, bool], ...] = (
    ("<|endoftext|>", True),
    ("<|im_start|>", True),
    ("<|im_end|>", True),
    ("<|object_ref_start|>", True),
    ("<|object_ref_end|>", True),
    ("<|box_start|>", True),
    ("<|box_end|>", True),
    ("<|quad_start|>", True),
    ("<|quad_end|>", True),
    ("<|vision_start|>", True),
    ("<|vision_end|>", True),
    ("<|vision_pad|>", True),
    ("<|image_pad|>", True),
    ("<|video_pad|>", True),
    ("<tool_call>", False),
    ("</tool_call>", False),
    ("<|fim_prefix|>", False),
    ("<|fim_middle|>", False),
    ("<|fim_suffix|>", False),
    ("<|fim_pad|>", False),
    ("<|repo_name|>", False),
    ("<|file_sep|>", False),
)

# Qwen2-VL-Instruct's chat template, verbatim.
QWEN2_VL_CHAT_TEMPLATE = (
    "{% set image_count = namespace(value=0) %}{% set video_count = namespace(value=0) %}"
    "{% for message in messages %}{% if loop.first and message['role'] != 'system' %}<|im_start|>system\n"
    "You are a helpful assistant.<|im_end|>\n{% endif %}<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}<|im_end|>\n"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "{% set image_count.value = image_count.value + 1 %}"
    "{% if add_vision_id %}Picture {{ image_count.value }}: {% endif %}"
    "<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'video' or 'video' in content %}"
    "{% set video_count.value = video_count.value + 1 %}"
    "{% if add_vision_id %}Video {{ video_count.value }}: {% endif %}"
    "<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>\n"
    "{% endif %}{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

DEFAULT_BPE_VOCAB_SIZE = 1000

_PROMPT_LINES = {
    "en": (
        "You are a garment quality inspector for returned clothing.",
        "Look at the image region and choose exactly one defect type from the list.",
        "Rate the severity as minor, moderate or severe, and decide pass, review or reject.",
        "Give one concrete sentence as the reason. Answer only with JSON in the given shape.",
        "Shadows, wrinkles and folds are normal, not defects.",
    ),
    "ko": (
        "당신은 반품 의류의 품질 검사원입니다.",
        "이미지 영역을 보고 목록에서 결함 유형을 정확히 하나 고르세요.",
        "심각도를 경미, 보통, 심각 중에서 평가하고 통과, 검토, 불합격을 결정하세요.",
        "이유를 구체적인 한 문장으로 쓰고 주어진 JSON 형식으로만 답하세요.",
    ),
    "zh": (
        "你是退货服装的质量检验员。",
        "请查看图像区域，从列表中选择一个缺陷类型。",
        "将严重程度评为轻微、中等或严重，并决定通过、复核或拒收。",
        "用一句具体的话说明理由，只用给定的JSON格式回答。",
    ),
    "ja": (
        "あなたは返品衣料の品質検査員です。",
        "画像の領域を見て、リストから欠陥の種類を一つだけ選んでください。",
        "重大度を軽微・中程度・重大で評価し、合格・確認・不合格を決めてください。",
        "理由を具体的な一文で書き、指定されたJSON形式だけで答えてください。",
    ),
}
_DECISIONS = ("pass", "review", "reject")
_SEVERITIES = ("minor", "moderate", "severe")


def tokenizer_corpus(taxonomy: Taxonomy | None = None) -> list[str]:
    """The text the tiny tokenizer learns from: taxonomy, prompts and verdict JSON, deterministic."""
    taxonomy = taxonomy or default_taxonomy()
    lines: list[str] = ["You are a helpful assistant.", "system", "user", "assistant"]
    for language in LANGUAGES:
        lines.extend(_PROMPT_LINES[language])
    classes = [(t.id, t.names, t.description) for t in taxonomy.types]
    classes.append((taxonomy.normal.id, taxonomy.normal.names, taxonomy.normal.description))
    for type_id, names, description in classes:
        lines.append(f"{type_id}: {description}")
        lines.extend(f"{type_id} = {names.get(language)}" for language in LANGUAGES)
    for defect in taxonomy.types:
        lines.extend(f"{defect.names.en} ({s}): {getattr(defect.severity, s)}" for s in _SEVERITIES)
    label_ids = [*taxonomy.type_ids, taxonomy.normal.id]
    for index, (label, severity, decision) in enumerate(
        itertools.product(label_ids, _SEVERITIES, _DECISIONS)
    ):
        verdict = {
            "label": label,
            "severity": severity,
            "decision": decision,
            "confidence": round(0.5 + (index % 50) / 100, 2),
            "reason": f"A {severity} {label.replace('_', ' ')} is visible on the fabric.",
        }
        lines.append(json.dumps(verdict, ensure_ascii=False))
        if index % 4 == 0:
            lines.append(json.dumps(verdict, ensure_ascii=False, indent=2))
    lines.append('0123456789 0.95 0.70 1 cm 2 mm 3-4 cm {} [] : , "')
    return lines


def corpus_digest(taxonomy: Taxonomy | None = None) -> str:
    """A short hash of the corpus; part of the model cache key, so a taxonomy edit rebuilds the tokenizer."""
    text = "\n".join(tokenizer_corpus(taxonomy))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]


def build_tiny_qwen_tokenizer(
    *,
    corpus: list[str] | None = None,
    bpe_vocab_size: int = DEFAULT_BPE_VOCAB_SIZE,
    model_max_length: int = 4096,
) -> Qwen2Tokenizer:
    """Train a byte-level BPE on ``corpus`` and wrap it as a ``Qwen2Tokenizer`` with Qwen's added tokens.

    Args:
        corpus: Training lines; defaults to ``tokenizer_corpus()``.
        bpe_vocab_size: Target size of the BPE vocabulary (the 256 byte symbols included), before added
            tokens.
        model_max_length: Written to the tokenizer config; keep it at the model's context length.

    Returns:
        The tokenizer; added tokens take ids ``bpe_size .. bpe_size + 21`` in Qwen's order.
    """
    tokenizers = require("tokenizers", "Building the tiny Qwen tokenizer", extra="train")
    transformers = require("transformers", "Building the tiny Qwen tokenizer", extra="train")
    from tokenizers import AddedToken, Regex, decoders, normalizers, pre_tokenizers, trainers
    from tokenizers.models import BPE

    bpe = tokenizers.Tokenizer(BPE(unk_token=None, fuse_unk=False, byte_fallback=False))
    bpe.normalizer = normalizers.NFC()
    bpe.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(QWEN2_PRETOKENIZE_REGEX), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=bpe_vocab_size,
        min_frequency=1,
        show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    bpe.train_from_iterator(corpus if corpus is not None else tokenizer_corpus(), trainer=trainer)

    model: dict[str, Any] = json.loads(bpe.to_str())["model"]
    vocab: dict[str, int] = dict(model["vocab"])
    merges = [tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in model["merges"]]
    # Placing the added tokens in the vocabulary first pins their ids; add_tokens then only marks them.
    first_added = len(vocab)
    for offset, (token, _special) in enumerate(QWEN_ADDED_TOKENS):
        vocab[token] = first_added + offset
    tokenizer = transformers.Qwen2Tokenizer(
        vocab=vocab,
        merges=merges,
        unk_token=None,
        bos_token=None,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        errors="replace",
        split_special_tokens=False,
        model_max_length=model_max_length,
    )
    tokenizer.add_tokens(
        [AddedToken(t, special=s, normalized=False) for t, s in QWEN_ADDED_TOKENS if not s],
        special_tokens=False,
    )
    tokenizer.add_special_tokens(
        {"extra_special_tokens": [t for t, s in QWEN_ADDED_TOKENS if s and t != "<|endoftext|>"]}
    )
    tokenizer.chat_template = QWEN2_VL_CHAT_TEMPLATE
    for token, _special in QWEN_ADDED_TOKENS:
        if tokenizer.convert_tokens_to_ids(token) != vocab[token]:
            raise RuntimeError(f"added token {token!r} did not keep id {vocab[token]}")
    return tokenizer


def added_token_ids(tokenizer: Any) -> dict[str, int]:
    """Ids of Qwen's added tokens in ``tokenizer``."""
    return {token: tokenizer.convert_tokens_to_ids(token) for token, _ in QWEN_ADDED_TOKENS}
