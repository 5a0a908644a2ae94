"""TensorRT detector: a serialized engine run with the TensorRT Python API (JetPack on a Jetson).

Buffers are allocated once per batch size on the device with CUDA (via the ``cuda-python`` bindings that ship
alongside TensorRT); pre- and post-processing stay the shared numpy code.
"""

from __future__ import annotations

import logging
from typing import Any, Literal

import numpy as np
from pydantic import Field

from edge.detectors.base import DetectorRuntime, RawOutputs
from edge.detectors.config import BaseDetectorConfig
from edge.detectors.meta import DetectorLoadError, read_sidecar
from seamline.config.paths import ConfigPath
from seamline.errors import MissingDependencyError
from seamline.optional import require

logger = logging.getLogger(__name__)

KEY = "tensorrt"


class TensorRTDetectorConfig(BaseDetectorConfig):
    """Run a TensorRT engine built by `seamline edge export --tensorrt`."""

    type: Literal["tensorrt"] = Field(default="tensorrt", title="Runtime", description="tensorrt")
    engine: ConfigPath = Field(
        title="Engine", description="Path to detector.engine (its .json sidecar beside it)."
    )
    device: int = Field(default=0, ge=0, title="GPU", description="CUDA device index.")


def _import_tensorrt(purpose: str = "The tensorrt detector") -> tuple[Any, Any]:
    trt = require(
        "tensorrt",
        f"{purpose} (on a Jetson TensorRT comes with JetPack: apt install python3-libnvinfer; "
        "on x86 install NVIDIA's tensorrt wheels from NVIDIA's index)",
        extra="edge-gpu",
    )
    buffers = f"{purpose} (CUDA buffers)"
    try:
        cudart = require("cuda.bindings.runtime", buffers, extra="edge-gpu", package="cuda-python")
    except MissingDependencyError:
        cudart = require("cuda.cudart", buffers, extra="edge-gpu", package="cuda-python")  # older layout
    return trt, cudart


def _check(result: Any) -> Any:
    err, *rest = result if isinstance(result, tuple) else (result,)
    if int(err) != 0:
        raise RuntimeError(f"CUDA error {err}")
    return rest[0] if len(rest) == 1 else rest


class TensorRTDetector(DetectorRuntime):
    key = KEY

    def __init__(self, config: TensorRTDetectorConfig) -> None:
        trt, cudart = _import_tensorrt()
        if not config.engine.is_file():
            raise DetectorLoadError(f"TensorRT engine {config.engine} does not exist")
        super().__init__(
            read_sidecar(config.engine),
            score_threshold=config.score_threshold,
            top_k=config.top_k,
            class_agnostic=config.class_agnostic,
            tiles=config.tiles,
        )
        self._trt, self._cudart = trt, cudart
        _check(cudart.cudaSetDevice(config.device))
        self._logger = trt.Logger(trt.Logger.WARNING)
        runtime = trt.Runtime(self._logger)
        self.engine = runtime.deserialize_cuda_engine(config.engine.read_bytes())
        if self.engine is None:
            raise DetectorLoadError(
                f"{config.engine}: TensorRT could not deserialize it "
                "(built for another GPU or TensorRT version?)"
            )
        self.context = self.engine.create_execution_context()
        self.stream = _check(cudart.cudaStreamCreate())
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        self._input = next(n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT)
        if not {"logits", "pred_boxes"} <= set(names):
            raise DetectorLoadError(f"{config.engine}: tensors {names}, expected logits and pred_boxes")
        self._buffers: dict[int, dict[str, tuple[int, np.ndarray]]] = {}

    def _buffers_for(self, batch: int) -> dict[str, tuple[int, np.ndarray]]:
        if batch not in self._buffers:
            size = self.meta.input_size
            self.context.set_input_shape(self._input, (batch, 3, size, size))
            buffers = {}
            for name in (self._input, "logits", "pred_boxes"):
                shape = tuple(self.context.get_tensor_shape(name))
                host = np.empty(shape, dtype=np.float32)
                device = _check(self._cudart.cudaMalloc(host.nbytes))
                buffers[name] = (device, host)
            self._buffers[batch] = buffers
        return self._buffers[batch]

    def forward(self, batch: np.ndarray) -> RawOutputs:
        cudart = self._cudart
        buffers = self._buffers_for(batch.shape[0])
        self.context.set_input_shape(self._input, batch.shape)
        device_in, _ = buffers[self._input]
        batch = np.ascontiguousarray(batch, dtype=np.float32)
        _check(
            cudart.cudaMemcpyAsync(
                device_in,
                batch.ctypes.data,
                batch.nbytes,
                cudart.cudaMemcpyKind.cudaMemcpyHostToDevice,
                self.stream,
            )
        )
        for name, (device, _) in buffers.items():
            self.context.set_tensor_address(name, device)
        if not self.context.execute_async_v3(self.stream):
            raise RuntimeError("TensorRT execution failed")
        for name in ("logits", "pred_boxes"):
            device, host = buffers[name]
            _check(
                cudart.cudaMemcpyAsync(
                    host.ctypes.data,
                    device,
                    host.nbytes,
                    cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost,
                    self.stream,
                )
            )
        _check(cudart.cudaStreamSynchronize(self.stream))
        return RawOutputs(logits=buffers["logits"][1].copy(), boxes=buffers["pred_boxes"][1].copy())

    def close(self) -> None:
        for buffers in self._buffers.values():
            for device, _ in buffers.values():
                self._cudart.cudaFree(device)
        self._buffers.clear()
