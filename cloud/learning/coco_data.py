"""COCO detection data for training and evaluation: load, map categories to labels, split by garment.

A split never separates the views of one garment: the held-out share is chosen per ``item_id`` (the
synthetic line's images carry it; for a user's COCO file without it, per image) by a stable hash, so a re-run
or a resumed run holds out the same images.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from seamline.errors import InputError


class DatasetError(InputError):
    """A data set is missing, unreadable or inconsistent."""


@dataclass(frozen=True)
class CocoImage:
    image_id: int
    path: Path
    group: str  # garment id, or the file name: what a split keeps together
    boxes: np.ndarray  # (N, 4) float32 xyxy pixels
    labels: np.ndarray  # (N,) int64 label ids
    width: int
    height: int


@dataclass(frozen=True)
class CocoData:
    images: list[CocoImage]
    labels: tuple[str, ...]  # label names by id
    category_of_label: dict[int, int]  # label id -> COCO category id (for evaluation output)
    source: Path

    def subset(self, keep: list[CocoImage]) -> CocoData:
        return CocoData(keep, self.labels, self.category_of_label, self.source)

    def per_label_counts(self) -> dict[str, int]:
        counts = np.bincount(
            np.concatenate([img.labels for img in self.images] or [np.zeros(0, np.int64)]),
            minlength=len(self.labels),
        )
        return {name: int(counts[i]) for i, name in enumerate(self.labels)}


def load_coco(annotations: Path, *, image_root: Path | None = None, class_agnostic: bool = False) -> CocoData:
    """Read a COCO detection file.

    Args:
        annotations: the COCO JSON (``seamline synth`` writes ``annotations.json``).
        image_root: folder the ``file_name`` entries are relative to; default the JSON's folder.
        class_agnostic: map every category to the single label ``defect`` (the edge detector's role is to find
            candidate regions; the cloud classifier names the type).
    """
    annotations = Path(annotations)
    if annotations.is_dir():
        annotations = annotations / "annotations.json"
    try:
        doc = json.loads(annotations.read_text(encoding="utf-8"))
        categories = sorted(doc["categories"], key=lambda c: c["id"])
        raw_images, raw_annotations = doc["images"], doc.get("annotations", [])
    except FileNotFoundError:
        raise DatasetError(f"{annotations}: no such COCO file") from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DatasetError(f"{annotations}: not a COCO detection file: {exc}") from exc
    if not categories:
        raise DatasetError(f"{annotations}: no categories")
    root = Path(image_root) if image_root else annotations.parent
    if class_agnostic:
        labels: tuple[str, ...] = ("defect",)
        label_of = {c["id"]: 0 for c in categories}
        category_of_label = {0: 1}
    else:
        labels = tuple(c["name"] for c in categories)
        label_of = {c["id"]: i for i, c in enumerate(categories)}
        category_of_label = {i: c["id"] for i, c in enumerate(categories)}
    per_image: dict[int, list[tuple[list[float], int]]] = {}
    for ann in raw_annotations:
        if ann.get("iscrowd"):
            continue
        try:
            x, y, w, h = (float(v) for v in ann["bbox"])
            label = label_of[ann["category_id"]]
        except (KeyError, ValueError, TypeError) as exc:
            raise DatasetError(f"{annotations}: annotation {ann.get('id')}: {exc!r}") from exc
        if w <= 0 or h <= 0:
            continue
        per_image.setdefault(ann["image_id"], []).append(([x, y, x + w, y + h], label))
    images = []
    for img in raw_images:
        anns = per_image.get(img["id"], [])
        images.append(
            CocoImage(
                image_id=int(img["id"]),
                path=root / img["file_name"],
                group=str(img.get("item_id") or img["file_name"]),
                boxes=np.array([a[0] for a in anns], np.float32).reshape(-1, 4),
                labels=np.array([a[1] for a in anns], np.int64),
                width=int(img["width"]),
                height=int(img["height"]),
            )
        )
    if not images:
        raise DatasetError(f"{annotations}: no images")
    return CocoData(images, labels, category_of_label, annotations)


def _held_out(group: str, fraction: float, salt: str) -> bool:
    digest = hashlib.sha256(f"{salt}:{group}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < fraction


def split(data: CocoData, val_fraction: float, *, salt: str = "seamline") -> tuple[CocoData, CocoData]:
    """(train, held-out) with about ``val_fraction`` of the garments held out."""
    if not 0.0 < val_fraction < 1.0:
        raise ValueError("val_fraction must be between 0 and 1")
    val = [img for img in data.images if _held_out(img.group, val_fraction, salt)]
    train = [img for img in data.images if not _held_out(img.group, val_fraction, salt)]
    if not train or not val:
        raise DatasetError(f"{data.source}: too few garments to hold out {val_fraction:.0%}")
    return data.subset(train), data.subset(val)


def read_rgb(path: Path) -> np.ndarray:
    """An image file as RGB uint8; a clear error for a missing or corrupt file."""
    raw = np.fromfile(path, np.uint8) if path.exists() else None
    image = cv2.imdecode(raw, cv2.IMREAD_COLOR) if raw is not None and raw.size else None
    if image is None:
        raise DatasetError(f"{path}: missing or not a decodable image")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def repeat_factors(data: CocoData, threshold: float) -> np.ndarray:
    """LVIS repeat-factor sampling: images with rare labels are drawn more often.

    For each label with image frequency f (share of images that contain it), r = max(1, sqrt(threshold / f));
    an image repeats by the largest r among its labels. Images without defects keep 1. ``threshold`` 0 gives
    uniform sampling.
    """
    n = len(data.images)
    if threshold <= 0 or n == 0:
        return np.ones(n)
    contains = np.zeros(len(data.labels))
    for img in data.images:
        contains[np.unique(img.labels)] += 1
    freq = contains / n
    per_label = np.where(freq > 0, np.maximum(1.0, np.sqrt(threshold / np.maximum(freq, 1e-12))), 1.0)
    return np.array(
        [per_label[np.unique(img.labels)].max() if img.labels.size else 1.0 for img in data.images]
    )
