"""Camera views of one laid-out garment: a straight top view, two oblique ones and a zoom.

A view is a homography from the scene (the top view before lighting) to the frame, then that camera's
lighting and sensor noise. The same homography carries every defect's changed pixels, so a defect is
annotated exactly where, and only if, it shows in that view.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from seamline.synth.textures import TextureBank

Box = tuple[float, float, float, float]
CAMERAS = ("top", "oblique_left", "zoom", "oblique_right")


@dataclass(frozen=True)
class Camera:
    """One camera: its name and the scene-to-frame homography (None for the straight top view)."""

    name: str
    homography: np.ndarray | None  # (3, 3) float64


def _quad_homography(quad: np.ndarray, width: int, height: int) -> np.ndarray:
    dst = np.array([[0, 0], [width, 0], [width, height], [0, height]], np.float32)
    return cv2.getPerspectiveTransform(quad.astype(np.float32), dst)


def plan_cameras(
    count: int, width: int, height: int, garment_box: tuple[int, int, int, int], rng: np.random.Generator
) -> list[Camera]:
    """The cameras of a garment: top, then oblique left, zoom on part of the garment, oblique right.

    Cameras depend only on the garment, never on its defects, so a garment rendered without defects is
    seen from exactly the same places.
    """
    cams = [Camera("top", None)]
    w, h = float(width), float(height)
    for k in range(1, count):
        name = CAMERAS[k]
        if name == "zoom":
            frac = rng.uniform(0.5, 0.62)
            zw, zh = w * frac, h * frac
            gx0, gy0, gx1, gy1 = garment_box
            x = float(np.clip(rng.uniform(gx0 - zw * 0.1, max(gx0 - zw * 0.1, gx1 - zw * 0.9)), 0, w - zw))
            y = float(np.clip(rng.uniform(gy0 - zh * 0.1, max(gy0 - zh * 0.1, gy1 - zh * 0.9)), 0, h - zh))
            quad = np.array([[x, y], [x + zw, y], [x + zw, y + zh], [x, y + zh]])
        else:
            # an oblique camera sees the belt as a trapezoid: the far side shrinks
            near, far = rng.uniform(0.0, 0.02), rng.uniform(0.06, 0.11)
            tilt = rng.uniform(0.01, 0.04)
            lx, rx = (far, near) if name == "oblique_left" else (near, far)
            quad = np.array(
                [
                    [w * near, h * (lx + tilt)],
                    [w * (1 - near), h * (rx + tilt)],
                    [w * (1 - near), h * (1 - rx)],
                    [w * near, h * (1 - lx)],
                ]
            )
            quad[:, 0] += rng.uniform(-0.01, 0.01) * w
            quad = np.clip(quad, 0, [w, h])
        cams.append(Camera(name, _quad_homography(quad, width, height)))
    return cams


def light_map(
    width: int, height: int, rng: np.random.Generator, raking: bool
) -> tuple[np.ndarray, Box | None]:
    """Multiplicative light (uint8, 128 = unchanged): gradient, vignette, maybe a cast shadow band."""
    sw, sh = 40, 23
    gy = np.linspace(-1, 1, sh, dtype=np.float32)[:, None]
    gx = np.linspace(-1, 1, sw, dtype=np.float32)[None, :]
    a = rng.uniform(0, 2 * math.pi)
    amp = rng.uniform(0.22, 0.32) if raking else rng.uniform(0.03, 0.12)
    level = rng.uniform(0.92, 1.06)
    field = (
        level + amp * (math.cos(a) * gx + math.sin(a) * gy) - rng.uniform(0.04, 0.12) * (gx**2 + gy**2) / 2
    )
    band_box = None
    if rng.random() < 0.3:
        # the shadow of the camera rig or an operator's arm: a soft dark band across the frame
        ang = rng.uniform(0, math.pi)
        off = rng.uniform(-0.6, 0.6)
        dist = np.abs(math.cos(ang) * gx + math.sin(ang) * gy - off)
        band = np.clip(1.0 - dist / rng.uniform(0.1, 0.25), 0, 1)
        field = field * (1 - band * rng.uniform(0.2, 0.4))
        ys, xs = np.nonzero(band > 0.05)
        if len(xs):
            band_box = (
                xs.min() * width / sw,
                ys.min() * height / sh,
                (xs.max() + 1) * width / sw,
                (ys.max() + 1) * height / sh,
            )
    small = np.clip(field * 128, 0, 255).astype(np.uint8)
    big = cv2.resize(small, (width, height), interpolation=cv2.INTER_LINEAR)
    return big, band_box


def expose(
    scene: np.ndarray, camera: Camera, bank: TextureBank, rng: np.random.Generator
) -> tuple[np.ndarray, Box | None]:
    """The frame a camera takes of ``scene`` (warp, light, sensor noise) and its shadow band's box."""
    h, w = scene.shape[:2]
    if camera.homography is None:
        img = scene.copy()
    else:
        img = cv2.warpPerspective(
            scene, camera.homography, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
        )
    light, band = light_map(w, h, rng, raking=camera.name == "oblique_right")
    cv2.multiply(img, cv2.merge([light, light, light]), dst=img, scale=1 / 128)
    noise = bank.noise_patch(h, w, (int(rng.integers(64)), int(rng.integers(64))))
    img = cv2.add(img, noise, dtype=cv2.CV_8U)
    return img, band


def project_mask(
    mask: np.ndarray, origin: tuple[int, int], camera: Camera, width: int, height: int
) -> tuple[Box, float] | None:
    """Where a camera sees the scene pixels ``mask`` (placed at ``origin``): their box in the frame and the
    share of them inside it (below 1 when the frame cuts the defect). None if none is in view.
    """
    ox, oy = origin
    ys, xs = np.nonzero(mask)
    if not len(xs):
        return None
    if camera.homography is None:
        return (
            float(ox + xs.min()),
            float(oy + ys.min()),
            float(ox + xs.max() + 1),
            float(oy + ys.max() + 1),
        ), 1.0
    centres = np.stack([xs + ox + 0.5, ys + oy + 0.5], 1).astype(np.float32)[:, None, :]
    seen = cv2.perspectiveTransform(centres, camera.homography)[:, 0]
    visible = float(
        np.mean((seen[:, 0] >= 0) & (seen[:, 0] < width) & (seen[:, 1] >= 0) & (seen[:, 1] < height))
    )
    mh, mw = mask.shape
    corners = np.array([[[ox, oy]], [[ox + mw, oy]], [[ox + mw, oy + mh]], [[ox, oy + mh]]], np.float32)
    proj = cv2.perspectiveTransform(corners, camera.homography)[:, 0]
    x0, y0 = np.floor(proj.min(0)).astype(int) - 2
    x1, y1 = np.ceil(proj.max(0)).astype(int) + 2
    x0, y0, x1, y1 = max(0, x0), max(0, y0), min(width, x1), min(height, y1)
    if x1 <= x0 or y1 <= y0:
        return None
    shift = np.array([[1, 0, -x0], [0, 1, -y0], [0, 0, 1]], np.float64)
    place = np.array([[1, 0, ox], [0, 1, oy], [0, 0, 1]], np.float64)
    warped = cv2.warpPerspective(
        mask, shift @ camera.homography @ place, (x1 - x0, y1 - y0), flags=cv2.INTER_LINEAR
    )
    ys, xs = np.nonzero(warped)
    if not len(xs):
        return None
    box = (float(x0 + xs.min()), float(y0 + ys.min()), float(x0 + xs.max() + 1), float(y0 + ys.max() + 1))
    return box, max(visible, 1e-3)


def project_box(box: Box, camera: Camera, width: int, height: int) -> Box | None:
    """A scene box as the (clipped) box a camera sees; None if out of view."""
    if camera.homography is None:
        return box
    x0, y0, x1, y1 = box
    pts = np.array([[[x0, y0]], [[x1, y0]], [[x1, y1]], [[x0, y1]]], np.float32)
    proj = cv2.perspectiveTransform(pts, camera.homography)[:, 0]
    bx0, by0 = np.maximum(proj.min(0), 0)
    bx1, by1 = proj.max(0)
    bx1, by1 = min(bx1, width), min(by1, height)
    if bx1 <= bx0 or by1 <= by0:
        return None
    return (float(bx0), float(by0), float(bx1), float(by1))
