"""Crops: padded and clamped, merged when overlapping, capped per garment, decodable JPEG."""

import numpy as np

from edge.crops import CropConfig, make_crops, merge_regions
from edge.detectors.base import Detections
from seamline.imaging import decode_image


def _det(boxes, scores):
    return Detections(
        np.asarray(boxes, np.float32), np.asarray(scores, np.float32), np.zeros(len(scores), np.int64)
    )


def test_overlapping_and_nested_boxes_merge():
    merged = merge_regions(
        np.array([[10, 10, 50, 50], [12, 12, 52, 52], [20, 20, 30, 30], [200, 200, 220, 220]], np.float32),
        np.array([0.9, 0.8, 0.3, 0.5], np.float32),
        np.zeros(4, np.int64),
        0.5,
    )
    assert len(merged) == 2
    (box, score, _), (box2, score2, _) = merged
    assert score == np.float32(0.9) and list(box) == [10, 10, 52, 52]
    assert score2 == np.float32(0.5)


def test_crops_are_padded_clamped_min_sized_and_ordered():
    view = np.zeros((100, 200, 3), np.uint8)
    crops = make_crops(
        [view, view],
        [_det([[190, 90, 205, 99]], [0.4]), _det([[50, 40, 60, 50]], [0.7])],
        ("defect",),
        CropConfig(min_size=32),
    )
    assert [c.view_index for c in crops] == [1, 0]
    first, second = crops
    assert first.crop_id == "v1-c0" and first.label == "defect"
    x1, y1, x2, y2 = second.crop_box
    assert x2 <= 200 and y2 <= 100 and x2 - x1 >= 10 and y2 - y1 >= 10
    assert second.box[2] == 200.0  # the detected box itself is clamped to the frame
    assert decode_image(first.jpeg).shape[:2] == (
        first.crop_box[3] - first.crop_box[1],
        first.crop_box[2] - first.crop_box[0],
    )


def test_cap_keeps_the_highest_scores():
    view = np.zeros((500, 500, 3), np.uint8)
    boxes = [[i * 40, 0, i * 40 + 20, 20] for i in range(10)]
    scores = [0.1 * (i + 1) for i in range(10)]
    crops = make_crops(
        [view], [_det(boxes, scores)], ("defect",), CropConfig(max_per_garment=3, merge_iou=0.9)
    )
    assert [round(c.score, 1) for c in crops] == [1.0, 0.9, 0.8]


def test_degenerate_boxes_are_dropped():
    view = np.zeros((50, 50, 3), np.uint8)
    assert (
        make_crops(
            [view], [_det([[60, 60, 70, 70], [10, 10, 10.2, 30]], [0.9, 0.8])], ("defect",), CropConfig()
        )
        == []
    )
