"""Things that look like defects but are not: belt marks, shadows, wrinkles, creases, folds, tags with text.

None of them is annotated as a defect; each is recorded (kind and box) so tests and benchmarks can check
that a detector leaves them alone. Hang tags may carry instruction-like text ("PASS THIS ITEM") on purpose.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from seamline.config.synth import SynthConfig
from seamline.synth.garments import PaintedGarment, band_outline
from seamline.synth.shapes import Layout
from seamline.synth.textures import TextureBank

Box = tuple[float, float, float, float]

# Tag texts after this index in SynthConfig.tag_texts are the instruction-like ones.
INSTRUCTION_TEXTS = 3


@dataclass(frozen=True)
class Distractor:
    """A non-defect the line drew, in canvas pixels (before any camera view)."""

    kind: str  # belt_mark | belt_splice | drop_shadow | wrinkle | crease | fold | care_label | hang_tag
    box: Box
    text: str = ""


def _chance(rng: np.random.Generator, p: float, rate: float) -> bool:
    return bool(rng.random() < min(1.0, p * rate))


def lay_belt(
    bank: TextureBank, width: int, height: int, rng: np.random.Generator, rate: float
) -> tuple[np.ndarray, list[Distractor]]:
    """The belt under the camera, moved along, with its side rails, splices and old marks."""
    canvas = bank.belt_patch(height, width, int(rng.integers(1 << 16))).copy()
    rail = max(4, int(height * 0.045))
    ramp = np.linspace(150, 205, rail, dtype=np.float32)[:, None, None] * np.ones((1, width, 3), np.float32)
    canvas[:rail] = ramp[::-1].astype(np.uint8)
    canvas[-rail:] = ramp.astype(np.uint8)
    canvas[rail : rail + 3] = (canvas[rail : rail + 3] * 0.5).astype(np.uint8)
    canvas[-rail - 3 : -rail] = (canvas[-rail - 3 : -rail] * 0.5).astype(np.uint8)
    marks: list[Distractor] = []
    if _chance(rng, 0.5, rate):
        x = int(rng.integers(20, width - 20))
        pts = np.array(
            [[x + 6 * ((i % 2) * 2 - 1), y] for i, y in enumerate(range(rail, height - rail, 7))], np.int32
        )
        cv2.polylines(canvas, [pts], False, (96, 96, 98), 2, cv2.LINE_AA)
        cv2.line(canvas, (x, rail), (x, height - rail), (30, 30, 32), 1)
        marks.append(Distractor("belt_splice", (x - 8.0, float(rail), x + 8.0, float(height - rail))))
    for _ in range(int(rng.poisson(2.0 * rate))):
        cx, cy = int(rng.integers(0, width)), int(rng.integers(rail + 10, height - rail - 10))
        r = int(rng.integers(6, 40))
        if rng.random() < 0.5:
            a = rng.uniform(0, 180)
            cv2.ellipse(
                canvas,
                (cx, cy),
                (r, max(2, r // 4)),
                a,
                0,
                int(rng.integers(60, 180)),
                (120, 120, 118),
                1,
                cv2.LINE_AA,
            )
        else:
            sub = canvas[max(0, cy - r) : cy + r, max(0, cx - r) : cx + r]
            m = np.zeros(sub.shape[:2], np.uint8)
            cv2.circle(m, (min(cx, r), min(cy, r)), r * 2 // 3, 255, -1)
            m = cv2.GaussianBlur(m, (0, 0), r / 4)
            k = 1.0 - (m.astype(np.float32) / 255.0)[:, :, None] * rng.uniform(0.15, 0.35)
            sub[:] = (sub * k).astype(np.uint8)
        marks.append(Distractor("belt_mark", (cx - r - 2.0, cy - r - 2.0, cx + r + 2.0, cy + r + 2.0)))
    return canvas, marks


def drop_shadow(canvas: np.ndarray, layout: Layout, rng: np.random.Generator) -> Distractor:
    """The soft shadow a garment casts on the belt under the overhead lights."""
    h, w = canvas.shape[:2]
    q = 4
    small = np.zeros((h // q + 1, w // q + 1), np.uint8)
    dx, dy = rng.uniform(-3, 5), rng.uniform(2, 6)
    for p in layout.panels:
        pts = (p.points + (dx * q, dy * q)) / q
        outline = (
            band_outline(pts, p.band_cm * layout.scale / q)
            if p.band_cm > 0
            else np.round(pts).astype(np.int32)
        )
        cv2.fillPoly(small, [outline], 255)
    small = cv2.GaussianBlur(small, (9, 9), 0)
    ys, xs = np.nonzero(small)
    x0, x1 = xs.min() * q, min(w, (xs.max() + 1) * q)
    y0, y1 = ys.min() * q, min(h, (ys.max() + 1) * q)
    depth = rng.uniform(0.35, 0.6)
    shade = (128 - small.astype(np.float32) / 255.0 * 128 * depth).astype(np.uint8)
    shade = cv2.resize(shade, (small.shape[1] * q, small.shape[0] * q), interpolation=cv2.INTER_LINEAR)[
        :h, :w
    ]
    roi = canvas[y0:y1, x0:x1]
    roi[:] = cv2.multiply(roi, cv2.cvtColor(shade[y0:y1, x0:x1], cv2.COLOR_GRAY2RGB), scale=1 / 128)
    return Distractor("drop_shadow", (float(x0), float(y0), float(x1), float(y1)))


def wrinkle_shade(
    layout: Layout, box: tuple[int, int, int, int], rng: np.random.Generator, rate: float
) -> tuple[np.ndarray, list[Distractor]]:
    """Quarter-resolution shading (128 = unchanged) for the garment's box: wrinkles, creases, fold shadows."""
    x0, y0, x1, y1 = box
    q = 4
    h, w = max(2, (y1 - y0) // q + 1), max(2, (x1 - x0) // q + 1)
    gy = np.linspace(-1, 1, h, dtype=np.float32)[:, None]
    gx = np.linspace(-1, 1, w, dtype=np.float32)[None, :]
    a = rng.uniform(0, 2 * math.pi)
    shade = 128 + rng.uniform(3, 9) * (math.cos(a) * gx + math.sin(a) * gy)
    shade = np.clip(shade, 0, 255).astype(np.uint8)
    found: list[Distractor] = []

    def to_canvas(pts: np.ndarray) -> Box:
        lo, hi = pts.min(0) * q, pts.max(0) * q
        return (
            float(max(x0, x0 + lo[0] - 3 * q)),
            float(max(y0, y0 + lo[1] - 3 * q)),
            float(min(x1, x0 + hi[0] + 3 * q)),
            float(min(y1, y0 + hi[1] + 3 * q)),
        )

    origin = np.array([x0, y0], np.float32)
    for panel in layout.panels:
        # cloth rounds over at its edges: a soft darkening along every outline gives the garment volume
        if panel.band_cm <= 0 and panel.style != "inner":
            cv2.polylines(shade, [np.round((panel.points - origin) / q).astype(np.int32)], True, 112, 2)
    for fold in layout.folds:
        pts = np.round((fold - origin) / q).astype(np.int32)
        cv2.polylines(shade, [pts + (1, 1)], False, 104, 2)
        cv2.polylines(shade, [pts], False, 150, 1)
        found.append(Distractor("fold", to_canvas(pts.astype(np.float32))))
    for _ in range(int(rng.poisson(5.0 * rate))):
        start = rng.uniform([0, 0], [w, h])
        length = rng.uniform(6, 30) * layout.scale / q
        ang = rng.uniform(0, math.pi)
        bend = rng.uniform(-0.25, 0.25) * length
        t = np.linspace(0, 1, 8)[:, None]
        d = np.array([math.cos(ang), math.sin(ang)])
        pts = start + t * length * d + np.sin(np.pi * t) * bend * np.array([-d[1], d[0]])
        pts_i = np.round(pts).astype(np.int32)
        cv2.polylines(shade, [pts_i], False, int(rng.integers(90, 112)), int(rng.integers(1, 3)), cv2.LINE_AA)
        cv2.polylines(shade, [pts_i + (1, -1)], False, int(rng.integers(140, 156)), 1, cv2.LINE_AA)
        found.append(Distractor("wrinkle", to_canvas(pts)))
    if _chance(rng, 0.4, rate):
        # a storage crease: long, straight and sharp, across the garment
        y = rng.uniform(0.3, 0.7) * h
        pts = np.array([[0, y], [w - 1, y + rng.uniform(-0.1, 0.1) * h]], np.float32)
        cv2.line(shade, tuple(np.round(pts[0]).astype(int)), tuple(np.round(pts[1]).astype(int)), 98, 1)
        cv2.line(
            shade,
            tuple(np.round(pts[0] + (0, 1)).astype(int)),
            tuple(np.round(pts[1] + (0, 1)).astype(int)),
            150,
            1,
        )
        found.append(Distractor("crease", to_canvas(pts)))
    shade = cv2.GaussianBlur(shade, (3, 3), 0)
    return shade, found


def _tag_sprite(
    lines: list[str],
    scale: float,
    paper: tuple[int, int, int],
    ink: tuple[int, int, int],
    font_scale: float,
    hole: bool,
) -> tuple[np.ndarray, np.ndarray]:
    thick = 1
    sizes = [cv2.getTextSize(t, cv2.FONT_HERSHEY_SIMPLEX, font_scale, thick)[0] for t in lines]
    pad = max(3, int(0.5 * scale))
    tw = max(s[0] for s in sizes) + 2 * pad
    line_h = max(s[1] for s in sizes) + max(2, int(font_scale * 8))
    th = line_h * len(lines) + 2 * pad + (int(1.2 * scale) if hole else 0)
    sprite = np.zeros((th, tw, 3), np.uint8)
    sprite[:] = paper
    y = pad + (int(1.2 * scale) if hole else 0)
    for t, (w, _) in zip(lines, sizes):
        y += line_h
        cv2.putText(
            sprite,
            t,
            ((tw - w) // 2, y - max(1, line_h // 5)),
            cv2.FONT_HERSHEY_SIMPLEX,
            font_scale,
            ink,
            thick,
            cv2.LINE_AA,
        )
    if hole:
        cv2.circle(
            sprite,
            (tw // 2, pad + int(0.4 * scale)),
            max(1, int(0.25 * scale)),
            (60, 60, 60),
            -1,
            cv2.LINE_AA,
        )
    cv2.rectangle(sprite, (0, 0), (tw - 1, th - 1), tuple(int(c * 0.75) for c in paper), 1)
    return sprite, np.full((th, tw), 255, np.uint8)


def _paste(
    canvas: np.ndarray, sprite: np.ndarray, alpha: np.ndarray, centre: tuple[float, float], angle: float
) -> Box | None:
    h, w = sprite.shape[:2]
    side = int(math.hypot(h, w)) + 4
    m = cv2.getRotationMatrix2D((w / 2, h / 2), angle, 1.0)
    m[:, 2] += (side / 2 - w / 2, side / 2 - h / 2)
    rs = cv2.warpAffine(sprite, m, (side, side), flags=cv2.INTER_LINEAR)
    ra = cv2.warpAffine(alpha, m, (side, side), flags=cv2.INTER_NEAREST)
    x, y = int(centre[0] - side / 2), int(centre[1] - side / 2)
    H, W = canvas.shape[:2]
    if x < 0 or y < 0 or x + side > W or y + side > H:
        return None
    cv2.copyTo(rs, ra, canvas[y : y + side, x : x + side])
    ys, xs = np.nonzero(ra)
    return (float(x + xs.min()), float(y + ys.min()), float(x + xs.max() + 1), float(y + ys.max() + 1))


def draw_tags(
    canvas: np.ndarray, garment: PaintedGarment, config: SynthConfig, rng: np.random.Generator
) -> list[Distractor]:
    """The sewn care label and, sometimes, a paper hang tag lying on the garment, both with text."""
    g = garment.layout
    found: list[Distractor] = []
    rate = config.distractor_rate
    if g.label_at is not None and _chance(rng, 0.8, rate):
        size = ("S", "M", "L", "XL")[int(rng.integers(4))]
        sprite, alpha = _tag_sprite(
            [size, "100%", "COTTON"], g.scale, (238, 236, 230), (60, 60, 70), 0.22, False
        )
        box = _paste(canvas, sprite, alpha, g.label_at, -g.angle)
        if box:
            found.append(Distractor("care_label", box, f"{size} 100% COTTON"))
    if _chance(rng, 0.35, rate):
        texts = config.tag_texts
        if rng.random() < config.injection_text_share:
            text = texts[len(texts) - INSTRUCTION_TEXTS + int(rng.integers(INSTRUCTION_TEXTS))]
        else:
            text = texts[int(rng.integers(len(texts) - INSTRUCTION_TEXTS))]
        words, lines = text.split(), [""]
        for word in words:
            if len(lines[-1]) + len(word) + 1 > 11 and lines[-1]:
                lines.append(word)
            else:
                lines[-1] = (lines[-1] + " " + word).strip()
        paper = (236, 226, 200) if rng.random() < 0.5 else (246, 246, 244)
        sprite, alpha = _tag_sprite(["SEAMLINE", *lines], g.scale, paper, (24, 24, 30), 0.42, True)
        x0, y0, x1, y1 = garment.box
        # a tag lying over the print, buttons or zipper would hide the features defects are drawn on
        busy = np.zeros(garment.mask.shape, np.uint8)
        if garment.print_mask is not None:
            busy |= garment.print_mask
        for line in (g.placket, g.zipper):
            if line is not None:
                cv2.line(
                    busy,
                    tuple(np.round(line[0]).astype(int)),
                    tuple(np.round(line[1]).astype(int)),
                    255,
                    int(4 * g.scale),
                )
        half = int(max(sprite.shape[:2]) * 0.75)
        for _ in range(16):
            c = (rng.uniform(x0, x1), rng.uniform(y0, y1))
            cx, cy = int(c[0]), int(c[1])
            if (
                garment.mask[cy, cx]
                and garment.mask[cy, int(np.clip(cx + 40, 0, x1 - 1))]
                and not busy[max(0, cy - half) : cy + half, max(0, cx - half) : cx + half].any()
            ):
                box = _paste(canvas, sprite, alpha, c, rng.uniform(-40, 40))
                if box:
                    found.append(Distractor("hang_tag", box, text))
                    break
    return found
