"""A verified store made from the synthetic line, for the learning loop's tests: each defect (and each
distractor, as "normal") of a `seamline synth` folder becomes one garment whose crop is cut around it, with a
reviewer's verified label carrying the true type, severity and box, as if a person had checked it."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa

from cloud.records import CropRecord, GarmentRecord
from cloud.storage.audit import AuditStore
from cloud.storage.crop_store import CropStore
from cloud.storage.tables import verified_labels
from seamline.imaging import encode_jpeg, pad_box


def render_line(out: Path, garments: int, *, seed: int = 0, width: int = 640, height: int = 360) -> Path:
    """The synthetic line's garments in ``out``, as `seamline synth` writes them (few defect-free)."""
    from seamline.synth import SynthConfig, SyntheticLine
    from seamline.synth.dataset import write_dataset

    config = SynthConfig(width=width, height=height, seed=seed, defect_free_share=0.1)
    write_dataset(SyntheticLine(config), garments, out, progress=False)
    return out


def verified_from_line(
    store: AuditStore,
    crop_store: CropStore,
    folder: Path,
    *,
    normal: str = "normal",
    verified_at: datetime | None = None,
    prefix: str = "vg",
    limit: int | None = None,
    types: set[str] | None = None,
    normals_per_frame: int = 1,
    max_normals: int | None = None,
) -> list[tuple[str, str]]:
    """Record a verified garment per defect / distractor of ``folder``; returns (item_id, type) of each.

    ``types``: only defects of these types; ``normals_per_frame``: distractors kept per frame, as "normal",
    at most ``max_normals`` in all."""
    from cloud.learning.coco_data import read_rgb

    verified_at = verified_at or datetime.now(UTC)
    made: list[tuple[str, str]] = []
    labels = []
    for line in (folder / "truth.jsonl").read_text(encoding="utf-8").splitlines():
        rec = json.loads(line)
        views = {v["view_index"]: v["file_name"] for v in rec["views"]}
        regions = [
            (d["box"], d["type"], d["severity"])
            for d in rec["defects"]
            if d.get("visible", True) and (types is None or d["type"] in types)
        ]
        normals = sum(1 for _, t in made if t == normal)
        room = normals_per_frame if max_normals is None else min(normals_per_frame, max_normals - normals)
        regions += [(x["box"], normal, "none") for x in rec["distractors"][: max(0, room)]]
        if not regions:
            continue
        image = read_rgb(folder / views[0])
        h, w = image.shape[:2]
        for k, (box, type_id, severity) in enumerate(regions):
            item_id = f"{prefix}-{rec['item_id']}-{k}"[:128]
            x1, y1, x2, y2 = pad_box(box, width=w, height=h, pad=0.3, min_size=64)
            jpeg = encode_jpeg(image[y1:y2, x1:x2].copy(), 90)
            uri = crop_store.put(f"{item_id}/c0", jpeg, "jpeg")
            crop = CropRecord(
                "c0",
                0,
                tuple(float(v) for v in box),
                (float(x1), float(y1), float(x2), float(y2)),
                0.9,
                "defect",
                "jpeg",
                jpeg,
                x2 - x1,
                y2 - y1,
            )
            store.accept(
                GarmentRecord(
                    item_id=item_id,
                    site_id="site1",
                    line_id="line1",
                    station_id="st1",
                    agent_id="agent-1",
                    captured_at=verified_at,
                    deadline_at=None,
                    received_at=verified_at,
                    detector_version="demo-detector@2",
                    views=((0, w, h),),
                    crops=(crop,),
                ),
                {"c0": uri},
            )
            labels.append(
                {
                    "item_id": item_id,
                    "region_id": "r0",
                    "crop_id": "c0",
                    "view_index": 0,
                    "box": [float(v) for v in box],
                    "type": type_id,
                    "severity": severity,
                    "source": "review",
                    "reviewer_id": "alice",
                    "verified_at": verified_at,
                }
            )
            made.append((item_id, type_id))
            if limit is not None and len(made) >= limit:
                break
        if limit is not None and len(made) >= limit:
            break
    with store.engine.begin() as conn:
        conn.execute(sa.insert(verified_labels), labels)
    return made
