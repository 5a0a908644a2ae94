"""Detector runtimes behind one interface, picked by the config's ``type``.

| type | module | needs |
|---|---|---|
| ``onnxruntime`` | onnx_runtime.py | onnxruntime (CPU) or onnxruntime-gpu (CUDA / TensorRT EPs) |
| ``tensorrt`` | tensorrt_runtime.py | TensorRT + cuda-python (JetPack on a Jetson) |
| ``torch`` | torch_runtime.py | torch + transformers (the reference) |

Runtime modules import their heavy libraries only when a detector is built, so the edge installs only what
its configured runtime needs.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from edge.detectors.base import Detections, DetectorRuntime, RawOutputs
from edge.detectors.onnx_runtime import OnnxRuntimeDetector, OnnxRuntimeDetectorConfig
from edge.detectors.tensorrt_runtime import TensorRTDetector, TensorRTDetectorConfig
from edge.detectors.torch_runtime import TorchDetector, TorchDetectorConfig

DetectorConfig = Annotated[
    OnnxRuntimeDetectorConfig | TensorRTDetectorConfig | TorchDetectorConfig,
    Field(discriminator="type"),
]

_RUNTIMES: dict[str, type[DetectorRuntime]] = {
    cls.key: cls for cls in (OnnxRuntimeDetector, TensorRTDetector, TorchDetector)
}


def build_detector(
    config: OnnxRuntimeDetectorConfig | TensorRTDetectorConfig | TorchDetectorConfig, *, warm_up: bool = True
) -> DetectorRuntime:
    """Load the configured detector and (by default) warm it up before returning it."""
    detector = _RUNTIMES[config.type](config)  # type: ignore[arg-type]
    if warm_up:
        detector.warm_up()
    return detector


__all__ = ["DetectorConfig", "DetectorRuntime", "Detections", "RawOutputs", "build_detector"]
