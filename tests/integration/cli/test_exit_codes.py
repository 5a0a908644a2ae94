"""Exit codes as a user sees them: 1 when the job failed, 2 for bad input (README: Commands)."""

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[3]
pytestmark = pytest.mark.integration


def _edge_run(tmp_path: Path, detector: dict) -> subprocess.CompletedProcess:
    config = tmp_path / "seamline.yaml"
    edge = {"source": {"type": "synthetic", "count": 1}, "detector": detector, "metrics_port": None}
    config.write_text(yaml.safe_dump({"storage": {"data_dir": "data"}, "edge": edge}))
    return subprocess.run(
        [sys.executable, "-m", "seamline", "edge", "run", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
    )


def test_a_configured_model_that_is_not_there_is_bad_input_exit_2(tmp_path):
    result = _edge_run(tmp_path, {"type": "onnxruntime", "model": "absent.onnx"})
    assert result.returncode == 2, result.stderr
    assert f"error: ONNX model {tmp_path / 'absent.onnx'} does not exist" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.skipif(importlib.util.find_spec("tensorrt") is not None, reason="TensorRT is installed here")
def test_a_runtime_the_machine_lacks_is_a_failed_job_exit_1(tmp_path):
    result = _edge_run(tmp_path, {"type": "tensorrt", "engine": "detector.engine"})
    assert result.returncode == 1, result.stderr
    assert "needs the 'tensorrt' package" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.skipif(importlib.util.find_spec("tensorrt") is not None, reason="TensorRT is installed here")
def test_building_an_engine_without_tensorrt_says_where_it_comes_from():
    """`seamline edge build-engine` (ONNX -> engine on a Jetson): without TensorRT, exit 1 naming JetPack."""
    (onnx,) = (REPO / "models" / "demo" / "detector").glob("*.onnx")
    result = subprocess.run(
        [sys.executable, "-m", "seamline", "edge", "build-engine", str(onnx)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
    )
    assert result.returncode == 1, result.stderr
    assert "comes with JetPack" in result.stderr and "Traceback" not in result.stderr
    assert not onnx.with_suffix(".engine").exists()


def test_a_command_ending_with_typer_exit_keeps_its_code():
    # `seamline demo` checks its arguments before starting anything and ends with typer.Exit(2).
    result = subprocess.run(
        [sys.executable, "-m", "seamline", "demo", "--garments", "0"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
    )
    assert result.returncode == 2, result.stderr
    assert "--garments must be >= 1" in result.stderr
