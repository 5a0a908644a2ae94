"""Export the tiny RT-DETR to ONNX and run it on every runtime available here; GPU runtimes are marked."""

import logging
from pathlib import Path

import numpy as np
import pytest

from edge.detectors import build_detector
from edge.detectors.meta import DetectorLoadError
from edge.detectors.onnx_runtime import OnnxRuntimeDetectorConfig
from edge.detectors.tensorrt_runtime import TensorRTDetectorConfig
from edge.detectors.torch_runtime import TorchDetectorConfig
from seamline.errors import MissingDependencyError

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def onnx_model(tiny_rtdetr_dir, tmp_path_factory) -> Path:
    from edge.export.onnx_export import export_onnx

    result = export_onnx(
        tiny_rtdetr_dir, tmp_path_factory.mktemp("onnx") / "detector.onnx", version="tiny@test"
    )
    assert result.max_score_diff < 1e-3 and result.opset == 17
    return result.path


def _frames(n: int = 2) -> list[np.ndarray]:
    rng = np.random.default_rng(7)
    return [rng.integers(0, 255, (720, 1280, 3), dtype=np.uint8) for _ in range(n)]


def _match(a, b) -> float:
    """Largest box difference between two detection sets (matched by nearest box)."""
    assert len(a) == len(b)
    return max((np.abs(b.boxes - box).max(axis=1).min() for box in a.boxes), default=0.0)


def test_onnxruntime_matches_torch(onnx_model, tiny_rtdetr_dir):
    ort_det = build_detector(OnnxRuntimeDetectorConfig(model=onnx_model, score_threshold=0.05, top_k=20))
    torch_det = build_detector(
        TorchDetectorConfig(checkpoint=str(tiny_rtdetr_dir), score_threshold=0.05, top_k=20)
    )
    frames = _frames()
    for ours, ref in zip(ort_det.detect(frames), torch_det.detect(frames)):
        assert len(ref) > 0
        assert np.abs(np.sort(ours.scores) - np.sort(ref.scores)).max() < 1e-4
        assert _match(ours, ref) < 1e-2  # pixels on a 1280x720 frame
    assert ort_det.meta.version == "tiny@test" and ort_det.providers == ["CPUExecutionProvider"]


def test_tiled_detection_agrees_across_runtimes(onnx_model, tiny_rtdetr_dir):
    ort_det = build_detector(
        OnnxRuntimeDetectorConfig(model=onnx_model, score_threshold=0.05, top_k=20, tiles=(2, 2))
    )
    torch_det = build_detector(
        TorchDetectorConfig(checkpoint=str(tiny_rtdetr_dir), score_threshold=0.05, top_k=20, tiles=(2, 2))
    )
    frames = _frames()
    for ours, ref in zip(ort_det.detect(frames), torch_det.detect(frames)):
        assert len(ref) > 0 and len(ours) == len(ref)
        assert _match(ours, ref) < 1e-2
        assert ours.boxes[:, 2].max() <= 1281 and ours.boxes[:, 3].max() <= 721 and ours.boxes.min() >= -1


@pytest.mark.parametrize("model", ["exported", "demo"])
def test_no_tensor_is_float64_in_an_exported_detector(onnx_model, model):
    """ONNX Runtime before 1.24 (JetPack's) has no float64 Sin/Cos and TensorRT no float64 at all: the export
    and the shipped demo detector compute in float32 throughout."""
    import onnx

    path = (
        onnx_model
        if model == "exported"
        else Path(__file__).parents[3] / "models/demo/detector/detector.onnx"
    )
    graph = onnx.shape_inference.infer_shapes(onnx.load(str(path))).graph
    doubles = [
        v.name
        for v in [*graph.value_info, *graph.input, *graph.output]
        if v.type.tensor_type.elem_type == onnx.TensorProto.DOUBLE
    ]
    doubles += [i.name for i in graph.initializer if i.data_type == onnx.TensorProto.DOUBLE]
    assert doubles == []


def test_views_of_one_garment_run_as_one_batch(onnx_model):
    detector = build_detector(
        OnnxRuntimeDetectorConfig(model=onnx_model, score_threshold=0.05), warm_up=False
    )
    frames = _frames(4)
    batched = detector.detect(frames)
    single = [detector.detect([f])[0] for f in frames]
    for a, b in zip(batched, single):
        assert np.allclose(a.scores, b.scores, atol=1e-5)


def test_unavailable_gpu_provider_falls_back_to_cpu_with_a_warning(onnx_model, caplog):
    with caplog.at_level(logging.WARNING):
        detector = build_detector(
            OnnxRuntimeDetectorConfig(model=onnx_model, providers=["cuda", "cpu"]), warm_up=False
        )
    if "CUDAExecutionProvider" in detector.providers:
        pytest.skip("this machine has CUDA")
    assert detector.providers == ["CPUExecutionProvider"]
    assert "CUDAExecutionProvider" in caplog.text


def test_no_usable_provider_names_what_to_install(onnx_model):
    import onnxruntime

    if "TensorrtExecutionProvider" in onnxruntime.get_available_providers():
        pytest.skip("this machine has the TensorRT EP")
    with pytest.raises(DetectorLoadError, match="onnxruntime-gpu"):
        build_detector(OnnxRuntimeDetectorConfig(model=onnx_model, providers=["tensorrt"]))


def test_missing_files_give_clear_errors(tmp_path, onnx_model):
    with pytest.raises(DetectorLoadError, match="does not exist"):
        build_detector(OnnxRuntimeDetectorConfig(model=tmp_path / "absent.onnx"))
    lonely = tmp_path / "lonely.onnx"
    lonely.write_bytes(onnx_model.read_bytes())
    with pytest.raises(DetectorLoadError, match="lonely.json is missing"):
        build_detector(OnnxRuntimeDetectorConfig(model=lonely))


def test_tensorrt_without_tensorrt_says_what_to_install(tmp_path):
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("TensorRT is installed here")
    engine = tmp_path / "detector.engine"
    engine.write_bytes(b"x")
    with pytest.raises(MissingDependencyError, match="JetPack"):
        build_detector(TensorRTDetectorConfig(engine=engine))


@pytest.mark.trt
@pytest.mark.gpu
def test_tensorrt_engine_matches_onnxruntime(onnx_model, tmp_path):
    from edge.export.tensorrt_export import build_engine

    engine = build_engine(
        onnx_model, tmp_path / "detector.engine", precision="fp32", max_batch=2, opt_batch=2
    )
    trt_det = build_detector(TensorRTDetectorConfig(engine=engine.path, score_threshold=0.05))
    ort_det = build_detector(OnnxRuntimeDetectorConfig(model=onnx_model, score_threshold=0.05))
    frames = _frames()
    for a, b in zip(trt_det.detect(frames), ort_det.detect(frames)):
        assert np.abs(np.sort(a.scores) - np.sort(b.scores)).max() < 1e-2


@pytest.mark.gpu
def test_onnxruntime_cuda_provider(onnx_model):
    detector = build_detector(OnnxRuntimeDetectorConfig(model=onnx_model, providers=["cuda"]))
    assert detector.providers[0] == "CUDAExecutionProvider"
    assert len(detector.detect(_frames(1))) == 1
