"""Detector speed: Seamline's ONNX Runtime path vs the seed's path, same weights, side by side in one process.

Seed's path: transformers' RT-DETR image processor -> PyTorch eager -> ``post_process_object_detection``.
Seamline's path: numpy pre-processing -> ONNX Runtime (CPU EP, graph optimisations) -> numpy decoding.
Goal: at least 3x per image, with the same boxes (|delta| < 1e-3 px... see the "max |dbox|" column).
Seamline int8: the same ONNX model quantised by ``seamline edge export --int8`` (static QDQ, calibrated on the
bench's frames), on the same path. Its boxes differ from fp32 by design: its accuracy is judged by
``seamline gate int8`` on held-out data with a trained model (docs/benchmarks.md), not by |dbox| here, and the
bench loads it without that check (random weights have no accuracy to keep).

Run: .venv/bin/python bench/detector_runtime.py [--size l] [--frame 640] [--iterations 8]

The model is RT-DETR built from config (random weights, conditioned as in seamline.modelzoo.tiny_rtdetr):
speed does not depend on the weights' values. Frames are synthetic-line garments.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from pathlib import Path

import numpy as np
from PIL import Image
from rich.console import Console
from rich.table import Table

from seamline.torch_compat import ensure_cpu_torch_compat

ensure_cpu_torch_compat()

import torch  # noqa: E402
from transformers import RTDetrForObjectDetection  # noqa: E402
from transformers.models.rt_detr.image_processing_pil_rt_detr import RTDetrImageProcessorPil  # noqa: E402

from edge.detectors.onnx_runtime import OnnxRuntimeDetector, OnnxRuntimeDetectorConfig  # noqa: E402
from edge.export.int8 import int8_path, quantize_int8  # noqa: E402
from edge.export.onnx_export import export_onnx  # noqa: E402
from seamline import envs  # noqa: E402
from seamline.modelzoo.tiny_rtdetr import build_tiny_rtdetr  # noqa: E402
from seamline.synth import SynthConfig, SyntheticLine  # noqa: E402

THRESHOLD = 0.25


class SeedPath:
    """The write-up's detector path, with the processor it used (the PIL one; the torchvision one is
    unavailable beside a CPU torch here)."""

    def __init__(self, checkpoint: Path) -> None:
        self.processor = RTDetrImageProcessorPil.from_pretrained(checkpoint)
        self.model = RTDetrForObjectDetection.from_pretrained(checkpoint).eval()

    def detect(self, images: list[np.ndarray], threshold: float):  # type: ignore[no-untyped-def]
        inputs = self.processor(images=images, return_tensors="pt")
        with torch.inference_mode():
            outputs = self.model(**inputs)
        sizes = [im.shape[:2] for im in images]
        return self.processor.post_process_object_detection(outputs, threshold=threshold, target_sizes=sizes)


def timed(fn, iterations: int) -> list[float]:  # type: ignore[no-untyped-def]
    fn()  # warm-up (allocations, lazy init)
    fn()
    times = []
    for _ in range(iterations):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def max_box_delta(seed_results, ours) -> tuple[float, int]:  # type: ignore[no-untyped-def]
    """Largest |coordinate difference| over detections matched as sets, and how many were compared."""
    worst, count = 0.0, 0
    for ref, det in zip(seed_results, ours):
        ref_boxes = ref["boxes"].numpy()
        assert len(ref_boxes) == len(det), f"{len(ref_boxes)} seed boxes vs {len(det)} ours"
        for box in ref_boxes:
            worst = max(worst, float(np.abs(det.boxes - box).max(axis=1).min()))
            count += 1
    return worst, count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=["tiny", "r18", "l"], default="l")
    parser.add_argument("--frame", default="640", help="frame size: 640 (640x640) or 720p (1280x720)")
    parser.add_argument("--iterations", type=int, default=8)
    parser.add_argument("--batches", default="1,4")
    args = parser.parse_args()

    cache = envs.SEAMLINE_CACHE_DIR / "bench" / f"rtdetr-{args.size}"
    if not (cache / "config.json").exists():
        build_tiny_rtdetr(cache, size=args.size)
    onnx_path = cache / "detector.onnx"
    if not onnx_path.exists():
        export_onnx(cache, onnx_path, version=f"rtdetr-{args.size}@bench")

    width, height = (640, 640) if args.frame == "640" else (1280, 720)
    line = SyntheticLine(SynthConfig(width=width, height=height, seed=3))
    frames = [np.ascontiguousarray(line.garment(i).views[0].image) for i in range(8)]

    int8_model = int8_path(onnx_path)
    if not int8_model.exists():
        calibration = cache / f"calibration-{args.frame}"
        calibration.mkdir(exist_ok=True)
        for i, frame in enumerate(frames):
            Image.fromarray(frame).save(calibration / f"{i}.png")
        quantize_int8(onnx_path, calibration)

    seed = SeedPath(cache)
    ours = OnnxRuntimeDetector(OnnxRuntimeDetectorConfig(model=onnx_path, score_threshold=THRESHOLD))
    ours_int8 = OnnxRuntimeDetector(
        OnnxRuntimeDetectorConfig(model=int8_model, score_threshold=THRESHOLD), unchecked_int8=True
    )
    # Same boxes: compare everything the seed path returns above a low threshold (random weights score low).
    check = frames[:4]
    seed_all = seed.detect(check, 0.05)
    ours.score_threshold, ours.top_k = 0.05, 300
    delta, compared = max_box_delta(seed_all, ours.detect(check))
    ours.score_threshold, ours.top_k = THRESHOLD, 100

    table = Table(
        title=f"RT-DETR-{args.size.upper()} detector, {width}x{height} frames -> "
        f"{seed.processor.size['height']}px input, "
        f"CPU ({os.cpu_count()} cores, torch threads {torch.get_num_threads()})"
    )
    for column in (
        "batch",
        "seed path ms/img (p50)",
        "Seamline ms/img (p50)",
        "speed-up",
        "goal >= 3x",
        "Seamline int8 ms/img (p50)",
        "int8 speed-up",
        "goal >= 3x (int8)",
        "max |dbox| px",
        "boxes compared",
    ):
        table.add_column(column, justify="right")
    for batch in (int(b) for b in args.batches.split(",")):
        images = frames[:batch]
        t_seed = timed(lambda images=images: seed.detect(images, THRESHOLD), args.iterations)
        t_ours = timed(lambda images=images: ours.detect(images), args.iterations)
        t_int8 = timed(lambda images=images: ours_int8.detect(images), args.iterations)
        p_seed = statistics.median(t_seed) / batch * 1000
        p_ours = statistics.median(t_ours) / batch * 1000
        p_int8 = statistics.median(t_int8) / batch * 1000
        table.add_row(
            str(batch),
            f"{p_seed:.1f}",
            f"{p_ours:.1f}",
            f"{p_seed / p_ours:.2f}x",
            "yes" if p_seed / p_ours >= 3 else "no",
            f"{p_int8:.1f}",
            f"{p_seed / p_int8:.2f}x",
            "yes" if p_seed / p_int8 >= 3 else "no",
            f"{delta:.1e}",
            str(compared),
        )
    Console(width=180).print(table)
    print(
        f"machine: {platform.processor() or platform.machine()}, {platform.platform()}; "
        f"onnxruntime providers {ours.providers}"
    )


if __name__ == "__main__":
    main()
