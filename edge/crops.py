"""From detections to the crops that leave the edge: padded, clamped, merged, capped, JPEG-encoded.

Only these crops travel to the cloud (a few kB each instead of whole frames).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from pydantic import Field

from edge.detectors.base import Detections
from seamline.config.base import StrictModel
from seamline.imaging import encode_jpeg, pad_box


class CropConfig(StrictModel):
    """How candidate regions become crops."""

    padding: float = Field(
        default=0.15,
        ge=0.0,
        le=2.0,
        title="Padding",
        description="Context added on each side, as a share of the box size.",
    )
    min_size: int = Field(
        default=64,
        ge=8,
        le=1024,
        title="Minimum size",
        description="Smallest crop side in pixels (small defects get context).",
    )
    merge_iou: float = Field(
        default=0.5,
        ge=0.0,
        le=1.0,
        title="Merge IoU",
        description="Boxes of one view overlapping at least this much (or one inside the other) "
        "become one crop.",
    )
    max_per_garment: int = Field(
        default=16,
        ge=1,
        le=256,
        title="Cap per garment",
        description="Most crops sent for one garment (highest scores kept).",
    )
    jpeg_quality: int = Field(
        default=90, ge=30, le=100, title="JPEG quality", description="Crop encoding quality."
    )


@dataclass(frozen=True)
class Crop:
    """One candidate defect region ready for the uplink."""

    crop_id: str
    view_index: int
    box: tuple[float, float, float, float]  # detected region, source pixels
    crop_box: tuple[int, int, int, int]  # padded region cut out, source pixels
    score: float
    label: str
    jpeg: bytes


def _contains(outer: np.ndarray, inner: np.ndarray) -> bool:
    return bool(
        outer[0] <= inner[0] and outer[1] <= inner[1] and outer[2] >= inner[2] and outer[3] >= inner[3]
    )


def merge_regions(
    boxes: np.ndarray, scores: np.ndarray, labels: np.ndarray, merge_iou: float
) -> list[tuple[np.ndarray, float, int]]:
    """Greedy merge, highest score first: a box overlapping a kept one enough (or nested) widens it."""
    from seamline.imaging import box_iou

    kept: list[list] = []
    for i in np.argsort(-scores, kind="stable"):
        box = boxes[i].astype(np.float64)
        for entry in kept:
            if (
                box_iou(tuple(entry[0]), tuple(box)) >= merge_iou
                or _contains(entry[0], box)
                or _contains(box, entry[0])
            ):
                entry[0] = np.concatenate(
                    [np.minimum(entry[0][:2], box[:2]), np.maximum(entry[0][2:], box[2:])]
                )
                break
        else:
            kept.append([box, float(scores[i]), int(labels[i])])
    return [(box, score, label) for box, score, label in kept]


def make_crops(
    views: list[np.ndarray], detections: list[Detections], label_names: tuple[str, ...], config: CropConfig
) -> list[Crop]:
    """Crops for one garment, highest detector score first, at most ``config.max_per_garment``."""
    candidates = []
    for view_index, (image, found) in enumerate(zip(views, detections)):
        if len(found) == 0:
            continue
        height, width = image.shape[:2]
        boxes = found.boxes.copy()
        boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, width)
        boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, height)
        valid = (boxes[:, 2] - boxes[:, 0] >= 1) & (boxes[:, 3] - boxes[:, 1] >= 1)
        for box, score, label in merge_regions(
            boxes[valid], found.scores[valid], found.labels[valid], config.merge_iou
        ):
            candidates.append((score, view_index, box, label))
    candidates.sort(key=lambda c: -c[0])
    crops = []
    for n, (score, view_index, box, label) in enumerate(candidates[: config.max_per_garment]):
        image = views[view_index]
        height, width = image.shape[:2]
        x1, y1, x2, y2 = pad_box(
            tuple(box), width=width, height=height, pad=config.padding, min_size=config.min_size
        )
        crops.append(
            Crop(
                crop_id=f"v{view_index}-c{n}",
                view_index=view_index,
                box=tuple(float(v) for v in box),  # type: ignore[arg-type]
                crop_box=(x1, y1, x2, y2),
                score=float(score),
                label=label_names[label] if label < len(label_names) else str(label),
                jpeg=encode_jpeg(np.ascontiguousarray(image[y1:y2, x1:x2]), config.jpeg_quality),
            )
        )
    return crops


def view_crops(views: list[np.ndarray], top_scores: list[float], max_side: int, quality: int) -> list[Crop]:
    """Whole views as crops, downscaled to ``max_side``: an audit sample of a garment passed at the edge
    (GARMENT_PURPOSE_AUDIT_PASSED). Box and crop box are the full view in its own pixels; the score is the
    best candidate's in that view (below the threshold, or the garment would not have passed)."""
    crops = []
    for index, view in enumerate(views):
        height, width = view.shape[:2]
        scale = min(1.0, max_side / max(height, width))
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        small = view if scale >= 1.0 else cv2.resize(view, size, interpolation=cv2.INTER_AREA)
        score = float(top_scores[index]) if index < len(top_scores) else 0.0
        jpeg = encode_jpeg(np.ascontiguousarray(small), quality)
        whole = (0, 0, width, height)
        crops.append(
            Crop(f"view{index}", index, (0.0, 0.0, float(width), float(height)), whole, score, "view", jpeg)
        )
    return crops
