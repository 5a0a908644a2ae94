"""TensorRT before 10 parses ONNX only into an explicit-batch network; 10 deprecates the flag (JetPack 6.0
ships 8.6, 6.1 and later 10.x)."""

from enum import IntEnum
from types import SimpleNamespace

import pytest

from edge.export.tensorrt_export import int8_path, network_flags
from seamline.errors import InputError


class _Flag(IntEnum):  # the value TensorRT gives EXPLICIT_BATCH
    EXPLICIT_BATCH = 0


@pytest.mark.parametrize("version, flags", [("8.6.2", 1), ("9.3.0", 1), ("10.3.0", 0), ("10.13.1.post1", 0)])
def test_explicit_batch_where_the_version_needs_it(version, flags):
    trt = SimpleNamespace(__version__=version, NetworkDefinitionCreationFlag=_Flag)
    assert network_flags(trt) == flags


class _LayerType(IntEnum):
    CONVOLUTION = 0
    QUANTIZE = 1


def _network(*types: _LayerType) -> SimpleNamespace:
    layers = [SimpleNamespace(type=t) for t in types]
    return SimpleNamespace(num_layers=len(layers), get_layer=layers.__getitem__)


def _trt(version: str, calibrator: bool = True) -> SimpleNamespace:
    trt = SimpleNamespace(__version__=version, LayerType=_LayerType)
    if calibrator:
        trt.IInt8EntropyCalibrator2 = object
    return trt


@pytest.mark.parametrize("version", ["8.6.2", "10.3.0", "11.0.0"])
def test_a_qdq_model_builds_int8_as_given_on_every_version(version):
    network = _network(_LayerType.CONVOLUTION, _LayerType.QUANTIZE)
    assert int8_path(_trt(version, calibrator=False), network, None) == "explicit"


def test_a_plain_model_is_calibrated_where_the_version_can(tmp_path, caplog):
    plain = _network(_LayerType.CONVOLUTION)
    assert int8_path(_trt("8.6.2"), plain, tmp_path) == "calibrator"
    assert not caplog.records
    assert int8_path(_trt("10.3.0"), plain, tmp_path) == "calibrator"
    assert "deprecates calibrated" in caplog.text
    with pytest.raises(InputError, match="calibration set"):
        int8_path(_trt("8.6.2"), plain, None)
    with pytest.raises(InputError, match="TensorRT 11.0.0 has no int8 calibrator"):
        int8_path(_trt("11.0.0", calibrator=False), plain, tmp_path)
