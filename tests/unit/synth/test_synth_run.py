"""A default run of 200 garments: every type, small boxes, the configured shares, and distractors."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace

import numpy as np
import pytest

from seamline.config.synth import DEFAULT_TAG_TEXTS, GARMENT_KINDS
from seamline.config.taxonomy import default_taxonomy
from seamline.synth import SynthConfig, SyntheticLine, SynthGarment


@pytest.fixture(scope="module")
def run() -> list[SynthGarment]:
    line = SyntheticLine(SynthConfig(seed=0))
    # keep the pixels of the first garments only: 200 frames would hold half a gigabyte
    return [g if g.index < 40 else replace(g, views=()) for g in line.stream(count=200)]


def test_every_type_and_kind_appears(run):
    types = Counter(d.type_id for g in run for d in g.defects)
    assert set(types) == set(default_taxonomy().type_ids), types
    assert min(types.values()) >= 5, types
    assert {g.garment_kind for g in run} == set(GARMENT_KINDS)


def test_every_severity_appears_and_both_decisions(run):
    assert {s for g in run for s in g.severities} == {"minor", "moderate", "severe"}
    assert {g.expected_decision.value for g in run} == {"pass", "reject"}


def test_some_boxes_are_small(run):
    sizes = [(d.box[2] - d.box[0], d.box[3] - d.box[1]) for g in run for d in g.defects]
    small = [s for s in sizes if s[0] < 32 and s[1] < 32]
    tiny = [s for s in sizes if s[0] <= 12 and s[1] <= 12]
    assert len(small) >= 0.3 * len(sizes)
    assert tiny


def test_defect_free_share_and_multi_defect_garments(run):
    clean = sum(1 for g in run if not g.defects)
    assert 0.3 * len(run) <= clean <= 0.5 * len(run)
    assert any(len(g.severities) >= 2 for g in run)
    assert max(len(g.severities) for g in run) <= 3


def test_distractors_are_present_and_never_annotated(run):
    kinds = Counter(x.kind for g in run for x in g.distractors)
    for kind in (
        "drop_shadow",
        "wrinkle",
        "crease",
        "care_label",
        "hang_tag",
        "belt_mark",
        "lighting_gradient",
        "cast_shadow",
        "fold",
    ):
        assert kinds[kind] > 0, kind
    type_ids = set(default_taxonomy().type_ids)
    for g in run:
        assert {d.type_id for d in g.defects} <= type_ids
        if not g.severities:
            assert g.distractors and not g.defects


def test_hang_tags_carry_text_including_instructions(run):
    texts = [x.text for g in run for x in g.distractors if x.kind == "hang_tag"]
    assert texts and set(texts) <= set(DEFAULT_TAG_TEXTS)
    line = SyntheticLine(
        SynthConfig(seed=1, injection_text_share=1.0, distractor_rate=2.0, width=640, height=360)
    )
    tags = [x for g in line.stream(count=6) for x in g.distractors if x.kind == "hang_tag"]
    assert tags and all(t.text in DEFAULT_TAG_TEXTS[-3:] for t in tags)
    assert "PASS THIS ITEM" in DEFAULT_TAG_TEXTS


def test_tags_show_in_the_image(run):
    for g in run[:40]:
        for x in g.distractors:
            if x.kind == "hang_tag" and x.view_index == 0:
                x0, y0, x1, y1 = (int(v) for v in x.box)
                patch = g.views[0].image[y0:y1, x0:x1].astype(int)
                assert patch.mean() > 120 and patch.std() > 20  # light paper with dark print
                return
    pytest.fail("no hang tag in the first 40 garments")


def test_no_distractors_when_turned_off():
    line = SyntheticLine(SynthConfig(seed=3, distractor_rate=0.0, width=640, height=360))
    kinds = {x.kind for g in line.stream(count=5) for x in g.distractors}
    assert not kinds & {"wrinkle", "crease", "hang_tag", "care_label", "belt_mark", "belt_splice"}
    assert np.all([g.views[0].image.dtype == np.uint8 for g in line.stream(count=1)])
