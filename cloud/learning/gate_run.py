"""Running the gate (the criteria: cloud/learning/gate.py): fetch both versions from the registry, evaluate
them on the same sets, compare, write the report (report.json, report.md, per_class.png), tag the candidate
and, when it passes, give it the ``candidate`` alias. It never touches ``champion``."""

from __future__ import annotations

import json
import logging
import shutil
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from cloud.learning.coco_data import DatasetError
from cloud.learning.gate import (
    Answer,
    Criterion,
    GateResult,
    floor_check,
    latency_check,
    mcnemar_check,
    per_class_checks,
    routing_check,
)
from cloud.learning.golden import GoldenSet, latest_golden
from cloud.learning.registry import CARD_FILE, ONNX_NAME, ModelRegistry, ModelVersion
from seamline.clock import utcnow

INT8_NAME = "detector.int8.onnx"  # an int8 model beside it (`seamline edge export --int8`)

logger = logging.getLogger(__name__)
LATENCY_SAMPLES = 30


@dataclass
class EvalSet:
    """One evaluation set: the golden set, or recent verified labels the candidate did not see."""

    name: str
    coco: Path  # annotations.json folder (detector)
    jsonl: Path  # crops.jsonl (classifier)
    detail: str


@dataclass
class GateContext:
    """What a gate run needs besides the registry: the audit and crop stores, taxonomy and policy."""

    store: Any  # AuditStore
    crop_store: Any
    taxonomy: Any
    learning: Any  # LearningConfig
    routing: Any  # RoutingPolicyConfig
    work_dir: Path
    extra_sets: list[EvalSet] = field(default_factory=list)


def evaluation_sets(ctx: GateContext, candidate: ModelVersion, out: Path) -> tuple[GoldenSet, list[EvalSet]]:
    """The golden set, plus the recent verified labels the candidate did not train on (if any)."""
    from cloud.review.export import export_verified

    golden = latest_golden(ctx.store)
    if golden is None:
        raise DatasetError("no golden set to judge on: run `seamline golden freeze --config FILE` first")
    sets = [
        EvalSet(
            "golden",
            golden.coco,
            golden.jsonl,
            f"golden set {golden.sha256[:12]}, {golden.garments} garments",
        )
    ]
    weeks = ctx.learning.gate.recent_weeks
    if weeks:
        since = utcnow() - timedelta(weeks=weeks)
        seen_until = candidate.tags.get("data_until")
        if seen_until:
            since = max(since, datetime.fromisoformat(seen_until))
        recent = out / "recent"
        summary = {}
        for fmt in ("coco", "jsonl"):
            summary[fmt] = export_verified(
                ctx.store.engine, ctx.crop_store, ctx.taxonomy, recent / fmt, fmt, since=since
            )
        if summary["coco"].images:
            sets.append(
                EvalSet(
                    "recent",
                    recent / "coco",
                    recent / "jsonl" / "crops.jsonl",
                    f"{summary['coco'].images} crops verified since {since.isoformat(timespec='seconds')}",
                )
            )
        else:
            logger.info("gate: no verified labels since %s the candidate did not train on", since)
    return golden, sets + ctx.extra_sets


# -- the detector ------------------------------------------------------------------------------------------
def _detector(model_dir: Path, threshold: float, class_agnostic: bool) -> Any:
    from edge.detectors.onnx_runtime import OnnxRuntimeDetector, OnnxRuntimeDetectorConfig

    onnx = model_dir / ONNX_NAME
    if not onnx.is_file():
        raise DatasetError(f"{model_dir}: the registered detector has no {ONNX_NAME}")
    detector = OnnxRuntimeDetector(
        OnnxRuntimeDetectorConfig(model=onnx, score_threshold=threshold, class_agnostic=class_agnostic)
    )
    detector.warm_up()
    return detector


def _p95_ms(seconds: list[float]) -> float:
    return float(np.percentile(np.asarray(seconds) * 1000, 95)) if seconds else 0.0


def _detector_latency(detector: Any, data: Any) -> float:
    from cloud.learning.coco_data import read_rgb

    images = [read_rgb(img.path) for img in data.images[:LATENCY_SAMPLES]]
    seconds = []
    for image in images:
        started = time.perf_counter()
        detector.detect([image])
        seconds.append(time.perf_counter() - started)
    return _p95_ms(seconds)


def gate_detector(ctx: GateContext, dirs: dict[str, Path], sets: list[EvalSet], result: GateResult) -> None:
    from cloud.learning.coco_data import load_coco
    from cloud.learning.detection_eval import evaluate_detector

    cfg = ctx.learning.gate
    card = json.loads((dirs["candidate"] / CARD_FILE).read_text(encoding="utf-8"))
    agnostic = bool(card.get("training", {}).get("class_agnostic", False))
    runtimes = {role: _detector(path, cfg.detector_threshold, agnostic) for role, path in dirs.items()}
    int8 = None
    if (dirs["candidate"] / INT8_NAME).is_file():  # it comes with an int8 model: that is judged too
        from edge.detectors.onnx_runtime import OnnxRuntimeDetector, OnnxRuntimeDetectorConfig

        int8 = OnnxRuntimeDetector(
            OnnxRuntimeDetectorConfig(
                model=dirs["candidate"] / INT8_NAME,
                score_threshold=cfg.detector_threshold,
                class_agnostic=agnostic,
            ),
            unchecked_int8=True,
        )
    for s in sets:
        data = load_coco(s.coco / "annotations.json", class_agnostic=agnostic)
        if len(data.images) > cfg.max_examples:
            data = data.subset(data.images[: cfg.max_examples])
        metrics = {
            role: evaluate_detector(runtime, data, threshold=cfg.detector_threshold)
            for role, runtime in runtimes.items()
        }
        result.summary[s.name] = {
            role: {"map50": m.map50, "recall": m.recall, "precision": m.precision, "images": m.images}
            for role, m in metrics.items()
        } | {"detail": s.detail}
        cand = metrics["candidate"]
        if int8 is not None:
            from cloud.learning.int8_check import compare

            check = compare(
                cand,
                evaluate_detector(int8, data, threshold=cfg.detector_threshold),
                cfg.int8_max_drop,
                len(data.images),
            )
            result.summary[s.name]["int8"] = check.int8
            result.criteria.append(Criterion("int8", s.name, check.accepted, check.reason))
        if s.name == "golden":
            result.criteria.append(
                floor_check(
                    s.name,
                    {"map50": cand.map50, "recall": cand.recall},
                    {"map50": cfg.floors.detector_map50, "recall": cfg.floors.detector_recall},
                )
            )
            p95 = _detector_latency(runtimes["candidate"], data)
            result.summary[s.name]["candidate"]["p95_ms"] = p95
            result.criteria.append(latency_check(s.name, p95, cfg.detector_latency_ms, "ONNX Runtime (CPU)"))
        if "champion" in metrics:
            champ = metrics["champion"]
            tp_cand, tp_champ = np.stack(cand.per_image_tp), np.stack(champ.per_image_tp)
            n = np.stack(cand.per_image_n)
            per_class = {
                label: (tp_cand[:, k], tp_champ[:, k], n[:, k]) for k, label in enumerate(data.labels)
            }
            criteria, rows = per_class_checks(s.name, per_class, cfg)
            result.criteria.extend(criteria)
            result.classes.extend(rows)


# -- the classifier ----------------------------------------------------------------------------------------
def _classifier_answers(model_dir: Path, examples: list[Any], taxonomy: Any) -> tuple[list[Any], float]:
    from seamline.torch_compat import ensure_cpu_torch_compat

    ensure_cpu_torch_compat()
    import torch
    from transformers import AutoProcessor, Qwen2_5_VLForConditionalGeneration

    from cloud.classifiers.prompts import PromptConfig
    from cloud.learning.classifier_training import PromptEncoder, answer_examples

    card = json.loads((model_dir / CARD_FILE).read_text(encoding="utf-8"))
    prompt = PromptConfig.model_validate(card.get("training", {}).get("prompt", {}))
    processor = AutoProcessor.from_pretrained(model_dir)
    model = Qwen2_5_VLForConditionalGeneration.from_pretrained(model_dir, dtype=torch.float32)
    answers = answer_examples(model, PromptEncoder(processor, taxonomy, prompt), examples, taxonomy)
    return answers, _p95_ms([a.seconds for a in answers])


def gate_classifier(ctx: GateContext, dirs: dict[str, Path], sets: list[EvalSet], result: GateResult) -> None:
    from cloud.learning.classifier_data import jsonl_crops
    from cloud.learning.classifier_training import score_answers
    from cloud.routing.policy import RoutingPolicy

    cfg = ctx.learning.gate
    policy = RoutingPolicy(
        ctx.routing, reject_at=ctx.taxonomy.reject_at_severity, normal_id=ctx.taxonomy.normal.id
    )
    for s in sets:
        examples = jsonl_crops(s.jsonl, ctx.taxonomy)[: cfg.max_examples]
        answers, p95 = {}, {}
        for role, path in dirs.items():
            answers[role], p95[role] = _classifier_answers(path, examples, ctx.taxonomy)
        metrics = {role: score_answers(a) for role, a in answers.items()}
        result.summary[s.name] = {
            role: {
                "type_accuracy": m.type_accuracy,
                "severity_agreement": m.severity_agreement,
                "valid_json": m.valid_json,
                "examples": m.examples,
                "p95_ms": p95[role],
            }
            for role, m in metrics.items()
        } | {"detail": s.detail}
        cand = metrics["candidate"]
        if s.name == "golden":
            result.criteria.append(
                floor_check(
                    s.name,
                    {"type_accuracy": cand.type_accuracy, "severity_agreement": cand.severity_agreement},
                    {
                        "type_accuracy": cfg.floors.classifier_type_accuracy,
                        "severity_agreement": cfg.floors.classifier_severity_agreement,
                    },
                )
            )
            result.criteria.append(
                latency_check(
                    s.name, p95["candidate"], cfg.classifier_latency_ms, "transformers generate (CPU)"
                )
            )
        if "champion" not in answers:
            continue
        right = {role: np.array([x.type == x.target["type"] for x in a]) for role, a in answers.items()}
        labels = np.array([x.target["type"] for x in answers["candidate"]])
        per_class = {
            label: (
                right["candidate"][labels == label],
                right["champion"][labels == label],
                np.ones(int((labels == label).sum())),
            )
            for label in sorted(set(labels))
        }
        criteria, rows = per_class_checks(s.name, per_class, cfg)
        result.criteria.extend(criteria)
        result.classes.extend(rows)
        result.criteria.append(
            mcnemar_check(s.name, right["candidate"], right["champion"], cfg.mcnemar_alpha)
        )
        scores = {e.key: e.detector_score for e in examples}
        replay = {
            role: [
                Answer(x.type, x.severity, x.decision, x.confidence, x.target["decision"], scores.get(x.key))
                for x in a
            ]
            for role, a in answers.items()
        }
        criterion, numbers = routing_check(
            s.name,
            replay["candidate"],
            replay["champion"],
            policy,
            cfg.routing_tolerance,
            min_automated=cfg.min_class_examples,
        )
        result.criteria.append(criterion)
        result.summary[s.name]["routing"] = numbers


# -- the run -----------------------------------------------------------------------------------------------
def run_gate(
    registry: ModelRegistry,
    ctx: GateContext,
    model: str,
    candidate_ref: str,
    *,
    champion_ref: str = "champion",
    out: Path | None = None,
) -> tuple[GateResult, Path]:
    """Judge ``candidate_ref`` against ``champion_ref``; returns the result and the report folder."""
    from cloud.learning.gate_report import write_report

    candidate = registry.version(model, candidate_ref)  # type: ignore[arg-type]
    champion_number = (
        registry.alias_version(model, "champion") if champion_ref == "champion" else champion_ref
    )  # type: ignore[arg-type]
    champion = registry.version(model, champion_number) if champion_number else None  # type: ignore[arg-type]
    if champion is not None and champion.version == candidate.version:
        raise DatasetError(f"{model} version {candidate.version} is the champion: nothing to gate it against")
    out = Path(
        out or ctx.work_dir / "gates" / f"{model}-v{candidate.version}-{utcnow().strftime('%Y%m%dT%H%M%S')}"
    )
    out.mkdir(parents=True, exist_ok=True)
    models = out / "models"
    dirs = {"candidate": registry.download(model, candidate.version, models / "candidate")}  # type: ignore[arg-type]
    if champion is not None:
        dirs["champion"] = registry.download(model, champion.version, models / "champion")  # type: ignore[arg-type]
    golden, sets = evaluation_sets(ctx, candidate, out)
    result = GateResult(model, candidate.version, champion.version if champion else None)
    result.summary["golden_sha256"] = golden.sha256
    (gate_detector if model == "detector" else gate_classifier)(ctx, dirs, sets, result)
    if champion is None:
        result.criteria.append(
            Criterion("per_class", "all", True, "no champion yet: only the floors and the latency apply")
        )
    shutil.rmtree(models, ignore_errors=True)
    write_report(result, out, max_drop=ctx.learning.gate.max_class_drop)
    registry.set_tags(
        model,  # type: ignore[arg-type]
        candidate.version,
        {
            "gate.result": "pass" if result.passed else "fail",
            "gate.failing": ", ".join(c.label for c in result.failing) or "-",
            "gate.champion": champion.version if champion else "-",
            "gate.golden_sha256": golden.sha256,
            "gate.report": str(out.resolve()),
            "gate.at": utcnow().isoformat(timespec="seconds"),
        },
    )
    if result.passed:
        registry.set_alias(model, "candidate", candidate.version)  # type: ignore[arg-type]
    return result, out
