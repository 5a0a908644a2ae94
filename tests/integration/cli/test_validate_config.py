"""`seamline validate-config` as a user runs it: exit codes and one line per bad key with its line."""

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
pytestmark = pytest.mark.integration


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "seamline", *args], capture_output=True, text=True, timeout=120, cwd=REPO
    )


def test_valid_file_exits_0():
    result = _run("validate-config", "deploy/config/seamline.yaml")
    assert result.returncode == 0, result.stderr
    assert "OK" in result.stdout and "12 defect types" in result.stdout


def test_single_machine_example_with_edge_and_cloud_sections_is_valid():
    result = _run("validate-config", "deploy/config/single-machine.yaml")
    assert result.returncode == 0, result.stderr


def test_bad_key_in_the_edge_section_is_reported_with_its_line(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(
        "edge:\n  detector: {type: onnxruntime, model: d.onnx}\n  timing:\n    belt_sped_m_s: 1\n"
    )
    result = _run("validate-config", str(path))
    assert result.returncode == 2
    assert f"{path}:4: edge.timing.belt_sped_m_s: unknown key" in result.stderr


def test_misspelt_key_exits_2_with_its_line(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("site:\n  line_id: line1\nmqtt:\n  urll: mqtt://x:1883\n")
    result = _run("validate-config", str(path))
    assert result.returncode == 2
    assert f"{path}:4: mqtt.urll: unknown key" in result.stderr
    assert "Traceback" not in result.stderr


def test_missing_file_exits_2(tmp_path):
    result = _run("validate-config", str(tmp_path / "absent.yaml"))
    assert result.returncode == 2 and "cannot read" in result.stderr
