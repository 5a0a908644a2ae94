"""Detector evaluation on a held-out COCO split: mAP50, mAP50-95, and precision and recall per class.

mAP comes from faster-coco-eval (pycocotools' algorithm, faster), over detections kept down to a score of
0.001. Precision and recall are measured at the operating threshold the edge runs with (0.25 by default): a
detection is a true positive when it overlaps an unmatched ground-truth box of its class with IoU >= 0.5,
greedily by score, which is how a line would count them. The detector is any edge runtime, so a checkpoint
is scored through the exact pre- and post-processing the edge agent runs.
"""

from __future__ import annotations

import contextlib
import io
from dataclasses import asdict, dataclass, field

import numpy as np

from cloud.learning.coco_data import CocoData, read_rgb
from edge.detectors.base import DetectorRuntime

IOU_MATCH = 0.5
MAP_SCORE_FLOOR = 0.001


@dataclass
class ClassMetrics:
    ap50: float
    ap50_95: float
    precision: float
    recall: float
    instances: int


@dataclass
class DetectionMetrics:
    map50: float
    map50_95: float
    precision: float  # at ``threshold``, all classes pooled
    recall: float
    threshold: float
    images: int
    instances: int
    per_class: dict[str, ClassMetrics] = field(default_factory=dict)
    # Per image, in ``data.images`` order: true positives and ground-truth boxes per class at ``threshold``
    # (what the gate's paired bootstrap resamples); not part of ``to_dict``.
    per_image_tp: list[np.ndarray] = field(default_factory=list, repr=False)
    per_image_n: list[np.ndarray] = field(default_factory=list, repr=False)

    def to_dict(self) -> dict:
        data = asdict(self)
        data.pop("per_image_tp")
        data.pop("per_image_n")
        return data

    def table(self) -> str:
        lines = [
            f"{'class':<18}{'AP50':>7}{'AP50-95':>9}{'P@thr':>8}{'R@thr':>8}{'n':>7}",
            *(
                f"{name:<18}{m.ap50:>7.3f}{m.ap50_95:>9.3f}{m.precision:>8.3f}{m.recall:>8.3f}{m.instances:>7}"
                for name, m in self.per_class.items()
            ),
            f"{'all':<18}{self.map50:>7.3f}{self.map50_95:>9.3f}{self.precision:>8.3f}{self.recall:>8.3f}{self.instances:>7}",
        ]
        return "\n".join(lines)


def _iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    x1 = np.maximum(box[0], boxes[:, 0])
    y1 = np.maximum(box[1], boxes[:, 1])
    x2 = np.minimum(box[2], boxes[:, 2])
    y2 = np.minimum(box[3], boxes[:, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    return inter / np.maximum(area + areas - inter, 1e-9)


def match_at_threshold(
    gt_boxes: np.ndarray,
    gt_labels: np.ndarray,
    boxes: np.ndarray,
    scores: np.ndarray,
    labels: np.ndarray,
    threshold: float,
    num_labels: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per label: true positives, false positives, ground-truth count, for one image."""
    tp, fp, n = (
        np.zeros(num_labels, int),
        np.zeros(num_labels, int),
        np.bincount(gt_labels, minlength=num_labels),
    )
    keep = scores >= threshold
    boxes, scores, labels = boxes[keep], scores[keep], labels[keep]
    used = np.zeros(gt_boxes.shape[0], bool)
    for i in np.argsort(-scores, kind="stable"):
        candidates = np.flatnonzero((gt_labels == labels[i]) & ~used)
        if candidates.size:
            overlaps = _iou(boxes[i], gt_boxes[candidates])
            best = int(np.argmax(overlaps))
            if overlaps[best] >= IOU_MATCH:
                used[candidates[best]] = True
                tp[labels[i]] += 1
                continue
        fp[labels[i]] += 1
    return tp, fp, n


def evaluate_detector(
    detector: DetectorRuntime, data: CocoData, *, threshold: float = 0.25, batch_size: int = 4, progress=None
) -> DetectionMetrics:
    """Score ``detector`` on ``data``. ``detector.class_agnostic`` must match how ``data`` was loaded."""
    from faster_coco_eval import COCO, COCOeval_faster

    num_labels = len(data.labels)
    saved = detector.score_threshold
    detector.score_threshold = MAP_SCORE_FLOOR
    tp, fp, n = np.zeros(num_labels, int), np.zeros(num_labels, int), np.zeros(num_labels, int)
    results, gt_images, gt_annotations = [], [], []
    per_image_tp: list[np.ndarray] = []
    per_image_n: list[np.ndarray] = []
    try:
        for start in range(0, len(data.images), batch_size):
            chunk = data.images[start : start + batch_size]
            found = detector.detect([read_rgb(img.path) for img in chunk])
            for img, det in zip(chunk, found, strict=True):
                gt_images.append({"id": img.image_id, "width": img.width, "height": img.height})
                for box, label in zip(img.boxes, img.labels, strict=True):
                    x1, y1, x2, y2 = (float(v) for v in box)
                    gt_annotations.append(
                        {
                            "id": len(gt_annotations) + 1,
                            "image_id": img.image_id,
                            "category_id": int(label) + 1,
                            "bbox": [x1, y1, x2 - x1, y2 - y1],
                            "area": (x2 - x1) * (y2 - y1),
                            "iscrowd": 0,
                        }
                    )
                for box, score, label in zip(det.boxes, det.scores, det.labels, strict=True):
                    x1, y1, x2, y2 = (float(v) for v in box)
                    results.append(
                        {
                            "image_id": img.image_id,
                            "category_id": int(label) + 1,
                            "bbox": [x1, y1, x2 - x1, y2 - y1],
                            "score": float(score),
                        }
                    )
                t, f, c = match_at_threshold(
                    img.boxes, img.labels, det.boxes, det.scores, det.labels, threshold, num_labels
                )
                tp, fp, n = tp + t, fp + f, n + c
                per_image_tp.append(np.asarray(t, int))
                per_image_n.append(np.asarray(c, int))
            if progress is not None:
                progress(len(chunk))
    finally:
        detector.score_threshold = saved

    categories = [{"id": i + 1, "name": name} for i, name in enumerate(data.labels)]
    ap50 = np.zeros(num_labels)
    ap = np.zeros(num_labels)
    map50 = map50_95 = 0.0
    if gt_annotations:
        with contextlib.redirect_stdout(io.StringIO()):
            gt = COCO()
            gt.dataset = {"images": gt_images, "annotations": gt_annotations, "categories": categories}
            gt.createIndex()
            dt = gt.loadRes(results) if results else None
            if dt is not None:
                ev = COCOeval_faster(gt, dt, "bbox", print_function=lambda *a, **k: None)
                ev.params.maxDets = [1, 10, 100]
                ev.evaluate()
                ev.accumulate()
                ev.summarize()
                map50_95, map50 = float(ev.stats[0]), float(ev.stats[1])
                # precision: [T, R, K, A, M]; area "all" (0), 100 detections (last)
                prec = ev.eval["precision"][:, :, :, 0, -1]
                for k in range(num_labels):
                    p = prec[:, :, k]
                    valid = p[p > -1]
                    ap[k] = float(valid.mean()) if valid.size else 0.0
                    p50 = prec[0, :, k]
                    ap50[k] = float(p50[p50 > -1].mean()) if (p50 > -1).any() else 0.0
    per_class = {
        name: ClassMetrics(
            ap50=float(ap50[k]),
            ap50_95=float(ap[k]),
            precision=float(tp[k] / (tp[k] + fp[k])) if tp[k] + fp[k] else 0.0,
            recall=float(tp[k] / n[k]) if n[k] else 0.0,
            instances=int(n[k]),
        )
        for k, name in enumerate(data.labels)
    }
    total_tp, total_fp, total_n = int(tp.sum()), int(fp.sum()), int(n.sum())
    return DetectionMetrics(
        map50=map50,
        map50_95=map50_95,
        precision=total_tp / (total_tp + total_fp) if total_tp + total_fp else 0.0,
        recall=total_tp / total_n if total_n else 0.0,
        threshold=threshold,
        images=len(data.images),
        instances=total_n,
        per_class=per_class,
        per_image_tp=per_image_tp,
        per_image_n=per_image_n,
    )
