"""Garment geometry: flat-lay outlines and the features defects attach to (seams, hems, buttons, zipper).

Each kind is built in centimetres in the garment's own frame (x right, y down, origin at the top of the neck
or waist), then placed on the belt with a rotation, a size and a position. Everything a defect renderer needs
comes out in canvas pixels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

Points = np.ndarray  # (N, 2) float32, x/y


@dataclass
class Panel:
    """One piece of fabric to paint: a filled polygon, or a band drawn along a polyline."""

    name: str
    points: Points
    style: str = "body"  # body | rib | inner | folded
    band_cm: float = 0.0  # > 0: a band of this width along ``points`` instead of a filled polygon


@dataclass
class Layout:
    """A garment placed on the belt; all coordinates are canvas pixels."""

    kind: str
    panels: list[Panel]
    seams: list[Points] = field(default_factory=list)  # stitched lines (open_seam goes here)
    hems: list[Points] = field(default_factory=list)  # free fabric edges (fraying goes here)
    placket: Points | None = None
    buttons: list[tuple[float, float]] = field(default_factory=list)  # first is the decorative collar button
    button_radius: float = 0.0
    zipper: Points | None = None  # (2, 2): top, bottom of the track
    print_anchor: tuple[float, float, float] | None = None  # cx, cy, size in px for a graphic print
    collar: list[tuple[float, float]] = field(default_factory=list)  # makeup marks go near these
    underarms: list[tuple[float, float]] = field(default_factory=list)
    label_at: tuple[float, float] | None = None  # the sewn care label inside the back neck
    drawstrings: list[Points] = field(default_factory=list)
    folds: list[Points] = field(default_factory=list)  # fold lines (a sleeve folded over the front)
    scale: float = 1.0  # garment pixels per garment centimetre (camera scale times garment size)
    angle: float = 0.0  # degrees

    def all_points(self) -> Points:
        """Every panel vertex, for bounding boxes."""
        return np.concatenate([p.points for p in self.panels])


def _arc(p0, p1, sag: float, n: int = 12) -> Points:
    """A quadratic curve from p0 to p1 bowing ``sag`` cm to the right of the direction of travel."""
    p0, p1 = np.asarray(p0, np.float32), np.asarray(p1, np.float32)
    d = p1 - p0
    normal = np.array([-d[1], d[0]], np.float32) / (np.linalg.norm(d) + 1e-6)
    ctrl = (p0 + p1) / 2 - normal * sag
    t = np.linspace(0, 1, n, dtype=np.float32)[:, None]
    return (1 - t) ** 2 * p0 + 2 * (1 - t) * t * ctrl + t**2 * p1


def _neck(half: float, depth: float, v_neck: bool, n: int = 14) -> Points:
    if v_neck:
        return np.array([[-half, 0], [0, depth], [half, 0]], np.float32)
    t = np.linspace(math.pi, 0, n)
    return np.stack([half * np.cos(t), depth * np.sin(t)], 1).astype(np.float32)


def _offset(line: Points, dist: float) -> Points:
    """``line`` moved ``dist`` to its left (negative: right), per segment normal."""
    d = np.gradient(line, axis=0)
    normal = np.stack([d[:, 1], -d[:, 0]], 1)
    normal /= np.linalg.norm(normal, axis=1, keepdims=True) + 1e-6
    return (line + normal * dist).astype(np.float32)


def _sleeve(shoulder, underarm, angle_deg: float, length: float, cuff: float, side: int) -> Points:
    """Quad of a sleeve leaving the armhole ``shoulder``-``underarm`` at ``angle_deg`` below horizontal."""
    a = math.radians(angle_deg)
    d = np.array([side * math.cos(a), math.sin(a)], np.float32)
    # the cuff edge turns from the sleeve's top edge toward its underside
    across = np.array([-d[1], d[0]], np.float32) if side > 0 else np.array([d[1], -d[0]], np.float32)
    s, u = np.asarray(shoulder, np.float32), np.asarray(underarm, np.float32)
    c1 = s + d * length
    return np.array([s, c1, c1 + across * cuff, u], np.float32)


def _mirror_x(points: Points, x: float) -> Points:
    out = points.copy()
    out[:, 0] = 2 * x - out[:, 0]
    return out


@dataclass
class _Top:
    """Shared geometry of shirts, t-shirts, hoodies, jackets, sweaters and dresses (cm, garment frame)."""

    g: Layout
    rng: np.random.Generator
    half: float
    length: float
    neck_half: float
    neck_depth: float
    v_neck: bool = False
    folded: tuple[bool, bool] = (False, False)
    waist_in: float = 0.0  # a fitted waist (dresses): how far in it comes, and where
    waist_y: float = 0.0
    shoulder_drop: float = 3.0
    armhole: float = 22.0
    flare: float = 1.0
    hem_sag: float = 0.0

    def __post_init__(self) -> None:
        h, sd = self.half, self.shoulder_drop
        self.neck = _neck(self.neck_half, self.neck_depth, self.v_neck)
        back = _neck(self.neck_half, 1.6, False)[::-1]
        self.shoulders = [(-h, sd), (h, sd)]
        self.underarm_pts = [(-h, sd + self.armhole), (h, sd + self.armhole)]
        self.hem = _arc((-h - self.flare, self.length), (h + self.flare, self.length), -self.hem_sag)
        waist = [[-h + self.waist_in, self.waist_y]] if self.waist_in else []
        outline = np.concatenate(
            [
                [[-self.neck_half, 0], self.shoulders[0], self.underarm_pts[0]],
                *([waist] if waist else []),
                self.hem,
                *([[[h - self.waist_in, self.waist_y]]] if waist else []),
                [self.underarm_pts[1], self.shoulders[1], [self.neck_half, 0]],
                back[1:-1],
            ]
        ).astype(np.float32)
        self.body = Panel("body", outline)
        self.opening = Panel(
            "neck_opening", np.concatenate([self.neck, back[1:-1]]).astype(np.float32), "inner"
        )
        self.back_neck = back

    def sleeves(
        self, length: float, cuff: float, angle: float, fold: tuple[bool, bool], rib: float = 0.0
    ) -> None:
        """Add two sleeves (spread, or folded over the front across the armhole line)."""
        g = self.g
        for i, side in enumerate((-1, 1)):
            q = _sleeve(
                self.shoulders[i], self.underarm_pts[i], angle + self.rng.uniform(-6, 6), length, cuff, side
            )
            if fold[i]:
                q = _mirror_x(q, self.shoulders[i][0])
                g.folds.append(np.array([q[0], q[3]], np.float32))
            g.panels.append(Panel(f"sleeve_{i}", q, "folded" if fold[i] else "body"))
            g.hems.append(q[1:3].copy())
            g.seams.append(np.array([q[0], q[3]], np.float32))
            inward = (q[0] - q[1]) / (np.linalg.norm(q[0] - q[1]) + 1e-6)
            g.seams.append(q[1:3] + inward * (rib + 0.4 if rib else 1.8))
            if rib:
                g.panels.append(Panel(f"cuff_{i}", q[1:3] + inward * rib / 2, "rib", band_cm=rib))
        self.folded = fold

    def finish(self, collar_rib: float, hem_rib: float = 0.0) -> None:
        """Body, neck opening, collar band, hems and seams; call after sleeves (they lie under the body)."""
        g = self.g
        spread = [p for p in g.panels if p.style != "folded"]
        folded = [p for p in g.panels if p.style == "folded"]
        g.panels = [*spread, self.body, self.opening, *folded]
        if collar_rib:
            g.panels.append(Panel("collar", self.neck, "rib", band_cm=collar_rib))
            g.panels.append(Panel("back_collar", self.back_neck, "rib", band_cm=collar_rib * 0.8))
        if hem_rib:
            g.panels.append(Panel("hem_band", _offset(self.hem, hem_rib / 2), "rib", band_cm=hem_rib))
        g.hems.append(self.hem.copy())
        g.seams += [
            np.array([[-self.neck_half, 0], self.shoulders[0]], np.float32),
            np.array([[self.neck_half, 0], self.shoulders[1]], np.float32),
            _offset(self.hem, 2.0),
        ]
        for i, side in enumerate((-1, 1)):
            if not self.folded[i] and not self.waist_in:
                inset = np.array([side * 0.8, 0], np.float32)
                corner = self.hem[0 if side < 0 else -1]
                g.seams.append(
                    np.array(
                        [
                            np.asarray(self.underarm_pts[i]) - inset + (0, 1.5),
                            corner - inset - (side * 0.4, 3.0),
                        ],
                        np.float32,
                    )
                )
        g.collar += [(-self.neck_half, 0.5), (0, self.neck_depth), (self.neck_half, 0.5)]
        g.underarms += [tuple(p) for p in self.underarm_pts]
        g.label_at = (0.0, 1.2)


def _tshirt(g: Layout, rng: np.random.Generator) -> None:
    t = _Top(
        g,
        rng,
        half=rng.uniform(24, 28),
        length=rng.uniform(64, 72),
        neck_half=rng.uniform(8, 9.5),
        neck_depth=rng.uniform(7, 11),
        v_neck=rng.random() < 0.2,
        flare=rng.uniform(0, 2),
    )
    t.sleeves(rng.uniform(17, 22), rng.uniform(15, 18), rng.uniform(18, 35), (False, False))
    t.finish(collar_rib=1.8)
    g.print_anchor = (rng.uniform(-3, 3), rng.uniform(20, 26), rng.uniform(14, 26))


def _shirt(g: Layout, rng: np.random.Generator) -> None:
    t = _Top(
        g,
        rng,
        half=rng.uniform(25, 28),
        length=rng.uniform(70, 76),
        neck_half=rng.uniform(7.5, 8.5),
        neck_depth=rng.uniform(4, 6),
        flare=rng.uniform(0, 1.5),
        hem_sag=rng.uniform(3, 6),
        armhole=24,
    )
    fold = (rng.random() < 0.3, rng.random() < 0.3)
    t.sleeves(rng.uniform(56, 62), rng.uniform(11, 13), rng.uniform(58, 72), fold, rib=6.0)
    t.finish(collar_rib=0.0)
    # pointed collar flaps over the neckline
    for side in (-1, 1):
        g.panels.append(
            Panel(
                f"collar_{side}",
                np.array(
                    [[0, 4.8], [side * 8.6, -0.5], [side * 9.8, 2.2], [side * 5.5, 9.5], [side * 0.6, 6.5]],
                    np.float32,
                ),
            )
        )
    top, bottom = 6.0, t.length - rng.uniform(4, 6)
    g.placket = np.array([[0, top], [0, bottom]], np.float32)
    g.panels.append(Panel("placket", g.placket.copy(), "body", band_cm=3.4))
    n = int(rng.integers(6, 9))
    ys = np.linspace(top + 1.0, bottom - 5.0, n)
    g.buttons = [(0.0, 3.2)] + [(0.0, float(y)) for y in ys[1:]]
    g.button_radius = rng.uniform(0.55, 0.7)
    g.seams += [
        np.array([[-1.7, top], [-1.7, bottom]], np.float32),
        np.array([[1.7, top], [1.7, bottom]], np.float32),
    ]
    px = 10.0 + rng.uniform(0, 2)
    pocket = np.array([[px, 18], [px, 31], [px + 6, 33], [px + 12, 31], [px + 12, 18]], np.float32)
    g.seams.append(pocket)
    g.print_anchor = (px + 6, 24, 4.0) if rng.random() < 0.3 else None
    # a shirt's collar band hides the neck label; its care label is sewn into the side seam
    g.label_at = (-t.half + 3.0, t.length - 14.0)


def _sweater(g: Layout, rng: np.random.Generator) -> None:
    cardigan = rng.random() < 0.4
    t = _Top(
        g,
        rng,
        half=rng.uniform(25, 29),
        length=rng.uniform(62, 70),
        neck_half=rng.uniform(8.5, 10),
        neck_depth=rng.uniform(20, 26) if cardigan else rng.uniform(7, 9),
        v_neck=cardigan,
    )
    fold = (rng.random() < 0.25, rng.random() < 0.25)
    t.sleeves(rng.uniform(54, 60), rng.uniform(10, 12), rng.uniform(60, 72), fold, rib=5.0)
    t.finish(collar_rib=2.5, hem_rib=5.0)
    if cardigan:
        top, bottom = t.neck_depth, t.length - 1.0
        g.placket = np.array([[0, top], [0, bottom]], np.float32)
        g.panels.append(Panel("placket", g.placket.copy(), "rib", band_cm=3.0))
        ys = np.linspace(top + 2, bottom - 6, int(rng.integers(5, 7)))
        g.buttons = [(0.0, float(y)) for y in ys]
        g.button_radius = rng.uniform(0.75, 0.95)
    g.print_anchor = None


def _hoodie(g: Layout, rng: np.random.Generator, jacket: bool) -> None:
    zipped = jacket or rng.random() < 0.6
    t = _Top(
        g,
        rng,
        half=rng.uniform(26, 30),
        length=rng.uniform(64, 70),
        neck_half=rng.uniform(9, 10.5),
        neck_depth=rng.uniform(8, 10),
        shoulder_drop=4.0,
        armhole=24,
    )
    fold = (rng.random() < 0.2, rng.random() < 0.2)
    t.sleeves(rng.uniform(56, 62), rng.uniform(11, 13), rng.uniform(58, 70), fold, rib=0.0 if jacket else 6.0)
    if jacket:
        t.finish(collar_rib=0.0, hem_rib=0.0)
        g.panels.append(Panel("collar", _neck(t.neck_half, t.neck_depth * 0.6, False), "body", band_cm=5.0))
    else:
        hood = np.concatenate(
            [_arc((-t.neck_half - 3, 1.5), (t.neck_half + 3, 1.5), rng.uniform(12, 15), 16)]
        )
        g.panels.insert(0, Panel("hood", hood))
        t.finish(collar_rib=0.0, hem_rib=6.0)
        g.seams.append(hood.copy())
    if zipped:
        top, bottom = (
            np.array([0, t.neck_depth], np.float32),
            np.array([0, t.length - (0.5 if jacket else 6.5)], np.float32),
        )
        g.zipper = np.array([top, bottom], np.float32)
        g.seams += [
            np.array([top + (-1.4, 0), bottom + (-1.4, 0)], np.float32),
            np.array([top + (1.4, 0), bottom + (1.4, 0)], np.float32),
        ]
    if not jacket:
        y0 = t.length - 26
        pocket = np.array([[-16, t.length - 6], [-11, y0], [11, y0], [16, t.length - 6]], np.float32)
        g.seams.append(pocket)
        g.drawstrings = [
            np.array(
                [[s * 4, t.neck_depth - 1], [s * 4.5 + rng.uniform(-1, 1), t.neck_depth + 22]], np.float32
            )
            for s in (-1, 1)
        ]
    else:
        for s in (-1, 1):
            g.seams.append(np.array([[s * 12, t.length - 22], [s * 16, t.length - 9]], np.float32))
    size = rng.uniform(6, 10) if zipped else rng.uniform(16, 26)
    g.print_anchor = ((9.0 if zipped else 0.0), rng.uniform(18, 24), size) if rng.random() < 0.7 else None


def _dress(g: Layout, rng: np.random.Generator) -> None:
    length = rng.uniform(86, 100)
    t = _Top(
        g,
        rng,
        half=rng.uniform(20, 23),
        length=length,
        neck_half=rng.uniform(7, 9),
        neck_depth=rng.uniform(8, 12),
        armhole=18,
        flare=rng.uniform(4, 11),
        hem_sag=rng.uniform(-2, 2),
        waist_in=rng.uniform(2.5, 4),
        waist_y=38.0,
    )
    if rng.random() < 0.5:
        t.sleeves(rng.uniform(12, 18), rng.uniform(13, 15), rng.uniform(20, 35), (False, False))
    t.finish(collar_rib=0.0)
    g.seams.append(
        np.array([[-t.half + t.waist_in + 0.8, 38.0], [t.half - t.waist_in - 0.8, 38.0]], np.float32)
    )
    g.print_anchor = (0.0, 24.0, rng.uniform(10, 16)) if rng.random() < 0.15 else None


def _trousers(g: Layout, rng: np.random.Generator) -> None:
    w2, length = rng.uniform(19, 23), rng.uniform(96, 106)
    rise, open2, gap = rng.uniform(26, 30), rng.uniform(8.5, 11), rng.uniform(1.5, 5)
    flare = rng.uniform(-1.5, 2)
    left = np.array(
        [[-w2, 0], [-w2 - 2, rise * 0.6], [-gap - 2 * open2 - flare, length], [-gap, length]], np.float32
    )
    outline = np.concatenate([left, [[0, rise]], _mirror_x(left, 0)[::-1]]).astype(np.float32)
    g.panels.append(Panel("legs", outline))
    g.panels.append(Panel("waistband", np.array([[-w2, 2], [w2, 2]], np.float32), "body", band_cm=4.0))
    g.hems += [
        np.array([left[2], left[3]], np.float32),
        np.array([[gap, length], [gap + 2 * open2 + flare, length]], np.float32),
        np.array([[-w2, 0], [w2, 0]], np.float32),
    ]
    g.seams += [
        np.array([[-w2, 4], [w2, 4]], np.float32),
        np.array([[0, 4], [0, rise]], np.float32),
        np.concatenate([[[3.2, 4]], _arc((3.2, rise - 8), (0.2, rise - 3), -1.5, 6)]).astype(np.float32),
        np.array([left[2] + (0, -2.5), left[3] + (0, -2.5)], np.float32),
        np.array([[gap, length - 2.5], [gap + 2 * open2 + flare, length - 2.5]], np.float32),
    ]
    for s in (-1, 1):
        g.seams.append(_arc((s * (w2 - 9), 4), (s * (w2 + 0.8), 15), s * 3.0, 10))
        g.seams.append(
            np.array([[s * (w2 + 1.2), 17], [s * (gap + 2 * open2 + 1.0), length - 3]], np.float32)
        )
    g.underarms = [(-w2 + 4, 20.0), (w2 - 4, 20.0)]
    g.collar = [(0.0, 8.0)]
    g.label_at = (0.0, 2.0)


def _add_belt_loops(g: Layout) -> None:
    band = g.panels[1].points
    xs = np.linspace(band[0, 0] + 3, band[1, 0] - 3, 5)
    for i, x in enumerate(xs):
        g.panels.append(Panel(f"loop_{i}", np.array([[x, -0.2], [x, 5.2]], np.float32), "body", band_cm=1.2))


BUILDERS = {
    "tshirt": _tshirt,
    "shirt": _shirt,
    "sweater": _sweater,
    "hoodie": lambda g, rng: _hoodie(g, rng, jacket=False),
    "jacket": lambda g, rng: _hoodie(g, rng, jacket=True),
    "dress": _dress,
    "trousers": _trousers,
}

# What each kind can carry; the line chooses kinds that fit the defect types it has been asked for.
FEATURES = {
    "tshirt": {"print"},
    "shirt": {"buttons", "print"},
    "sweater": {"buttons"},
    "hoodie": {"zipper", "print"},
    "jacket": {"zipper", "print"},
    "dress": {"print"},
    "trousers": set(),
}


def build_layout(kind: str, rng: np.random.Generator, width: int, height: int, px_per_cm: float) -> Layout:
    """Build a garment of ``kind`` and lay it on the belt so that it fits the frame."""
    g = Layout(kind=kind, panels=[])
    BUILDERS[kind](g, rng)
    if kind == "trousers":
        _add_belt_loops(g)
    size = rng.uniform(0.86, 1.0)
    pts = g.all_points()
    lo, hi = pts.min(0), pts.max(0)
    extent = hi - lo
    usable = np.array([width * 0.9, height * 0.86]) / px_per_cm
    upright = extent[0] * size <= usable[0] and extent[1] * size <= usable[1]
    base = (0.0 if rng.random() < 0.85 else 180.0) if upright else (90.0 if rng.random() < 0.5 else -90.0)
    angle = base + rng.uniform(-7, 7)
    rad = math.radians(angle)
    rot = np.array([[math.cos(rad), -math.sin(rad)], [math.sin(rad), math.cos(rad)]], np.float32)
    centre = (lo + hi) / 2
    corners = (np.array([[lo[0], lo[1]], [hi[0], lo[1]], [hi[0], hi[1]], [lo[0], hi[1]]]) - centre) @ rot.T
    span = corners.max(0) - corners.min(0)
    size = min(size, *(usable / span))
    scale = size * px_per_cm
    room = np.maximum(np.array([width, height]) - span * scale, 0) / 2
    shift = np.array([rng.uniform(-0.9, 0.9) * room[0] * 0.9, rng.uniform(-0.9, 0.9) * room[1] * 0.7])
    offset = np.array([width / 2, height / 2]) + shift

    def place(p: Points) -> Points:
        return (((np.asarray(p, np.float32) - centre) @ rot.T) * scale + offset).astype(np.float32)

    # keep the whole garment, bands included, on the belt and off the side rails
    placed = place(pts)
    band = max((p.band_cm for p in g.panels), default=0.0) * scale / 2
    lo_px, hi_px = placed.min(0) - band, placed.max(0) + band
    margin = np.array([width * 0.01, height * 0.06])
    offset = (
        offset + np.maximum(margin - lo_px, 0) - np.maximum(hi_px - (np.array([width, height]) - margin), 0)
    )

    for p in g.panels:
        p.points = place(p.points)
    g.seams = [place(s) for s in g.seams]
    g.hems = [place(h) for h in g.hems]
    g.folds = [place(f) for f in g.folds]
    g.drawstrings = [place(d) for d in g.drawstrings]
    if g.placket is not None:
        g.placket = place(g.placket)
    if g.zipper is not None:
        g.zipper = place(g.zipper)
    g.buttons = [tuple(place(np.array([b]))[0]) for b in g.buttons]
    g.button_radius *= scale
    g.collar = [tuple(place(np.array([c]))[0]) for c in g.collar]
    g.underarms = [tuple(place(np.array([u]))[0]) for u in g.underarms]
    if g.label_at is not None:
        g.label_at = tuple(place(np.array([g.label_at]))[0])
    if g.print_anchor is not None:
        cx, cy = place(np.array([g.print_anchor[:2]]))[0]
        g.print_anchor = (float(cx), float(cy), g.print_anchor[2] * scale)
    g.scale = scale
    g.angle = angle
    return g
