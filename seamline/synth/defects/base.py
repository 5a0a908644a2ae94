"""What a defect renderer gets and the registry that maps taxonomy type ids to renderers.

A renderer draws into a ``Patch``: a small window of the canvas around the defect, with the same window
of the layers beneath (belt, untrimmed garment, unprinted fabric). It cannot draw outside that window, so
the line can snapshot it before and compare after to get the exact pixels, and box, the defect changed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

from seamline.errors import InputError
from seamline.synth.defects.sizing import DefectSize

RGB = tuple[int, int, int]


class UnknownDefectType(InputError, KeyError):
    """A taxonomy type has no synthetic renderer."""

    def __str__(self) -> str:
        return str(self.args[0])


@dataclass
class Patch:
    """A writable window of the canvas and the matching windows of the layers beneath it."""

    img: np.ndarray  # (h, w, 3) uint8 view into the canvas
    belt: np.ndarray  # (h, w, 3) the bare belt
    base: np.ndarray  # (h, w, 3) the garment without trims
    mask: np.ndarray  # (h, w) uint8 garment mask
    origin: tuple[int, int]  # canvas x, y of the window's top-left
    px_per_cm: float
    color: RGB  # the fabric colour
    fabric: str
    angle: float  # garment rotation in degrees (knit courses, print axes)
    at: tuple[float, float]  # the defect's centre in window coordinates
    direction: float = 0.0  # radians: the feature's direction where one matters (seam, hem, zipper)
    points: np.ndarray | None = None  # (N, 2) window coordinates: a seam or hem stretch, buttons, a track
    outward: np.ndarray | None = None  # (N, 2) unit normals pointing off the garment (hems)
    unprinted: np.ndarray | None = None  # (h, w, 3) the garment without its print
    print_mask: np.ndarray | None = None  # (h, w) uint8
    extra: dict | None = None  # feature details (button radius, zipper slider position, ...)

    @property
    def luminance(self) -> float:
        r, g, b = self.color
        return 0.3 * r + 0.59 * g + 0.11 * b

    def px(self, cm: float) -> float:
        """Centimetres to pixels."""
        return cm * self.px_per_cm


Draw = Callable[[Patch, DefectSize, np.random.Generator], None]


@dataclass(frozen=True)
class DefectRenderer:
    """How to draw one defect type and which garment feature it must sit on."""

    type_id: str
    draw: Draw
    needs: str | None = None  # None | "buttons" | "zipper" | "print" | "seam" | "hem" | "collar"


RENDERERS: dict[str, DefectRenderer] = {}


def renderer(type_id: str, needs: str | None = None) -> Callable[[Draw], Draw]:
    """Register ``draw`` as the renderer of ``type_id``."""

    def register(draw: Draw) -> Draw:
        RENDERERS[type_id] = DefectRenderer(type_id, draw, needs)
        return draw

    return register


def renderer_for(type_id: str) -> DefectRenderer:
    """The renderer of ``type_id``; a clear error when a taxonomy type has none."""
    from seamline.synth.defects.sizing import RULES

    if type_id not in RENDERERS or type_id not in RULES:
        raise UnknownDefectType(
            f"defect type {type_id!r} has no synthetic renderer; add a draw function with "
            f"@renderer({type_id!r}) and a severity rule in seamline/synth/defects/ "
            f"(types with renderers: {', '.join(sorted(RENDERERS))})"
        )
    return RENDERERS[type_id]


# ---- drawing helpers shared by the renderers ------------------------------------------------------------


def blob(
    center: tuple[float, float],
    radius: float,
    rng: np.random.Generator,
    rough: float = 0.3,
    n: int = 14,
    aspect: float = 1.0,
    angle: float = 0.0,
) -> np.ndarray:
    """An irregular closed outline (int32, for fillPoly) around ``center``."""
    t = np.linspace(0, 2 * np.pi, n, endpoint=False) + rng.uniform(0, 2 * np.pi)
    r = radius * (1 + rough * (rng.random(n) - 0.5) * 2)
    r = (r + np.roll(r, 1) + np.roll(r, -1)) / 3
    x, y = r * np.cos(t) * aspect, r * np.sin(t)
    c, s = np.cos(angle), np.sin(angle)
    pts = np.stack([center[0] + c * x - s * y, center[1] + s * x + c * y], 1)
    return np.round(pts).astype(np.int32)


def mottle(shape: tuple[int, int], rng: np.random.Generator, low: float = 0.6, cells: int = 5) -> np.ndarray:
    """Smooth random field in ``low``..1 (h, w) float32: uneven soaking, fading, wear."""
    grid = rng.uniform(low, 1.0, (cells, cells)).astype(np.float32)
    return cv2.resize(grid, (shape[1], shape[0]), interpolation=cv2.INTER_CUBIC).clip(low, 1.0)


def organic(
    shape: tuple[int, int], center, radius: float, rng: np.random.Generator, cells: int = 6
) -> np.ndarray:
    """An organic patch (uint8 0/255): a radial falloff broken up by low-frequency noise, thresholded."""
    h, w = shape
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    dist = np.hypot(xs - center[0], ys - center[1]) / max(radius, 1.0)
    noise = cv2.resize(
        rng.uniform(-1, 1, (cells, cells)).astype(np.float32), (w, h), interpolation=cv2.INTER_CUBIC
    )
    return ((1.0 - dist + 0.35 * noise) > 0.25).astype(np.uint8) * 255


def soft(mask: np.ndarray, blur: float) -> np.ndarray:
    """Mask (uint8) to float alpha in 0..1 with a soft edge of about ``blur`` px (and finite support)."""
    k = max(1, round(blur) * 2 + 1)
    a = mask.astype(np.float32) / 255.0
    return cv2.GaussianBlur(a, (k, k), 0) if k > 1 else a


def blend(img: np.ndarray, target, alpha: np.ndarray) -> None:
    """``img`` <- mix of ``img`` and ``target`` (colour or image) by ``alpha`` (h, w) in place."""
    a = alpha[:, :, None]
    out = img.astype(np.float32) * (1 - a) + np.asarray(target, np.float32) * a
    img[:] = np.clip(np.round(out), 0, 255).astype(np.uint8)


def darken(img: np.ndarray, color: RGB, alpha: np.ndarray) -> None:
    """Multiply-blend a coloured mark (what a liquid stain does to the fibres) in place."""
    tint = np.asarray(color, np.float32) / 255.0
    factor = 1.0 - alpha[:, :, None] * (1.0 - tint)
    img[:] = np.clip(np.round(img.astype(np.float32) * factor), 0, 255).astype(np.uint8)


def shift(color: RGB, k: float) -> RGB:
    """``color`` scaled by ``k`` (darker below 1, lighter above)."""
    return tuple(int(np.clip(c * k, 0, 255)) for c in color)  # type: ignore[return-value]


def toward(color: RGB, target: RGB, t: float) -> RGB:
    """``color`` moved a share ``t`` of the way to ``target``."""
    return tuple(int(c + (g - c) * t) for c, g in zip(color, target))  # type: ignore[return-value]


def contrast_thread(color: RGB) -> RGB:
    """A thread colour that shows on ``color``: light fibres on dark fabric, darker on light."""
    lum = 0.3 * color[0] + 0.59 * color[1] + 0.11 * color[2]
    return toward(color, (240, 238, 230), 0.55) if lum < 130 else shift(color, 0.55)
