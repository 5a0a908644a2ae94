"""Detector training augmentations on numpy images with their boxes (no torchvision).

The seed augmented with rotation (+-15 degrees), brightness (0.8-1.2) and contrast (0.9-1.1). Seamline keeps
those and adds what helps small defects on a conveyor: a random zoom crop (a small snag becomes several
times larger at the network's input), flips (a garment lies either way round on the belt), hue/saturation
jitter, blur and sensor noise. Boxes are absolute ``x1, y1, x2, y2`` pixels; a box that leaves the frame is
clipped, and dropped when less than ``min_visible`` of it survives.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
from pydantic import Field

from seamline.config.base import StrictModel


class AugmentConfig(StrictModel):
    """Probabilities and ranges of the training augmentations (set ``enabled: false`` to train without)."""

    enabled: bool = Field(default=True, title="Enabled", description="Apply augmentations at all.")
    hflip: float = Field(default=0.5, ge=0, le=1, title="Horizontal flip", description="Probability.")
    vflip: float = Field(default=0.5, ge=0, le=1, title="Vertical flip", description="Probability.")
    rotate: float = Field(default=0.3, ge=0, le=1, title="Rotation", description="Probability of a rotation.")
    max_degrees: float = Field(default=15.0, ge=0, le=45, title="Max degrees", description="The seed's +-15.")
    zoom: float = Field(
        default=0.5,
        ge=0,
        le=1,
        title="Zoom crop",
        description="Probability of cropping a random window (for small defects).",
    )
    min_zoom_scale: float = Field(
        default=0.4,
        gt=0,
        le=1,
        title="Smallest window",
        description="Window side as a share of the frame side.",
    )
    brightness: tuple[float, float] = Field(
        default=(0.8, 1.2), title="Brightness", description="Factor range."
    )
    contrast: tuple[float, float] = Field(default=(0.9, 1.1), title="Contrast", description="Factor range.")
    hue_shift: float = Field(
        default=6.0, ge=0, le=90, title="Hue shift", description="Max shift, OpenCV hue units (0-180)."
    )
    saturation: tuple[float, float] = Field(
        default=(0.8, 1.2), title="Saturation", description="Factor range."
    )
    blur: float = Field(
        default=0.1, ge=0, le=1, title="Blur", description="Probability of a small Gaussian blur."
    )
    noise: float = Field(default=0.2, ge=0, le=1, title="Noise", description="Probability of sensor noise.")
    min_visible: float = Field(
        default=0.4,
        gt=0,
        le=1,
        title="Least visible share",
        description="Drop a cut box keeping less of its area.",
    )


def _clip_boxes(
    boxes: np.ndarray, labels: np.ndarray, width: int, height: int, min_visible: float
) -> tuple[np.ndarray, np.ndarray]:
    if boxes.shape[0] == 0:
        return boxes, labels
    area = np.clip(boxes[:, 2] - boxes[:, 0], 0, None) * np.clip(boxes[:, 3] - boxes[:, 1], 0, None)
    clipped = boxes.copy()
    clipped[:, [0, 2]] = clipped[:, [0, 2]].clip(0, width)
    clipped[:, [1, 3]] = clipped[:, [1, 3]].clip(0, height)
    w, h = clipped[:, 2] - clipped[:, 0], clipped[:, 3] - clipped[:, 1]
    keep = (w >= 1) & (h >= 1) & (w * h >= min_visible * np.maximum(area, 1e-6))
    return clipped[keep], labels[keep]


def window(
    image: np.ndarray,
    boxes: np.ndarray,
    labels: np.ndarray,
    rng: np.random.Generator,
    size: tuple[int, int],
    *,
    defect_bias: float = 0.8,
    min_visible: float = 0.4,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cut a ``size`` (width, height) window.

    With probability ``defect_bias`` the window holds a random defect, else it lies anywhere. Boxes are
    shifted into the window, clipped, and dropped when less than ``min_visible`` remains.
    """
    height, width = image.shape[:2]
    cw, ch = min(size[0], width), min(size[1], height)
    if boxes.shape[0] and rng.random() < defect_bias:
        x1, y1, x2, y2 = boxes[rng.integers(boxes.shape[0])]
        lo_x, hi_x = max(0, int(x2) - cw), min(width - cw, int(x1))
        lo_y, hi_y = max(0, int(y2) - ch), min(height - ch, int(y1))
        x0 = int(rng.integers(lo_x, hi_x + 1)) if hi_x >= lo_x else int(rng.integers(0, width - cw + 1))
        y0 = int(rng.integers(lo_y, hi_y + 1)) if hi_y >= lo_y else int(rng.integers(0, height - ch + 1))
    else:
        x0, y0 = int(rng.integers(0, width - cw + 1)), int(rng.integers(0, height - ch + 1))
    image = image[y0 : y0 + ch, x0 : x0 + cw]
    boxes = boxes - np.array([x0, y0, x0, y0], np.float32)
    boxes, labels = _clip_boxes(boxes, labels, cw, ch, min_visible)
    return np.ascontiguousarray(image), boxes, labels


def _zoom(image, boxes, labels, rng, cfg):
    height, width = image.shape[:2]
    scale = rng.uniform(cfg.min_zoom_scale, 1.0)
    size = (max(16, int(width * scale)), max(16, int(height * scale)))
    return window(image, boxes, labels, rng, size, min_visible=cfg.min_visible)


def _rotate(image, boxes, labels, rng, cfg):
    height, width = image.shape[:2]
    angle = rng.uniform(-cfg.max_degrees, cfg.max_degrees)
    matrix = cv2.getRotationMatrix2D((width / 2, height / 2), angle, 1.0)
    image = cv2.warpAffine(
        image, matrix, (width, height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101
    )
    if boxes.shape[0]:
        # Rotate each box's corners and take the enclosing box, shrunk toward the centre by the share a
        # rotated rectangle's bounding box overstates an ellipse-like defect.
        x1, y1, x2, y2 = boxes.T
        corners = np.stack([[x1, y1], [x2, y1], [x2, y2], [x1, y2]], axis=0).transpose(2, 0, 1)  # (N, 4, 2)
        ones = np.ones(corners.shape[:2] + (1,), np.float32)
        moved = np.concatenate([corners, ones], axis=2) @ matrix.T.astype(np.float32)
        lo, hi = moved.min(axis=1), moved.max(axis=1)
        shrink = 0.5 * abs(math.sin(2 * math.radians(angle))) * 0.25
        centre, half = (lo + hi) / 2, (hi - lo) / 2 * (1 - shrink)
        boxes = np.concatenate([centre - half, centre + half], axis=1).astype(np.float32)
        boxes, labels = _clip_boxes(boxes, labels, width, height, cfg.min_visible)
    return image, boxes, labels


def _colour(image, rng, cfg):
    out = image.astype(np.float32)
    out *= rng.uniform(*cfg.brightness)
    mean = out.mean()
    out = (out - mean) * rng.uniform(*cfg.contrast) + mean
    out = out.clip(0, 255).astype(np.uint8)
    if cfg.hue_shift > 0 or cfg.saturation != (1.0, 1.0):
        hsv = cv2.cvtColor(out, cv2.COLOR_RGB2HSV).astype(np.int16)
        hsv[..., 0] = (hsv[..., 0] + int(rng.uniform(-cfg.hue_shift, cfg.hue_shift))) % 180
        hsv[..., 1] = (hsv[..., 1] * rng.uniform(*cfg.saturation)).clip(0, 255)
        out = cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2RGB)
    return out


def augment(
    image: np.ndarray, boxes: np.ndarray, labels: np.ndarray, rng: np.random.Generator, cfg: AugmentConfig
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One random augmentation of an RGB uint8 image and its (N, 4) xyxy boxes with (N,) labels."""
    boxes = boxes.astype(np.float32, copy=True)
    if not cfg.enabled:
        return image, boxes, labels
    if rng.random() < cfg.zoom:
        image, boxes, labels = _zoom(image, boxes, labels, rng, cfg)
    height, width = image.shape[:2]
    if rng.random() < cfg.hflip:
        image = image[:, ::-1]
        boxes[:, [0, 2]] = width - boxes[:, [2, 0]]
    if rng.random() < cfg.vflip:
        image = image[::-1]
        boxes[:, [1, 3]] = height - boxes[:, [3, 1]]
    image = np.ascontiguousarray(image)
    if rng.random() < cfg.rotate and cfg.max_degrees > 0:
        image, boxes, labels = _rotate(image, boxes, labels, rng, cfg)
    image = _colour(image, rng, cfg)
    if rng.random() < cfg.blur:
        image = cv2.GaussianBlur(image, (0, 0), rng.uniform(0.5, 1.2))
    if rng.random() < cfg.noise:
        noise = rng.normal(0, rng.uniform(2, 8), image.shape).astype(np.float32)
        image = (image.astype(np.float32) + noise).clip(0, 255).astype(np.uint8)
    return image, boxes, labels
