"""Augmentations move boxes with the pixels: a white rectangle on black stays inside its transformed box."""

import numpy as np
import pytest

from cloud.learning.augment import AugmentConfig, augment

NO_COLOUR = dict(
    brightness=(1.0, 1.0), contrast=(1.0, 1.0), hue_shift=0.0, saturation=(1.0, 1.0), blur=0.0, noise=0.0
)


def _scene():
    image = np.zeros((360, 640, 3), np.uint8)
    boxes = np.array([[100, 80, 180, 140], [400, 200, 470, 300]], np.float32)
    for (x1, y1, x2, y2), shade in zip(boxes.astype(int), (255, 200)):
        image[y1:y2, x1:x2] = shade
    return image, boxes, np.array([0, 1])


def _white_bbox(image, box):
    """Bounding box of the bright pixels inside ``box`` grown by 3 px."""
    x1, y1, x2, y2 = (int(round(v)) for v in box)
    pad = 3
    region = image[max(0, y1 - pad) : y2 + pad, max(0, x1 - pad) : x2 + pad, 0] > 128
    ys, xs = np.nonzero(region)
    return (
        xs.min() + max(0, x1 - pad),
        ys.min() + max(0, y1 - pad),
        xs.max() + max(0, x1 - pad) + 1,
        ys.max() + max(0, y1 - pad) + 1,
    )


@pytest.mark.parametrize("kind", ["hflip", "vflip", "zoom", "rotate"])
def test_boxes_follow_the_pixels(kind):
    settings = dict(NO_COLOUR, hflip=0.0, vflip=0.0, zoom=0.0, rotate=0.0)
    settings[kind] = 1.0
    cfg = AugmentConfig(**settings, min_zoom_scale=0.6, max_degrees=10)
    for seed in range(10):
        image, boxes, labels = _scene()
        out, moved, kept = augment(image, boxes, labels, np.random.default_rng(seed), cfg)
        assert moved.shape[0] == kept.shape[0] >= 1 if kind != "zoom" else moved.shape[0] == kept.shape[0]
        for box in moved:
            assert 0 <= box[0] < box[2] <= out.shape[1] and 0 <= box[1] < box[3] <= out.shape[0]
            bx1, by1, bx2, by2 = _white_bbox(out, box)
            tolerance = (
                4 if kind != "rotate" else 12
            )  # a rotated rectangle's enclosing box is loose by design
            assert abs(bx1 - box[0]) <= tolerance and abs(by1 - box[1]) <= tolerance
            assert abs(bx2 - box[2]) <= tolerance and abs(by2 - box[3]) <= tolerance


def test_zoom_drops_boxes_mostly_cut_off_and_keeps_labels_aligned():
    cfg = AugmentConfig(
        **NO_COLOUR, hflip=0, vflip=0, rotate=0, zoom=1.0, min_zoom_scale=0.3, min_visible=0.5
    )
    seen_drop = False
    for seed in range(40):
        image, boxes, labels = _scene()
        out, moved, kept = augment(image, boxes, labels, np.random.default_rng(seed), cfg)
        assert moved.shape[0] == kept.shape[0]
        seen_drop |= moved.shape[0] < 2
        for box, label in zip(moved, kept):
            # Label 0's rectangle is painted white, label 1's grey: each kept box still shows its own.
            x1, y1, x2, y2 = (int(round(v)) for v in box)
            assert np.median(out[y1:y2, x1:x2, 0]) == (255 if label == 0 else 200)
    assert seen_drop


def test_disabled_returns_the_input():
    image, boxes, labels = _scene()
    out, moved, kept = augment(image, boxes, labels, np.random.default_rng(0), AugmentConfig(enabled=False))
    assert out is image and np.array_equal(moved, boxes) and np.array_equal(kept, labels)


def test_colour_changes_pixels_but_not_boxes():
    image, boxes, labels = _scene()
    image[:] = 120
    cfg = AugmentConfig(hflip=0, vflip=0, rotate=0, zoom=0, blur=0, noise=1.0)
    out, moved, _ = augment(image, boxes, labels, np.random.default_rng(3), cfg)
    assert np.array_equal(moved, boxes) and not np.array_equal(out, image) and out.dtype == np.uint8
