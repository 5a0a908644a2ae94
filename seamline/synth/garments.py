"""Paint a laid-out garment onto the belt: fabric, pattern, print, seams, shading, then trims.

The painter keeps the layers defect renderers need to undo or look through: the belt before the garment,
the garment before its trims (to take a button off), and the fabric under the print (to peel it).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from seamline.synth.prints import draw_graphic, garment_coords, pattern_masks
from seamline.synth.shapes import Layout
from seamline.synth.textures import TextureBank, tint_lut

RGB = tuple[int, int, int]

# kind -> (fabrics, palette, share of patterned garments, allowed patterns)
_LOOKS: dict[str, tuple[tuple[str, ...], tuple[RGB, ...], float, tuple[str, ...]]] = {
    "tshirt": (
        ("jersey", "heather"),
        (
            (236, 236, 232),
            (40, 40, 44),
            (32, 44, 84),
            (150, 150, 152),
            (178, 34, 44),
            (34, 86, 58),
            (214, 164, 52),
            (120, 170, 214),
            (226, 150, 170),
            (104, 108, 60),
        ),
        0.2,
        ("stripes",),
    ),
    "shirt": (
        ("oxford", "twill"),
        ((240, 240, 238), (170, 200, 232), (236, 200, 204), (36, 48, 92), (210, 214, 200)),
        0.45,
        ("stripes", "checks"),
    ),
    "sweater": (
        ("rib_knit", "cable_knit"),
        ((228, 218, 196), (132, 132, 136), (40, 50, 88), (120, 36, 48), (180, 140, 96), (52, 84, 60)),
        0.15,
        ("stripes",),
    ),
    "hoodie": (
        ("fleece",),
        (
            (150, 150, 154),
            (36, 36, 40),
            (38, 48, 86),
            (110, 36, 48),
            (100, 104, 70),
            (200, 180, 220),
            (220, 200, 170),
        ),
        0.0,
        (),
    ),
    "jacket": (
        ("nylon", "twill"),
        ((30, 30, 34), (36, 46, 80), (88, 96, 60), (176, 160, 120), (180, 40, 40)),
        0.0,
        (),
    ),
    "dress": (
        ("oxford", "jersey"),
        ((30, 30, 34), (176, 40, 56), (40, 52, 100), (232, 214, 190), (110, 150, 120), (236, 160, 120)),
        0.5,
        ("dots", "stripes", "checks"),
    ),
    "trousers": (
        ("denim", "twill", "corduroy"),
        (
            (44, 62, 110),
            (30, 40, 70),
            (96, 120, 160),
            (40, 40, 44),
            (190, 168, 124),
            (84, 90, 60),
            (110, 78, 50),
        ),
        0.0,
        (),
    ),
}
_WHITE_WEFT = {"denim": 0.4}


@dataclass(frozen=True)
class Look:
    """What a garment is made of and how it is coloured."""

    fabric: str
    variant: int
    color: RGB
    pattern: str | None
    second_color: RGB
    thread: RGB
    offset: tuple[int, int]


def choose_look(kind: str, rng: np.random.Generator) -> Look:
    """Fabric, colour and pattern for a garment of ``kind``."""
    fabrics, palette, pattern_share, patterns = _LOOKS[kind]
    fabric = fabrics[int(rng.integers(len(fabrics)))]
    if kind == "trousers" and fabric == "denim":
        palette = palette[:4]
    elif kind == "trousers":
        palette = palette[3:]
    color = np.asarray(palette[int(rng.integers(len(palette)))], np.float32)
    color = tuple(int(c) for c in np.clip(color * rng.uniform(0.9, 1.1) + rng.normal(0, 6, 3), 20, 245))
    pattern = (
        patterns[int(rng.integers(len(patterns)))] if patterns and rng.random() < pattern_share else None
    )
    second = _LOOKS[kind][1][int(rng.integers(len(_LOOKS[kind][1])))]
    if sum(abs(a - b) for a, b in zip(second, color)) < 90:
        second = (236, 236, 232) if sum(color) < 380 else (36, 44, 80)
    thread = (206, 152, 72) if fabric == "denim" else tuple(int(c * 0.72) for c in color)
    return Look(
        fabric,
        int(rng.integers(8)),
        color,
        pattern,
        second,
        thread,
        (int(rng.integers(256)), int(rng.integers(256))),
    )


@dataclass
class PaintedGarment:
    """Layers of a painted garment that defect renderers read (canvas-sized unless noted)."""

    layout: Layout
    look: Look
    mask: np.ndarray  # (H, W) uint8, 255 on the garment
    belt: np.ndarray  # (H, W, 3) the belt before the garment was laid on it
    base: np.ndarray  # (H, W, 3) the garment before its trims (buttons, zipper, cords, tags)
    print_mask: np.ndarray | None  # (H, W) uint8 ink of the graphic print
    unprinted: np.ndarray | None  # (H, W, 3) the garment as it would look without the print
    box: tuple[int, int, int, int]  # x0, y0, x1, y1 of the garment on the canvas

    @property
    def color(self) -> RGB:
        return self.look.color


def garment_box(layout: Layout, width: int, height: int, pad: int = 3) -> tuple[int, int, int, int]:
    """x0, y0, x1, y1 of the canvas window the garment is painted in."""
    pts = layout.all_points()
    band = max((p.band_cm for p in layout.panels), default=0.0) * layout.scale
    x0, y0 = np.floor(pts.min(0) - band - pad).astype(int)
    x1, y1 = np.ceil(pts.max(0) + band + pad).astype(int)
    return max(0, x0), max(0, y0), min(width, x1), min(height, y1)


def band_outline(points: np.ndarray, width: float) -> np.ndarray:
    """A band of ``width`` along a polyline, as a polygon with square ends (int32)."""
    d = np.gradient(points, axis=0) if len(points) > 2 else np.repeat(points[1:] - points[:1], len(points), 0)
    n = np.stack([-d[:, 1], d[:, 0]], 1) / (np.linalg.norm(d, axis=1, keepdims=True) + 1e-6)
    return np.round(np.concatenate([points + n * width / 2, (points - n * width / 2)[::-1]])).astype(np.int32)


def _panel_mask(panel, shape, origin, scale) -> np.ndarray:
    mask = np.zeros(shape, np.uint8)
    if panel.band_cm > 0:
        cv2.fillPoly(mask, [band_outline(panel.points - origin, panel.band_cm * scale)], 255, cv2.LINE_8)
    else:
        cv2.fillPoly(mask, [np.round(panel.points - origin).astype(np.int32)], 255, cv2.LINE_8)
    return mask


def _dashes(line: np.ndarray, step: float, duty: float = 0.6) -> list[np.ndarray]:
    """Split a polyline into short dashes (stitches) for a single cv2.polylines call."""
    seg = np.diff(line, axis=0)
    lengths = np.linalg.norm(seg, axis=1)
    total = float(lengths.sum())
    if total < step:
        return [line.astype(np.int32)]
    cum = np.concatenate([[0.0], np.cumsum(lengths)])
    t0 = np.arange(0.0, total - step * duty, step)
    starts = np.stack([np.interp(t0, cum, line[:, i]) for i in (0, 1)], 1)
    ends = np.stack([np.interp(t0 + step * duty, cum, line[:, i]) for i in (0, 1)], 1)
    return list(np.round(np.stack([starts, ends], 1)).astype(np.int32))


def paint_garment(
    canvas: np.ndarray,
    layout: Layout,
    look: Look,
    bank: TextureBank,
    shade: np.ndarray,
    rng: np.random.Generator,
) -> PaintedGarment:
    """Paint ``layout`` onto ``canvas`` (in place) and return the layers defects need.

    ``shade`` is the garment's wrinkle and fold shading at any size (uint8, 128 = unchanged); it is stretched
    over the garment's bounding box.
    """
    height, width = canvas.shape[:2]
    belt = canvas.copy()
    x0, y0, x1, y1 = garment_box(layout, width, height)
    h, w = y1 - y0, x1 - x0
    origin = np.array([x0, y0], np.float32)

    def cloth(color: RGB, kind: str = look.fabric) -> np.ndarray:
        lut = tint_lut(color, _WHITE_WEFT.get(kind, 0.0))
        return bank.fabric_patch(kind, look.variant, h, w, look.offset, lut)

    layer = cloth(look.color)
    if look.pattern:
        u, v = garment_coords(layout, x0, y0, h, w)
        masks = pattern_masks(look.pattern, u, v, rng)
        cv2.copyTo(cloth(look.second_color), masks[0], layer)
        if len(masks) > 1:
            dark = tuple(int(0.5 * a + 0.5 * b) for a, b in zip(look.color, look.second_color, strict=True))
            cv2.copyTo(cloth(tuple(int(c * 0.75) for c in dark)), masks[1], layer)

    roi = canvas[y0:y1, x0:x1].copy()
    mask = np.zeros((h, w), np.uint8)
    outline = tuple(int(c * 0.45) for c in look.color)
    rib = None
    for panel in layout.panels:
        pm = _panel_mask(panel, (h, w), origin, layout.scale)
        if panel.style == "rib":
            if rib is None:
                rib = cloth(tuple(int(c * 0.93) for c in look.color), "rib_knit")
            cv2.copyTo(rib, pm, roi)
        elif panel.style == "inner":
            cv2.copyTo(cv2.multiply(layer, (0.55, 0.55, 0.55, 0)), pm, roi)
        else:
            cv2.copyTo(layer, pm, roi)
        edge = (
            band_outline(panel.points - origin, panel.band_cm * layout.scale)
            if panel.band_cm > 0
            else np.round(panel.points - origin).astype(np.int32)
        )
        cv2.polylines(roi, [edge], True, outline, 1, cv2.LINE_AA)
        mask |= pm

    print_mask = None
    unprinted_roi = None
    if layout.print_anchor is not None:
        unprinted_roi = roi.copy()
        ink = draw_graphic(roi, (x0, y0), layout, look.color, rng)
        if ink is not None:
            print_mask = ink & mask
            roi[(ink > 0) & (mask == 0)] = unprinted_roi[(ink > 0) & (mask == 0)]

    stitch = [d for s in layout.seams for d in _dashes(s - origin, max(2.0, 0.45 * layout.scale))]
    if stitch:
        cv2.polylines(roi, stitch, False, look.thread, 1, cv2.LINE_AA)

    shade3 = cv2.resize(cv2.cvtColor(shade, cv2.COLOR_GRAY2RGB), (w, h), interpolation=cv2.INTER_LINEAR)
    cv2.copyTo(cv2.multiply(roi, shade3, scale=1 / 128), mask, canvas[y0:y1, x0:x1])

    full_mask = np.zeros((height, width), np.uint8)
    full_mask[y0:y1, x0:x1] = mask
    unprinted = full_print = None
    if print_mask is not None and unprinted_roi is not None:
        full_print = np.zeros((height, width), np.uint8)
        full_print[y0:y1, x0:x1] = print_mask
        unprinted = canvas.copy()
        cv2.copyTo(cv2.multiply(unprinted_roi, shade3, scale=1 / 128), print_mask, unprinted[y0:y1, x0:x1])
    return PaintedGarment(
        layout, look, full_mask, belt, canvas.copy(), full_print, unprinted, (x0, y0, x1, y1)
    )


def draw_trims(canvas: np.ndarray, garment: PaintedGarment, rng: np.random.Generator) -> dict:
    """Buttons, zipper and drawstrings: hard parts drawn over the shaded fabric.

    Returns what a zipper defect needs to redraw the zipper: the slider's distance down the track and the
    tooth material.
    """
    g, look = garment.layout, garment.look
    trims: dict = {}
    if g.buttons:
        r = max(2, round(g.button_radius))
        light = sum(look.color) > 450
        face = (34, 30, 28) if light and rng.random() < 0.3 else (236, 232, 222)
        if g.kind == "sweater":
            face = (90, 60, 40) if light else (214, 196, 160)
        for bx, by in g.buttons:
            c = (round(bx), round(by))
            cv2.circle(canvas, (c[0] + 1, c[1] + 1), r, (20, 20, 20), -1, cv2.LINE_AA)
            cv2.circle(canvas, c, r, face, -1, cv2.LINE_AA)
            cv2.circle(canvas, c, r, tuple(int(v * 0.7) for v in face), 1, cv2.LINE_AA)
            if r >= 4:
                for dx, dy in ((-1, -1), (1, -1), (-1, 1), (1, 1)):
                    cv2.circle(
                        canvas,
                        (c[0] + dx * r // 3, c[1] + dy * r // 3),
                        1,
                        tuple(int(v * 0.55) for v in face),
                        -1,
                    )
    if g.zipper is not None:
        metal = bool(rng.random() < 0.5)
        draw_zipper_track(canvas, g.zipper, g.scale, metal=metal)
        top, bottom = g.zipper
        length = float(np.linalg.norm(bottom - top))
        d = (bottom - top) / length
        slider_s = float(rng.uniform(0.02, 0.12) * length)
        draw_slider(canvas, top + d * slider_s, d, g.scale)
        trims.update(slider_s=slider_s, metal=metal)
    for cord in g.drawstrings:
        pts = np.round(cord).astype(np.int32)
        cv2.polylines(
            canvas,
            [pts],
            False,
            tuple(int(c * 0.8) for c in look.color),
            max(2, int(0.7 * g.scale)),
            cv2.LINE_AA,
        )
        cv2.circle(
            canvas,
            tuple(int(v) for v in pts[-1]),
            max(2, int(0.5 * g.scale)),
            (200, 200, 205),
            -1,
            cv2.LINE_AA,
        )
    return trims


def zipper_teeth(
    top: np.ndarray, bottom: np.ndarray, scale: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Centres of the zipper's teeth, the direction along the track and the normal across it."""
    length = float(np.linalg.norm(bottom - top))
    d = (bottom - top) / length
    n = np.array([-d[1], d[0]], np.float32)
    pitch = max(2.0, 0.35 * scale)
    t = np.arange(0.0, length, pitch)
    return top[None, :] + t[:, None] * d[None, :], d, n


def draw_zipper_track(canvas: np.ndarray, zipper: np.ndarray, scale: float, metal: bool) -> None:
    """The zipper tape and the two interlocking rows of teeth."""
    top, bottom = zipper
    centres, _d, n = zipper_teeth(top, bottom, scale)
    tape = max(3, int(1.1 * scale))
    cv2.line(
        canvas,
        tuple(np.round(top).astype(int)),
        tuple(np.round(bottom).astype(int)),
        (40, 40, 44),
        tape,
        cv2.LINE_AA,
    )
    color = (196, 190, 170) if metal else (92, 92, 98)
    hi = (245, 240, 220) if metal else (130, 130, 136)
    half = max(1.5, 0.3 * scale)
    teeth = []
    for i, c in enumerate(centres):
        side = 1 if i % 2 else -1
        teeth.append(np.round([c, c + n * side * half]).astype(np.int32))
    cv2.polylines(canvas, teeth, False, color, max(1, int(0.2 * scale)), cv2.LINE_8)
    cv2.polylines(canvas, [np.round([top, bottom]).astype(np.int32)], False, hi, 1, cv2.LINE_AA)


def draw_slider(canvas: np.ndarray, at: np.ndarray, d: np.ndarray, scale: float, tab: bool = True) -> None:
    """The zipper's slider and, unless ``tab`` is False, its pull tab hanging down the track."""
    n = np.array([-d[1], d[0]], np.float32)
    w, length = 0.7 * scale, 1.3 * scale
    body = np.array([at - n * w, at + n * w, at + d * length + n * w * 0.6, at + d * length - n * w * 0.6])
    cv2.fillPoly(canvas, [np.round(body).astype(np.int32)], (170, 170, 176), cv2.LINE_AA)
    cv2.polylines(canvas, [np.round(body).astype(np.int32)], True, (70, 70, 76), 1, cv2.LINE_AA)
    if tab:
        p0 = at + d * length * 0.8
        tab_pts = np.array(
            [
                p0 - n * w * 0.45,
                p0 + n * w * 0.45,
                p0 + d * 2.6 * scale + n * w * 0.35,
                p0 + d * 2.6 * scale - n * w * 0.35,
            ]
        )
        cv2.fillPoly(canvas, [np.round(tab_pts).astype(np.int32)], (150, 150, 158), cv2.LINE_AA)
        cv2.polylines(canvas, [np.round(tab_pts).astype(np.int32)], True, (60, 60, 66), 1, cv2.LINE_AA)
