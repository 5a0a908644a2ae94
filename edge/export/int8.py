"""An int8 ONNX Runtime detector from an exported fp32 one: static QDQ quantisation, calibrated on frames of
the line (``seamline edge export --int8 --calibration-dir DIR``).

Weights are quantised per channel (int8), activations per tensor (uint8) from the ranges the calibration
frames give, which are pre-processed (and tiled) exactly as the edge runtime does. Only the convolutions and
matrix products are quantised; the transformer's softmax, normalisations and the box head stay in float.

An int8 model is not accepted on its say-so: its sidecar records ``quantization.accepted: null`` and the edge
runtime refuses to load it until ``seamline gate int8`` has scored it against the fp32 model on held-out data
and found it within the tolerance (1 point of mAP50 and of recall by default), writing the numbers there.
"""

from __future__ import annotations

import hashlib
import json
import logging
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge.detectors.meta import read_sidecar, sidecar_path
from seamline.errors import InputError
from seamline.optional import require

logger = logging.getLogger(__name__)
FRAME_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")
QUANTIZED_OPS = ["Conv", "MatMul", "Gemm"]


@dataclass
class Int8Result:
    path: Path
    size_bytes: int
    frames: int
    batches: int
    seconds: float


def int8_path(fp32: Path) -> Path:
    """Where the int8 model of ``detector.onnx`` goes: ``detector.int8.onnx``."""
    return fp32.with_name(f"{fp32.stem}.int8.onnx")


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def calibration_frames(folder: Path, limit: int) -> list[np.ndarray]:
    """Up to ``limit`` RGB frames from ``folder`` (sorted by name; unreadable files are an error)."""
    from PIL import Image, UnidentifiedImageError

    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"--calibration-dir {folder}: not a folder")
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in FRAME_SUFFIXES)[:limit]
    if not files:
        raise InputError(f"--calibration-dir {folder}: no frames ({', '.join(FRAME_SUFFIXES)})")
    frames = []
    for path in files:
        try:
            with Image.open(path) as image:
                frames.append(np.asarray(image.convert("RGB")))
        except (OSError, UnidentifiedImageError) as exc:
            raise InputError(f"calibration frame {path}: {exc}") from exc
    return frames


def network_inputs(fp32: Path, frames: list[np.ndarray]) -> Iterator[np.ndarray]:
    """Each frame as the edge runtime feeds it to the network: tiled as the model was trained, pre-processed,
    one (1, 3, S, S) input per tile."""
    from edge.detectors.onnx_runtime import OnnxRuntimeDetector, OnnxRuntimeDetectorConfig
    from edge.detectors.tiling import tile_windows

    detector = OnnxRuntimeDetector(OnnxRuntimeDetectorConfig(model=fp32), unchecked_int8=True)
    cols, rows = detector.tiles
    for frame in frames:
        pieces = [frame]
        if (cols, rows) != (1, 1):
            pieces = [
                np.ascontiguousarray(frame[y1:y2, x1:x2])
                for x1, y1, x2, y2 in tile_windows(
                    frame.shape[1], frame.shape[0], cols, rows, detector.meta.tile_overlap
                )
            ]
        for piece in pieces:
            yield detector.pre_process([piece])


def quantize_int8(
    fp32: Path, calibration_dir: Path, out: Path | None = None, *, max_frames: int = 64
) -> Int8Result:
    """Write the int8 model of ``fp32`` (and its sidecar, not yet accepted); see the module's text."""
    onnx = require("onnx", "int8 quantisation", extra="train")
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    started = time.perf_counter()
    fp32 = Path(fp32)
    meta = read_sidecar(fp32)
    out = Path(out) if out is not None else int8_path(fp32)
    frames = calibration_frames(calibration_dir, max_frames)
    input_name = onnx.load(str(fp32), load_external_data=False).graph.input[0].name
    batches = [{input_name: batch} for batch in network_inputs(fp32, frames)]

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._items = iter(batches)

        def get_next(self):  # type: ignore[no-untyped-def]
            return next(self._items, None)

    with tempfile.TemporaryDirectory() as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        quant_pre_process(str(fp32), str(prepared), skip_symbolic_shape=True)
        quantize_static(
            str(prepared),
            str(out),
            Reader(),
            quant_format=QuantFormat.QDQ,
            op_types_to_quantize=QUANTIZED_OPS,
            per_channel=True,
            weight_type=QuantType.QInt8,
            activation_type=QuantType.QUInt8,
            calibrate_method=CalibrationMethod.MinMax,
        )
    sidecar = json.loads(sidecar_path(fp32).read_text(encoding="utf-8"))
    sidecar["version"] = f"{meta.version}+int8"
    sidecar["quantization"] = {
        "method": "onnxruntime static QDQ: int8 weights per channel, uint8 activations, MinMax calibration",
        "ops": QUANTIZED_OPS,
        "fp32": fp32.name,
        "fp32_sha256": file_sha256(fp32),
        "calibration_frames": len(frames),
        "accepted": None,  # `seamline gate int8` writes its numbers here
    }
    sidecar_path(out).write_text(json.dumps(sidecar, indent=2) + "\n", encoding="utf-8")
    return Int8Result(out, out.stat().st_size, len(frames), len(batches), time.perf_counter() - started)
