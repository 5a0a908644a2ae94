"""Write a synthetic data set: images, a COCO file and truth.jsonl, in one process or a pool.

The output is the same whatever the number of workers: every garment is a pure function of the line's
config and its index, ids are assigned in index order, and records are gathered in that order.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from seamline.config.synth import SynthConfig
from seamline.config.taxonomy import Taxonomy
from seamline.synth.coco import coco_document, file_name, garment_record
from seamline.synth.line import SyntheticLine

log = logging.getLogger(__name__)

IMAGE_FORMATS = {"jpg": "jpg", "jpeg": "jpg", "png": "png"}


@dataclass(frozen=True)
class DatasetSummary:
    """What ``write_dataset`` wrote and how fast."""

    out_dir: Path
    garments: int
    images: int
    annotations: int
    per_type: dict[str, int]  # annotations per defect type (every view counts)
    decisions: dict[str, int]  # garments per expected decision
    seconds: float
    annotations_path: Path = field(repr=False)
    truth_path: Path = field(repr=False)

    @property
    def garments_per_s(self) -> float:
        return self.garments / self.seconds if self.seconds > 0 else float("inf")

    @property
    def images_per_s(self) -> float:
        return self.images / self.seconds if self.seconds > 0 else float("inf")


class _Writer:
    """Renders garments and writes their images; one per process."""

    def __init__(self, line: SyntheticLine, images_dir: Path, image_format: str, quality: int) -> None:
        self.line = line
        self.images_dir = images_dir
        self.image_format = image_format
        self.params = (
            [cv2.IMWRITE_JPEG_QUALITY, quality] if image_format == "jpg" else [cv2.IMWRITE_PNG_COMPRESSION, 1]
        )

    def __call__(self, index: int) -> dict[str, Any]:
        garment = self.line.garment(index)
        for view in garment.views:
            path = self.images_dir / file_name(garment.item_id, view.view_index, self.image_format)
            ok, buf = cv2.imencode(
                "." + self.image_format, cv2.cvtColor(view.image, cv2.COLOR_RGB2BGR), self.params
            )
            if not ok:
                raise OSError(f"could not encode {path.name}")
            path.write_bytes(buf.tobytes())
        return garment_record(garment, self.image_format)


_WORKER: _Writer | None = None


def _init_worker(config: SynthConfig, taxonomy: Taxonomy, *args: Any) -> None:
    global _WORKER
    cv2.setNumThreads(1)  # one process per core already; OpenCV's own threads would only contend
    _WORKER = _Writer(SyntheticLine(config, taxonomy), *args)


def _work(index: int) -> dict[str, Any]:
    assert _WORKER is not None
    return _WORKER(index)


def write_dataset(
    line: SyntheticLine,
    garments: int,
    out_dir: Path,
    *,
    workers: int = 0,
    image_format: str = "jpg",
    quality: int = 92,
    progress: bool = True,
) -> DatasetSummary:
    """Render garments 0..``garments``-1 of ``line`` into ``out_dir``.

    Args:
        line: the synthetic line (its config and taxonomy travel to the workers).
        garments: how many garments.
        out_dir: folder for ``images/``, ``annotations.json`` (COCO) and ``truth.jsonl``.
        workers: processes to render in; 0 renders in this process.
        image_format: ``jpg`` (or ``jpeg``) or ``png``.
        quality: JPEG quality, 1-100.
        progress: show a progress bar.

    Returns:
        A summary with counts and timing.
    """
    if garments < 1:
        raise ValueError("garments must be at least 1")
    if image_format.lower() not in IMAGE_FORMATS:
        raise ValueError(f"image format must be one of {', '.join(IMAGE_FORMATS)}, not {image_format!r}")
    if not 1 <= quality <= 100:
        raise ValueError("quality must be between 1 and 100")
    if workers < 0:
        raise ValueError("workers must be >= 0")
    fmt = IMAGE_FORMATS[image_format.lower()]
    out_dir = Path(out_dir)
    images_dir = out_dir / "images"
    images_dir.mkdir(parents=True, exist_ok=True)
    args = (images_dir, fmt, quality)
    start = time.perf_counter()
    records: list[dict[str, Any]] = []
    bar = Progress(
        TextColumn("synth"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(), disable=not progress
    )
    with bar:
        task = bar.add_task("garments", total=garments)
        if workers == 0:
            writer = _Writer(line, *args)
            for i in range(garments):
                records.append(writer(i))
                bar.advance(task)
        else:
            ctx = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(
                workers,
                mp_context=ctx,
                initializer=_init_worker,
                initargs=(line.config, line.taxonomy, *args),
            ) as pool:
                for rec in pool.map(
                    _work, range(garments), chunksize=max(1, min(16, garments // (workers * 8)))
                ):
                    records.append(rec)
                    bar.advance(task)
    c = line.config
    info = {
        "description": "Seamline synthetic conveyor line",
        "version": "1",
        "seed": c.seed,
        "views": c.views,
        "px_per_cm": round(c.px_per_cm, 4),
        "site_id": c.site_id,
        "line_id": c.line_id,
        "image_root": ".",  # file names are relative to this file's folder
    }
    doc = coco_document(records, line.taxonomy, width=c.width, height=c.height, info=info)
    annotations_path = out_dir / "annotations.json"
    annotations_path.write_text(json.dumps(doc))
    truth_path = out_dir / "truth.jsonl"
    with truth_path.open("w") as f:
        for rec in records:
            f.write(json.dumps(rec) + "\n")
    seconds = time.perf_counter() - start
    per_type = Counter(a["attributes"]["type"] for a in doc["annotations"])
    decisions = Counter(r["expected_decision"] for r in records)
    log.info(
        "synth wrote %d garments, %d images, %d annotations to %s in %.1f s",
        garments,
        len(doc["images"]),
        len(doc["annotations"]),
        out_dir,
        seconds,
    )
    return DatasetSummary(
        out_dir=out_dir,
        garments=garments,
        images=len(doc["images"]),
        annotations=len(doc["annotations"]),
        per_type={t: per_type.get(t, 0) for t in line.taxonomy.type_ids},
        decisions=dict(decisions),
        seconds=seconds,
        annotations_path=annotations_path,
        truth_path=truth_path,
    )
