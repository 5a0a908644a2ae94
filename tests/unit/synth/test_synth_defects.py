"""Every defect type: drawn where its box says, nowhere else, visibly, and only on the feature it needs."""

from __future__ import annotations

import itertools
import math

import cv2
import numpy as np
import pytest

from seamline.config.taxonomy import Taxonomy, default_taxonomy
from seamline.synth import SynthConfig, SyntheticLine
from seamline.synth.defects import RENDERERS, UnknownDefectType
from seamline.synth.shapes import FEATURES

TYPES = default_taxonomy().type_ids
PAD = 2  # the camera warp's interpolation may spread a changed pixel by one


def _forced(type_id: str, views: int = 4, seed: int = 11) -> SyntheticLine:
    return SyntheticLine(
        SynthConfig(defect_types=[type_id], defect_free_share=0.0, max_defects=2, seed=seed, views=views)
    )


def _diff(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.abs(a.astype(np.int16) - b.astype(np.int16)).max(axis=2)


def test_every_taxonomy_type_has_a_renderer():
    assert set(TYPES) <= set(RENDERERS)


@pytest.mark.parametrize("type_id", TYPES)
def test_defect_pixels_lie_inside_the_boxes_and_show(type_id):
    line = _forced(type_id)
    boxes = 0
    for i in range(3):
        g = line.garment(i)
        clean = line.garment(i, with_defects=False)
        assert g.defects, f"garment {i} got no {type_id}"
        assert {d.type_id for d in g.defects} == {type_id}
        for view, bare in zip(g.views, clean.views):
            diff = _diff(view.image, bare.image)
            covered = np.zeros(diff.shape, bool)
            for d in g.defects_in(view.view_index):
                x0, y0, x1, y1 = int(d.box[0]), int(d.box[1]), math.ceil(d.box[2]), math.ceil(d.box[3])
                covered[max(0, y0 - PAD) : y1 + PAD, max(0, x0 - PAD) : x1 + PAD] = True
                inside = diff[y0:y1, x0:x1]
                if d.visible >= 0.5:
                    # the defect is there: a clear change, over a fair share of its box (fine print cracks
                    # and thread ends are thin, so the share is small for them)
                    assert inside.max() >= 10, (type_id, view.camera, d)
                    assert (inside >= 3).mean() >= 0.03, (type_id, view.camera, d)
                boxes += 1
            assert diff[~covered].max() == 0, f"{type_id} changed pixels outside its boxes in {view.camera}"
    assert boxes >= 6


@pytest.mark.parametrize(
    ("type_id", "feature"),
    [("missing_button", "buttons"), ("broken_zipper", "zipper"), ("print_damage", "print")],
)
def test_feature_defects_sit_only_on_garments_with_that_feature(type_id, feature):
    line = _forced(type_id, views=1, seed=4)
    for g in line.stream(count=6):
        assert feature in FEATURES[g.garment_kind]
        assert g.defects


def _changed_on_canvas(plan, changed: np.ndarray, shape) -> np.ndarray:
    """The changed-pixel mask of one defect placed on a full canvas."""
    full = np.zeros(shape, bool)
    x0, y0, x1, y1 = plan.window
    full[y0:y1, x0:x1] = changed > 0
    return full


def _distance_to_lines(points: np.ndarray, lines: list[np.ndarray]) -> np.ndarray:
    """Distance of each point to the nearest segment of any polyline."""
    best = np.full(len(points), np.inf)
    for line in lines:
        for a, b in itertools.pairwise(line):
            ab = b - a
            t = np.clip(((points - a) @ ab) / max(float(ab @ ab), 1e-9), 0, 1)
            best = np.minimum(best, np.linalg.norm(points - (a + t[:, None] * ab), axis=1))
    return best


def _scenes(type_id: str, count: int = 5, seed: int = 2):
    line = _forced(type_id, views=1, seed=seed)
    for i in range(count):
        scene = line.scene(i)
        assert scene.defects, f"garment {i} got no {type_id}"
        yield line, scene


def test_missing_buttons_are_taken_from_the_placket():
    for _, scene in _scenes("missing_button"):
        layout = scene.garment.layout
        buttons = np.array(layout.buttons)
        for plan, _ in scene.defects:
            for p in plan.points:
                assert np.min(np.linalg.norm(buttons - p, axis=1)) < 0.5
            if plan.severity.value == "minor":
                assert layout.kind == "shirt" and np.allclose(plan.points[0], buttons[0])


def test_broken_zippers_are_on_the_zipper_track():
    for _, scene in _scenes("broken_zipper"):
        track = scene.garment.layout.zipper
        assert track is not None
        for plan, changed in scene.defects:
            ys, xs = np.nonzero(_changed_on_canvas(plan, changed, scene.canvas.shape[:2]))
            near = _distance_to_lines(np.stack([xs, ys], 1).astype(np.float32), [track])
            assert near.max() < 3.5 * scene.garment.layout.scale  # within a few cm of the track


def test_print_damage_only_touches_the_print():
    for _, scene in _scenes("print_damage"):
        ink = scene.garment.print_mask
        assert ink is not None
        for plan, changed in scene.defects:
            hit = _changed_on_canvas(plan, changed, ink.shape)
            grown = cv2.dilate(ink, np.ones((3, 3), np.uint8)) > 0
            assert hit.any() and not (hit & ~grown).any()


def test_open_seams_follow_a_seam_and_stay_on_the_garment():
    for _, scene in _scenes("open_seam"):
        for plan, changed in scene.defects:
            assert _distance_to_lines(plan.points, scene.garment.layout.seams).max() < 1.0
            hit = _changed_on_canvas(plan, changed, scene.garment.mask.shape)
            assert not (hit & (scene.garment.mask == 0)).any()


def test_fraying_is_at_a_free_edge_and_hangs_onto_the_belt():
    for _, scene in _scenes("fraying"):
        for plan, changed in scene.defects:
            assert _distance_to_lines(plan.points, scene.garment.layout.hems).max() < 1.0
            hit = _changed_on_canvas(plan, changed, scene.garment.mask.shape)
            assert (hit & (scene.garment.mask == 0)).any(), "loose threads should lie on the belt"


def test_makeup_marks_sit_near_the_collar_or_an_underarm():
    for line, scene in _scenes("makeup_mark"):
        layout = scene.garment.layout
        anchors = np.array(layout.collar + layout.underarms)
        for plan, _ in scene.defects:
            assert np.min(np.linalg.norm(anchors - np.array(plan.at), axis=1)) < 12 * line.px_per_cm


def test_a_type_without_renderer_fails_with_a_clear_error():
    base = default_taxonomy().model_dump()
    extra = dict(base["types"][0], id="glitter_loss")
    taxonomy = Taxonomy.model_validate({**base, "types": [*base["types"], extra]})
    with pytest.raises(UnknownDefectType) as err:
        SyntheticLine(SynthConfig(), taxonomy)
    assert "glitter_loss" in str(err.value) and "renderer" in str(err.value)
    # asking only for known types from that taxonomy still works
    line = SyntheticLine(SynthConfig(defect_types=["stain"]), taxonomy)
    assert line.type_ids == ["stain"]
