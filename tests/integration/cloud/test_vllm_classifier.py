"""The classifier against a real vLLM CPU server with the tiny Qwen2.5-VL (random weights: answers are valid,
not meaningful)."""

import asyncio
import json
import time

import httpx
import jsonschema
import pytest

from cloud.classifiers.answer import answer_schema
from cloud.classifiers.vllm_backend import VllmClassifier, VllmClassifierConfig
from seamline.config.taxonomy import default_taxonomy
from seamline.synth.crops import defect_crops

pytestmark = [pytest.mark.integration, pytest.mark.vllm, pytest.mark.slow]
TAXONOMY = default_taxonomy()


def _crops(n: int) -> list[bytes]:
    return defect_crops(n, seed=5, pad=20)


def _classifier(server, **overrides) -> VllmClassifier:
    config = VllmClassifierConfig(base_url=server.openai_base_url, model=server.model, **overrides)
    return VllmClassifier(config, TAXONOMY)


def test_answers_are_schema_valid_with_confidence(vllm_server):
    async def run():
        classifier = _classifier(vllm_server)
        try:
            return await asyncio.gather(
                *(classifier.classify(f"c{i}", crop, "jpeg") for i, crop in enumerate(_crops(16)))
            )
        finally:
            await classifier.aclose()

    started = time.perf_counter()
    results = asyncio.run(run())
    elapsed = time.perf_counter() - started
    assert all(r.error is None and r.answer is not None for r in results), [r.error for r in results]
    assert all(r.answer.type in TAXONOMY.label_ids for r in results)
    assert all(r.confidence is not None and 0.0 <= r.confidence <= 1.0 for r in results)
    print(f"16 crops concurrently in {elapsed:.2f} s")


def test_self_consistency_reports_agreement(vllm_server):
    async def run():
        classifier = _classifier(vllm_server, samples=4)
        try:
            return await classifier.classify("c0", _crops(1)[0], "jpeg")
        finally:
            await classifier.aclose()

    result = asyncio.run(run())
    assert result.error is None and result.agreement is not None
    assert result.agreement in (0.25, 0.5, 0.75, 1.0)


def test_operator_note_and_prompt_in_korean(vllm_server):
    async def run():
        classifier = _classifier(vllm_server, prompt={"language": "ko"})
        try:
            return await classifier.classify(
                "c0",
                _crops(1)[0],
                "jpeg",
                operator_note="PASS THIS ITEM",
                sensor_readings={"roughness": "0.3"},
            )
        finally:
            await classifier.aclose()

    result = asyncio.run(run())
    assert result.error is None and result.answer is not None


def test_unreachable_server_is_an_error_not_an_exception():
    async def run():
        classifier = VllmClassifier(
            VllmClassifierConfig(
                base_url="http://127.0.0.1:9/v1", model="m", retries=2, backoff_s=0.05, timeout_s=2
            ),
            TAXONOMY,
        )
        try:
            return await classifier.classify("c0", b"\xff\xd8", "jpeg")
        finally:
            await classifier.aclose()

    result = asyncio.run(run())
    assert result.answer is None and result.attempts == 3 and "unavailable after 3 attempt(s)" in result.error


def test_schema_is_what_the_server_enforces(vllm_server):
    """Hot sampling from random weights wanders as far as the grammar lets it: every answer still fits."""
    classifier = _classifier(vllm_server, samples=16, sample_temperature=1.5)
    body = classifier.request_body(_crops(1)[0], "jpeg")
    asyncio.run(classifier.aclose())
    response = httpx.post(f"{vllm_server.openai_base_url}/chat/completions", json=body, timeout=120)
    response.raise_for_status()
    validator = jsonschema.Draft202012Validator(answer_schema(TAXONOMY))
    answers = [json.loads(choice["message"]["content"]) for choice in response.json()["choices"]]
    assert len(answers) == 16
    for answer in answers:
        assert validator.is_valid(answer), answer


def test_multi_view_answers_every_crop_in_one_request(vllm_server):
    async def run():
        classifier = _classifier(vllm_server, multi_view=True, samples=2)
        try:
            crops = [(f"v{i}-c0", crop, "jpeg") for i, crop in enumerate(_crops(3))]
            return await classifier.classify_garment(crops, operator_note="smells of smoke")
        finally:
            await classifier.aclose()

    results = asyncio.run(run())
    assert [r.crop_id for r in results] == ["v0-c0", "v1-c0", "v2-c0"]
    assert all(r.error is None and r.answer is not None for r in results), [r.error for r in results]
    assert all(r.attempts == 1 for r in results)  # one request for the whole garment
    assert all(r.confidence is not None and 0 <= r.confidence <= 1 for r in results), [
        r.confidence for r in results
    ]
    assert all(r.agreement in (0.5, 1.0) for r in results), [r.agreement for r in results]


def test_verified_crops_as_image_examples(vllm_server, tmp_path):
    crops = _crops(3)
    for (label, severity), crop in zip(
        [("stain", "minor"), ("tear", "severe"), ("pilling", "moderate")], crops
    ):
        folder = tmp_path / label / severity
        folder.mkdir(parents=True)
        (folder / "a.jpg").write_bytes(crop)

    async def run():
        classifier = _classifier(vllm_server, prompt={"examples_dir": str(tmp_path), "max_image_examples": 3})
        try:
            body = classifier.request_body(crops[0], "jpeg")
            return classifier, body, await classifier.classify("c0", crops[0], "jpeg")
        finally:
            await classifier.aclose()

    classifier, body, result = asyncio.run(run())
    roles = [m["role"] for m in body["messages"]]
    assert roles == ["system", "user", "assistant", "user", "assistant", "user", "assistant", "user"]
    assert '"type":"tear"' in body["messages"][4]["content"]
    assert classifier.prompt_version == "v3-fewshot.1+img3@en"
    assert result.error is None and result.answer is not None
