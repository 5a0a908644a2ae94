"""Build a TensorRT engine from the exported ONNX detector: fp16, or int8 calibrated on a folder of images.

Runs where the engine will run (a Jetson builds its own engine: engines are specific to GPU and TensorRT
version). A timing cache makes rebuilds fast. Without TensorRT it says what to install.
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edge.detectors.meta import read_sidecar
from edge.detectors.processing import preprocess
from edge.detectors.tensorrt_runtime import _check, _import_tensorrt
from edge.export.onnx_export import ExportError
from seamline.errors import InputError

logger = logging.getLogger(__name__)
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")


@dataclass(frozen=True)
class EngineBuild:
    """What ``build_engine`` produced."""

    path: Path
    precision: str
    seconds: float
    size_bytes: int


def calibration_batches(folder: Path, input_size: int, batch_size: int, limit: int) -> Iterator[np.ndarray]:
    """Pre-processed batches from the images in ``folder`` (sorted, at most ``limit`` images)."""
    from seamline.imaging import decode_image

    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)[:limit]
    if not files:
        raise InputError(f"no calibration images (*.jpg, *.png, *.webp) under {folder}")
    for start in range(0, len(files), batch_size):
        images = [decode_image(p.read_bytes()) for p in files[start : start + batch_size]]
        if len(images) == batch_size:
            yield preprocess(images, input_size)


def _int8_calibrator(
    trt: Any, cudart: Any, batches: Iterator[np.ndarray], batch_size: int, input_size: int, cache: Path
) -> Any:
    class Calibrator(trt.IInt8EntropyCalibrator2):  # type: ignore[misc, name-defined]
        def __init__(self) -> None:
            super().__init__()
            self.batches = batches
            self.device = _check(cudart.cudaMalloc(batch_size * 3 * input_size * input_size * 4))

        def get_batch_size(self) -> int:
            return batch_size

        def get_batch(self, names: list[str]) -> list[int] | None:
            batch = next(self.batches, None)
            if batch is None:
                return None
            batch = np.ascontiguousarray(batch)
            _check(
                cudart.cudaMemcpy(
                    self.device, batch.ctypes.data, batch.nbytes, cudart.cudaMemcpyKind.cudaMemcpyHostToDevice
                )
            )
            return [int(self.device)]

        def read_calibration_cache(self) -> bytes | None:
            return cache.read_bytes() if cache.exists() else None

        def write_calibration_cache(self, data: bytes) -> None:
            cache.write_bytes(bytes(data))

    return Calibrator()


def _progress_monitor(trt: Any) -> Any:
    """Log TensorRT's build phases (TensorRT 10+); None on older versions."""
    if not hasattr(trt, "IProgressMonitor"):
        return None

    class Progress(trt.IProgressMonitor):  # type: ignore[misc, name-defined]
        def __init__(self) -> None:
            trt.IProgressMonitor.__init__(self)
            self._last: dict[str, float] = {}

        def phase_start(self, phase_name: str, parent_phase: str | None, num_steps: int) -> None:
            logger.info("TensorRT: %s (%d steps)", phase_name, num_steps)

        def step_complete(self, phase_name: str, step: int) -> bool:
            now = time.monotonic()
            if now - self._last.get(phase_name, 0.0) > 5:
                self._last[phase_name] = now
                logger.info("TensorRT: %s step %d", phase_name, step)
            return True  # keep building

        def phase_finish(self, phase_name: str) -> None:
            logger.info("TensorRT: %s done", phase_name)

    return Progress()


def _major(trt: Any) -> int:
    return int(str(trt.__version__).split(".")[0])


def int8_path(trt: Any, network: Any, calibration_dir: Path | None) -> str:
    """How this TensorRT builds int8 from this network: ``"explicit"`` when the ONNX model carries its own
    scales (QuantizeLinear/DequantizeLinear pairs: every TensorRT since 8 builds them as given, and 10 prefers
    it), else ``"calibrator"`` (implicit quantization calibrated on ``calibration_dir``: TensorRT 8.6's way,
    deprecated in 10 and absent where the calibrator classes are gone)."""
    quantize = getattr(trt.LayerType, "QUANTIZE", None)
    if quantize is not None and any(network.get_layer(i).type == quantize for i in range(network.num_layers)):
        return "explicit"
    if calibration_dir is None:
        raise InputError(
            "int8 needs a calibration set (--calibration-dir with representative frames) or an ONNX model "
            "quantised with QuantizeLinear/DequantizeLinear nodes"
        )
    if not hasattr(trt, "IInt8EntropyCalibrator2"):
        raise InputError(
            f"TensorRT {trt.__version__} has no int8 calibrator: build from an ONNX model quantised with "
            "QuantizeLinear/DequantizeLinear nodes (explicit quantization)"
        )
    if _major(trt) >= 10:
        logger.warning(
            "TensorRT %s deprecates calibrated (implicit) int8; a QDQ-quantised ONNX model lasts",
            trt.__version__,
        )
    return "calibrator"


def network_flags(trt: Any) -> int:
    """``create_network`` flags: EXPLICIT_BATCH, which TensorRT before 10 needs to parse an ONNX model (10 is
    explicit-batch only and deprecates the flag)."""
    if _major(trt) >= 10:
        return 0
    return 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)


def build_engine(
    onnx_path: Path,
    engine_path: Path,
    *,
    precision: str = "fp16",
    calibration_dir: Path | None = None,
    calibration_images: int = 512,
    max_batch: int = 4,
    opt_batch: int = 4,
    workspace_gib: float = 2.0,
    timing_cache: Path | None = None,
) -> EngineBuild:
    """Build ``engine_path`` from ``onnx_path`` with a dynamic batch of 1..``max_batch``.

    Args:
        precision: "fp32", "fp16" or "int8" (int8: from a QDQ-quantised ONNX model as it is, else calibrated
            on ``calibration_dir``; see ``int8_path``; fp16 layers stay enabled).
        timing_cache: file to read and update with kernel timings (default: next to the engine).
    """
    trt, cudart = _import_tensorrt("Building a TensorRT engine")
    if precision not in ("fp32", "fp16", "int8"):
        raise InputError(f"precision must be fp32, fp16 or int8, not {precision!r}")
    meta = read_sidecar(onnx_path)
    started = time.perf_counter()
    trt_logger = trt.Logger(trt.Logger.INFO)
    builder = trt.Builder(trt_logger)
    network = builder.create_network(network_flags(trt))
    parser = trt.OnnxParser(network, trt_logger)
    if not parser.parse(onnx_path.read_bytes()):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise ExportError(f"TensorRT cannot parse {onnx_path}: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_gib * 1024**3))
    if precision in ("fp16", "int8"):
        config.set_flag(trt.BuilderFlag.FP16)
    size = meta.input_size
    profile = builder.create_optimization_profile()
    input_name = network.get_input(0).name
    profile.set_shape(input_name, (1, 3, size, size), (opt_batch, 3, size, size), (max_batch, 3, size, size))
    config.add_optimization_profile(profile)
    if precision == "int8":
        config.set_flag(trt.BuilderFlag.INT8)
        if int8_path(trt, network, calibration_dir) == "calibrator":
            if hasattr(config, "set_calibration_profile"):
                config.set_calibration_profile(profile)
            batches = calibration_batches(calibration_dir, size, opt_batch, calibration_images)  # type: ignore[arg-type]
            config.int8_calibrator = _int8_calibrator(
                trt, cudart, batches, opt_batch, size, engine_path.with_suffix(".calib")
            )
    monitor = _progress_monitor(trt)
    if monitor is not None:
        config.progress_monitor = monitor
    cache_path = timing_cache or engine_path.with_suffix(".timing")
    cache = config.create_timing_cache(cache_path.read_bytes() if cache_path.exists() else b"")
    config.set_timing_cache(cache, ignore_mismatch=False)
    logger.info(
        "building TensorRT %s engine from %s (batch 1..%d); this takes minutes",
        precision,
        onnx_path,
        max_batch,
    )
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise ExportError(f"TensorRT failed to build an engine from {onnx_path} (see the log above)")
    engine_path.parent.mkdir(parents=True, exist_ok=True)
    engine_path.write_bytes(bytes(serialized))
    cache_path.write_bytes(bytes(config.get_timing_cache().serialize()))
    meta.write_sidecar(engine_path)
    result = EngineBuild(engine_path, precision, time.perf_counter() - started, engine_path.stat().st_size)
    logger.info("built %s (%.1f MB) in %.0f s", engine_path, result.size_bytes / 1e6, result.seconds)
    return result


def engine_cache_key(onnx_path: Path, trt_version: str, gpu: str) -> str:
    """The cache key of an engine: the ONNX file's digest, the TensorRT version and the GPU (an engine runs
    only on the TensorRT and GPU it was built with)."""
    digest = hashlib.sha256(onnx_path.read_bytes()).hexdigest()[:16]
    return f"{digest}-trt{trt_version}-{re.sub(r'[^A-Za-z0-9]+', '_', gpu)}"


def cached_engine(onnx_path: Path, cache_dir: Path, *, precision: str = "fp16", device: int = 0) -> Path:
    """The engine for ``onnx_path`` from ``cache_dir``, built there first if this TensorRT and GPU have
    none yet (a detector release is built once per device, then reused across restarts)."""
    trt, cudart = _import_tensorrt("Building a TensorRT engine")
    err, props = cudart.cudaGetDeviceProperties(device)
    gpu = props.name.decode() if int(err) == 0 else f"device{device}"
    engine = cache_dir / f"{engine_cache_key(onnx_path, trt.__version__, gpu)}-{precision}.engine"
    if not engine.exists():
        build_engine(onnx_path, engine, precision=precision)
    return engine
