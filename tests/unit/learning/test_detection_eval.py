"""The detector evaluation: greedy matching at the operating threshold, and mAP through faster-coco-eval.

The detector here is a stand-in that returns fixed boxes: the subject under test is the evaluator."""

import numpy as np
import pytest

from cloud.learning.coco_data import CocoData, CocoImage
from cloud.learning.detection_eval import evaluate_detector, match_at_threshold
from edge.detectors.base import Detections, DetectorRuntime, RawOutputs
from edge.detectors.meta import DetectorMeta


def test_match_counts_true_and_false_positives_per_label():
    gt = np.array([[0, 0, 10, 10], [20, 20, 30, 30]], np.float32)
    gt_labels = np.array([0, 1])
    boxes = np.array([[0, 0, 10, 10], [0, 0, 10, 9], [20, 20, 30, 30], [50, 50, 60, 60]], np.float32)
    scores = np.array([0.9, 0.8, 0.7, 0.1], np.float32)
    labels = np.array([0, 0, 0, 1])
    tp, fp, n = match_at_threshold(gt, gt_labels, boxes, scores, labels, 0.25, 2)
    # The duplicate of box 0 is a false positive; the right box with the wrong label too;
    # 0.1 is below threshold.
    assert tp.tolist() == [1, 0] and fp.tolist() == [2, 0] and n.tolist() == [1, 1]


class FixedDetector(DetectorRuntime):
    key = "fixed"

    def __init__(self, answers):
        super().__init__(DetectorMeta("fixed@1", 32, ("defect",)), class_agnostic=True)
        self.answers = answers
        self.calls = 0

    def forward(self, batch):  # pragma: no cover - detect is overridden
        return RawOutputs(np.zeros((len(batch), 1, 1)), np.zeros((len(batch), 1, 4)))

    def detect(self, images):
        out = []
        for _ in images:
            boxes, scores = self.answers[self.calls]
            keep = scores >= self.score_threshold
            out.append(Detections(boxes[keep], scores[keep], np.zeros(int(keep.sum()), np.int64)))
            self.calls += 1
        return out


def _data(tmp_path, n):
    import cv2

    images = []
    for i in range(n):
        path = tmp_path / f"{i}.png"
        cv2.imwrite(str(path), np.zeros((100, 100, 3), np.uint8))
        images.append(
            CocoImage(i + 1, path, f"g{i}", np.array([[10, 10, 40, 40]], np.float32), np.array([0]), 100, 100)
        )
    return CocoData(images, ("defect",), {0: 1}, tmp_path / "annotations.json")


def test_perfect_detections_score_one(tmp_path):
    answers = [(np.array([[10, 10, 40, 40]], np.float32), np.array([0.9], np.float32)) for _ in range(4)]
    metrics = evaluate_detector(FixedDetector(answers), _data(tmp_path, 4))
    assert metrics.map50 == pytest.approx(1.0) and metrics.map50_95 == pytest.approx(1.0)
    assert metrics.precision == 1.0 and metrics.recall == 1.0 and metrics.instances == 4


def test_low_scores_count_for_map_but_not_at_the_threshold(tmp_path):
    # Half the images: the right box at 0.1 (under 0.25) plus a wrong box at 0.6 -> recall 0.5 at threshold.
    right = (np.array([[10, 10, 40, 40]], np.float32), np.array([0.9], np.float32))
    late = (np.array([[60, 60, 90, 90], [10, 10, 40, 40]], np.float32), np.array([0.6, 0.1], np.float32))
    detector = FixedDetector([right, late, right, late])
    metrics = evaluate_detector(detector, _data(tmp_path, 4))
    assert metrics.recall == 0.5 and metrics.precision == pytest.approx(2 / 4)
    assert 0.5 < metrics.map50 < 1.0
    assert detector.score_threshold == 0.25  # restored after evaluation
