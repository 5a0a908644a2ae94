"""Safe decoding (bad input -> precise error), encoding round trips, box helpers."""

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from seamline.imaging import (
    ImageDecodeError,
    ImageTooLargeError,
    box_iou,
    decode_image,
    encode_jpeg,
    encode_png,
    pad_box,
    probe_image,
)


def _image(h=48, w=64) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 255, (h, w, 3), dtype=np.uint8)


def _png_bomb(width=60_000, height=60_000) -> bytes:
    """A valid PNG header declaring 3.6 G pixels, with a tiny IDAT: what a decompression bomb looks like."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 1024))
        + chunk(b"IEND", b"")
    )


def test_png_round_trip_is_exact():
    rgb = _image()
    assert np.array_equal(decode_image(encode_png(rgb), expected="png"), rgb)


def test_jpeg_round_trip_is_close_and_rgb_ordered():
    rgb = np.zeros((32, 32, 3), np.uint8)
    rgb[..., 0] = 200  # red
    out = decode_image(encode_jpeg(rgb, 95), expected="jpeg")
    assert out.shape == rgb.shape and abs(int(out[..., 0].mean()) - 200) < 4 and out[..., 2].mean() < 5


def test_probe_reads_the_header():
    info = probe_image(encode_png(_image(10, 20)))
    assert (info.encoding, info.width, info.height) == ("png", 20, 10)


@pytest.mark.parametrize(
    "data, fragment",
    [
        (b"", "empty"),
        (b"not an image at all", "not a decodable image"),
        (_png_bomb(), "pixels"),
        (encode_jpeg(_image())[:200], "truncated"),
        (encode_jpeg(_image(256, 256))[:3000], "truncated"),
        (encode_png(_image())[:100], "truncated or corrupt"),
    ],
)
def test_bad_bytes_raise_precise_errors(data, fragment):
    with pytest.raises(ImageDecodeError) as err:
        decode_image(data)
    assert fragment in err.value.reason


def test_declared_encoding_must_match():
    with pytest.raises(ImageDecodeError, match="declared jpeg but the bytes are png"):
        decode_image(encode_png(_image()), expected="jpeg")


def test_unsupported_format_is_named():
    buf = io.BytesIO()
    Image.fromarray(_image()).save(buf, format="BMP")
    with pytest.raises(ImageDecodeError, match="unsupported image format 'BMP'"):
        decode_image(buf.getvalue())


def test_pixel_limit_is_configurable():
    data = encode_png(_image(100, 100))
    with pytest.raises(ImageTooLargeError, match="100x100 = 10000 pixels, over the limit of 5000"):
        decode_image(data, max_pixels=5000)


@pytest.mark.parametrize("width, height", [(60_000, 60_000), (30_000, 30_000), (2_001, 2_000)])
def test_too_many_pixels_is_told_apart_from_bytes_that_do_not_decode(width, height):
    # the ingress refuses the first as TOO_LARGE, the second as UNDECODABLE_IMAGE
    with pytest.raises(ImageTooLargeError, match="pixels"):
        decode_image(_png_bomb(width, height), max_pixels=4_000_000)


def test_pad_box_grows_clamps_and_keeps_a_minimum():
    assert pad_box((10, 10, 20, 20), width=100, height=100, pad=0.0, min_size=32) == (0, 0, 31, 31)
    x1, y1, x2, y2 = pad_box((90, 90, 99, 99), width=100, height=100, pad=0.5, min_size=4)
    assert x2 <= 100 and y2 <= 100 and x1 < 90 and y1 < 90
    x1, y1, x2, y2 = pad_box((0, 0, 100, 50), width=100, height=50)
    assert (x1, y1, x2, y2) == (0, 0, 100, 50)


def test_box_iou():
    assert box_iou((0, 0, 10, 10), (0, 0, 10, 10)) == 1.0
    assert box_iou((0, 0, 10, 10), (10, 10, 20, 20)) == 0.0
    assert box_iou((0, 0, 10, 10), (5, 0, 15, 10)) == pytest.approx(1 / 3)
