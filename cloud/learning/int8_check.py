"""`seamline gate int8 FP32 INT8 --data DIR`: the accuracy check an int8 detector must pass before the edge
runs it (edge/export/int8.py writes it unaccepted; the edge's ONNX Runtime detector refuses it until then).

Both models are scored by the gate's own detector evaluation on the same held-out COCO data, at the edge's
operating threshold. The int8 model is accepted when neither its mAP50 nor its recall is more than
``max_drop`` (default 0.01: one point) below the fp32 model's; the numbers are written into its sidecar
(``quantization.accepted``, or ``quantization.refused``), so what the edge runs says what it was checked on.
The learning loop's gate runs the same comparison for a candidate that comes with an int8 model.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from seamline.clock import utcnow
from seamline.errors import InputError

DEFAULT_MAX_DROP = 0.01


@dataclass
class Int8Check:
    accepted: bool
    fp32: dict[str, float]
    int8: dict[str, float]
    drops: dict[str, float]
    max_drop: float
    images: int
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def compare(fp32: Any, int8: Any, max_drop: float, images: int) -> Int8Check:
    """Judge int8 metrics against fp32 ones (``DetectionMetrics``: map50, recall, precision)."""
    numbers = {
        name: {"map50": round(m.map50, 4), "recall": round(m.recall, 4), "precision": round(m.precision, 4)}
        for name, m in (("fp32", fp32), ("int8", int8))
    }
    drops = {key: round(getattr(fp32, key) - getattr(int8, key), 4) for key in ("map50", "recall")}
    over = [f"{key} {drop:+.4f} below fp32" for key, drop in drops.items() if drop > max_drop]
    reason = (
        f"{'; '.join(over)} (allowed {max_drop})"
        if over
        else f"mAP50 {numbers['int8']['map50']} vs {numbers['fp32']['map50']}, recall "
        f"{numbers['int8']['recall']} vs {numbers['fp32']['recall']}: within {max_drop}"
    )
    return Int8Check(not over, numbers["fp32"], numbers["int8"], drops, max_drop, images, reason)


def check_int8(
    fp32: Path,
    int8: Path,
    data: Path,
    *,
    threshold: float = 0.25,
    max_drop: float = DEFAULT_MAX_DROP,
    max_images: int = 2000,
) -> Int8Check:
    """Score both models on ``data`` (a COCO export: DIR/annotations.json) and record the outcome in the int8
    model's sidecar."""
    from cloud.learning.coco_data import load_coco
    from cloud.learning.detection_eval import evaluate_detector
    from edge.detectors.meta import read_sidecar, sidecar_path
    from edge.detectors.onnx_runtime import OnnxRuntimeDetector, OnnxRuntimeDetectorConfig
    from edge.export.int8 import file_sha256

    fp32, int8, data = Path(fp32), Path(int8), Path(data)
    meta = read_sidecar(int8)
    if meta.quantization is None:
        raise InputError(f"{int8} is not an int8 model written by `seamline edge export --int8`")
    if meta.quantization.get("fp32_sha256") != file_sha256(fp32):
        raise InputError(f"{int8} was not quantised from {fp32} (its fp32_sha256 differs)")
    annotations = data / "annotations.json" if data.is_dir() else data
    if not annotations.is_file():
        raise InputError(f"--data {data}: no annotations.json (a COCO export, e.g. `seamline synth` output)")
    agnostic = len(meta.labels) == 1
    coco = load_coco(annotations, class_agnostic=agnostic)
    if len(coco.images) > max_images:
        coco = coco.subset(coco.images[:max_images])
    metrics = {}
    for name, path in (("fp32", fp32), ("int8", int8)):
        detector = OnnxRuntimeDetector(
            OnnxRuntimeDetectorConfig(model=path, score_threshold=threshold, class_agnostic=agnostic),
            unchecked_int8=name == "int8",
        )
        metrics[name] = evaluate_detector(detector, coco, threshold=threshold)
    result = compare(metrics["fp32"], metrics["int8"], max_drop, len(coco.images))
    record = {
        **result.to_dict(),
        "data": str(annotations.resolve()),
        "threshold": threshold,
        "at": utcnow().isoformat(),
    }
    sidecar = json.loads(sidecar_path(int8).read_text(encoding="utf-8"))
    sidecar["quantization"]["accepted"] = record if result.accepted else None
    sidecar["quantization"]["refused"] = None if result.accepted else record
    sidecar_path(int8).write_text(json.dumps(sidecar, indent=2) + "\n", encoding="utf-8")
    return result
