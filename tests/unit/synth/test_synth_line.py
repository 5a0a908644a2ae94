"""The synthetic line: determinism, the API others import, and the ground-truth decision."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from seamline.config.taxonomy import default_taxonomy
from seamline.domain import Decision, Severity, expected_decision
from seamline.synth import DefectTruth, SynthConfig, SyntheticLine, SynthGarment, SynthView

SMALL = {"width": 320, "height": 180}


def _same(a: SynthGarment, b: SynthGarment) -> None:
    assert a.item_id == b.item_id and a.garment_kind == b.garment_kind
    assert len(a.views) == len(b.views)
    for va, vb in zip(a.views, b.views):
        assert np.array_equal(va.image, vb.image)
    assert a.defects == b.defects
    assert a.distractors == b.distractors


def test_same_seed_and_index_give_identical_pixels_in_a_fresh_line():
    first = SyntheticLine(SynthConfig(seed=3, views=2)).garment(5)
    again = SyntheticLine(SynthConfig(seed=3, views=2)).garment(5)
    _same(first, again)


def test_order_of_generation_does_not_matter():
    line = SyntheticLine(SynthConfig(seed=9, **SMALL))
    forward = [line.garment(i) for i in range(6)]
    backward = {i: line.garment(i) for i in reversed(range(6))}
    for i, g in enumerate(forward):
        _same(g, backward[i])
    # interleaving with a defect-free render in between changes nothing either
    line.garment(4, with_defects=False)
    _same(line.garment(3), forward[3])


def test_different_seeds_or_indices_give_different_garments():
    a = SyntheticLine(SynthConfig(seed=1, **SMALL)).garment(0)
    b = SyntheticLine(SynthConfig(seed=2, **SMALL)).garment(0)
    c = SyntheticLine(SynthConfig(seed=1, **SMALL)).garment(1)
    assert not np.array_equal(a.views[0].image, b.views[0].image)
    assert not np.array_equal(a.views[0].image, c.views[0].image)


def test_garment_shape_and_ids():
    line = SyntheticLine(SynthConfig(seed=4, views=4, site_id="siteA", line_id="L2"))
    g = line.garment(12)
    assert g.item_id == "siteA-L2-4-000012"
    assert g.index == 12
    assert [v.view_index for v in g.views] == [0, 1, 2, 3]
    assert [v.camera for v in g.views] == ["top", "oblique_left", "zoom", "oblique_right"]
    for v in g.views:
        assert isinstance(v, SynthView)
        assert v.image.shape == (720, 1280, 3) and v.image.dtype == np.uint8
    for d in g.defects:
        assert isinstance(d, DefectTruth)
        assert d.type_id in default_taxonomy().type_ids
        assert isinstance(d.severity, Severity)
        x1, y1, x2, y2 = d.box
        assert 0 <= x1 < x2 <= 1280 and 0 <= y1 < y2 <= 720


def test_stream_and_iter_yield_garments_in_index_order():
    line = SyntheticLine(SynthConfig(seed=2, **SMALL))
    streamed = list(line.stream(start=3, count=3))
    assert [g.index for g in streamed] == [3, 4, 5]
    it = iter(line)
    assert [next(it).index for _ in range(2)] == [0, 1]


def test_expected_decision_follows_the_taxonomy_rule():
    line = SyntheticLine(SynthConfig(seed=21, **SMALL))
    reject_at = default_taxonomy().reject_at_severity
    seen = set()
    for g in line.stream(count=40):
        assert len(g.severities) == len({d.defect_index for d in g.defects})
        assert g.expected_decision == expected_decision(list(g.severities), reject_at)
        want = (
            Decision.REJECT if any(s.rank >= Severity.MODERATE.rank for s in g.severities) else Decision.PASS
        )
        assert g.expected_decision == want
        seen.add(g.expected_decision)
    assert seen == {Decision.PASS, Decision.REJECT}


def test_with_defects_false_has_no_defects_and_same_distractors():
    line = SyntheticLine(SynthConfig(seed=8, defect_free_share=0.0))
    g, clean = line.garment(2), line.garment(2, with_defects=False)
    assert g.defects and not clean.defects
    assert clean.expected_decision == Decision.PASS
    assert g.distractors == clean.distractors


@pytest.mark.parametrize(
    "bad",
    [
        {"views": 0},
        {"views": 5},
        {"width": 100, "height": 200},
        {"defect_free_share": 1.5},
        {"colour": "red"},
        {"garment_kinds": ["kilt"]},
    ],
)
def test_config_rejects_bad_values_and_unknown_keys(bad):
    with pytest.raises(ValidationError):
        SynthConfig(**bad)


def test_config_fields_are_documented_and_scale_follows_height():
    for name, f in SynthConfig.model_fields.items():
        assert f.title and f.description, name
    assert SynthConfig().px_per_cm == pytest.approx(8.0)
    assert SynthConfig(width=1920, height=1080).px_per_cm == pytest.approx(12.0)


def test_garment_kinds_can_be_restricted():
    line = SyntheticLine(SynthConfig(garment_kinds=["trousers"], **SMALL))
    assert {g.garment_kind for g in line.stream(count=5)} == {"trousers"}
