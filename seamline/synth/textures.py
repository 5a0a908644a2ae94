"""Tileable fabric, belt and sensor-noise textures, built once per line and shared by every garment.

Drawing a texture per garment would cost more than the whole garment; a small bank of periodic tiles,
cropped at random offsets and tinted through a lookup table, looks as varied and costs a millisecond.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

TILE = 256  # periodic patterns use integer cycles per tile so the tile wraps seamlessly
VARIANTS = 2
FABRICS = (
    "jersey",
    "heather",
    "denim",
    "twill",
    "oxford",
    "fleece",
    "rib_knit",
    "cable_knit",
    "nylon",
    "corduroy",
)


def _periodic_noise(
    rng: np.random.Generator, beta: float, stretch: tuple[float, float] = (1.0, 1.0)
) -> np.ndarray:
    """Zero-mean, unit-std noise with a 1/f**beta spectrum; periodic because it is made in Fourier space."""
    fy = np.fft.fftfreq(TILE)[:, None] * stretch[0]
    fx = np.fft.rfftfreq(TILE)[None, :] * stretch[1]
    f = np.sqrt(fx * fx + fy * fy)
    f[0, 0] = 1.0
    spectrum = (rng.normal(size=f.shape) + 1j * rng.normal(size=f.shape)) / f**beta
    spectrum[0, 0] = 0.0
    out = np.fft.irfft2(spectrum, s=(TILE, TILE))
    return (out / (out.std() + 1e-9)).astype(np.float32)


def _grid() -> tuple[np.ndarray, np.ndarray]:
    y, x = np.mgrid[0:TILE, 0:TILE].astype(np.float32)
    return y, x


def _wave(coord: np.ndarray, cycles: int) -> np.ndarray:
    return np.cos(2.0 * np.pi * cycles * coord / TILE)


def _fabric_field(kind: str, rng: np.random.Generator) -> tuple[np.ndarray, float]:
    """A float pattern for one fabric and the contrast (grey levels of std) it should be drawn with."""
    y, x = _grid()
    fine = _periodic_noise(rng, 0.3)
    if kind == "jersey":
        return 0.6 * fine + 0.5 * _wave(x, 85) + 0.4 * _periodic_noise(rng, 1.4), 7.0
    if kind == "heather":
        streaks = _periodic_noise(rng, 0.8, stretch=(1.0, 6.0))
        return 0.5 * fine + 1.0 * streaks + 0.3 * _wave(x, 85), 13.0
    if kind == "denim":
        twill = _wave(x + y, 64)
        slubs = _periodic_noise(rng, 0.9, stretch=(0.15, 4.0))
        mottle = _periodic_noise(rng, 1.8)
        return 1.0 * twill + 0.8 * slubs + 0.7 * mottle + 0.3 * fine, 22.0
    if kind == "twill":
        return 0.8 * _wave(x + y, 80) + 0.4 * fine + 0.4 * _periodic_noise(rng, 1.6), 9.0
    if kind == "oxford":
        weave = _wave(x, 64) * _wave(y, 64)
        return 0.9 * weave + 0.5 * fine + 0.3 * _periodic_noise(rng, 1.5), 8.0
    if kind == "fleece":
        return 1.0 * _periodic_noise(rng, 1.2) + 0.5 * fine, 9.0
    if kind == "rib_knit":
        stitches = _wave(y, 64) * 0.3
        return 1.0 * _wave(x, 50) + stitches + 0.4 * fine + 0.3 * _periodic_noise(rng, 1.5), 17.0
    if kind == "cable_knit":
        col = np.mod(x, TILE / 5.0)
        chevron = _wave(y + 2.0 * np.abs(col - TILE / 10.0), 8)
        ribs = _wave(x, 40)
        return 1.0 * chevron + 0.6 * ribs + 0.4 * fine, 20.0
    if kind == "nylon":
        ripstop = np.maximum(_wave(x, 51), _wave(y, 51))
        return 0.25 * ripstop + 1.0 * _periodic_noise(rng, 2.0) + 0.2 * fine, 5.0
    if kind == "corduroy":
        return 1.0 * _wave(x, 80) + 0.3 * fine + 0.4 * _periodic_noise(rng, 1.6), 20.0
    raise KeyError(kind)


def _to_u8(field: np.ndarray, std: float, mean: float = 128.0) -> np.ndarray:
    field = (field - field.mean()) / (field.std() + 1e-9)
    return np.clip(mean + std * field, 0, 255).astype(np.uint8)


@dataclass(frozen=True)
class TextureBank:
    """Per-line textures: fabric tiles (grey, mean 128), the belt strip and a sensor-noise field."""

    fabrics: dict[str, tuple[np.ndarray, ...]]  # kind -> VARIANTS tiles, each (TILE, TILE) uint8
    belt: np.ndarray  # (H, W + TILE, 3) uint8 RGB, periodic along x
    noise: np.ndarray  # (H + 64, W + 64, 3) int16, sensor noise around 0

    def fabric_patch(
        self, kind: str, variant: int, height: int, width: int, offset: tuple[int, int], lut: np.ndarray
    ) -> np.ndarray:
        """A (height, width, 3) crop of a fabric tinted by ``lut``, from ``offset`` in the periodic tile."""
        grey = self.fabrics[kind][variant % VARIANTS]
        # tint the small tile, then repeat it: a lookup over the whole garment would cost ten times more
        tile = cv2.LUT(cv2.merge([grey, grey, grey]), lut)
        oy, ox = offset[0] % TILE, offset[1] % TILE
        reps = ((height + oy) // TILE + 1, (width + ox) // TILE + 1, 1)
        return np.tile(tile, reps)[oy : oy + height, ox : ox + width]

    def belt_patch(self, height: int, width: int, shift: int) -> np.ndarray:
        """The belt as seen in a frame (a read-only view), moved ``shift`` pixels along the belt."""
        shift %= TILE
        return self.belt[:height, shift : shift + width]

    def noise_patch(self, height: int, width: int, offset: tuple[int, int]) -> np.ndarray:
        """A (height, width, 3) int16 sensor-noise crop."""
        oy, ox = offset[0] % 64, offset[1] % 64
        return self.noise[oy : oy + height, ox : ox + width]


def _belt_strip(rng: np.random.Generator, height: int, width: int, lut: np.ndarray) -> np.ndarray:
    tile = _to_u8(
        0.7 * _periodic_noise(rng, 0.4) + 0.8 * _periodic_noise(rng, 1.0, stretch=(3.0, 0.2)), 6.0, 60.0
    )
    reps = (height // TILE + 1, (width + TILE) // TILE + 1)
    grey = np.ascontiguousarray(np.tile(tile, reps)[:height, : width + TILE])
    return cv2.LUT(cv2.merge([grey, grey, grey]), lut)


_BELT_COLORS = ((62, 66, 70), (52, 70, 62), (58, 62, 78), (80, 80, 78))


@lru_cache(maxsize=4)
def texture_bank(seed: int, height: int, width: int) -> TextureBank:
    """The texture bank of a line: a pure function of the seed and frame size, cached per process."""
    rng = np.random.default_rng(np.random.SeedSequence(entropy=seed, spawn_key=(0x7E47,)))
    fabrics = {}
    for kind in FABRICS:
        tiles = []
        for _ in range(VARIANTS):
            field, std = _fabric_field(kind, rng)
            tiles.append(_to_u8(field, std))
        fabrics[kind] = tuple(tiles)
    noise = rng.normal(0.0, 2.2, size=(height + 64, width + 64, 3))
    noise = cv2.GaussianBlur(noise.astype(np.float32), (3, 3), 0.6) * 1.6
    belt = _belt_strip(
        rng, height, width, tint_lut(_BELT_COLORS[int(rng.integers(len(_BELT_COLORS)))], contrast=1.4)
    )
    belt.flags.writeable = False
    return TextureBank(fabrics=fabrics, belt=belt, noise=np.round(noise).astype(np.int16))


def tint_lut(color: tuple[int, int, int], whiteness: float = 0.0, contrast: float = 1.0) -> np.ndarray:
    """A (1, 256, 3) lookup table mapping grey texture values to shades of ``color``.

    Grey 128 maps close to ``color``; ``whiteness`` lifts highlights toward white (denim's undyed weft).
    """
    v = np.arange(256, dtype=np.float32)[:, None] / 128.0 - 1.0
    base = np.asarray(color, dtype=np.float32)[None, :]
    lo = base * (1.0 + 0.45 * contrast * np.minimum(v, 0.0))
    hi_target = base * (1.0 - whiteness) + 255.0 * whiteness
    hi = base + (np.maximum(hi_target, base * 1.35) - base) * np.maximum(v, 0.0) * contrast
    out = np.where(v < 0, lo, hi)
    return np.clip(out, 0, 255).astype(np.uint8)[None, :, :]
