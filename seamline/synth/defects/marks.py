"""Surface marks: stain, discoloration, pilling, makeup mark (nothing is cut; colour or texture changes)."""

from __future__ import annotations

import math

import cv2
import numpy as np

from seamline.synth.defects.base import (
    Patch,
    blend,
    blob,
    darken,
    mottle,
    organic,
    renderer,
    shift,
    soft,
    toward,
)
from seamline.synth.defects.sizing import DefectSize

_STAINS = ((118, 74, 38), (70, 62, 44), (52, 60, 130), (96, 84, 60), (170, 120, 40), (112, 34, 54))


@renderer("stain")
def stain(p: Patch, d: DefectSize, rng: np.random.Generator) -> None:
    """An unevenly soaked blot with satellite drops; coffee-like ones get a darker tide line."""
    r = max(1.5, p.px(d.size_cm) / 2)
    h, w = p.mask.shape
    if r > 4:
        m = organic((h, w), p.at, r, rng, cells=int(rng.integers(4, 8)))
    else:
        m = np.zeros((h, w), np.uint8)
        cv2.fillPoly(
            m,
            [
                blob(
                    p.at,
                    r * 0.85,
                    rng,
                    rough=0.5,
                    aspect=rng.uniform(0.7, 1.3),
                    angle=rng.uniform(0, math.pi),
                )
            ],
            255,
            cv2.LINE_AA,
        )
    for _ in range(int(rng.integers(0, 5)) if r > 6 else 0):
        a, dist = rng.uniform(0, 2 * math.pi), r * rng.uniform(0.7, 0.88)
        c = (int(p.at[0] + dist * math.cos(a)), int(p.at[1] + dist * math.sin(a)))
        cv2.circle(m, c, max(1, int(r * rng.uniform(0.06, 0.14))), 255, -1, cv2.LINE_AA)
    alpha = soft(m, max(0.0, r * 0.08)) * d.strength
    if r > 4:
        alpha *= mottle((h, w), rng, 0.55)
    if r > 5 and rng.random() < 0.6:
        ring = cv2.subtract(m, cv2.erode(m, np.ones((3, 3), np.uint8), iterations=max(1, int(r * 0.1))))
        alpha = np.maximum(alpha, soft(ring, 1) * min(1.0, d.strength * 1.2))
    alpha *= p.mask.astype(np.float32) / 255.0
    if p.luminance < 75:
        # on dark cloth a dried stain shows as a pale residue, not a darker blot
        blend(p.img, (196, 186, 160), alpha * 0.6)
    else:
        darken(p.img, _STAINS[int(rng.integers(len(_STAINS)))], alpha)


@renderer("discoloration")
def discoloration(p: Patch, d: DefectSize, rng: np.random.Generator) -> None:
    """A broad soft-edged patch where the dye has faded, bleached or yellowed; the weave stays visible."""
    r = p.px(d.size_cm) / 2
    h, w = p.mask.shape
    m = organic((h, w), p.at, r * 1.15, rng, cells=int(rng.integers(3, 7)))
    alpha = soft(m, max(1, r / 5)) * mottle((h, w), rng, 0.5) * (p.mask.astype(np.float32) / 255.0)
    img = p.img.astype(np.float32)
    lum = p.luminance
    mode = rng.random()
    if lum > 150 and mode < 0.6:
        target = img * np.array([1.0, 0.9, 0.55], np.float32) + 8  # yellowed
    elif lum < 80 and mode < 0.5:
        target = img + (
            np.array([214, 150, 110], np.float32) - np.asarray(p.color, np.float32)
        )  # bleach on dark
    elif mode < 0.75:
        target = img * 0.35 + np.array([245, 240, 230], np.float32) * 0.65  # bleach
    else:
        grey = img.mean(axis=2, keepdims=True)
        target = (img * 0.4 + grey * 0.6) * 0.6 + 100  # sun fade: greyer and lighter
    out = img + alpha[:, :, None] * d.strength * (target - img)
    p.img[:] = np.clip(np.round(out), 0, 255).astype(np.uint8)


@renderer("pilling")
def pilling(p: Patch, d: DefectSize, rng: np.random.Generator) -> None:
    """Fibre balls: tiny pale fuzzy dots with a shadow, scattered or packed on a slightly abraded patch."""
    r = p.px(d.size_cm) / 2
    h, w = p.mask.shape
    m = np.zeros((h, w), np.uint8)
    cv2.fillPoly(m, [blob(p.at, r * 0.9, rng, rough=0.3)], 255)
    if d.count >= 15:
        blend(
            p.img,
            toward(p.color, (200, 200, 200), 0.35),
            soft(m, max(1, r * 0.25)) * 0.3 * (p.mask.astype(np.float32) / 255.0),
        )
    pill = toward(shift(p.color, 1.25), (225, 222, 215), 0.35)
    shadow = shift(p.color, 0.45)
    pill_r = max(1.0, p.px(0.15))
    n = d.count
    pts = rng.normal(0, r * 0.45, (n * 2, 2)) + p.at
    inside = [
        q
        for q in pts
        if 0 <= q[0] < w and 0 <= q[1] < h and m[int(q[1]), int(q[0])] and p.mask[int(q[1]), int(q[0])]
    ][:n]
    for q in inside:
        c = (int(q[0]), int(q[1]))
        rr = max(1, round(pill_r * rng.uniform(0.8, 1.4)))
        cv2.circle(p.img, (c[0] + 1, c[1] + 1), rr, shadow, -1, cv2.LINE_AA)
        cv2.circle(p.img, c, rr, pill, -1, cv2.LINE_AA)
        p.img[c[1], c[0]] = toward(pill, (255, 255, 255), 0.4)


def _stroke(m: np.ndarray, start, length: float, width: float, angle: float, bend: float) -> None:
    """A brushed smear: a thick curved stroke."""
    t = np.linspace(0, 1, 10)[:, None]
    dx, dy = math.cos(angle), math.sin(angle)
    pts = np.array(start) + t * length * np.array([dx, dy]) + np.sin(t * math.pi) * bend * np.array([-dy, dx])
    cv2.polylines(m, [np.round(pts).astype(np.int32)], False, 255, max(1, int(width)), cv2.LINE_AA)


@renderer("makeup_mark", needs="collar")
def makeup_mark(p: Patch, d: DefectSize, rng: np.random.Generator) -> None:
    """Foundation smear, lipstick print or deodorant streaks; several in a cluster when severe."""
    h, w = p.mask.shape
    span = p.px(d.size_cm)
    skin_toned = sum(abs(a - b) for a, b in zip(p.color, (200, 150, 115))) < 110
    mode = d.mode or (
        "deodorant"
        if (p.extra or {}).get("underarm")
        else ("lipstick" if skin_toned or rng.random() < 0.35 else "foundation")
    )
    if mode == "deodorant" and p.luminance > 190:
        mode = "foundation"  # white residue does not show on white cloth
    for i in range(d.count):
        m = np.zeros((h, w), np.uint8)
        if d.count > 1:
            a = 2 * math.pi * i / d.count + rng.uniform(-0.4, 0.4)
            c = (p.at[0] + math.cos(a) * span * 0.28, p.at[1] + math.sin(a) * span * 0.28)
            size = span * 0.42
        else:
            c, size = p.at, span
        angle = p.direction + rng.uniform(-0.4, 0.4)
        if mode == "lipstick":
            color = (176, 32, 52)
            cv2.ellipse(
                m,
                (int(c[0]), int(c[1] - size * 0.1)),
                (max(1, int(size * 0.5)), max(1, int(size * 0.16))),
                math.degrees(angle),
                180,
                360,
                255,
                -1,
                cv2.LINE_AA,
            )
            cv2.ellipse(
                m,
                (int(c[0]), int(c[1] + size * 0.08)),
                (max(1, int(size * 0.45)), max(1, int(size * 0.2))),
                math.degrees(angle),
                0,
                180,
                255,
                -1,
                cv2.LINE_AA,
            )
            creases = np.zeros_like(m)
            for x in range(int(c[0] - size / 2), int(c[0] + size / 2), 2):
                cv2.line(creases, (x, int(c[1] - size)), (x + 1, int(c[1] + size)), 255, 1)
            m = cv2.subtract(m, creases // 3)
            alpha = soft(m, 1) * min(1.0, d.strength * 1.2)
        elif mode == "deodorant":
            color = (244, 242, 236)
            for k in range(4):
                off = (k - 1.5) * size * 0.09
                _stroke(
                    m,
                    (
                        c[0] - size / 2 * math.cos(angle) - off * math.sin(angle),
                        c[1] - size / 2 * math.sin(angle) + off * math.cos(angle),
                    ),
                    size * rng.uniform(0.6, 1.0),
                    max(1, size * 0.12),
                    angle,
                    rng.uniform(-2, 2),
                )
            streaks = mottle((h, w), rng, 0.45, cells=int(rng.integers(6, 12)))
            alpha = soft(m, max(1, size * 0.08)) * min(1.0, d.strength * 1.1) * streaks
        else:
            color = (212, 164, 128) if rng.random() < 0.6 else (184, 128, 96)
            _stroke(
                m,
                (c[0] - size / 2 * math.cos(angle), c[1] - size / 2 * math.sin(angle)),
                size,
                max(2, size * 0.3),
                angle,
                size * rng.uniform(-0.15, 0.15),
            )
            grain = rng.uniform(0.6, 1.0, (h, w)).astype(np.float32)
            alpha = soft(m, max(1, size * 0.08)) * d.strength * grain
        blend(p.img, color, alpha * (p.mask.astype(np.float32) / 255.0))
