"""``seamline models tiny DIR`` builds loadable models and says what it wrote."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from seamline.modelzoo.cli import app

pytestmark = pytest.mark.integration

pytest.importorskip("torch")
pytest.importorskip("transformers")


def test_tiny_builds_both_models_into_a_directory(tmp_path):
    result = CliRunner().invoke(app, ["tiny", str(tmp_path), "--seed", "1"])
    assert result.exit_code == 0, result.output
    rtdetr, qwen = tmp_path / "rtdetr-tiny", tmp_path / "qwen2_5_vl-tiny"
    assert f"rtdetr: {rtdetr}" in result.output
    assert f"qwen:   {qwen}" in result.output
    assert "M params" in result.output and "MB on disk" in result.output
    assert json.loads((rtdetr / "config.json").read_text())["architectures"] == ["RTDetrForObjectDetection"]
    assert json.loads((qwen / "seamline_model.json").read_text())["seed"] == 1


def test_only_builds_one(tmp_path):
    result = CliRunner().invoke(app, ["tiny", str(tmp_path), "--only", "qwen"])
    assert result.exit_code == 0, result.output
    assert [p.name for p in tmp_path.iterdir()] == ["qwen2_5_vl-tiny"]
