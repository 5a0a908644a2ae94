"""Numpy pre/post-processing reproduces the Hugging Face reference exactly (the hot path drops HF)."""

import numpy as np
import pytest

from edge.detectors.processing import decode_detections, preprocess


def test_preprocess_matches_the_reference_image_processor():
    pytest.importorskip("torch")
    from transformers.models.rt_detr.image_processing_pil_rt_detr import RTDetrImageProcessorPil

    rng = np.random.default_rng(0)
    images = [
        rng.integers(0, 255, (720, 1280, 3), dtype=np.uint8),
        rng.integers(0, 255, (480, 360, 3), dtype=np.uint8),
    ]
    ref = RTDetrImageProcessorPil(size={"height": 320, "width": 320})(images=images, return_tensors="np")[
        "pixel_values"
    ]
    ours = preprocess(images, 320)
    assert ours.shape == ref.shape == (2, 3, 320, 320) and ours.dtype == np.float32
    assert np.abs(ours - ref).max() < 1e-6


def test_preprocess_refuses_non_rgb_input():
    with pytest.raises(ValueError, match="expected \\(H, W, 3\\) uint8"):
        preprocess([np.zeros((10, 10), np.uint8)], 32)


@pytest.mark.parametrize("classes", [1, 3])
def test_decode_matches_hf_post_process(classes):
    torch = pytest.importorskip("torch")
    from transformers.models.rt_detr.image_processing_pil_rt_detr import RTDetrImageProcessorPil
    from transformers.models.rt_detr.modeling_rt_detr import RTDetrObjectDetectionOutput

    rng = np.random.default_rng(classes)
    logits = rng.normal(-2, 2, (2, 300, classes)).astype(np.float32)
    boxes = rng.uniform(0.05, 0.6, (2, 300, 4)).astype(np.float32)
    sizes = [(720, 1280), (480, 640)]
    outputs = RTDetrObjectDetectionOutput(logits=torch.from_numpy(logits), pred_boxes=torch.from_numpy(boxes))
    ref = RTDetrImageProcessorPil().post_process_object_detection(outputs, threshold=0.25, target_sizes=sizes)
    ours = decode_detections(logits, boxes, sizes, threshold=0.25, top_k=300, class_agnostic=False)
    for r, (b, s, labels, _top) in zip(ref, ours):
        assert len(s) == len(r["scores"]) > 0
        assert np.abs(s - r["scores"].numpy()).max() < 1e-6
        assert np.abs(b - r["boxes"].numpy()).max() < 1e-3
        assert (labels == r["labels"].numpy()).all()


def test_class_agnostic_keeps_one_candidate_per_query():
    logits = np.full((1, 4, 3), -10.0, np.float32)
    logits[0, 0] = [3.0, 2.0, -10]  # one query, two classes above threshold
    boxes = np.full((1, 4, 4), 0.5, np.float32)
    ((b, s, labels, top),) = decode_detections(
        logits, boxes, [(100, 100)], threshold=0.25, top_k=10, class_agnostic=True
    )
    assert len(s) == 1 and labels.tolist() == [0] and top == pytest.approx(s[0])
    ((_, s_hi, _, top_hi),) = decode_detections(
        logits, boxes, [(100, 100)], threshold=0.99, top_k=10, class_agnostic=True
    )
    assert len(s_hi) == 0 and top_hi == pytest.approx(1 / (1 + np.exp(-3.0)))
    ((b, s, labels, top),) = decode_detections(
        logits, boxes, [(100, 100)], threshold=0.25, top_k=10, class_agnostic=False
    )
    assert len(s) == 2 and sorted(labels.tolist()) == [0, 1]


def test_decode_checks_batch_sizes():
    with pytest.raises(ValueError, match="2 outputs for 1 images"):
        decode_detections(
            np.zeros((2, 3, 1)), np.zeros((2, 3, 4)), [(1, 1)], threshold=0.5, top_k=3, class_agnostic=True
        )
