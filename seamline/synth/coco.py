"""Ground truth on disk: a COCO detection file and a truth.jsonl line per garment.

Image paths in both are relative to the data set folder (``images/<item_id>_v<k>.jpg``), the folder that
holds annotations.json: use it as the image root.

Both are built from plain records (``garment_record``) so that worker processes can send back a few
kilobytes of truth instead of images.
"""

from __future__ import annotations

from typing import Any

from seamline.config.taxonomy import Taxonomy
from seamline.synth.line import SynthGarment


def file_name(item_id: str, view_index: int, image_format: str) -> str:
    """Image file name of one view, relative to the dataset's images/ folder."""
    return f"{item_id}_v{view_index}.{image_format}"


def garment_record(garment: SynthGarment, image_format: str) -> dict[str, Any]:
    """The truth.jsonl record of a garment (JSON-ready)."""
    return {
        "item_id": garment.item_id,
        "index": garment.index,
        "garment_kind": garment.garment_kind,
        "views": [
            {
                "view_index": v.view_index,
                "camera": v.camera,
                "file_name": "images/" + file_name(garment.item_id, v.view_index, image_format),
            }
            for v in garment.views
        ],
        "defects": [
            {
                "type": d.type_id,
                "severity": d.severity.value,
                "view_index": d.view_index,
                "box": [round(c, 2) for c in d.box],
                "defect_index": d.defect_index,
                "size_cm": d.size_cm,
                "visible": d.visible,
            }
            for d in garment.defects
        ],
        "distractors": [
            {
                "kind": x.kind,
                "view_index": x.view_index,
                "box": [round(c, 2) for c in x.box],
                **({"text": x.text} if x.text else {}),
            }
            for x in garment.distractors
        ],
        "severities": [s.value for s in garment.severities],
        "expected_decision": garment.expected_decision.value,
    }


def categories(taxonomy: Taxonomy) -> list[dict[str, Any]]:
    """COCO categories: one per taxonomy type, id = taxonomy index + 1."""
    return [{"id": i + 1, "name": t, "supercategory": "defect"} for i, t in enumerate(taxonomy.type_ids)]


def coco_document(
    records: list[dict[str, Any]], taxonomy: Taxonomy, *, width: int, height: int, info: dict[str, Any]
) -> dict[str, Any]:
    """A COCO detection document for ``records`` (in garment order; ids follow that order)."""
    cat_ids = {t: i + 1 for i, t in enumerate(taxonomy.type_ids)}
    images, annotations = [], []
    for rec in records:
        ids = {}
        for view in rec["views"]:
            image_id = len(images) + 1
            ids[view["view_index"]] = image_id
            images.append(
                {
                    "id": image_id,
                    "file_name": view["file_name"],
                    "width": width,
                    "height": height,
                    "item_id": rec["item_id"],
                    "view_index": view["view_index"],
                    "camera": view["camera"],
                }
            )
        for d in rec["defects"]:
            x1, y1, x2, y2 = d["box"]
            w, h = round(x2 - x1, 2), round(y2 - y1, 2)
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": ids[d["view_index"]],
                    "category_id": cat_ids[d["type"]],
                    "bbox": [x1, y1, w, h],
                    "area": round(w * h, 2),
                    "iscrowd": 0,
                    "attributes": {"severity": d["severity"], "type": d["type"], "visible": d["visible"]},
                }
            )
    return {
        "info": info,
        "licenses": [],
        "images": images,
        "annotations": annotations,
        "categories": categories(taxonomy),
    }
