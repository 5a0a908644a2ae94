"""ONNX Runtime detector: TensorRT EP -> CUDA EP -> CPU EP, in the order configured."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import Field

from edge.detectors.base import DetectorRuntime, RawOutputs
from edge.detectors.config import BaseDetectorConfig
from edge.detectors.meta import DetectorLoadError, read_sidecar
from seamline.config.paths import ConfigPath
from seamline.optional import require

logger = logging.getLogger(__name__)

KEY = "onnxruntime"
Provider = Literal["tensorrt", "cuda", "cpu"]
_PROVIDER_NAMES = {
    "tensorrt": "TensorrtExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "cpu": "CPUExecutionProvider",
}


class OnnxRuntimeDetectorConfig(BaseDetectorConfig):
    """Run an exported ONNX detector with ONNX Runtime."""

    type: Literal["onnxruntime"] = Field(default="onnxruntime", title="Runtime", description="onnxruntime")
    model: ConfigPath = Field(
        title="ONNX model", description="Path to detector.onnx (its .json sidecar beside it)."
    )
    providers: list[Provider] = Field(
        default_factory=lambda: ["cpu"],
        min_length=1,
        title="Execution providers",
        description="In order of preference, e.g. [tensorrt, cuda, cpu]. Providers not built into the "
        "installed onnxruntime are skipped with a warning; the ones in use are logged.",
    )
    intra_op_threads: int = Field(
        default=0,
        ge=0,
        title="Intra-op threads",
        description="CPU threads per operator; 0 = all physical cores.",
    )
    tensorrt_fp16: bool = Field(
        default=True, title="TensorRT EP fp16", description="Let the TensorRT EP use fp16."
    )
    tensorrt_cache_dir: ConfigPath | None = Field(
        default=None,
        title="TensorRT EP cache",
        description="Where the TensorRT EP caches engines and timing data.",
    )


class OnnxRuntimeDetector(DetectorRuntime):
    key = KEY

    def __init__(self, config: OnnxRuntimeDetectorConfig, *, unchecked_int8: bool = False) -> None:
        """``unchecked_int8``: load an int8 model no accuracy check has accepted (only that check does)."""
        ort = require("onnxruntime", "The onnxruntime detector", extra="edge")
        if not config.model.is_file():
            raise DetectorLoadError(f"ONNX model {config.model} does not exist")
        meta = read_sidecar(config.model)
        if not unchecked_int8:
            meta.check_accepted(config.model)
        super().__init__(
            meta,
            score_threshold=config.score_threshold,
            top_k=config.top_k,
            class_agnostic=config.class_agnostic,
            tiles=config.tiles,
        )
        available = set(ort.get_available_providers())
        providers: list[str | tuple[str, dict]] = []
        for wanted in config.providers:
            name = _PROVIDER_NAMES[wanted]
            if name not in available:
                logger.warning(
                    "onnxruntime here has no %s (installed: %s); skipping it", name, sorted(available)
                )
                continue
            if wanted == "tensorrt":
                options = {"trt_fp16_enable": config.tensorrt_fp16}
                if config.tensorrt_cache_dir:
                    config.tensorrt_cache_dir.mkdir(parents=True, exist_ok=True)
                    options |= {
                        "trt_engine_cache_enable": True,
                        "trt_engine_cache_path": str(config.tensorrt_cache_dir),
                        "trt_timing_cache_enable": True,
                    }
                providers.append((name, options))
            else:
                providers.append(name)
        if not providers:
            raise DetectorLoadError(
                f"none of the configured providers {config.providers} is available in this onnxruntime "
                f"({sorted(available)}); install onnxruntime-gpu for cuda/tensorrt "
                "(pip install 'seamline[edge-gpu]')"
            )
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = config.intra_op_threads or _physical_cores()
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.add_session_config_entry("session.intra_op.allow_spinning", "1")
        self.session = ort.InferenceSession(str(config.model), sess_options=options, providers=providers)
        in_use = self.session.get_providers()
        logger.info("onnxruntime detector %s on %s", self.meta.version, in_use)
        if config.providers[0] != "cpu" and in_use == ["CPUExecutionProvider"]:
            logger.warning("asked for %s but running on CPU only", config.providers)
        self._input = self.session.get_inputs()[0].name
        names = [o.name for o in self.session.get_outputs()]
        if not {"logits", "pred_boxes"} <= set(names):
            raise DetectorLoadError(f"{config.model}: outputs {names}, expected logits and pred_boxes")
        self._outputs = ["logits", "pred_boxes"]

    @property
    def providers(self) -> list[str]:
        return list(self.session.get_providers())

    def forward(self, batch: np.ndarray) -> RawOutputs:
        logits, boxes = self.session.run(self._outputs, {self._input: batch})
        return RawOutputs(logits=logits, boxes=boxes)


def _physical_cores() -> int:
    # ORT's own default counts hyper-threads; one thread per physical core is faster for conv nets.
    try:
        siblings = set()
        for cpu in Path("/sys/devices/system/cpu").glob("cpu[0-9]*/topology/thread_siblings_list"):
            siblings.add(cpu.read_text().strip())
        if siblings:
            return max(1, len(siblings))
    except OSError:
        pass
    return max(1, (os.cpu_count() or 2) // 2)
