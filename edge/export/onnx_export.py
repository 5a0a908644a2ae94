"""Export an RT-DETR checkpoint to ONNX with a dynamic batch, and check it against PyTorch."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge.detectors.meta import DetectorMeta, read_hf_checkpoint_meta
from edge.detectors.processing import decode_detections, preprocess
from seamline.errors import SeamlineError
from seamline.optional import require

logger = logging.getLogger(__name__)

OUTPUT_NAMES = ("logits", "pred_boxes")


class ExportError(SeamlineError):
    """An export step failed or its output disagrees with the reference."""


@dataclass(frozen=True)
class OnnxExport:
    """What ``export_onnx`` produced."""

    path: Path
    meta: DetectorMeta
    opset: int
    seconds: float
    size_bytes: int
    max_score_diff: float  # largest |score| difference torch vs ONNX Runtime over the check images
    max_box_diff: float  # largest |box coordinate| difference in pixels over matched detections


def _load_torch_model(checkpoint: str):  # type: ignore[no-untyped-def]
    from seamline.torch_compat import ensure_cpu_torch_compat

    ensure_cpu_torch_compat()
    transformers = require("transformers", "Exporting a detector", extra="train")
    model = transformers.AutoModelForObjectDetection.from_pretrained(checkpoint)
    return model.eval()


def float32_throughout(path: Path) -> int:
    """Rewrite ``path`` so that no tensor is float64; returns how many casts and constants were changed.

    transformers' RT-DETR computes its sine position embedding in float64, which the TorchScript exporter
    keeps (Range, Einsum, Sin, Cos on doubles). ONNX Runtime before 1.24 has no float64 Sin/Cos (JetPack's
    builds are older) and TensorRT has no float64 at all, so the exported graph computes it in float32
    instead: casts to double become casts to float, double constants and initializers become float. The
    export then checks
    ONNX Runtime against PyTorch as before, so any loss of precision shows there.
    """
    onnx = require("onnx", "Exporting a detector", extra="train")
    from onnx import TensorProto, numpy_helper

    model = onnx.load(str(path))
    changed = 0
    for node in model.graph.node:
        for attr in node.attribute:
            if node.op_type == "Cast" and attr.name == "to" and attr.i == TensorProto.DOUBLE:
                attr.i = TensorProto.FLOAT
                changed += 1
            elif (
                node.op_type == "Constant" and attr.name == "value" and attr.t.data_type == TensorProto.DOUBLE
            ):
                attr.t.CopyFrom(
                    numpy_helper.from_array(numpy_helper.to_array(attr.t).astype(np.float32), attr.t.name)
                )
                changed += 1
    for init in model.graph.initializer:
        if init.data_type == TensorProto.DOUBLE:
            init.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(init).astype(np.float32), init.name))
            changed += 1
    if changed:
        del model.graph.value_info[:]  # stale types; ONNX Runtime infers them again
        onnx.checker.check_model(model)
        onnx.save(model, str(path))
    return changed


def export_onnx(
    checkpoint: Path,
    out_path: Path,
    *,
    opset: int = 17,
    version: str | None = None,
    check_images: list[np.ndarray] | None = None,
    tolerance: float = 1e-3,
) -> OnnxExport:
    """Export ``checkpoint`` to ``out_path`` (+ ``.json`` sidecar) and verify ONNX Runtime matches PyTorch.

    Args:
        checkpoint: a local Hugging Face RT-DETR / RT-DETRv2 directory.
        out_path: the .onnx file to write.
        opset: ONNX opset; 17 suits TensorRT 8.6+ (JetPack 6), later ones work with newer TensorRT.
        version: detector version stamped on crops and verdicts (default: directory name).
        check_images: RGB uint8 images to compare runtimes on (default: two synthetic frames).
        tolerance: largest allowed score and relative box difference.

    Raises:
        ExportError: the export failed or ONNX Runtime disagrees with PyTorch beyond ``tolerance``.
    """
    torch = require("torch", "Exporting a detector", extra="train")
    ort = require("onnxruntime", "Checking an exported detector", extra="edge")
    started = time.perf_counter()
    meta = read_hf_checkpoint_meta(checkpoint, version=version)
    model = _load_torch_model(str(checkpoint))

    class _Outputs(torch.nn.Module):
        # Only the two tensors the runtimes decode; the aux/encoder outputs would be dead weight in the graph.
        def __init__(self, inner):  # type: ignore[no-untyped-def]
            super().__init__()
            self.inner = inner

        def forward(self, pixel_values):  # type: ignore[no-untyped-def]
            out = self.inner(pixel_values=pixel_values)
            return out.logits, out.pred_boxes

    wrapper = _Outputs(model).eval()
    size = meta.input_size
    example = torch.rand(2, 3, size, size)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with torch.inference_mode():
            # The TorchScript exporter: it can emit opset 17 (the dynamo one stays at 18), which JetPack's
            # TensorRT wants.
            torch.onnx.export(
                wrapper,
                (example,),
                str(out_path),
                input_names=["pixel_values"],
                output_names=list(OUTPUT_NAMES),
                dynamic_axes={
                    "pixel_values": {0: "batch"},
                    "logits": {0: "batch"},
                    "pred_boxes": {0: "batch"},
                },
                opset_version=opset,
                do_constant_folding=True,
                dynamo=False,
            )
    except Exception as exc:
        raise ExportError(f"ONNX export of {checkpoint} failed: {exc}") from exc
    wrapper.eval()  # the TorchScript exporter can leave submodules in training mode
    float32_throughout(out_path)
    meta.write_sidecar(out_path)

    images = check_images or _check_frames(size)
    batch = preprocess(images, size, mean=meta.image_mean, std=meta.image_std)
    with torch.inference_mode():
        ref_logits, ref_boxes = (t.numpy() for t in wrapper(torch.from_numpy(batch)))
    session = ort.InferenceSession(str(out_path), providers=["CPUExecutionProvider"])
    ort_logits, ort_boxes = session.run(list(OUTPUT_NAMES), {"pixel_values": batch})
    score_diff, box_diff = compare_detections(
        ref_logits, ref_boxes, ort_logits, ort_boxes, [im.shape[:2] for im in images]
    )
    seconds = time.perf_counter() - started
    result = OnnxExport(out_path, meta, opset, seconds, out_path.stat().st_size, score_diff, box_diff)
    logger.info(
        "exported %s -> %s (opset %d, %.1f MB) in %.1f s; torch vs onnxruntime: scores %.2e, boxes %.2e px",
        checkpoint,
        out_path,
        opset,
        result.size_bytes / 1e6,
        seconds,
        score_diff,
        box_diff,
    )
    if score_diff > tolerance or box_diff > tolerance * size:
        raise ExportError(
            f"ONNX Runtime disagrees with PyTorch: max score diff {score_diff:.2e}, "
            f"max box diff {box_diff:.2e} px "
            f"(tolerance {tolerance})"
        )
    return result


def _check_frames(size: int) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    frames = []
    for _ in range(2):
        frame = np.full((size, size, 3), rng.integers(60, 200, 3), np.uint8)
        for _ in range(6):
            y, x = rng.integers(0, size - size // 6, 2)
            frame[y : y + size // 8, x : x + size // 8] = rng.integers(0, 255, 3)
        frames.append(frame)
    return frames


def compare_detections(
    ref_logits: np.ndarray,
    ref_boxes: np.ndarray,
    logits: np.ndarray,
    boxes: np.ndarray,
    sizes: list[tuple[int, int]],
    *,
    threshold: float = 0.0,
    top_k: int = 50,
) -> tuple[float, float]:
    """Largest score and box differences between two runtimes' detections, matched as sets.

    Near-tied query selection may order queries differently between runtimes, so detections are matched by
    nearest box rather than by index.
    """
    ref = decode_detections(
        ref_logits, ref_boxes, sizes, threshold=threshold, top_k=top_k, class_agnostic=True
    )
    got = decode_detections(logits, boxes, sizes, threshold=threshold, top_k=top_k, class_agnostic=True)
    score_diff = box_diff = 0.0
    for (rb, rs, _, _), (gb, gs, _, _) in zip(ref, got):
        n = min(len(rs), len(gs))
        score_diff = max(
            score_diff, float(np.abs(np.sort(rs)[::-1][:n] - np.sort(gs)[::-1][:n]).max(initial=0.0))
        )
        for box in rb[:n]:
            box_diff = max(
                box_diff, float(np.abs(gb - box).max(axis=1).min(initial=np.inf)) if len(gb) else np.inf
            )
    return score_diff, box_diff
