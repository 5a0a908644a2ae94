"""Image helpers both sides use: safe decoding with limits, fast JPEG encoding, box arithmetic.

Everything in the hot path works on numpy arrays ``(H, W, 3) uint8 RGB``. Decoding checks the declared size
before any pixel is decompressed, so a decompression bomb costs a header read, not gigabytes.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

import cv2
import numpy as np
from PIL import Image

from seamline.errors import InputError

# Sixteen megapixels: a 4K frame fits, a 50,000 x 50,000 "bomb" does not.
DEFAULT_MAX_PIXELS = 16_000_000
_FORMATS = {"JPEG": "jpeg", "PNG": "png", "WEBP": "webp"}


class ImageDecodeError(InputError, ValueError):
    """Bytes that are not an acceptable image; ``reason`` is precise enough to send back to the caller."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class ImageTooLargeError(ImageDecodeError):
    """The image's header declares more pixels than allowed: well formed perhaps, but too large to decode."""


@dataclass(frozen=True)
class ImageInfo:
    """What the header of an encoded image says."""

    encoding: str  # "jpeg" | "png" | "webp"
    width: int
    height: int


def probe_image(data: bytes, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> ImageInfo:
    """Read only the header: format and size.

    Raises ImageDecodeError for empty or unknown images, its subclass ImageTooLargeError for oversized
    ones.
    """
    if not data:
        raise ImageDecodeError("image is empty (0 bytes)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as img:
                fmt, (width, height) = img.format, img.size
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageTooLargeError(f"image declares too many pixels (limit {max_pixels})") from None
    except Exception as exc:  # PIL raises many types for garbage
        if "truncated" in str(exc).lower():
            raise ImageDecodeError(f"image data is truncated ({exc})") from None
        raise ImageDecodeError(f"not a decodable image: {exc}") from None
    if fmt not in _FORMATS:
        raise ImageDecodeError(f"unsupported image format {fmt!r} (use JPEG, PNG or WebP)")
    if width <= 0 or height <= 0:
        raise ImageDecodeError(f"image has no pixels ({width}x{height})")
    if width * height > max_pixels:
        raise ImageTooLargeError(
            f"image is {width}x{height} = {width * height} pixels, over the limit of {max_pixels}"
        )
    return ImageInfo(_FORMATS[fmt], width, height)


def decode_image(
    data: bytes, *, expected: str | None = None, max_pixels: int = DEFAULT_MAX_PIXELS
) -> np.ndarray:
    """Decode to ``(H, W, 3) uint8 RGB``.

    Args:
        data: the encoded bytes.
        expected: ``"jpeg"``, ``"png"`` or ``"webp"`` if the sender declared one; a mismatch is an error.
        max_pixels: refuse images whose header declares more pixels than this.

    Raises:
        ImageDecodeError: empty, unknown format, mismatched, truncated or corrupt data; ImageTooLargeError
            (a subclass) when the header declares more than ``max_pixels`` pixels.
    """
    info = probe_image(data, max_pixels=max_pixels)
    if expected is not None and info.encoding != expected:
        raise ImageDecodeError(f"declared {expected} but the bytes are {info.encoding}")
    # OpenCV decodes JPEG/PNG faster than PIL; it returns None (not an exception) on corrupt data.
    array = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if array is None or array.shape[:2] != (info.height, info.width):
        raise ImageDecodeError(f"{info.encoding} data is truncated or corrupt")
    if info.encoding == "jpeg" and not data.rstrip(b"\x00").endswith(b"\xff\xd9"):
        # libjpeg fills a truncated scan with grey and only warns; refuse it rather than classify grey.
        raise ImageDecodeError("jpeg data is truncated (no end-of-image marker)")
    return cv2.cvtColor(array, cv2.COLOR_BGR2RGB)


def encode_jpeg(rgb: np.ndarray, quality: int = 90) -> bytes:
    """Encode ``(H, W, 3) uint8 RGB`` as baseline JPEG."""
    ok, buf = cv2.imencode(
        ".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, int(quality)]
    )
    if not ok:
        raise ValueError("JPEG encoding failed")
    return buf.tobytes()


def encode_png(rgb: np.ndarray, compression: int = 3) -> bytes:
    """Encode ``(H, W, 3) uint8 RGB`` as PNG (lossless)."""
    ok, buf = cv2.imencode(
        ".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, compression]
    )
    if not ok:
        raise ValueError("PNG encoding failed")
    return buf.tobytes()


Box = tuple[float, float, float, float]  # x1, y1, x2, y2 in pixels


def pad_box(
    box: Box, *, width: int, height: int, pad: float = 0.15, min_size: int = 32
) -> tuple[int, int, int, int]:
    """Grow ``box`` by ``pad`` of its size per side, to at least ``min_size`` square, clamped to the image.

    Returns integer pixel bounds usable as ``image[y1:y2, x1:x2]``; never empty for a box inside the image.
    """
    x1, y1, x2, y2 = box
    w, h = max(x2 - x1, 1.0), max(y2 - y1, 1.0)
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    half_w = max(w * (1 + 2 * pad), min_size) / 2
    half_h = max(h * (1 + 2 * pad), min_size) / 2
    nx1 = int(np.clip(np.floor(cx - half_w), 0, width - 1))
    ny1 = int(np.clip(np.floor(cy - half_h), 0, height - 1))
    nx2 = int(np.clip(np.ceil(cx + half_w), nx1 + 1, width))
    ny2 = int(np.clip(np.ceil(cy + half_h), ny1 + 1, height))
    return nx1, ny1, nx2, ny2


def box_iou(a: Box, b: Box) -> float:
    """Intersection over union of two boxes."""
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0
