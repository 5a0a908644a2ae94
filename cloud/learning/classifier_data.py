"""Classifier training examples: a crop and the verdict JSON a correct classifier answers for it.

Two sources, one shape (``CropExample``):

- a synthetic data set folder (``seamline synth``: images/ + truth.jsonl). Every true defect becomes a crop
  cut the way the edge cuts them (padding, minimum size) with its box jittered like a detector's, and every
  distractor (tag, wrinkle, shadow, belt mark) becomes a ``normal`` crop: the detector's false positives are
  what the classifier must learn to let pass;
- a JSONL file of ``{"image": path, "target": {type, severity, decision, reason}}`` lines, the verified
  store's export format (paths relative to the file).

The target is the compact JSON (schema field order, no spaces) that structured outputs make vLLM emit, so the
model learns exactly the text it will be asked to produce.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cloud.classifiers.answer import NO_SEVERITY, NORMAL_REASON, target_for  # noqa: F401  (re-exported for callers)
from cloud.learning.coco_data import DatasetError, read_rgb
from seamline.config.taxonomy import Taxonomy
from seamline.imaging import encode_jpeg, pad_box


@dataclass(frozen=True)
class CropExample:
    key: str  # stable id (file and box), for splits and reports
    jpeg: bytes
    target: dict[str, str]  # type, severity, decision, reason (schema order)
    detector_score: float | None = None  # the edge detector's score of the region (verified exports)

    def target_json(self) -> str:
        return json.dumps(self.target, ensure_ascii=False, separators=(",", ":"))


def _jitter(box: list[float], rng: np.random.Generator, amount: float) -> tuple[float, float, float, float]:
    x1, y1, x2, y2 = box
    w, h = x2 - x1, y2 - y1
    dx1, dy1, dx2, dy2 = rng.uniform(-amount, amount, 4)
    return x1 + dx1 * w, y1 + dy1 * h, x2 + dx2 * w, y2 + dy2 * h


def synthetic_crops(
    folder: Path,
    taxonomy: Taxonomy,
    *,
    padding: float = 0.15,
    min_size: int = 64,
    jitter: float = 0.1,
    normal_share_cap: float = 0.3,
    quality: int = 90,
    seed: int = 0,
    limit: int | None = None,
) -> list[CropExample]:
    """Crops of a ``seamline synth`` folder's defects and distractors.

    ``normal`` crops are capped at a share of all.
    """
    truth = Path(folder) / "truth.jsonl"
    if not truth.exists():
        raise DatasetError(f"{folder}: no truth.jsonl (write one with `seamline synth`)")
    rng = np.random.default_rng(seed)
    defects: list[CropExample] = []
    normals: list[CropExample] = []
    for line in truth.read_text(encoding="utf-8").splitlines():
        rec = json.loads(line)
        views = {v["view_index"]: v["file_name"] for v in rec["views"]}
        wanted = [
            (d["view_index"], d["box"], d["type"], d["severity"])
            for d in rec["defects"]
            if d.get("visible", True)
        ]
        wanted += [(x["view_index"], x["box"], taxonomy.normal.id, None) for x in rec["distractors"]]
        if not wanted:
            continue
        cache: dict[int, np.ndarray] = {}
        for view_index, box, type_id, severity in wanted:
            if view_index not in cache:
                cache[view_index] = read_rgb(Path(folder) / views[view_index])
            image = cache[view_index]
            h, w = image.shape[:2]
            x1, y1, x2, y2 = pad_box(
                _jitter(box, rng, jitter), width=w, height=h, pad=padding, min_size=min_size
            )
            crop = np.ascontiguousarray(image[y1:y2, x1:x2])
            key = f"{views[view_index]}#{x1},{y1},{x2},{y2}"
            example = CropExample(key, encode_jpeg(crop, quality), target_for(taxonomy, type_id, severity))
            (normals if type_id == taxonomy.normal.id else defects).append(example)
        if limit is not None and len(defects) >= limit:
            break
    cap = int(len(defects) * normal_share_cap / max(1e-9, 1 - normal_share_cap))
    if len(normals) > cap:
        picks = rng.choice(len(normals), size=cap, replace=False)
        normals = [normals[i] for i in sorted(picks)]
    return defects + normals


def jsonl_crops(path: Path, taxonomy: Taxonomy) -> list[CropExample]:
    """Examples from a verified-store JSONL export."""
    from cloud.classifiers.answer import AnswerError, parse_answer

    examples = []
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise DatasetError(f"{path}: {exc}") from exc
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
            image_path = Path(path).parent / rec["image"]
            answer = parse_answer(json.dumps(rec["target"]), taxonomy)
        except (ValueError, KeyError, TypeError, AnswerError) as exc:
            raise DatasetError(f"{path}:{number}: {exc}") from exc
        target = target_for(taxonomy, answer.type, answer.severity.value if answer.severity else None)
        target["decision"], target["reason"] = answer.decision.value, answer.reason
        score = rec.get("detector_score")
        examples.append(
            CropExample(
                str(rec["image"]), image_path.read_bytes(), target, None if score is None else float(score)
            )
        )
    if not examples:
        raise DatasetError(f"{path}: no examples")
    return examples


def load_crops(
    source: Path, taxonomy: Taxonomy, *, seed: int = 0, limit: int | None = None
) -> list[CropExample]:
    """Examples from a synthetic folder or a JSONL export (see the module doc)."""
    source = Path(source)
    if source.is_dir():
        return synthetic_crops(source, taxonomy, seed=seed, limit=limit)
    if source.suffix == ".jsonl":
        return jsonl_crops(source, taxonomy)[:limit]
    raise DatasetError(f"{source}: expected a `seamline synth` folder or a .jsonl export")


def split_crops(
    examples: list[CropExample], val_fraction: float, salt: str = "seamline"
) -> tuple[list[CropExample], list[CropExample]]:
    """(train, held-out) by a stable hash of each crop's source image (crops of one image stay together)."""

    def held(example: CropExample) -> bool:
        image = example.key.split("#")[0]
        return (
            int.from_bytes(hashlib.sha256(f"{salt}:{image}".encode()).digest()[:8], "big") / 2**64
            < val_fraction
        )

    train = [e for e in examples if not held(e)]
    val = [e for e in examples if held(e)]
    if not train or not val:
        raise DatasetError(f"too few examples to hold out {val_fraction:.0%}")
    return train, val
