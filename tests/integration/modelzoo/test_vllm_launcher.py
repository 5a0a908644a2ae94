"""A real vLLM CPU server serves the tiny Qwen2.5-VL: an image request with a JSON schema, and logprobs."""

from __future__ import annotations

import base64
import io
import json
import time
import urllib.request

import jsonschema
import numpy as np
import pytest

from seamline.config.taxonomy import default_taxonomy

pytestmark = [pytest.mark.integration, pytest.mark.vllm, pytest.mark.slow]


def _verdict_schema() -> dict:
    return {
        "type": "object",
        "properties": {
            "label": {"type": "string", "enum": list(default_taxonomy().label_ids)},
            "severity": {"type": "string", "enum": ["none", "minor", "moderate", "severe"]},
            "decision": {"type": "string", "enum": ["pass", "review", "reject"]},
            "reason": {"type": "string", "minLength": 1, "maxLength": 60},
        },
        "required": ["label", "severity", "decision", "reason"],
        "additionalProperties": False,
    }


def _crop_data_url() -> str:
    from PIL import Image

    rng = np.random.default_rng(0)
    pixels = np.full((224, 224, 3), (230, 230, 225), dtype=np.uint8)
    pixels[80:140, 70:150] = rng.integers(90, 140, size=(60, 80, 3), dtype=np.uint8)  # a brownish "stain"
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _post(url: str, body: dict) -> dict:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode("utf-8"), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=120) as response:
        return json.loads(response.read())


def test_image_request_returns_schema_valid_json_and_logprobs(vllm_server, record_property):
    record_property("vllm_ready_after_s", round(vllm_server.ready_after_s, 1))
    print(f"\nvLLM server ready after {vllm_server.ready_after_s:.1f} s")  # shown with -s / in the log
    schema = _verdict_schema()
    body = {
        "model": vllm_server.model,
        "messages": [
            {"role": "system", "content": "You are a garment quality inspector. Answer only with JSON."},
            {
                "role": "user",
                "content": [
                    {"type": "image_url", "image_url": {"url": _crop_data_url()}},
                    {"type": "text", "text": "Classify the defect in this region."},
                ],
            },
        ],
        "max_tokens": 400,  # a random model spends up to a few tokens per character of the reason
        "temperature": 0.0,
        "logprobs": True,
        "top_logprobs": 3,
        "response_format": {
            "type": "json_schema",
            "json_schema": {"name": "verdict", "schema": schema, "strict": True},
        },
    }

    started = time.perf_counter()
    reply = _post(f"{vllm_server.openai_base_url}/chat/completions", body)
    elapsed = time.perf_counter() - started
    record_property("vllm_request_s", round(elapsed, 2))
    print(f"one request: {elapsed:.2f} s, usage {reply['usage']}")

    choice = reply["choices"][0]
    assert choice["finish_reason"] == "stop", choice
    verdict = json.loads(choice["message"]["content"])
    jsonschema.validate(verdict, schema)
    assert reply["usage"]["prompt_tokens"] > 64  # the 64 image tokens are in the prompt

    tokens = choice["logprobs"]["content"]
    assert len(tokens) == reply["usage"]["completion_tokens"]
    for token in tokens:
        assert token["logprob"] <= 0.0
        assert 1 <= len(token["top_logprobs"]) <= 3
    # The logprobs cover the answer's tokens plus the end-of-turn token that stopped it.
    assert "".join(t["token"] for t in tokens).removesuffix("<|im_end|>") == choice["message"]["content"]


def test_models_endpoint_lists_the_served_name(vllm_server):
    with urllib.request.urlopen(f"{vllm_server.openai_base_url}/models", timeout=10) as response:
        models = json.loads(response.read())
    assert [m["id"] for m in models["data"]] == [vllm_server.model]
