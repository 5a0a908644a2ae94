"""The tiny RT-DETR loads with from_pretrained and gives non-degenerate detections."""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.integration

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")


def _images(count: int, size: int = 320):
    from PIL import Image

    rng = np.random.default_rng(7)
    images = []
    for _ in range(count):
        pixels = np.full((size, size, 3), rng.integers(60, 200, size=3), dtype=np.uint8)
        y, x = rng.integers(20, size - 80, size=2)
        pixels[y : y + 50, x : x + 30] = rng.integers(0, 255, size=3)
        images.append(Image.fromarray(pixels))
    return images


def _load(directory):
    from transformers import AutoImageProcessor, RTDetrForObjectDetection

    model = RTDetrForObjectDetection.from_pretrained(directory).eval()
    processor = AutoImageProcessor.from_pretrained(directory, backend="pil")
    return model, processor


@pytest.fixture(scope="module")
def tiny_detector(tiny_rtdetr_dir):
    return _load(tiny_rtdetr_dir)


def test_batch_of_two_gives_logits_and_boxes_of_the_right_shapes(tiny_detector):
    model, processor = tiny_detector
    assert model.config.id2label == {0: "defect"}
    inputs = processor(images=_images(2), return_tensors="pt")
    assert tuple(inputs["pixel_values"].shape) == (2, 3, 320, 320)
    with torch.no_grad():
        outputs = model(**inputs)
    assert tuple(outputs.logits.shape) == (2, 300, 1)
    assert tuple(outputs.pred_boxes.shape) == (2, 300, 4)
    assert torch.isfinite(outputs.logits).all() and torch.isfinite(outputs.pred_boxes).all()
    assert float(outputs.pred_boxes.min()) >= 0.0 and float(outputs.pred_boxes.max()) <= 1.0


def test_post_processing_and_scores_are_not_tied(tiny_detector):
    model, processor = tiny_detector
    images = _images(2)
    inputs = processor(images=images, return_tensors="pt")
    with torch.no_grad():
        outputs = model(**inputs)
    results = processor.post_process_object_detection(outputs, threshold=0.0, target_sizes=[(320, 320)] * 2)
    assert len(results) == 2
    for result in results:
        assert set(result) >= {"scores", "labels", "boxes"}
        assert tuple(result["boxes"].shape) == (len(result["scores"]), 4)
        top = torch.sort(result["scores"], descending=True).values[:10]
        # Degenerate random inits give one score for every query; these differ.
        assert torch.unique(top).numel() >= 5
        assert float(top[0] - top[-1]) > 1e-3
    # The outputs depend on the input: the two images rank different queries first.
    assert not torch.allclose(outputs.logits[0], outputs.logits[1], atol=1e-3)


def test_per_type_detector_has_the_taxonomy_classes(tmp_path):
    from seamline.config.taxonomy import default_taxonomy
    from seamline.modelzoo.tiny_rtdetr import build_tiny_rtdetr

    type_ids = list(default_taxonomy().type_ids)
    model, processor = _load(build_tiny_rtdetr(tmp_path / "rtdetr", labels=type_ids, seed=3))
    assert [model.config.id2label[i] for i in range(len(type_ids))] == type_ids
    with torch.no_grad():
        outputs = model(**processor(images=_images(1), return_tensors="pt"))
    assert tuple(outputs.logits.shape) == (1, 300, 12)


def test_rejects_bad_labels(tmp_path):
    from seamline.modelzoo.tiny_rtdetr import build_tiny_rtdetr

    with pytest.raises(ValueError, match="unique"):
        build_tiny_rtdetr(tmp_path / "x", labels=["stain", "stain"])
