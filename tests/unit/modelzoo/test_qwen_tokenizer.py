"""The tiny Qwen tokenizer: round trips, Qwen's added tokens and ids, the chat template."""

from __future__ import annotations

import json
import unicodedata

import pytest

pytest.importorskip("tokenizers")
pytest.importorskip("transformers")

from seamline.config.taxonomy import LANGUAGES, default_taxonomy
from seamline.modelzoo.qwen_tokenizer import (
    QWEN_ADDED_TOKENS,
    added_token_ids,
    build_tiny_qwen_tokenizer,
    corpus_digest,
    tokenizer_corpus,
)

MIXED = [
    "A 5 cm tear at the knee of the jeans.",
    "셔츠 소매에 커피 얼룩이 있습니다.",
    "衬衫袖口有咖啡污渍，需要复核。",
    "シャツの袖にコーヒーのシミがあります。",
    "stain 얼룩 污渍 シミ — 0.95 / 0.70 ✓ 🙂",
    "  leading spaces,\ttabs\nand\r\nnewlines  ",
]


@pytest.fixture(scope="module")
def tokenizer():
    return build_tiny_qwen_tokenizer()


@pytest.mark.parametrize("text", MIXED)
def test_round_trips_mixed_language_text(tokenizer, text):
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    assert tokenizer.decode(ids) == unicodedata.normalize("NFC", text)


def test_round_trips_verdict_json_and_compresses_it(tokenizer):
    verdict = {"label": "missing_button", "severity": "moderate", "decision": "review", "confidence": 0.82,
               "reason": "단추 하나가 없습니다 / 纽扣缺失 / ボタン欠損"}  # fmt: skip
    text = json.dumps(verdict, ensure_ascii=False)
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    assert tokenizer.decode(ids) == text
    # The BPE learnt the verdict vocabulary: far fewer tokens than UTF-8 bytes.
    assert len(ids) < len(text.encode("utf-8")) / 2


def test_nfc_normalises_decomposed_hangul(tokenizer):
    decomposed = unicodedata.normalize("NFD", "얼룩")
    ids = tokenizer(decomposed, add_special_tokens=False)["input_ids"]
    assert tokenizer.decode(ids) == "얼룩"


def test_added_tokens_follow_the_bpe_vocabulary_in_qwens_order(tokenizer):
    ids = added_token_ids(tokenizer)
    tokens = [token for token, _ in QWEN_ADDED_TOKENS]
    first = ids[tokens[0]]
    assert [ids[t] for t in tokens] == list(range(first, first + len(tokens)))
    assert first == len(tokenizer) - len(tokens)  # nothing after them
    assert 900 <= first <= 1000  # ~1,000 BPE tokens
    assert tokenizer.eos_token == "<|im_end|>"
    assert tokenizer.pad_token == "<|endoftext|>"
    assert tokenizer.bos_token is None


def test_added_tokens_are_never_split(tokenizer):
    for token, _ in QWEN_ADDED_TOKENS:
        assert tokenizer(token, add_special_tokens=False)["input_ids"] == [
            tokenizer.convert_tokens_to_ids(token)
        ]


def test_special_flags_match_qwen(tokenizer):
    decoded = tokenizer.decode(
        tokenizer.convert_tokens_to_ids(["<|im_start|>", "<tool_call>"]), skip_special_tokens=True
    )
    assert decoded == "<tool_call>"  # <|im_start|> is special, <tool_call> is an ordinary added token


def test_config_uses_the_tokenizers_ids(tokenizer):
    from seamline.modelzoo.tiny_qwen import tiny_qwen2_5_vl_config

    ids = added_token_ids(tokenizer)
    config = tiny_qwen2_5_vl_config(ids, vocab_size=1024)
    assert config.image_token_id == tokenizer.convert_tokens_to_ids("<|image_pad|>")
    assert config.video_token_id == tokenizer.convert_tokens_to_ids("<|video_pad|>")
    assert config.vision_start_token_id == tokenizer.convert_tokens_to_ids("<|vision_start|>")
    assert config.vision_end_token_id == tokenizer.convert_tokens_to_ids("<|vision_end|>")
    assert config.text_config.eos_token_id == tokenizer.eos_token_id
    assert config.text_config.pad_token_id == tokenizer.pad_token_id
    assert config.text_config.vocab_size >= len(tokenizer)
    head_dim = config.text_config.hidden_size // config.text_config.num_attention_heads
    assert sum(config.text_config.rope_parameters["mrope_section"]) == head_dim // 2


def test_chat_template_renders_an_image_message_with_vision_tokens(tokenizer):
    messages = [
        {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Classify this region."}]},
    ]
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert text == (
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
        "<|im_start|>user\n<|vision_start|><|image_pad|><|vision_end|>Classify this region.<|im_end|>\n"
        "<|im_start|>assistant\n"
    )
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    assert ids.count(tokenizer.convert_tokens_to_ids("<|image_pad|>")) == 1


def test_chat_template_accepts_openai_image_url_parts_and_a_system_prompt(tokenizer):
    messages = [
        {"role": "system", "content": "You are a garment inspector."},
        {
            "role": "user",
            "content": [{"type": "image_url", "image_url": {"url": "data:,"}}, {"type": "text", "text": "?"}],
        },
    ]
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=False)
    assert text.startswith("<|im_start|>system\nYou are a garment inspector.<|im_end|>\n")
    assert "You are a helpful assistant." not in text
    assert "<|vision_start|><|image_pad|><|vision_end|>?" in text


def test_corpus_covers_the_taxonomy_in_every_language():
    taxonomy = default_taxonomy()
    corpus = "\n".join(tokenizer_corpus(taxonomy))
    for defect in taxonomy.types:
        assert defect.id in corpus
        for language in LANGUAGES:
            assert defect.names.get(language) in corpus
    assert corpus_digest(taxonomy) == corpus_digest(taxonomy)


def test_training_is_deterministic(tokenizer):
    again = build_tiny_qwen_tokenizer()
    assert again.get_vocab() == tokenizer.get_vocab()
