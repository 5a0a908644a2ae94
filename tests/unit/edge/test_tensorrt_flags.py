"""TensorRT before 10 parses ONNX only into an explicit-batch network; 10 deprecates the flag (JetPack 6.0
ships 8.6, 6.1 and later 10.x)."""

from enum import IntEnum
from types import SimpleNamespace

import pytest

from edge.export.tensorrt_export import network_flags


class _Flag(IntEnum):  # the value TensorRT gives EXPLICIT_BATCH
    EXPLICIT_BATCH = 0


@pytest.mark.parametrize("version, flags", [("8.6.2", 1), ("9.3.0", 1), ("10.3.0", 0), ("10.13.1.post1", 0)])
def test_explicit_batch_where_the_version_needs_it(version, flags):
    trt = SimpleNamespace(__version__=version, NetworkDefinitionCreationFlag=_Flag)
    assert network_flags(trt) == flags
