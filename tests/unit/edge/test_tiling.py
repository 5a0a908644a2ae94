"""Sliced inference: tiles cover the frame with overlap, boxes come back in frame pixels, duplicates go."""

import numpy as np
import pytest

from edge.detectors.base import DetectorRuntime, RawOutputs
from edge.detectors.meta import DetectorMeta
from edge.detectors.tiling import suppress_duplicates, tile_size, tile_windows


@pytest.mark.parametrize(
    "width, height, cols, rows", [(1280, 720, 2, 2), (1280, 720, 3, 2), (640, 480, 1, 1), (1000, 333, 4, 3)]
)
def test_tiles_cover_the_frame_and_overlap(width, height, cols, rows):
    windows = tile_windows(width, height, cols, rows, 0.15)
    assert len(windows) == cols * rows
    covered = np.zeros((height, width), bool)
    for x1, y1, x2, y2 in windows:
        assert 0 <= x1 < x2 <= width and 0 <= y1 < y2 <= height
        covered[y1:y2, x1:x2] = True
    assert covered.all()
    tw, th = tile_size(width, height, cols, rows, 0.15)
    if cols > 1:
        assert windows[1][0] < windows[0][2] and tw >= width / cols  # neighbours overlap


def test_duplicates_in_the_overlap_are_suppressed_per_label():
    boxes = np.array(
        [[10, 10, 50, 50], [12, 11, 51, 49], [15, 15, 30, 30], [100, 100, 120, 120], [12, 11, 51, 49]],
        np.float32,
    )
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.5], np.float32)
    labels = np.array([0, 0, 0, 0, 1])
    keep = suppress_duplicates(boxes, scores, labels)
    # 1 overlaps 0; 2 lies inside 0; 3 stands alone; 4 has another label.
    assert keep.tolist() == [0, 3, 4]


class CentreDetector(DetectorRuntime):
    """Stand-in network: one box in the middle of every input, scored by the input's mean brightness."""

    key = "centre"

    def forward(self, batch):
        b = batch.shape[0]
        logits = np.log(batch.mean(axis=(1, 2, 3)) / (1 - batch.mean(axis=(1, 2, 3)) + 1e-6)).reshape(b, 1, 1)
        boxes = np.tile(np.array([0.5, 0.5, 0.2, 0.2], np.float32), (b, 1, 1))
        return RawOutputs(logits.astype(np.float32), boxes)


def test_tiled_detection_maps_boxes_back_to_the_frame():
    frame = np.full((720, 1280, 3), 200, np.uint8)
    detector = CentreDetector(DetectorMeta("c@1", 64, ("defect",), tiles=(2, 2)), score_threshold=0.1)
    [found] = detector.detect([frame])
    assert len(found) == 4
    centres = sorted(((b[0] + b[2]) / 2, (b[1] + b[3]) / 2) for b in found.boxes)
    expected = sorted(
        ((x1 + x2) / 2, (y1 + y2) / 2) for x1, y1, x2, y2 in tile_windows(1280, 720, 2, 2, 0.15)
    )
    assert np.allclose(centres, expected, atol=1.0)
    whole = CentreDetector(DetectorMeta("c@1", 64, ("defect",)), score_threshold=0.1, tiles=(1, 1))
    assert len(whole.detect([frame])[0]) == 1  # the config's (1, 1) overrides nothing here: whole frames


def test_config_override_beats_the_model_grid():
    detector = CentreDetector(DetectorMeta("c@1", 64, ("defect",), tiles=(2, 2)), tiles=(3, 1))
    assert detector.tiles == (3, 1)
