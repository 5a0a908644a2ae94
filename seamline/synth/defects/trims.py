"""Defects of a garment's features: missing button, broken zipper, damaged print.

Each starts from the layer the feature was drawn on (the garment without trims, or without its print), so
taking a button off or peeling a print reveals the fabric exactly as it lies beneath.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from seamline.synth.defects.base import Patch, blend, contrast_thread, renderer, shift, soft
from seamline.synth.defects.sizing import DefectSize
from seamline.synth.garments import draw_slider, draw_zipper_track, zipper_teeth


@renderer("missing_button", needs="buttons")
def missing_button(p: Patch, d: DefectSize, rng: np.random.Generator) -> None:
    """The fabric where a button sat: a cleaner round spot, the four thread holes and loose thread ends."""
    assert p.points is not None and p.extra is not None
    r = float(p.extra["radius"])
    h, w = p.mask.shape
    thread = contrast_thread(p.color)
    for c in p.points:
        ci = (round(c[0]), round(c[1]))
        m = np.zeros((h, w), np.uint8)
        cv2.circle(m, ci, int(r + 3), 255, -1)
        cv2.copyTo(p.base, m, p.img)
        spot = np.zeros((h, w), np.uint8)
        cv2.circle(spot, ci, max(1, int(r * 0.95)), 255, -1, cv2.LINE_AA)
        blend(p.img, shift(p.color, 1.12 if p.luminance < 120 else 0.9), soft(spot, 1) * 0.45)
        hole = max(1, int(r / 3))
        for dx, dy in ((-1, -1), (1, -1), (-1, 1), (1, 1)):
            cv2.circle(p.img, (ci[0] + dx * hole, ci[1] + dy * hole), 1, thread, -1)
        ends = []
        for _ in range(int(rng.integers(2, 4))):
            a = rng.uniform(0, 2 * math.pi)
            long = p.px(rng.uniform(0.5, 1.0))
            bend = rng.uniform(-0.6, 0.6)
            pts = [np.array(ci, np.float32)]
            for k in range(1, 4):
                ang = a + bend * k
                pts.append(pts[-1] + long / 3 * np.array([math.cos(ang), math.sin(ang)]))
            ends.append(np.round(pts).astype(np.int32))
        cv2.polylines(p.img, ends, False, thread, 1, cv2.LINE_AA)


def _along(track: np.ndarray, s: float) -> np.ndarray:
    top, bottom = track
    d = (bottom - top) / np.linalg.norm(bottom - top)
    return top + d * s


@renderer("broken_zipper", needs="zipper")
def broken_zipper(p: Patch, d: DefectSize, rng: np.random.Generator) -> None:
    """Pull tab gone, a stretch of teeth gone with a couple bent, or the track split open below the slider."""
    assert p.points is not None and p.extra is not None
    track = p.points
    scale, metal = float(p.extra["scale"]), bool(p.extra["metal"])
    slider_s = float(p.extra["slider_s"])
    top, bottom = track
    length = float(np.linalg.norm(bottom - top))
    u = (bottom - top) / length
    n = np.array([-u[1], u[0]])
    tape = max(3, int(1.1 * scale))
    # what the zipper looks like intact, rebuilt on the bare garment; the defect edits a copy of it
    fixed = p.base.copy()
    draw_zipper_track(fixed, track, scale, metal)
    region = np.zeros(p.mask.shape, np.uint8)
    if d.mode == "tab":
        draw_slider(fixed, _along(track, slider_s), u, scale, tab=False)
        p0 = _along(track, slider_s)
        cv2.line(
            region,
            tuple(np.round(p0 + u * 0.9 * scale).astype(int)),
            tuple(np.round(p0 + u * 3.6 * scale).astype(int)),
            255,
            int(1.4 * scale) + 4,
        )
    elif d.mode == "teeth":
        s0 = float(p.extra["s0"])
        s1 = s0 + p.px(d.size_cm)
        a, b = _along(track, s0), _along(track, s1)
        cv2.line(fixed, tuple(np.round(a).astype(int)), tuple(np.round(b).astype(int)), (40, 40, 44), tape)
        teeth, _, _ = zipper_teeth(top, bottom, scale)
        bent = [t for t in teeth if s0 < float(np.dot(t - top, u)) < s1][:: max(1, int(rng.integers(2, 4)))]
        color = (196, 190, 170) if metal else (92, 92, 98)
        for t in bent[:3]:
            ang = rng.uniform(0.5, 1.2) * rng.choice([-1, 1])
            v = n * math.cos(ang) + u * math.sin(ang)
            cv2.line(
                fixed,
                tuple(np.round(t).astype(int)),
                tuple(np.round(t + v * 0.55 * scale).astype(int)),
                color,
                max(1, int(0.2 * scale)),
            )
        draw_slider(fixed, _along(track, slider_s), u, scale)
        cv2.line(
            region, tuple(np.round(a).astype(int)), tuple(np.round(b).astype(int)), 255, int(1.6 * scale) + 4
        )
    else:
        s0 = float(p.extra["s0"])
        s1 = min(length, s0 + p.px(d.size_cm))
        gap = p.px(rng.uniform(0.5, 1.0))
        ts = np.linspace(0, 1, 24)
        spine = np.array([_along(track, s0 + t * (s1 - s0)) for t in ts])
        half = gap * np.sin(np.pi * ts) ** 0.8 + 0.5
        band = half[:, None] + tape * 0.6 + 1
        outline = np.concatenate([spine + n * band, (spine - n * band)[::-1]])
        cv2.fillPoly(region, [np.round(outline).astype(np.int32)], 255)
        cv2.copyTo(p.base, region, fixed)
        lens = np.round(
            np.concatenate([spine + n * half[:, None], (spine - n * half[:, None])[::-1]])
        ).astype(np.int32)
        inner = np.zeros_like(region)
        cv2.fillPoly(inner, [lens], 255)
        cv2.copyTo(cv2.multiply(p.base, (0.25, 0.25, 0.25, 0)), inner, fixed)
        color = (196, 190, 170) if metal else (92, 92, 98)
        for side in (-1, 1):
            edge = spine + side * n * (half[:, None] + tape * 0.3)
            cv2.polylines(
                fixed, [np.round(edge).astype(np.int32)], False, (40, 40, 44), max(2, tape // 2), cv2.LINE_AA
            )
            teeth = [np.round([q, q - side * n * max(1.5, 0.3 * scale)]).astype(np.int32) for q in edge[1:-1]]
            cv2.polylines(fixed, teeth, False, color, max(1, int(0.2 * scale)))
        draw_slider(fixed, _along(track, slider_s), u, scale)
    region &= cv2.dilate(p.mask, np.ones((3, 3), np.uint8))
    cv2.copyTo(fixed, region, p.img)


@renderer("print_damage", needs="print")
def print_damage(p: Patch, d: DefectSize, rng: np.random.Generator) -> None:
    """Cracks through the ink (minor) or peeled flakes showing bare fabric with lifted, pale edges."""
    assert p.print_mask is not None and p.unprinted is not None
    # only ink still in view: drawstrings, tags and trims drawn over the print stay as they are
    ink = (p.print_mask > 0) & np.all(p.img == p.base, axis=2)
    total = int(ink.sum())
    if total == 0:
        return
    h, w = ink.shape
    ys, xs = np.nonzero(ink)
    damage = np.zeros((h, w), np.uint8)
    extent = max(xs.max() - xs.min(), ys.max() - ys.min()) + 1
    if d.mode == "cracks":
        # fine cracking starts where the print flexes most: one area, not the whole graphic
        k = int(rng.integers(len(xs)))
        near = np.hypot(xs - xs[k], ys - ys[k]) < extent * 0.3
        xs, ys = xs[near], ys[near]

    def done() -> bool:
        return int((damage[ink] > 0).sum()) >= d.strength * total

    for _ in range(400):
        if done():
            break
        i = int(rng.integers(len(xs)))
        start = np.array([xs[i], ys[i]], np.float32)
        if d.mode == "cracks" or rng.random() < 0.3:
            steps = int(rng.integers(4, 10))
            ang = rng.uniform(0, 2 * math.pi)
            pts = [start]
            for _ in range(steps):
                ang += rng.normal(0, 0.6)
                step = extent * (0.035 if d.mode == "cracks" else 0.06)
                pts.append(pts[-1] + step * np.array([math.cos(ang), math.sin(ang)], np.float32))
            cv2.polylines(damage, [np.round(pts).astype(np.int32)], False, 255, 1)
        else:
            r = max(2.0, extent * rng.uniform(0.05, 0.14))
            t = np.linspace(0, 2 * np.pi, 9, endpoint=False)
            rr = r * rng.uniform(0.5, 1.3, 9)
            flake = np.stack([start[0] + rr * np.cos(t), start[1] + rr * np.sin(t)], 1)
            cv2.fillPoly(damage, [np.round(flake).astype(np.int32)], 255)
        damage[~ink] = 0
    damage[~ink] = 0
    lifted = cv2.subtract(cv2.dilate(damage, np.ones((3, 3), np.uint8)), damage)
    lifted[~ink] = 0
    if d.mode != "cracks":
        blend(p.img, (250, 250, 250), (lifted > 0).astype(np.float32) * 0.35)
    cv2.copyTo(p.unprinted, damage, p.img)
