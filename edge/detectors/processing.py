"""RT-DETR pre- and post-processing in numpy: the hot path, with no Hugging Face image processor.

``preprocess`` reproduces ``RTDetrImageProcessor`` (PIL bilinear resize to a square, rescale 1/255, optional
normalisation) and ``decode_detections`` reproduces ``post_process_object_detection`` with focal-loss scoring,
so boxes match the reference path (the detector benchmark checks |delta| < 1e-3).
"""

from __future__ import annotations

import numpy as np
from PIL import Image


def preprocess(
    images: list[np.ndarray],
    input_size: int,
    *,
    mean: tuple[float, float, float] | None = None,
    std: tuple[float, float, float] | None = None,
) -> np.ndarray:
    """RGB uint8 (H, W, 3) images -> (B, 3, S, S) float32 in [0, 1] (or normalised if mean/std given)."""
    batch = np.empty((len(images), 3, input_size, input_size), dtype=np.float32)
    scale = np.float32(1.0 / 255.0)
    for i, image in enumerate(images):
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"image {i}: expected (H, W, 3) uint8 RGB, got {image.shape} {image.dtype}")
        if image.shape[:2] != (input_size, input_size):
            # PIL's bilinear filter (with its antialiasing support) is what the reference processor uses.
            image = np.asarray(Image.fromarray(image).resize((input_size, input_size), Image.BILINEAR))
        np.multiply(image.transpose(2, 0, 1), scale, out=batch[i], casting="unsafe")
    if mean is not None and std is not None:
        batch -= np.asarray(mean, np.float32)[None, :, None, None]
        batch /= np.asarray(std, np.float32)[None, :, None, None]
    return batch


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def decode_detections(
    logits: np.ndarray,
    boxes: np.ndarray,
    sizes: list[tuple[int, int]],
    *,
    threshold: float,
    top_k: int,
    class_agnostic: bool,
) -> list[tuple[np.ndarray, np.ndarray, np.ndarray, float]]:
    """Top-k decoding of RT-DETR outputs.

    Args:
        logits: (B, Q, C) pre-sigmoid scores.
        boxes: (B, Q, 4) relative cx, cy, w, h.
        sizes: (height, width) of each source image.
        threshold: minimum score kept.
        top_k: candidates considered per image (over queries x classes, or queries when class-agnostic).
        class_agnostic: score each query by its best class and label everything 0.

    Returns:
        Per image: boxes (N, 4) float32 xyxy in source pixels, scores (N,) float32 descending, labels (N,)
        int64, and the best score before thresholding.
    """
    if logits.shape[0] != len(sizes):
        raise ValueError(f"{logits.shape[0]} outputs for {len(sizes)} images")
    batch, queries, classes = logits.shape
    scores_all = _sigmoid(logits.astype(np.float32, copy=False))
    results = []
    for b in range(batch):
        if class_agnostic:
            flat = scores_all[b].max(axis=1)
            k = min(top_k, queries)
        else:
            flat = scores_all[b].reshape(-1)
            k = min(top_k, queries * classes)
        top = np.argpartition(-flat, k - 1)[:k] if k < flat.shape[0] else np.arange(flat.shape[0])
        top = top[np.argsort(-flat[top], kind="stable")]
        scores = flat[top]
        best = float(scores[0]) if scores.shape[0] else 0.0
        keep = scores >= threshold
        top, scores = top[keep], scores[keep]
        if class_agnostic:
            query, labels = top, np.zeros(top.shape[0], np.int64)
        else:
            query, labels = top // classes, (top % classes).astype(np.int64)
        cx, cy, w, h = boxes[b, query].astype(np.float32, copy=False).T
        height, width = sizes[b]
        xyxy = np.stack(
            [(cx - w / 2) * width, (cy - h / 2) * height, (cx + w / 2) * width, (cy + h / 2) * height], axis=1
        )
        results.append((xyxy.astype(np.float32), scores.astype(np.float32), labels, best))
    return results
