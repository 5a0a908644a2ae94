"""Every path in configuration is a ConfigPath: relative to the configuration file, wherever one runs."""

import importlib
import textwrap
import typing
from pathlib import Path

import pytest
import yaml
from pydantic import BaseModel

from seamline.config.base import StrictModel
from seamline.config.loader import load_yaml_model
from seamline.config.models import SeamlineConfig, load_config, load_section
from seamline.config.paths import ConfigPath, ConfigPathOrName

REPO = Path(__file__).resolve().parents[3]
RESOLVERS = {ConfigPath.__metadata__[0]: Path, ConfigPathOrName.__metadata__[0]: str}
# Paths that are relative to something else than the file, by design (documented in their descriptions).
NOT_FILE_RELATIVE = {("SpoolConfig", "path"): "relative to storage.data_dir"}


def _config_models() -> list[type[StrictModel]]:
    """Every configuration model of the project (each module defining pydantic fields imported first)."""
    for package in ("seamline", "edge", "cloud"):
        for path in sorted((REPO / package).rglob("*.py")):
            if "migrations" in path.parts or path.name == "__main__.py" or "Field(" not in path.read_text():
                continue
            importlib.import_module(".".join(path.relative_to(REPO).with_suffix("").parts))
    found, todo = [], [StrictModel]
    while todo:
        for sub in todo.pop().__subclasses__():
            todo.append(sub)
            if sub.__module__.split(".")[0] in ("seamline", "edge", "cloud"):
                found.append(sub)
    return sorted(set(found), key=lambda m: (m.__module__, m.__name__))


MODELS = _config_models()


def _walk(annotation: typing.Any) -> typing.Iterator[typing.Any]:
    """The annotation and everything nested in it (union members, Annotated metadata, type arguments)."""
    yield annotation
    if typing.get_origin(annotation) is typing.Annotated:
        yield from annotation.__metadata__
        yield from _walk(annotation.__origin__)
    for arg in typing.get_args(annotation):
        yield from _walk(arg)


def _resolver(model: type[BaseModel], name: str) -> type | None:
    """Path or str if the field is a ConfigPath or ConfigPathOrName (possibly inside a union), else None."""
    field = model.model_fields[name]
    for item in [*field.metadata, *_walk(field.annotation)]:
        if isinstance(item, typing.Hashable) and item in RESOLVERS:
            return RESOLVERS[item]
    return None


PATH_FIELDS = [(m, n) for m in MODELS for n in m.model_fields if _resolver(m, n)]


def test_the_walk_finds_the_configuration_models():
    names = {m.__name__ for m in MODELS}
    assert {
        "SeamlineConfig",
        "EdgeConfig",
        "CloudConfig",
        "ReviewConfig",
        "OnnxRuntimeDetectorConfig",
    } <= names
    assert {(m.__name__, n) for m, n in PATH_FIELDS} >= {
        ("StorageConfig", "data_dir"),
        ("TlsConfig", "ca_file"),
        ("Secret", "file"),
        ("OnnxRuntimeDetectorConfig", "tensorrt_cache_dir"),
        ("PromptConfig", "examples_dir"),
        ("LocalVllmConfig", "model"),
    }


def test_no_configuration_path_is_a_plain_path_or_str():
    plain = []
    for model in MODELS:
        for name, field in model.model_fields.items():
            if _resolver(model, name) or (model.__name__, name) in NOT_FILE_RELATIVE:
                continue
            path_typed = any(item is Path for item in _walk(field.annotation))
            path_named = name == "path" or name.endswith(("_dir", "_file", "_path"))
            if path_typed or path_named:
                plain.append(f"{model.__module__}.{model.__name__}.{name}")
    assert not plain, f"use seamline.config.paths.ConfigPath for: {plain}"


@pytest.mark.parametrize("model, name", PATH_FIELDS, ids=[f"{m.__name__}.{n}" for m, n in PATH_FIELDS])
def test_every_path_field_resolves_against_the_file_not_the_working_directory(
    tmp_path, monkeypatch, model, name
):
    conf = tmp_path / "conf"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    # Every path field of the model at once (some go in pairs: a TLS certificate with its key).
    fields = [n for n in model.model_fields if _resolver(model, n)]
    for n in fields:
        (conf / "rel" / n).mkdir(parents=True)  # a name-or-path resolves only where the path exists
    file = conf / "settings.yaml"
    file.write_text(yaml.safe_dump({n: f"rel/{n}" for n in fields}))
    loaded = load_yaml_model(file, model)
    kind = _resolver(model, name)
    assert getattr(loaded, name) == kind(conf.resolve() / "rel" / name)


def test_without_a_file_paths_stay_as_given():
    from edge.detectors.onnx_runtime import OnnxRuntimeDetectorConfig

    config = OnnxRuntimeDetectorConfig(model="d.onnx", tensorrt_cache_dir="trt")
    assert config.model == Path("d.onnx") and config.tensorrt_cache_dir == Path("trt")


def test_nested_sections_resolve_against_the_file(tmp_path, monkeypatch):
    from cloud.config import CloudConfig
    from edge.config import EdgeConfig

    conf = tmp_path / "conf"
    conf.mkdir()
    monkeypatch.chdir(tmp_path)
    file = conf / "seamline.yaml"
    file.write_text(
        textwrap.dedent(
            """
            mqtt:
              password: {file: secrets/mqtt}
              tls: {ca_file: pki/ca.pem, cert_file: pki/edge.pem, key_file: pki/edge.key}
            edge:
              source: {type: folder, path: images}
              detector: {type: onnxruntime, model: models/d.onnx, tensorrt_cache_dir: trt-cache}
            cloud:
              local_vllm: {model: models/qwen}
              classifier: {prompt: {examples_dir: examples}}
            """
        )
    )
    base = conf.resolve()
    config = load_config(file)
    edge = load_section(file, config, "edge", EdgeConfig)
    cloud = load_section(file, config, "cloud", CloudConfig)
    assert config.storage.data_dir == base / "data"  # the default, too
    assert config.mqtt.password.file == base / "secrets/mqtt"
    assert (config.mqtt.tls.ca_file, config.mqtt.tls.key_file) == (base / "pki/ca.pem", base / "pki/edge.key")
    assert edge.source.path == base / "images"
    assert (edge.detector.model, edge.detector.tensorrt_cache_dir) == (
        base / "models/d.onnx",
        base / "trt-cache",
    )
    assert cloud.local_vllm.model == base / "models/qwen"
    assert cloud.classifier.prompt.examples_dir == base / "examples"


def test_a_hub_id_stays_a_name(tmp_path):
    from edge.config import EdgeConfig

    file = tmp_path / "seamline.yaml"
    file.write_text("edge:\n  detector: {type: torch, checkpoint: PekingU/rtdetr_r18vd}\n")
    edge = load_section(file, load_config(file), "edge", EdgeConfig)
    assert edge.detector.checkpoint == "PekingU/rtdetr_r18vd"


def test_absolute_paths_are_kept(tmp_path):
    file = tmp_path / "seamline.yaml"
    file.write_text(f"storage: {{data_dir: {tmp_path / 'abs'}}}\n")
    assert load_config(file).storage.data_dir == tmp_path / "abs"
    assert SeamlineConfig().storage.data_dir == Path("data")
