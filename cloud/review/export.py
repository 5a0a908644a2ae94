"""Export the verified store for training and relabelling: COCO (detector), JSONL (classifier), Label Studio.

Only crops leave the edge, so the cloud holds crop pixels, not whole frames. Every export is therefore built
on crop images: each verified crop is written once under ``images/``, and every verified defect box of the
same view that overlaps it (the crop's own box and boxes reviewers drew for missed defects) becomes an
annotation in the crop's pixels. A drawn box that overlaps no crop has no pixels in the cloud; it is counted
in the summary (``labels_without_pixels``), not silently dropped.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from cloud.classifiers.answer import target_for
from cloud.storage.crop_store import CropStore
from cloud.storage.tables import crops, golden_items, verified_labels
from seamline.config.taxonomy import Taxonomy
from seamline.errors import InputError

FORMATS = ("coco", "jsonl", "labelstudio")
_EXT = {"jpeg": "jpg", "png": "png", "webp": "webp"}


class ExportError(InputError):
    """An export cannot be written as asked."""


@dataclass
class ExportSummary:
    format: str
    path: str
    images: int = 0
    labels: int = 0
    annotations: int = 0
    labels_without_pixels: int = 0


def export_verified(
    engine: sa.Engine,
    crop_store: CropStore,
    taxonomy: Taxonomy,
    out: Path,
    fmt: str,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    items: set[str] | None = None,
) -> ExportSummary:
    """Write the verified labels (verified between ``since`` and ``until``) to folder ``out`` in ``fmt``.

    Garments of a golden set (cloud/learning/golden.py) are left out, so no training export holds them;
    ``items`` exports exactly those garments instead (how the golden set itself is written).
    """
    if fmt not in FORMATS:
        raise ExportError(f"format {fmt!r}: choose one of {', '.join(FORMATS)}")
    labels = _labels(engine, since, until, items)
    crop_rows = _crops(engine, {label["item_id"] for label in labels})
    out = Path(out)
    (out / "images").mkdir(parents=True, exist_ok=True)
    summary = ExportSummary(fmt, str(out), labels=len(labels))

    by_view: dict[tuple[str, int], list[dict[str, Any]]] = defaultdict(list)
    for label in labels:
        by_view[(label["item_id"], label["view_index"])].append(label)
    images: list[dict[str, Any]] = []  # one per verified crop: file, size, its own label, boxes inside it
    covered: set[tuple[str, str]] = set()
    for label in labels:
        crop = crop_rows.get((label["item_id"], label["crop_id"])) if label["crop_id"] else None
        if crop is None:
            continue
        file_name = f"images/{label['item_id']}__{label['crop_id']}.{_EXT.get(crop['encoding'], 'img')}"
        (out / file_name).write_bytes(crop_store.get(crop["uri"]))
        boxes = []
        for other in by_view[(label["item_id"], label["view_index"])]:
            if other["type"] == taxonomy.normal.id:
                continue
            inside = _to_crop_pixels(other["box"], crop)
            if inside is not None:
                boxes.append((other, inside))
                covered.add((other["item_id"], other["region_id"]))
        images.append(
            {
                "file_name": file_name,
                "width": crop["width"],
                "height": crop["height"],
                "label": label,
                "boxes": boxes,
                "detector_score": crop["detector_score"],
            }
        )
    summary.images = len(images)
    summary.labels_without_pixels = sum(
        1
        for label in labels
        if label["crop_id"] is None and (label["item_id"], label["region_id"]) not in covered
    )
    summary.annotations = sum(len(i["boxes"]) for i in images)

    if fmt == "coco":
        _write_coco(out, images, taxonomy)
    elif fmt == "jsonl":
        _write_jsonl(out, images, taxonomy)
    else:
        _write_label_studio(out, images, taxonomy)
    (out / "export.json").write_text(json.dumps(asdict(summary), indent=2) + "\n", encoding="utf-8")
    return summary


def _labels(
    engine: sa.Engine, since: datetime | None, until: datetime | None, items: set[str] | None
) -> list[dict[str, Any]]:
    query = sa.select(verified_labels).order_by(
        verified_labels.c.verified_at, verified_labels.c.item_id, verified_labels.c.region_id
    )
    if items is None:
        query = query.where(verified_labels.c.item_id.not_in(sa.select(golden_items.c.item_id)))
    if since is not None:
        query = query.where(verified_labels.c.verified_at >= since)
    if until is not None:
        query = query.where(verified_labels.c.verified_at < until)
    with engine.connect() as conn:
        rows = [dict(r) for r in conn.execute(query).mappings()]
    return rows if items is None else [r for r in rows if r["item_id"] in items]


def _crops(engine: sa.Engine, item_ids: set[str]) -> dict[tuple[str, str], dict[str, Any]]:
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    ids = sorted(item_ids)
    with engine.connect() as conn:
        for start in range(0, len(ids), 500):
            for r in conn.execute(
                sa.select(crops).where(crops.c.item_id.in_(ids[start : start + 500]))
            ).mappings():
                rows[(r["item_id"], r["crop_id"])] = dict(r)
    return rows


def _to_crop_pixels(box: list[float], crop: dict[str, Any]) -> tuple[float, float, float, float] | None:
    """``box`` (view pixels) clipped to the crop and scaled to the crop image's pixels.

    None if they barely meet.
    """
    cx1, cy1, cx2, cy2 = crop["crop_box"]
    x1, y1, x2, y2 = max(box[0], cx1), max(box[1], cy1), min(box[2], cx2), min(box[3], cy2)
    own_area = max(1e-9, (box[2] - box[0]) * (box[3] - box[1]))
    if x2 <= x1 or y2 <= y1 or (x2 - x1) * (y2 - y1) < 0.25 * own_area:
        return None
    sx, sy = crop["width"] / (cx2 - cx1), crop["height"] / (cy2 - cy1)
    return ((x1 - cx1) * sx, (y1 - cy1) * sy, (x2 - cx1) * sx, (y2 - cy1) * sy)


def _write_coco(out: Path, images: list[dict[str, Any]], taxonomy: Taxonomy) -> None:
    category = {t: i + 1 for i, t in enumerate(taxonomy.type_ids)}  # the same ids as `seamline synth`
    coco: dict[str, Any] = {
        "info": {"description": "Seamline verified store (crops)", "version": "1"},
        "images": [],
        "annotations": [],
        "categories": [{"id": i, "name": t, "supercategory": "defect"} for t, i in category.items()],
    }
    for image_id, image in enumerate(images, 1):
        coco["images"].append(
            {
                "id": image_id,
                "file_name": image["file_name"],
                "width": image["width"],
                "height": image["height"],
            }
        )
        for label, (x1, y1, x2, y2) in image["boxes"]:
            coco["annotations"].append(
                {
                    "id": len(coco["annotations"]) + 1,
                    "image_id": image_id,
                    "category_id": category[label["type"]],
                    "bbox": [round(x1, 2), round(y1, 2), round(x2 - x1, 2), round(y2 - y1, 2)],
                    "area": round((x2 - x1) * (y2 - y1), 2),
                    "iscrowd": 0,
                    "attributes": {"severity": label["severity"], "reviewer_id": label["reviewer_id"]},
                }
            )
    (out / "annotations.json").write_text(json.dumps(coco), encoding="utf-8")


def _write_jsonl(out: Path, images: list[dict[str, Any]], taxonomy: Taxonomy) -> None:
    """The format ``seamline train classifier --data export.jsonl`` reads: image path and target answer."""
    with open(out / "crops.jsonl", "w", encoding="utf-8") as handle:
        for image in images:
            label = image["label"]
            target = target_for(taxonomy, label["type"], label["severity"])
            record = {
                "image": image["file_name"],
                "target": target,
                "item_id": label["item_id"],
                "crop_id": label["crop_id"],
                "reviewer_id": label["reviewer_id"],
                "verified_at": label["verified_at"].isoformat(),
                # how sure the detector was of the region: the gate's routing replay needs it (the policy's
                # detector veto and auto-reject floor read it)
                "detector_score": image["detector_score"],
            }
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")


def _write_label_studio(out: Path, images: list[dict[str, Any]], taxonomy: Taxonomy) -> None:
    """Label Studio tasks (JSON import) with the verified boxes as annotations.

    Also writes the matching label config.
    """
    tasks = []
    for image in images:
        width, height = image["width"], image["height"]
        result = []
        for n, (label, (x1, y1, x2, y2)) in enumerate(image["boxes"], 1):
            region = f"{label['region_id']}-{n}"[:32]
            geometry = {
                "x": 100 * x1 / width,
                "y": 100 * y1 / height,
                "width": 100 * (x2 - x1) / width,
                "height": 100 * (y2 - y1) / height,
                "rotation": 0,
            }
            common = {
                "id": region,
                "to_name": "image",
                "original_width": width,
                "original_height": height,
                "image_rotation": 0,
            }
            result.append(
                {
                    **common,
                    "from_name": "defect",
                    "type": "rectanglelabels",
                    "value": {**geometry, "rectanglelabels": [label["type"]]},
                }
            )
            result.append(
                {
                    **common,
                    "from_name": "severity",
                    "type": "choices",
                    "value": {**geometry, "choices": [label["severity"]]},
                }
            )
        label = image["label"]
        tasks.append(
            {
                "data": {
                    "image": image["file_name"],
                    "item_id": label["item_id"],
                    "crop_id": label["crop_id"],
                    "crop_type": label["type"],
                },
                "annotations": [
                    {"result": result, "completed_by": label["reviewer_id"], "ground_truth": True}
                ],
            }
        )
    (out / "tasks.json").write_text(json.dumps(tasks, indent=1), encoding="utf-8")
    choices = "".join(f'    <Label value="{t}"/>\n' for t in taxonomy.type_ids)
    (out / "label_config.xml").write_text(
        '<View>\n  <Image name="image" value="$image"/>\n  <RectangleLabels name="defect" toName="image">\n'
        f'{choices}  </RectangleLabels>\n  <Choices name="severity" toName="image" perRegion="true">\n'
        '    <Choice value="minor"/>\n    <Choice value="moderate"/>\n    <Choice value="severe"/>\n'
        "  </Choices>\n</View>\n",
        encoding="utf-8",
    )
