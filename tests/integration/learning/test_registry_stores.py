"""The registry at scale: MLflow's records in PostgreSQL and the model files in an S3 bucket, named the way
the crop store is (``s3://bucket/prefix?endpoint=...&region=...``)."""

import json
from pathlib import Path

import pytest

from cloud.learning.registry import ModelRegistry, RegistryConfig, RegistryError

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[3]


def test_versions_live_in_postgresql_and_their_files_in_s3(tmp_path, postgres_url, s3_server, monkeypatch):
    for name in ("MLFLOW_S3_ENDPOINT_URL", "AWS_DEFAULT_REGION"):
        monkeypatch.setenv(name, "")  # restored after the test: the registry sets them for MLflow's S3 client
    (s3_server.root / "models").mkdir()
    config = RegistryConfig(
        tracking_uri=postgres_url,  # a database of its own: MLflow keeps its own migrations
        artifact_location=f"s3://models/registry?endpoint={s3_server.endpoint}&region=us-east-1",
    )
    registry = ModelRegistry(config, tmp_path / "data")
    classifier = REPO / "models" / "demo" / "classifier"
    first = registry.register("classifier", classifier, data_sha256="d" * 64, command="test")
    registry.set_alias("classifier", "champion", first.version)
    assert first.source.startswith("s3://models/registry/")
    stored = [p for p in (s3_server.root / "models" / "registry").rglob("*") if p.name == "model.safetensors"]
    assert len(stored) == 1 and stored[0].read_bytes() == (classifier / "model.safetensors").read_bytes()
    assert not (tmp_path / "data" / "learning" / "mlflow.db").exists()

    again = ModelRegistry(config, tmp_path / "elsewhere")  # another process, another machine: same records
    champion = again.version("classifier", "champion")
    assert champion.version == first.version and champion.tags["data_sha256"] == "d" * 64
    folder = again.download("classifier", "champion", tmp_path / "dl")
    card = json.loads((folder / "seamline_model.json").read_text())
    assert card == json.loads((classifier / "seamline_model.json").read_text())
    with pytest.raises(RegistryError, match="no version has the alias 'candidate'"):
        again.version("classifier", "candidate")


def test_a_bad_artefact_location_is_named(tmp_path):
    with pytest.raises(RegistryError, match=r"unknown option\(s\) \['bucket'\]"):
        ModelRegistry(RegistryConfig(artifact_location="s3://m/r?bucket=x"), tmp_path)
