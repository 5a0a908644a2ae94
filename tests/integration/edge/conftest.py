"""Fixtures for edge integration tests: the tiny detector exported to ONNX once per session."""

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_onnx_detector(tiny_rtdetr_dir, tmp_path_factory) -> Path:
    from edge.export.onnx_export import export_onnx

    return export_onnx(
        tiny_rtdetr_dir, tmp_path_factory.mktemp("detector") / "detector.onnx", version="tiny@test"
    ).path
