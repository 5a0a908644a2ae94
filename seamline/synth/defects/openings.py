"""Damage to the cloth itself: hole, tear, open seam, fraying, snag.

Openings show the garment's shadowed inner layer (a flat-laid garment has a back panel under the front),
rimmed by lighter broken fibres; fraying eats into the edge and lets threads fall onto the belt.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from seamline.synth.defects.base import Patch, blend, blob, contrast_thread, renderer, shift, soft, toward
from seamline.synth.defects.sizing import DefectSize


def _inner(p: Patch, m: np.ndarray) -> None:
    """Fill ``m`` with the shadowed layer beneath the fabric."""
    dark = cv2.multiply(p.img, (0.28, 0.28, 0.28, 0))
    cv2.copyTo(dark, m, p.img)


def _fibres(p: Patch, ends: list[tuple[np.ndarray, np.ndarray]], color) -> None:
    lines = [np.round([a, b]).astype(np.int32) for a, b in ends]
    if lines:
        cv2.polylines(p.img, lines, False, color, 1, cv2.LINE_AA)


@renderer("hole")
def hole(p: Patch, d: DefectSize, rng: np.random.Generator) -> None:
    """A round opening with a ragged, lighter rim of broken fibres."""
    r = p.px(d.size_cm) / 2
    h, w = p.mask.shape
    rim = contrast_thread(p.color)
    if r < 1.2:
        # a pinhole is a pixel or two at line-camera resolution: a dark core with a bright fibre ring
        x, y = int(p.at[0]), int(p.at[1])
        cv2.circle(p.img, (x, y), 2, toward(p.color, rim, 0.7), -1, cv2.LINE_AA)
        p.img[y : y + 2, x : x + 2] = shift(p.color, 0.2)
        return
    m = np.zeros((h, w), np.uint8)
    cv2.fillPoly(m, [blob(p.at, r, rng, rough=0.35, n=18)], 255, cv2.LINE_AA)
    ring = cv2.dilate(m, np.ones((3, 3), np.uint8), iterations=max(1, int(r * 0.2)))
    blend(p.img, rim, soft(cv2.subtract(ring, m), 0.6) * 0.75)
    _inner(p, m)
    n = int(max(4, r * 1.5))
    ends = []
    for a in rng.uniform(0, 2 * math.pi, n):
        u = np.array([math.cos(a), math.sin(a)])
        base = np.array(p.at) + u * r * rng.uniform(0.8, 1.05)
        ends.append((base, base - u * rng.uniform(1.5, max(2.0, r * 0.5))))
    _fibres(p, ends, rim)


def _lens(path: np.ndarray, half_width: np.ndarray) -> np.ndarray:
    d = np.gradient(path, axis=0)
    n = np.stack([-d[:, 1], d[:, 0]], 1) / (np.linalg.norm(d, axis=1, keepdims=True) + 1e-6)
    left = path + n * half_width[:, None]
    right = path - n * half_width[:, None]
    return np.round(np.concatenate([left, right[::-1]])).astype(np.int32)


def _jagged_path(
    start: np.ndarray, angle: float, length: float, rng: np.random.Generator, wiggle: float
) -> np.ndarray:
    n = max(3, int(length / 1.5))
    a = angle + np.cumsum(rng.normal(0, wiggle, n))
    a -= a.mean() - angle
    step = length / (n - 1)
    pts = start + np.concatenate(
        [[[0.0, 0.0]], np.cumsum(step * np.stack([np.cos(a), np.sin(a)], 1)[:-1], 0)]
    )
    normal = np.array([-math.sin(angle), math.cos(angle)])
    return pts + normal * rng.uniform(-0.5, 0.5, (n, 1))


@renderer("tear")
def tear(p: Patch, d: DefectSize, rng: np.random.Generator) -> None:
    """A jagged rip opened into a narrow gap, one edge lifted and catching light, whiskers of broken yarn.

    Long tears often turn a corner (the three-corner tear of a snagged garment).
    """
    length = max(3.0, p.px(d.size_cm))
    angle = rng.uniform(0, math.pi)
    corner = length > p.px(2.5) and rng.random() < 0.4
    first = length * (rng.uniform(0.5, 0.7) if corner else 1.0)
    start = np.array(p.at) - first / 2 * np.array([math.cos(angle), math.sin(angle)])
    paths = [_jagged_path(start, angle, first, rng, 0.12)]
    if corner:
        turn = angle + rng.choice([-1, 1]) * rng.uniform(1.2, 1.8)
        paths.append(_jagged_path(paths[0][-1], turn, length - first, rng, 0.12))
    h, w = p.mask.shape
    m = np.zeros((h, w), np.uint8)
    opening = max(1.0, min(length * rng.uniform(0.07, 0.14), p.px(0.5)))
    lips, whiskers = [], []
    for path in paths:
        t = np.linspace(0, 1, len(path))
        half = opening / 2 * np.sin(np.pi * t) ** 0.6 * rng.uniform(0.7, 1.2, len(path)) + 0.3
        cv2.fillPoly(m, [_lens(path, half)], 255, cv2.LINE_AA)
        lens = _lens(path + 0.0, half + 1.0)
        lips.append(lens[: len(path)])
        d_ = np.gradient(path, axis=0)
        nrm = np.stack([-d_[:, 1], d_[:, 0]], 1) / (np.linalg.norm(d_, axis=1, keepdims=True) + 1e-6)
        for i in rng.choice(len(path), size=min(len(path), int(len(path) / 5)), replace=False):
            side = rng.choice([-1, 1])
            whiskers.append(
                (
                    path[i] + side * nrm[i] * (half[i] + 0.8),
                    path[i] - side * nrm[i] * rng.uniform(0, half[i] + 0.5) + rng.normal(0, 0.6, 2),
                )
            )
    if length > 6:
        cv2.polylines(p.img, lips, False, toward(p.color, (250, 250, 250), 0.4), 1, cv2.LINE_AA)
    _inner(p, m & p.mask)
    _fibres(p, whiskers, contrast_thread(p.color))


@renderer("open_seam", needs="seam")
def open_seam(p: Patch, d: DefectSize, rng: np.random.Generator) -> None:
    """Stitches gone along a seam: a narrow dark gap between the panels, broken stitches bridging it."""
    assert p.points is not None
    path = p.points
    t = np.linspace(0, 1, len(path))
    gap = max(0.7, min(p.px(0.3), p.px(d.size_cm) * 0.06))
    half = gap * np.sin(np.pi * t) ** 0.4 * rng.uniform(0.85, 1.15, len(path)) + 0.45
    h, w = p.mask.shape
    m = np.zeros((h, w), np.uint8)
    cv2.fillPoly(m, [_lens(path, half)], 255, cv2.LINE_AA)
    m &= p.mask
    _inner(p, m)
    thread = contrast_thread(p.color)
    dirs = np.gradient(path, axis=0)
    normals = np.stack([-dirs[:, 1], dirs[:, 0]], 1) / (np.linalg.norm(dirs, axis=1, keepdims=True) + 1e-6)
    ends = []
    for i in range(2, len(path) - 2, 3):
        if rng.random() < 0.35:
            ends.append((path[i] + normals[i] * (half[i] + 0.5), path[i] - normals[i] * (half[i] + 0.5)))
    for i in rng.choice(len(path), size=min(len(path), max(1, len(path) // 8)), replace=False):
        side = rng.choice([-1, 1])
        tail = rng.uniform(2, max(3, p.px(0.4)))
        ends.append(
            (
                path[i] + side * normals[i] * half[i],
                path[i] + side * normals[i] * (half[i] + tail) + dirs[i] * rng.uniform(-1.5, 1.5),
            )
        )
    _fibres(p, ends, thread)


@renderer("fraying", needs="hem")
def fraying(p: Patch, d: DefectSize, rng: np.random.Generator) -> None:
    """A worn edge: a pale abraded band, a ragged bitten edge and loose threads hanging off onto the belt."""
    assert p.points is not None and p.outward is not None
    edge, out = p.points, p.outward
    h, w = p.mask.shape
    severe = d.size_cm > 6
    fringe = d.mode != "threads"
    depth = (
        rng.uniform(0.2, 0.7, len(edge)) * p.px(0.35 if severe else 0.18) if fringe else np.zeros(len(edge))
    )
    bitten = edge - out * (depth[:, None] + 0.5)
    poly = np.round(np.concatenate([edge + out * 2, bitten[::-1]])).astype(np.int32)
    notch = np.zeros((h, w), np.uint8)
    cv2.fillPoly(notch, [poly], 255)
    notch &= p.mask
    band = np.zeros((h, w), np.uint8)
    cv2.polylines(
        band,
        [np.round(edge - out * p.px(0.3)).astype(np.int32)],
        False,
        255,
        max(2, int(p.px(0.5))),
        cv2.LINE_8,
    )
    band &= p.mask
    blend(p.img, toward(p.color, (235, 232, 225), 0.4), soft(band, 1.5) * 0.5)
    if fringe:
        cv2.copyTo(p.belt, notch, p.img)
    thread = toward(p.color, (240, 236, 224), 0.55 if p.fabric == "denim" else 0.3)
    n_threads = int(len(edge) * (0.7 if severe else 0.45)) if fringe else d.count
    picks = rng.choice(len(edge), size=min(len(edge), n_threads), replace=n_threads > len(edge))
    lines = []
    for i in picks:
        root = bitten[i] if fringe else edge[i] - out[i]
        long = p.px(rng.uniform(0.3, 1.2 if severe else 0.6))
        u = out[i] + rng.normal(0, 0.35, 2)
        mid = root + u * long * 0.5 + rng.normal(0, 0.8, 2)
        lines.append(np.round([root, mid, root + u * long]).astype(np.int32))
    cv2.polylines(p.img, lines, False, thread, 1, cv2.LINE_AA)


@renderer("snag")
def snag(p: Patch, d: DefectSize, rng: np.random.Generator) -> None:
    """A pulled loop of yarn with a puckered line where it was dragged; a ladder-like run when severe."""
    length = p.px(d.size_cm)
    course = math.radians(p.angle) + (0.0 if rng.random() < 0.6 else math.pi / 2)
    loops = 3 if d.mode == "cluster" else 1
    yarn = toward(shift(p.color, 1.3), (235, 232, 225), 0.25)
    shade = shift(p.color, 0.5)
    for _ in range(loops):
        if loops > 1:
            c = np.array(p.at) + rng.uniform(-0.35, 0.35, 2) * length
            span = length * 0.35
        else:
            c, span = np.array(p.at), length
        u = np.array([math.cos(course), math.sin(course)])
        n = np.array([-u[1], u[0]])
        a, b = c - u * span / 2, c + u * span / 2
        if d.mode == "run":
            # a run: a wale of the knit laddered open: a dark groove crossed by the broken loops' bars
            ts = np.linspace(0, 1, max(3, int(span / 2)))[:, None]
            groove = a + ts * (b - a) + n * rng.normal(0, 0.3, (len(ts), 1))
            cv2.polylines(
                p.img, [np.round(groove).astype(np.int32)], False, shift(p.color, 0.55), 2, cv2.LINE_AA
            )
            rungs = [
                np.round([q - n * 1.2, q + n * 1.2]).astype(np.int32)
                for q in groove[1:-1:2]
                if rng.random() < 0.6
            ]
            cv2.polylines(p.img, rungs, False, shift(p.color, 1.15), 1, cv2.LINE_AA)
        else:
            cv2.polylines(p.img, [np.round([a + n, b + n]).astype(np.int32)], False, shade, 1, cv2.LINE_AA)
            cv2.polylines(p.img, [np.round([a, b]).astype(np.int32)], False, yarn, 1, cv2.LINE_AA)
        loop_r = max(1.5, min(p.px(0.35), span * 0.3))
        end = b if rng.random() < 0.5 else a
        centre = end + n * loop_r * 0.8
        cv2.ellipse(
            p.img,
            (int(centre[0]) + 1, int(centre[1]) + 1),
            (int(loop_r), max(1, int(loop_r * 0.7))),
            math.degrees(course),
            0,
            360,
            shade,
            1,
            cv2.LINE_AA,
        )
        cv2.ellipse(
            p.img,
            (int(centre[0]), int(centre[1])),
            (int(loop_r), max(1, int(loop_r * 0.7))),
            math.degrees(course),
            0,
            360,
            yarn,
            max(1, int(loop_r / 3)),
            cv2.LINE_AA,
        )
