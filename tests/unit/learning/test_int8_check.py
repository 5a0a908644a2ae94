"""The int8 acceptance rule: neither mAP50 nor recall more than max_drop below the fp32 model's."""

from dataclasses import dataclass
from pathlib import Path

import pytest

from cloud.learning.int8_check import compare
from edge.detectors.meta import DetectorLoadError, DetectorMeta


@dataclass
class _Metrics:
    map50: float
    recall: float
    precision: float = 0.5


def test_int8_is_accepted_within_a_point_and_refused_beyond_naming_what_dropped():
    fp32 = _Metrics(0.80, 0.90)
    assert compare(fp32, _Metrics(0.795, 0.892), 0.01, 400).accepted
    assert compare(fp32, _Metrics(0.83, 0.95), 0.01, 400).accepted  # better is never a failure
    worse = compare(fp32, _Metrics(0.80, 0.88), 0.01, 400)
    assert not worse.accepted and "recall +0.0200 below fp32" in worse.reason and "map50" not in worse.reason
    both = compare(fp32, _Metrics(0.70, 0.80), 0.01, 400)
    assert (
        not both.accepted and "map50 +0.1000" in both.reason and both.drops == {"map50": 0.1, "recall": 0.1}
    )


def test_the_edge_refuses_an_int8_model_until_it_was_accepted():
    meta = DetectorMeta(
        "d@1+int8", 320, ("defect",), quantization={"fp32": "detector.onnx", "accepted": None}
    )
    with pytest.raises(DetectorLoadError, match="seamline gate int8 detector.onnx detector.int8.onnx"):
        meta.check_accepted(Path("detector.int8.onnx"))
    DetectorMeta("d@1+int8", 320, ("defect",), quantization={"accepted": {"drops": {}}}).check_accepted(
        Path("x.onnx")
    )
    DetectorMeta("d@1", 320, ("defect",)).check_accepted(Path("detector.onnx"))  # fp32: nothing to check
