"""transformers loads the tiny Qwen2.5-VL directory the way it loads a real checkpoint, and generates."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytestmark = pytest.mark.integration

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def model_and_processor(tiny_qwen_dir):
    from transformers import AutoProcessor, Qwen2_5_VLForConditionalGeneration

    model = Qwen2_5_VLForConditionalGeneration.from_pretrained(tiny_qwen_dir, dtype=torch.bfloat16).eval()
    processor = AutoProcessor.from_pretrained(tiny_qwen_dir)
    return model, processor


def _garment_crop(seed: int = 0):
    from PIL import Image

    rng = np.random.default_rng(seed)
    pixels = np.full((224, 224, 3), (40, 70, 160), dtype=np.uint8)
    pixels[90:130, 60:170] = rng.integers(0, 255, size=(40, 110, 3), dtype=np.uint8)  # a "stain"
    return Image.fromarray(pixels)


def test_generates_for_a_chat_message_with_a_224_image(model_and_processor):
    model, processor = model_and_processor
    messages = [{"role": "user", "content": [
        {"type": "image"}, {"type": "text", "text": "Classify the defect in this region. Answer in JSON."},
    ]}]  # fmt: skip
    prompt = processor.apply_chat_template(messages, add_generation_prompt=True)
    inputs = processor(text=[prompt], images=[_garment_crop()], return_tensors="pt")

    image_tokens = int((inputs["input_ids"] == model.config.image_token_id).sum())
    assert image_tokens == 64  # 224 x 224 -> 8 x 8 merged patches: the max_pixels bound
    assert inputs["image_grid_thw"].tolist() == [[1, 16, 16]]

    with torch.no_grad():
        output = model.generate(**inputs, max_new_tokens=6, do_sample=False)
    new_tokens = output[0, inputs["input_ids"].shape[1] :]
    assert 1 <= new_tokens.numel() <= 6
    assert int(new_tokens.max()) < model.config.text_config.vocab_size
    assert isinstance(processor.batch_decode(new_tokens[None], skip_special_tokens=True)[0], str)


def test_larger_images_are_bounded_to_64_tokens(model_and_processor):
    from PIL import Image

    model, processor = model_and_processor
    prompt = processor.apply_chat_template([{"role": "user", "content": [{"type": "image"}]}])
    inputs = processor(text=[prompt], images=[Image.new("RGB", (1280, 960))], return_tensors="pt")
    assert int((inputs["input_ids"] == model.config.image_token_id).sum()) <= 64


def test_saved_files_are_a_normal_hf_directory(tiny_qwen_dir):
    config = json.loads((tiny_qwen_dir / "config.json").read_text())
    assert config["architectures"] == ["Qwen2_5_VLForConditionalGeneration"]
    assert config["dtype"] == "bfloat16"
    generation = json.loads((tiny_qwen_dir / "generation_config.json").read_text())
    tokenizer_config = json.loads((tiny_qwen_dir / "tokenizer_config.json").read_text())
    tokenizer_json = json.loads((tiny_qwen_dir / "tokenizer.json").read_text())
    ids = {token["content"]: token["id"] for token in tokenizer_json["added_tokens"]}
    assert config["image_token_id"] == ids["<|image_pad|>"]
    assert config["video_token_id"] == ids["<|video_pad|>"]
    assert config["vision_start_token_id"] == ids["<|vision_start|>"]
    assert config["text_config"]["eos_token_id"] == ids["<|im_end|>"]
    assert generation["eos_token_id"] == [ids["<|im_end|>"], ids["<|endoftext|>"]]
    assert tokenizer_config["eos_token"] == "<|im_end|>"
    assert (tiny_qwen_dir / "chat_template.jinja").exists()
    weights = tiny_qwen_dir / "model.safetensors"
    assert weights.stat().st_size < 5_000_000

    from safetensors import safe_open

    with safe_open(str(weights), framework="pt") as handle:
        dtypes = {handle.get_slice(name).get_dtype() for name in handle.keys()}  # noqa: SIM118 - safe_open is not iterable
    assert dtypes == {"BF16"}
