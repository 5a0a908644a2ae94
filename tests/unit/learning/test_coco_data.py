"""COCO loading, the per-garment split and repeat-factor sampling."""

import json

import numpy as np
import pytest

from cloud.learning.coco_data import DatasetError, load_coco, read_rgb, repeat_factors, split


def _coco(tmp_path, images=40, rare_every=10):
    doc = {
        "images": [],
        "annotations": [],
        "categories": [{"id": 1, "name": "stain"}, {"id": 2, "name": "hole"}],
    }
    for i in range(images):
        doc["images"].append(
            {
                "id": i + 1,
                "file_name": f"images/g{i // 2}_v{i % 2}.jpg",
                "width": 100,
                "height": 80,
                "item_id": f"g{i // 2}",
            }
        )
        doc["annotations"].append(
            {
                "id": len(doc["annotations"]) + 1,
                "image_id": i + 1,
                "category_id": 1,
                "bbox": [10, 10, 20, 15],
                "iscrowd": 0,
            }
        )
        if i % rare_every == 0:
            doc["annotations"].append(
                {
                    "id": len(doc["annotations"]) + 1,
                    "image_id": i + 1,
                    "category_id": 2,
                    "bbox": [50, 40, 5, 5],
                    "iscrowd": 0,
                }
            )
    path = tmp_path / "annotations.json"
    path.write_text(json.dumps(doc))
    return path


def test_load_maps_categories_and_converts_boxes(tmp_path):
    data = load_coco(_coco(tmp_path))
    assert data.labels == ("stain", "hole")
    first = data.images[0]
    assert first.boxes.tolist() == [[10, 10, 30, 25], [50, 40, 55, 45]] and first.labels.tolist() == [0, 1]
    assert data.per_label_counts() == {"stain": 40, "hole": 4}
    agnostic = load_coco(tmp_path, class_agnostic=True)  # a folder works too
    assert agnostic.labels == ("defect",) and set(agnostic.images[0].labels.tolist()) == {0}


def test_split_is_stable_and_keeps_garments_together(tmp_path):
    data = load_coco(_coco(tmp_path, images=400))
    train, val = split(data, 0.2)
    _, again_val = split(data, 0.2)
    assert [i.image_id for i in val.images] == [i.image_id for i in again_val.images]
    assert not {i.group for i in train.images} & {i.group for i in val.images}
    assert 0.1 < len(val.images) / len(data.images) < 0.3


def test_rare_labels_are_oversampled(tmp_path):
    data = load_coco(_coco(tmp_path, images=100, rare_every=10))
    factors = repeat_factors(data, threshold=0.5)
    with_rare = [f for f, img in zip(factors, data.images) if 1 in img.labels]
    without = [f for f, img in zip(factors, data.images) if 1 not in img.labels]
    assert min(with_rare) == pytest.approx(np.sqrt(0.5 / 0.1)) and set(without) == {1.0}
    assert set(repeat_factors(data, 0.0)) == {1.0}


@pytest.mark.parametrize(
    "content, message",
    [("{", "not a COCO detection file"), ('{"images": [], "categories": []}', "no categories")],
)
def test_bad_files_are_named(tmp_path, content, message):
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(DatasetError, match=message):
        load_coco(path)
    with pytest.raises(DatasetError, match="no such COCO file"):
        load_coco(tmp_path / "missing.json")


def test_unreadable_image_is_a_dataset_error(tmp_path):
    (tmp_path / "x.jpg").write_bytes(b"\xff\xd8 truncated")
    with pytest.raises(DatasetError, match="not a decodable image"):
        read_rgb(tmp_path / "x.jpg")
