"""Woven patterns (stripes, checks, dots) and screen-printed graphics.

Patterns follow the garment's own axes so stripes stay parallel to the hem when the garment lies askew;
graphics are drawn upright on a small sprite and turned with the garment.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from seamline.synth.shapes import Layout

PATTERNS = ("stripes", "checks", "dots")
_WORDS = (
    "SEAMLINE",
    "ATHLETIC",
    "NYC 1987",
    "SUMMER",
    "CLUB 09",
    "NORTH",
    "TEAM",
    "WILD",
    "VOYAGE",
    "ORIGINAL",
)


def garment_coords(layout: Layout, x0: int, y0: int, h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """Garment-frame coordinates (cm, rotated back) of every pixel of an ROI: two (h, w) float32 arrays."""
    rad = math.radians(layout.angle)
    c, s = math.cos(rad), math.sin(rad)
    xs = (np.arange(w, dtype=np.float32) + x0)[None, :] / layout.scale
    ys = (np.arange(h, dtype=np.float32) + y0)[:, None] / layout.scale
    return c * xs + s * ys, -s * xs + c * ys


def pattern_masks(kind: str, u: np.ndarray, v: np.ndarray, rng: np.random.Generator) -> list[np.ndarray]:
    """Masks (uint8 0/255) of the second and, for checks, third colour of a woven pattern."""
    period = rng.uniform(1.2, 4.0)
    if kind == "stripes":
        duty = rng.uniform(0.25, 0.6)
        direction = v if rng.random() < 0.75 else u
        return [((np.mod(direction, period) < period * duty) * 255).astype(np.uint8)]
    if kind == "checks":
        period = rng.uniform(1.5, 5.0)
        a = np.mod(u, period) < period / 2
        b = np.mod(v, period) < period / 2
        return [((a ^ b) * 255).astype(np.uint8), ((a & b) * 255).astype(np.uint8)]
    if kind == "dots":
        period = rng.uniform(1.5, 3.5)
        r = period * rng.uniform(0.15, 0.3)
        du, dv = np.mod(u, period) - period / 2, np.mod(v, period) - period / 2
        return [((du * du + dv * dv < r * r) * 255).astype(np.uint8)]
    raise KeyError(kind)


def _badge(sprite: np.ndarray, alpha: np.ndarray, inks: list[tuple[int, int, int]], rng) -> None:
    s = sprite.shape[0]
    c, r = (s // 2, s // 2), int(s * 0.46)
    cv2.circle(sprite, c, r, inks[0], -1, cv2.LINE_AA)
    cv2.circle(alpha, c, r, 255, -1, cv2.LINE_AA)
    cv2.circle(sprite, c, int(r * 0.8), inks[1], max(1, s // 30), cv2.LINE_AA)
    pts = [
        (c[0] + int(r * 0.55 * math.cos(a)), c[1] + int(r * 0.55 * math.sin(a)))
        for a in np.linspace(-math.pi / 2, 1.5 * math.pi, 6)[:-1]
    ]
    star = np.array([pts[i] for i in (0, 2, 4, 1, 3)], np.int32)
    cv2.fillPoly(sprite, [star], inks[1], cv2.LINE_AA)


def _words(sprite: np.ndarray, alpha: np.ndarray, inks: list[tuple[int, int, int]], rng) -> None:
    s = sprite.shape[0]
    word = _WORDS[int(rng.integers(len(_WORDS)))]
    scale = s / (24.0 * len(word)) * 1.25
    thick = max(1, int(s / 40))
    (tw, th), _ = cv2.getTextSize(word, cv2.FONT_HERSHEY_DUPLEX, scale, thick)
    org = ((s - tw) // 2, s // 2 + th // 2)
    y_bar = org[1] + max(3, s // 12)
    for img, col in ((sprite, inks[0]), (alpha, 255)):
        cv2.putText(img, word, org, cv2.FONT_HERSHEY_DUPLEX, scale, col, thick, cv2.LINE_AA)
        cv2.rectangle(
            img, (org[0], y_bar), (org[0] + tw, y_bar + max(2, s // 16)), col if img is alpha else inks[1], -1
        )
    digits = str(int(rng.integers(10, 99)))
    for img, col in ((sprite, inks[1]), (alpha, 255)):
        cv2.putText(
            img,
            digits,
            (s // 2 - int(s * 0.18), org[1] - th - s // 12),
            cv2.FONT_HERSHEY_TRIPLEX,
            scale * 2.0,
            col,
            thick + 1,
            cv2.LINE_AA,
        )


def _shapes(sprite: np.ndarray, alpha: np.ndarray, inks: list[tuple[int, int, int]], rng) -> None:
    s = sprite.shape[0]
    for i in range(int(rng.integers(3, 6))):
        cx, cy = rng.integers(s // 5, 4 * s // 5, size=2)
        r = int(rng.integers(s // 10, s // 4))
        ink = inks[i % len(inks)]
        if rng.random() < 0.5:
            cv2.circle(sprite, (int(cx), int(cy)), r, ink, -1, cv2.LINE_AA)
            cv2.circle(alpha, (int(cx), int(cy)), r, 255, -1, cv2.LINE_AA)
        else:
            tri = np.array([[cx, cy - r], [cx - r, cy + r], [cx + r, cy + r]], np.int32)
            cv2.fillPoly(sprite, [tri], ink, cv2.LINE_AA)
            cv2.fillPoly(alpha, [tri], 255, cv2.LINE_AA)


GRAPHICS = (_badge, _words, _shapes)


def draw_graphic(
    layer: np.ndarray,
    origin: tuple[int, int],
    layout: Layout,
    fabric_color: tuple[int, int, int],
    rng: np.random.Generator,
) -> np.ndarray | None:
    """Print a graphic onto ``layer`` (an ROI whose top-left is ``origin`` on the canvas).

    Returns the ink mask (uint8 0/255, same size as ``layer``) or None when no print fits.
    """
    assert layout.print_anchor is not None
    cx, cy, size = layout.print_anchor
    s = max(12, int(size))
    lum = 0.3 * fabric_color[0] + 0.59 * fabric_color[1] + 0.11 * fabric_color[2]
    light, dark = (238, 236, 228), (28, 28, 34)
    accents = [(200, 40, 40), (240, 190, 40), (40, 90, 190), (30, 150, 90), (240, 120, 30)]
    first = dark if lum > 140 else light
    inks = [first, accents[int(rng.integers(len(accents)))], accents[int(rng.integers(len(accents)))]]
    sprite = np.zeros((s, s, 3), np.uint8)
    alpha = np.zeros((s, s), np.uint8)
    GRAPHICS[int(rng.integers(len(GRAPHICS)))](sprite, alpha, inks, rng)
    rot = cv2.getRotationMatrix2D((s / 2, s / 2), -layout.angle, 1.0)
    side = int(s * 1.5)
    rot[:, 2] += (side - s) / 2
    sprite = cv2.warpAffine(sprite, rot, (side, side), flags=cv2.INTER_LINEAR)
    alpha = cv2.warpAffine(alpha, rot, (side, side), flags=cv2.INTER_LINEAR)
    x = int(cx - side / 2) - origin[0]
    y = int(cy - side / 2) - origin[1]
    h, w = layer.shape[:2]
    if x < 0 or y < 0 or x + side > w or y + side > h:
        return None
    alpha[alpha < 128] = 0
    alpha[alpha >= 128] = 255
    roi = layer[y : y + side, x : x + side]
    # ink sits on the fabric but lets a little of its weave through
    inked = cv2.addWeighted(sprite, 0.88, roi, 0.12, 0)
    cv2.copyTo(inked, alpha, roi)
    mask = np.zeros((h, w), np.uint8)
    mask[y : y + side, x : x + side] = alpha
    return mask
