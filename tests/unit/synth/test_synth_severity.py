"""Severity follows the taxonomy rubric from what was drawn: physical size, intensity, count or kind."""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import pytest

from seamline.config.taxonomy import default_taxonomy
from seamline.domain import Severity
from seamline.synth import SynthConfig, SyntheticLine
from seamline.synth.defects.sizing import BRACKETS, DefectSize, sample_size, severity_of

MINOR, MODERATE, SEVERE = Severity.MINOR, Severity.MODERATE, Severity.SEVERE


@pytest.mark.parametrize(
    ("type_id", "size", "expected"),
    [
        ("stain", DefectSize(0.9), MINOR),
        ("stain", DefectSize(2.0), MODERATE),
        ("stain", DefectSize(3.5), SEVERE),
        ("tear", DefectSize(0.4), MINOR),
        ("tear", DefectSize(1.5), MODERATE),
        ("tear", DefectSize(5.0), SEVERE),
        ("hole", DefectSize(0.15), MINOR),
        ("hole", DefectSize(0.5), MODERATE),
        ("hole", DefectSize(1.2), SEVERE),
        ("open_seam", DefectSize(0.8), MINOR),
        ("open_seam", DefectSize(3.0), MODERATE),
        ("open_seam", DefectSize(6.0), SEVERE),
        ("fraying", DefectSize(1.5), MINOR),
        ("fraying", DefectSize(4.0), MODERATE),
        ("fraying", DefectSize(8.0), SEVERE),
        ("discoloration", DefectSize(4.0, strength=0.12), MINOR),
        ("discoloration", DefectSize(4.0, strength=0.25), MODERATE),
        ("discoloration", DefectSize(12.0, strength=0.2), SEVERE),
        ("discoloration", DefectSize(4.0, strength=0.5), SEVERE),
        ("pilling", DefectSize(2.0, count=6), MINOR),
        ("pilling", DefectSize(4.0, count=30), MODERATE),
        ("pilling", DefectSize(10.0, count=150), SEVERE),
        ("missing_button", DefectSize(1.0, mode="decorative"), MINOR),
        ("missing_button", DefectSize(1.0, mode="functional"), MODERATE),
        ("missing_button", DefectSize(1.0, count=2, mode="functional"), SEVERE),
        ("broken_zipper", DefectSize(2.5, mode="tab"), MINOR),
        ("broken_zipper", DefectSize(2.0, mode="teeth"), MODERATE),
        ("broken_zipper", DefectSize(6.0, mode="split"), SEVERE),
        ("snag", DefectSize(0.5), MINOR),
        ("snag", DefectSize(2.0), MODERATE),
        ("snag", DefectSize(4.0, mode="run"), SEVERE),
        ("print_damage", DefectSize(1.0, strength=0.03), MINOR),
        ("print_damage", DefectSize(1.0, strength=0.1), MODERATE),
        ("print_damage", DefectSize(1.0, strength=0.4), SEVERE),
        ("makeup_mark", DefectSize(2.0, strength=0.3), MINOR),
        ("makeup_mark", DefectSize(2.0, strength=0.6), MODERATE),
        ("makeup_mark", DefectSize(5.0, strength=0.6, count=2), SEVERE),
    ],
)
def test_rubric_rules(type_id, size, expected):
    assert severity_of(type_id, size) is expected


@pytest.mark.parametrize("type_id", default_taxonomy().type_ids)
def test_every_bracket_rates_as_its_severity(type_id):
    rng = np.random.default_rng(0)
    assert set(BRACKETS[type_id]) == {MINOR, MODERATE, SEVERE}
    for severity in (MINOR, MODERATE, SEVERE):
        for _ in range(20):
            assert severity_of(type_id, sample_size(type_id, rng, severity=severity)) is severity


def test_small_defects_stay_small():
    rng = np.random.default_rng(1)
    for type_id in ("stain", "tear", "hole", "open_seam", "discoloration", "pilling", "snag"):
        for _ in range(30):
            assert sample_size(type_id, rng, max_cm=3.5).size_cm <= 3.5


@pytest.mark.parametrize(
    "type_id", ["stain", "tear", "hole", "open_seam", "fraying", "pilling", "discoloration"]
)
def test_drawn_size_grows_with_severity(type_id):
    line = SyntheticLine(SynthConfig(defect_types=[type_id], defect_free_share=0.0, max_defects=2, seed=5))
    extents = defaultdict(list)
    for g in line.stream(count=24):
        for d in g.defects_in(0):
            extent_cm = max(d.box[2] - d.box[0], d.box[3] - d.box[1]) / line.px_per_cm
            # the box is the drawn defect: never far beyond its physical size (AA, fibres, a pinhole's rim)
            assert extent_cm <= 1.5 * d.size_cm + 1.0, d
            extents[d.severity].append(extent_cm)
    means = [np.mean(extents[s]) for s in (MINOR, MODERATE, SEVERE)]
    assert means[0] < means[1] < means[2], means
