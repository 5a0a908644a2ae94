"""The int8 edge detector on real parts: `seamline edge export --int8` quantises the tiny RT-DETR (static QDQ,
calibrated on synthetic-line frames) into a model ONNX Runtime runs; the edge refuses it until `seamline gate
int8` has scored it against the fp32 model on held-out data and written the numbers into its sidecar; bad
calibration input and a model quantised from another file are refused with a clear message."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from edge.detectors.meta import DetectorLoadError, read_sidecar
from edge.detectors.onnx_runtime import OnnxRuntimeDetector, OnnxRuntimeDetectorConfig
from seamline.synth import SynthConfig, SyntheticLine
from seamline.synth.dataset import write_dataset

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _seamline(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "seamline", *args], capture_output=True, text=True, timeout=600, check=False
    )


def _frames(folder: Path, count: int, seed: int) -> Path:
    folder.mkdir(parents=True)
    line = SyntheticLine(SynthConfig(width=640, height=360, seed=seed))
    for i in range(count):
        Image.fromarray(np.asarray(line.garment(i).views[0].image)).save(folder / f"f{i:02d}.jpg")
    return folder


def test_an_int8_detector_runs_only_once_its_accuracy_check_accepted_it(tmp_path, tiny_rtdetr_dir):
    frames = _frames(tmp_path / "frames", 6, seed=100)
    out = tmp_path / "export" / "detector.onnx"
    out.parent.mkdir()
    run = _seamline(
        "edge", "export", str(tiny_rtdetr_dir), "--out", str(out), "--version", "tiny@1", "--int8",
        "--calibration-dir", str(frames),
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    int8 = out.with_name("detector.int8.onnx")
    assert "not accepted until `seamline gate int8" in run.stdout
    assert int8.is_file() and int8.stat().st_size < out.stat().st_size
    meta = read_sidecar(int8)
    assert meta.version == "tiny@1+int8" and meta.quantization["accepted"] is None
    assert meta.quantization["calibration_frames"] == 6
    with pytest.raises(DetectorLoadError, match="no accuracy check has accepted"):
        OnnxRuntimeDetector(OnnxRuntimeDetectorConfig(model=int8))

    held_out = tmp_path / "held-out"
    write_dataset(SyntheticLine(SynthConfig(width=640, height=360, seed=200)), 6, held_out, progress=False)
    checked = _seamline("gate", "int8", str(out), str(int8), "--data", str(held_out))
    result = json.loads(checked.stdout)
    drops = result["drops"]
    # the verdict follows the numbers: accepted exactly when neither drop is over a point
    assert result["accepted"] == (max(drops.values()) <= 0.01), result
    assert checked.returncode == (0 if result["accepted"] else 1), checked.stderr
    recorded = read_sidecar(int8).quantization
    if result["accepted"]:
        assert recorded["accepted"]["drops"] == drops and recorded["accepted"]["images"] == 6
        detector = OnnxRuntimeDetector(OnnxRuntimeDetectorConfig(model=int8))
        frame = np.asarray(Image.open(frames / "f00.jpg").convert("RGB"))
        assert len(detector.detect([frame])) == 1
    else:
        assert recorded["accepted"] is None and recorded["refused"]["drops"] == drops

    # the same check refuses a model quantised from another fp32 file, and data that is not COCO
    other = tmp_path / "other" / "detector.onnx"
    other.parent.mkdir()
    shutil.copy(out, other)
    shutil.copy(out.with_suffix(".json"), other.with_suffix(".json"))
    other.write_bytes(other.read_bytes() + b"\0")
    mismatch = _seamline("gate", "int8", str(other), str(int8), "--data", str(held_out))
    assert mismatch.returncode == 2 and "was not quantised from" in mismatch.stderr
    no_data = _seamline("gate", "int8", str(out), str(int8), "--data", str(frames))
    assert no_data.returncode == 2 and "no annotations.json" in no_data.stderr


def test_int8_export_refuses_missing_or_corrupt_calibration_frames(tmp_path, tiny_rtdetr_dir):
    out = tmp_path / "detector.onnx"
    missing = _seamline("edge", "export", str(tiny_rtdetr_dir), "--out", str(out), "--int8")
    assert missing.returncode == 2 and "--int8 needs --calibration-dir" in missing.stderr
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "frame.jpg").write_bytes(b"not a jpeg")
    corrupt = _seamline(
        "edge", "export", str(tiny_rtdetr_dir), "--out", str(out), "--int8", "--calibration-dir", str(bad)
    )
    assert corrupt.returncode == 2 and "calibration frame" in corrupt.stderr and "frame.jpg" in corrupt.stderr
    empty = tmp_path / "empty"
    empty.mkdir()
    none = _seamline(
        "edge", "export", str(tiny_rtdetr_dir), "--out", str(out), "--int8", "--calibration-dir", str(empty)
    )
    assert none.returncode == 2 and "no frames" in none.stderr


def test_an_exported_detector_is_quantised_on_its_own(tmp_path, tiny_onnx_detector):
    """`seamline edge quantize` for an ONNX file without its checkpoint (e.g. the shipped demo detector)."""
    onnx = tmp_path / "detector.onnx"
    shutil.copy(tiny_onnx_detector, onnx)
    shutil.copy(tiny_onnx_detector.with_suffix(".json"), onnx.with_suffix(".json"))
    frames = _frames(tmp_path / "frames", 3, seed=101)
    run = _seamline("edge", "quantize", str(onnx), "--calibration-dir", str(frames), "--max-frames", "2")
    assert run.returncode == 0, run.stderr[-3000:]
    assert read_sidecar(tmp_path / "detector.int8.onnx").quantization["calibration_frames"] == 2
