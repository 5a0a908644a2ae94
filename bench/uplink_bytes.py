"""Bytes per garment sent edge -> cloud (crops only) against uploading the full frames. Goal: at most 1/10.

Run: .venv/bin/python bench/uplink_bytes.py [--garments 200]

Two rows per view count, by where the regions come from: the synthetic line's true defect boxes (what a
perfect detector finds), and the shipped demo detector's own detections (models/demo/detector on ONNX Runtime
at the edge's 0.25 threshold: its misses send nothing, its false alarms send crops). A garment with no region
passes at the edge and sends nothing. Both sides encode JPEG at the same quality (90). The crop side is
the whole serialized ``Garment`` message (protobuf framing, ids, boxes, scores included), built by the agent's
own code.

The audit of passed garments (edge.audit: a share of the garments the edge passes itself sends its views,
downscaled, for a blind review of what the detector missed) adds bytes: measured with the agent's own
``view_crops`` at its defaults (640 px, JPEG q80) and shown per garment at the default 1 % share.
"""

from __future__ import annotations

import argparse
import time
from datetime import timedelta
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from edge.config import PassedAuditConfig
from edge.crops import CropConfig, make_crops, view_crops
from edge.detectors.base import Detections
from edge.uplink.convert import garment_message
from seamline.clock import utcnow
from seamline.imaging import encode_jpeg
from seamline.inspection.v1 import inspection_pb2 as pb
from seamline.synth import SynthConfig, SyntheticLine

QUALITY = 90
DEMO_DETECTOR = Path(__file__).resolve().parents[1] / "models" / "demo" / "detector" / "detector.onnx"


def _message(g, images: list[np.ndarray], crops: list, purpose: int = pb.GARMENT_PURPOSE_INSPECT):  # type: ignore[no-untyped-def]
    """The whole Garment message the agent would send for synthetic garment ``g``."""
    now = utcnow()
    return garment_message(
        item_id=g.item_id,
        site_id="site1",
        line_id="line1",
        station_id="st1",
        captured_at=now,
        deadline_at=now + timedelta(seconds=3),
        view_sizes=[im.shape[:2] for im in images],
        camera_ids=[v.camera for v in g.views],
        crops=crops,
        detector_version="rtdetr@bench",
        purpose=purpose,
    )


def measure(views: int, garments: int, detector=None) -> dict[str, float]:  # type: ignore[no-untyped-def]
    """``detector``: a DetectorRuntime whose detections are the regions (None: the true defect boxes)."""
    line = SyntheticLine(SynthConfig(views=views, seed=7))
    crop_config = CropConfig(jpeg_quality=QUALITY)
    full = crops_total = crops_count = regions = sent_garments = 0
    audit = PassedAuditConfig()
    audit_total = passed = 0
    for i in range(garments):
        g = line.garment(i)
        images = [np.ascontiguousarray(v.image) for v in g.views]
        full += sum(len(encode_jpeg(im, QUALITY)) for im in images)
        if detector is not None:
            detections = detector.detect(images)
        else:
            detections = []
            for k in range(len(images)):
                boxes = [d.box for d in g.defects if d.view_index == k]
                detections.append(
                    Detections(
                        np.asarray(boxes, np.float32).reshape(-1, 4),
                        np.full(len(boxes), 0.9, np.float32),
                        np.zeros(len(boxes), np.int64),
                    )
                )
        regions += sum(len(d.boxes) for d in detections)
        crops = make_crops(images, detections, ("defect",), crop_config)
        if not crops:  # passed at the edge: what one audit sample of it costs
            views_sent = view_crops(images, [0.0] * len(images), audit.view_max_side, audit.jpeg_quality)
            audit_total += _message(g, images, views_sent, pb.GARMENT_PURPOSE_AUDIT_PASSED).ByteSize()
            passed += 1
            continue
        crops_total += _message(g, images, crops).ByteSize()
        crops_count += len(crops)
        sent_garments += 1
    return {
        "full": full / garments,
        "crops": crops_total / garments,
        "crops_sent_only": crops_total / max(sent_garments, 1),
        "sent_share": sent_garments / garments,
        "regions_per_image": regions / (garments * views),
        "crops_per_sent": crops_count / max(sent_garments, 1),
        "audit_sample": audit_total / max(passed, 1),
        # per garment on the line at the default share: passed share x share x sample size
        "audit_per_garment": audit.passed_share * audit_total / garments,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--garments", type=int, default=200)
    args = parser.parse_args()
    table = Table(
        title=f"Bytes per garment edge -> cloud, 1280x720, JPEG q{QUALITY}, "
        f"{args.garments} synthetic garments"
    )
    from edge.detectors.onnx_runtime import OnnxRuntimeDetector, OnnxRuntimeDetectorConfig

    shipped = OnnxRuntimeDetector(OnnxRuntimeDetectorConfig(model=DEMO_DETECTOR, score_threshold=0.25))
    for column in (
        "views",
        "regions from",
        "full frames (B)",
        "Seamline crops (B)",
        "ratio",
        "goal <= 0.10",
        "per garment sent (B)",
        "garments sent",
        "regions/image",
        "crops/garment sent",
        "audit sample of a passed garment (B)",
        "audit at 1 % (B/garment)",
        "ratio with audit",
    ):
        table.add_column(column, justify="right")
    started = time.perf_counter()
    for views, source, detector in (
        (1, "true boxes", None),
        (1, shipped.meta.version, shipped),
        (4, "true boxes", None),
        (4, shipped.meta.version, shipped),
    ):
        r = measure(views, args.garments, detector)
        ratio = r["crops"] / r["full"]
        table.add_row(
            str(views),
            source,
            f"{r['full']:,.0f}",
            f"{r['crops']:,.0f}",
            f"{ratio:.4f} (1/{1 / ratio:.0f})",
            "yes" if ratio <= 0.10 else "NO",
            f"{r['crops_sent_only']:,.0f}",
            f"{r['sent_share']:.0%}",
            f"{r['regions_per_image']:.2f}",
            f"{r['crops_per_sent']:.2f}",
            f"{r['audit_sample']:,.0f}",
            f"{r['audit_per_garment']:,.0f}",
            f"1/{r['full'] / (r['crops'] + r['audit_per_garment']):.0f}",
        )
    Console(width=180).print(table)
    print(f"({time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
