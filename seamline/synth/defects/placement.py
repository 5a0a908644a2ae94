"""Where defects go: how many, which types, what size, and on which part of the garment.

Types that need a feature are placed only on it: missing buttons on the placket, broken zippers on the
zipper, open seams on a stitched seam, fraying on a free edge, print damage on the print's ink, makeup near
the collar or an underarm. Defects never overlap each other or a tag.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from seamline.domain import Severity
from seamline.synth.defects.base import renderer_for
from seamline.synth.defects.sizing import DefectSize, sample_size, severity_of
from seamline.synth.garments import PaintedGarment

Window = tuple[int, int, int, int]
SMALL_CM = 3.5  # "small" defects stay under this extent (28 px at 8 px/cm)
# Feature-bound types have a place on only some garments (buttons ~20 %, a zipper ~23 %, a print ~40 %);
# weighting them by the inverse share evens out how often each type is drawn over a run.
_FEATURE_WEIGHT = {"buttons": 5.0, "zipper": 4.4, "print": 2.4}


@dataclass
class PlacedDefect:
    """A defect chosen for a garment, before it is drawn (canvas pixels)."""

    type_id: str
    size: DefectSize
    severity: Severity
    window: Window  # x0, y0, x1, y1: the renderer may draw only here
    at: tuple[float, float]
    direction: float = 0.0
    points: np.ndarray | None = None
    outward: np.ndarray | None = None
    extra: dict = field(default_factory=dict)


def _resample(line: np.ndarray, step: float = 1.0) -> np.ndarray:
    seg = np.linalg.norm(np.diff(line, axis=0), axis=1)
    cum = np.concatenate([[0.0], np.cumsum(seg)])
    t = np.arange(0.0, cum[-1] + 1e-6, step)
    return np.stack([np.interp(t, cum, line[:, 0]), np.interp(t, cum, line[:, 1])], 1).astype(np.float32)


def _inside(mask: np.ndarray, c, r: float) -> bool:
    h, w = mask.shape
    for a in np.linspace(0, 2 * math.pi, 8, endpoint=False):
        x, y = int(c[0] + r * math.cos(a)), int(c[1] + r * math.sin(a))
        if not (0 <= x < w and 0 <= y < h) or not mask[y, x]:
            return False
    return bool(mask[int(c[1]), int(c[0])])


def _window(c, reach_x: float, reach_y: float, shape) -> Window:
    h, w = shape
    return (
        max(0, int(c[0] - reach_x)),
        max(0, int(c[1] - reach_y)),
        min(w, math.ceil(c[0] + reach_x) + 1),
        min(h, math.ceil(c[1] + reach_y) + 1),
    )


def _points_window(pts: np.ndarray, margin: float, shape) -> Window:
    lo, hi = pts.min(0) - margin, pts.max(0) + margin
    h, w = shape
    return (
        max(0, int(lo[0])),
        max(0, int(lo[1])),
        min(w, math.ceil(hi[0]) + 1),
        min(h, math.ceil(hi[1]) + 1),
    )


# How far beyond its nominal radius a type may draw (soft edges, satellite drops, rims, loose fibres).
_REACH = {"stain": 1.4, "discoloration": 1.6, "pilling": 1.0, "hole": 1.6, "makeup_mark": 1.4}
_REACH_EXTRA_CM = {"tear": 0.6, "snag": 0.7}


def _reach(type_id: str, d: DefectSize, ppc: float) -> float:
    r = d.size_cm * ppc / 2
    return r * _REACH.get(type_id, 1.25) + _REACH_EXTRA_CM.get(type_id, 0.0) * ppc + 5


def _free(mask: np.ndarray, rng: np.random.Generator, box, radius: float, near: list | None = None):
    x0, y0, x1, y1 = box
    for i in range(40):
        if near and i < 30:
            anchor = near[int(rng.integers(len(near)))]
            c = (anchor[0] + rng.normal(0, 1.5 * radius + 4), anchor[1] + rng.normal(0, 1.5 * radius + 4))
        else:
            c = (rng.uniform(x0, x1), rng.uniform(y0, y1))
        if _inside(mask, c, radius):
            yield c


def _seam_stretch(
    lines: list[np.ndarray], length: float, mask: np.ndarray, rng: np.random.Generator, edge: bool
):
    long_enough = [ln for ln in (_resample(s) for s in lines) if len(ln) > length + 4]
    if not long_enough:
        return
    for _ in range(12):
        line = long_enough[int(rng.integers(len(long_enough)))]
        start = int(rng.integers(0, len(line) - int(length) - 1))
        pts = line[start : start + max(2, int(length))]
        mid = pts[len(pts) // 2]
        d = pts[-1] - pts[0]
        n = np.array([-d[1], d[0]]) / (np.linalg.norm(d) + 1e-6)

        def on(p, mask=mask) -> bool:
            x, y = int(p[0]), int(p[1])
            return 0 <= x < mask.shape[1] and 0 <= y < mask.shape[0] and bool(mask[y, x])

        if edge:
            if on(mid + n * 4) and not on(mid - n * 4):
                n = -n
            if not (on(mid - n * 4) and not on(mid + n * 4)) or not all(on(p - n * 3) for p in pts[::4]):
                continue
            yield pts, np.repeat(n[None, :], len(pts), 0).astype(np.float32)
        else:
            if sum(on(p) for p in pts) >= 0.95 * len(pts) and on(mid + n * 3) and on(mid - n * 3):
                yield pts, None


def _on_cloth(type_id, d, garment, trims, rng, ppc):
    """Anywhere on the fabric (pilling prefers the underarms, where cloth rubs)."""
    reach = _reach(type_id, d, ppc)
    near = garment.layout.underarms if type_id == "pilling" and rng.random() < 0.5 else None
    for c in _free(garment.mask, rng, garment.box, min(reach * 0.8, d.size_cm * ppc / 2 + 2), near):
        yield PlacedDefect(
            type_id, d, severity_of(type_id, d), _window(c, reach, reach, garment.mask.shape), c
        )


def _near_collar(type_id, d, garment, trims, rng, ppc):
    """Close to the collar or, now and then, an underarm (where makeup and deodorant rub off)."""
    g = garment.layout
    reach = _reach(type_id, d, ppc)
    underarm = bool(g.underarms) and rng.random() < 0.3
    near = g.underarms if underarm else g.collar
    for c in _free(garment.mask, rng, garment.box, d.size_cm * ppc / 2, near):
        yield PlacedDefect(
            type_id,
            d,
            severity_of(type_id, d),
            _window(c, reach, reach, garment.mask.shape),
            c,
            direction=math.radians(g.angle) + rng.uniform(-0.5, 0.5),
            extra={"underarm": underarm},
        )


def _along_line(type_id, d, garment, trims, rng, ppc, edge: bool):
    """A stretch of a stitched seam, or of a free edge with its outward normals."""
    lines = garment.layout.hems if edge else garment.layout.seams
    for pts, out in _seam_stretch(lines, d.size_cm * ppc, garment.mask, rng, edge):
        margin = (1.3 * ppc + 4) if edge else (0.6 * ppc + 4)
        along = pts[-1] - pts[0]
        yield PlacedDefect(
            type_id,
            d,
            severity_of(type_id, d),
            _points_window(pts, margin, garment.mask.shape),
            tuple(pts[len(pts) // 2]),
            math.atan2(along[1], along[0]),
            pts,
            out,
        )


def _on_placket(type_id, d, garment, trims, rng, ppc):
    """One button (the shirt's decorative collar button when minor) or a run of functional ones."""
    g = garment.layout
    if len(g.buttons) < 2:
        return
    functional = list(range(1, len(g.buttons))) if g.kind == "shirt" else list(range(len(g.buttons)))
    if d.mode == "decorative":
        if g.kind != "shirt":
            return
        runs = [[0]]
    else:
        starts = rng.permutation(len(functional) - d.count + 1)
        runs = [functional[s : s + d.count] for s in starts]
    for picks in runs:
        pts = np.array([g.buttons[i] for i in picks], np.float32)
        margin = g.button_radius + 1.1 * ppc + 4
        yield PlacedDefect(
            type_id,
            d,
            severity_of(type_id, d),
            _points_window(pts, margin, garment.mask.shape),
            tuple(pts.mean(0)),
            points=pts,
            extra={"radius": g.button_radius},
        )


def _on_zipper(type_id, d, garment, trims, rng, ppc):
    """At the slider (its pull tab), or a stretch of track below the slider and its hanging tab."""
    g = garment.layout
    if g.zipper is None:
        return
    top, bottom = g.zipper
    length = float(np.linalg.norm(bottom - top))
    u = (bottom - top) / length
    slider_s, scale = trims["slider_s"], g.scale
    extra = {"scale": scale, "metal": trims["metal"], "slider_s": slider_s}
    if d.mode == "tab":
        s_lo, s_hi = slider_s, slider_s + 4.0 * scale
    else:
        below = slider_s + 4.0 * scale
        s0 = below if d.mode == "split" else rng.uniform(below, max(below, length - d.size_cm * ppc - 4))
        extra["s0"] = float(s0)
        s_lo, s_hi = s0, min(length, s0 + d.size_cm * ppc)
    pts = np.array([top + u * s_lo, top + u * s_hi], np.float32)
    yield PlacedDefect(
        type_id,
        d,
        severity_of(type_id, d),
        _points_window(pts, 1.6 * scale + 6, garment.mask.shape),
        tuple(pts.mean(0)),
        math.atan2(u[1], u[0]),
        points=g.zipper.copy(),
        extra=extra,
    )


def _on_print(type_id, d, garment, trims, rng, ppc):
    """The whole graphic print: the renderer chooses where its ink cracks or peels."""
    if garment.print_mask is None:
        return
    x0, y0, x1, y1 = garment.box
    ys, xs = np.nonzero(garment.print_mask[y0:y1, x0:x1])
    if len(xs) < 30:
        return
    pts = np.array([[xs.min(), ys.min()], [xs.max(), ys.max()]], np.float32) + (x0, y0)
    yield PlacedDefect(
        type_id, d, severity_of(type_id, d), _points_window(pts, 3, garment.mask.shape), tuple(pts.mean(0))
    )


# The renderer's ``needs`` picks the placer; a new type with no feature is placed on the cloth.
_PLACERS = {
    None: _on_cloth,
    "collar": _near_collar,
    "seam": lambda *a: _along_line(*a, edge=False),
    "hem": lambda *a: _along_line(*a, edge=True),
    "buttons": _on_placket,
    "zipper": _on_zipper,
    "print": _on_print,
}


def _place(type_id, d, garment, trims, rng, ppc):
    """Candidate placements (a generator) for one defect, best first."""
    return _PLACERS[renderer_for(type_id).needs](type_id, d, garment, trims, rng, ppc)


def feasible_types(type_ids: list[str], garment: PaintedGarment) -> list[str]:
    """The types that have a place on this garment."""
    g = garment.layout
    have = {
        "buttons": len(g.buttons) >= 2,
        "zipper": g.zipper is not None,
        "print": garment.print_mask is not None and int(garment.print_mask.any()) > 0,
    }
    return [t for t in type_ids if have.get(renderer_for(t).needs or "", True)]


def _overlaps(a: Window, b, pad: int = 2) -> bool:
    return a[0] < b[2] + pad and b[0] < a[2] + pad and a[1] < b[3] + pad and b[1] < a[3] + pad


def plan_defects(
    type_ids: list[str],
    garment: PaintedGarment,
    trims: dict,
    *,
    defect_free_share: float,
    max_defects: int,
    small_share: float,
    keep_out: list,
    ppc: float,
    rng: np.random.Generator,
) -> list[PlacedDefect]:
    """Choose the defects of one garment. Deterministic in ``rng`` (the garment's defect stream)."""
    if rng.random() < defect_free_share:
        return []
    feasible = feasible_types(type_ids, garment)
    if not feasible:
        return []
    counts = np.arange(1, max_defects + 1)
    p = 0.55 ** (counts - 1)
    n = int(rng.choice(counts, p=p / p.sum()))
    weights = np.array([_FEATURE_WEIGHT.get(renderer_for(t).needs or "", 1.0) for t in feasible])
    placed: list[PlacedDefect] = []
    taken = list(keep_out)
    for _ in range(n):
        type_id = feasible[int(rng.choice(len(feasible), p=weights / weights.sum()))]
        small = rng.random() < small_share
        size = sample_size(type_id, rng, max_cm=SMALL_CM if small else None)
        if type_id == "missing_button" and size.mode == "decorative" and garment.layout.kind != "shirt":
            size = sample_size(type_id, rng, severity=Severity.MODERATE)
        for candidate in _place(type_id, size, garment, trims, rng, ppc):
            if not any(_overlaps(candidate.window, t) for t in taken):
                placed.append(candidate)
                taken.append(candidate.window)
                break
    return placed
