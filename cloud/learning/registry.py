"""The model registry: MLflow's, not a home-made one.

Two registered models, ``detector`` and ``classifier``. A version is a trained model folder (as `seamline
train` writes it: weights, processor, ``README.md`` model card, ``seamline_model.json``) logged as the
artefact of an MLflow run, plus, for the detector, the ONNX export the edge runs. Every version carries:

* its model card (the version's description) and ``seamline_model.json`` (in the artefact);
* ``data_sha256``: the hash of the verified-store export it was trained on (cloud/learning/golden.py's
  ``folder_sha256``), and ``data_until``, the end of that export's window, so the gate knows which verified
  labels the version has not seen;
* its held-out metrics (run metrics) and the command that made it (``command`` tag);
* gate results, as ``gate.*`` tags, once `seamline gate` has judged it.

Aliases say which version does what: ``champion`` (in service) and ``candidate`` (passed the gate, waiting
for a rollout or an explicit `seamline models promote`). Where the registry lives is
``learning.registry`` in the cloud configuration: SQLite and a local folder by default, PostgreSQL and the S3
crop store's bucket at scale (MLflow reads s3:// artefact locations with boto3, which the cloud extra brings).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qsl, urlsplit

from pydantic import Field

from seamline.config.base import StrictModel
from seamline.errors import InputError
from seamline.optional import require

logger = logging.getLogger(__name__)

ModelName = Literal["detector", "classifier"]
MODELS: tuple[ModelName, ...] = ("detector", "classifier")
ALIASES = ("champion", "candidate")
CARD_FILE = "seamline_model.json"
ONNX_NAME = "detector.onnx"


class RegistryError(InputError):
    """The registry cannot do what was asked (no such version or alias, a bad model folder)."""


class RegistryConfig(StrictModel):
    """Where the MLflow tracking store and registry keep their records and artefacts."""

    tracking_uri: str | None = Field(
        default=None,
        title="Tracking URI",
        description="MLflow tracking and registry store: sqlite:///path.db or postgresql+psycopg://... — a "
        "database of its own, not the audit store's (MLflow keeps its own migrations) (default: sqlite under "
        "the data folder, learning/mlflow.db).",
    )
    artifact_location: str | None = Field(
        default=None,
        title="Artefact location",
        description="Where model files go: a folder, or s3://bucket/prefix?endpoint=...&region=... like the "
        "crop store (default: learning/artifacts under the data folder).",
    )
    experiment: str = Field(
        default="seamline", title="Experiment", description="The MLflow experiment runs are logged in."
    )


@dataclass
class ModelVersion:
    """One registered version, as the commands show it."""

    model: str
    version: str
    aliases: list[str]
    source: str
    run_id: str | None
    created_ms: int
    tags: dict[str, str]
    metrics: dict[str, float] = field(default_factory=dict)
    description: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "version": self.version,
            "aliases": self.aliases,
            "source": self.source,
            "run_id": self.run_id,
            "created_ms": self.created_ms,
            "tags": self.tags,
            "metrics": self.metrics,
        }


def _s3_location(url: str) -> str:
    """An ``s3://bucket/prefix?endpoint=...&region=...`` location (the crop store's form) as MLflow takes it:
    the bucket and prefix, with the endpoint and region in the environment MLflow's S3 client reads (this
    process's; credentials as for the crop store: AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY or a role)."""
    parts = urlsplit(url)
    options = dict(parse_qsl(parts.query))
    unknown = sorted(set(options) - {"endpoint", "region"})
    if unknown:
        raise RegistryError(
            f"artefact location {url!r}: unknown option(s) {unknown}; use endpoint= and region="
        )
    if "endpoint" in options:
        os.environ["MLFLOW_S3_ENDPOINT_URL"] = options["endpoint"]
    if "region" in options:
        os.environ["AWS_DEFAULT_REGION"] = options["region"]
    return f"s3://{parts.netloc}{parts.path}"


def registry_uris(config: RegistryConfig, data_dir: Path) -> tuple[str, str]:
    """(tracking URI, artefact location) with the defaults under ``data_dir``."""
    root = Path(data_dir) / "learning"
    tracking = config.tracking_uri or f"sqlite:///{(root / 'mlflow.db').resolve()}"
    artifacts = config.artifact_location or (root / "artifacts").resolve().as_uri()
    if artifacts.startswith("s3://"):
        artifacts = _s3_location(artifacts)
    elif "://" not in artifacts:
        artifacts = Path(artifacts).resolve().as_uri()
    if tracking.startswith("sqlite:///"):
        Path(tracking.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    return tracking, artifacts


def _flat_metrics(prefix: str, value: Any, out: dict[str, float]) -> None:
    """Numbers of a nested metrics dict as MLflow metric names (``per_class.hole.ap50``)."""
    if isinstance(value, bool):
        return
    if isinstance(value, int | float):
        out[prefix] = float(value)
    elif isinstance(value, dict):
        for key, inner in value.items():
            name = "".join(c if c.isalnum() or c in "_-./ " else "_" for c in str(key))
            _flat_metrics(f"{prefix}.{name}" if prefix else name, inner, out)


class ModelRegistry:
    """Register, list, alias and fetch model versions in an MLflow registry."""

    def __init__(self, config: RegistryConfig, data_dir: Path) -> None:
        require("mlflow", "The model registry", extra="learn")
        from mlflow import MlflowClient

        self.tracking_uri, self.artifact_location = registry_uris(config, data_dir)
        self.experiment_name = config.experiment
        self.client = MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.tracking_uri)

    # -- writing ------------------------------------------------------------------------------------------
    def _experiment_id(self) -> str:
        found = self.client.get_experiment_by_name(self.experiment_name)
        if found is not None:
            return found.experiment_id
        return self.client.create_experiment(self.experiment_name, artifact_location=self.artifact_location)

    def register(
        self,
        model: ModelName,
        model_dir: Path,
        *,
        data_sha256: str,
        command: str,
        data_until: str | None = None,
        extra_files: dict[str, Path] | None = None,
        tags: dict[str, str] | None = None,
    ) -> ModelVersion:
        """Log ``model_dir`` (and ``extra_files``, e.g. the detector's ONNX export) as a new version."""
        from mlflow.exceptions import MlflowException

        if model not in MODELS:
            raise RegistryError(f"model {model!r}: choose one of {', '.join(MODELS)}")
        model_dir = Path(model_dir)
        card_path = model_dir / CARD_FILE
        if not card_path.is_file():
            raise RegistryError(f"{model_dir}: not a trained model folder (no {CARD_FILE})")
        card = json.loads(card_path.read_text(encoding="utf-8"))
        readme = model_dir / "README.md"
        description = readme.read_text(encoding="utf-8") if readme.exists() else ""
        all_tags = {
            "data_sha256": data_sha256,
            "command": command,
            "trained_version": str(card.get("version", "")),
            **({"data_until": data_until} if data_until else {}),
            **(tags or {}),
        }
        run = self.client.create_run(self._experiment_id(), tags={"model": model, **all_tags})
        run_id = run.info.run_id
        try:
            with tempfile.TemporaryDirectory() as tmp:
                staged = Path(tmp) / "model"
                shutil.copytree(model_dir, staged)
                for name, path in (extra_files or {}).items():
                    shutil.copy2(path, staged / name)
                self.client.log_artifacts(run_id, str(staged), "model")
            metrics: dict[str, float] = {}
            _flat_metrics("", card.get("metrics", {}), metrics)
            for name, value in metrics.items():
                self.client.log_metric(run_id, name, value)
            self.client.set_terminated(run_id)
        except Exception:
            self.client.set_terminated(run_id, status="FAILED")
            raise
        try:
            self.client.get_registered_model(model)
        except MlflowException:
            self.client.create_registered_model(model, description=f"Seamline {model}")
        source = f"{self.client.get_run(run_id).info.artifact_uri}/model"
        created = self.client.create_model_version(
            model, source=source, run_id=run_id, tags=all_tags, description=description
        )
        logger.info("registered %s version %s (run %s)", model, created.version, run_id)
        return self.version(model, str(created.version))

    def set_alias(self, model: ModelName, alias: str, version: str) -> None:
        if alias not in ALIASES:
            raise RegistryError(f"alias {alias!r}: choose one of {', '.join(ALIASES)}")
        self.version(model, version)  # exists
        self.client.set_registered_model_alias(model, alias, version)

    def clear_alias(self, model: ModelName, alias: str) -> None:
        from mlflow.exceptions import MlflowException

        try:
            self.client.delete_registered_model_alias(model, alias)
        except MlflowException:
            pass

    def promote(self, model: ModelName, version: str) -> tuple[str | None, str]:
        """Make ``version`` the champion; returns (previous champion, new). It stops being the candidate."""
        target = self.version(model, version)
        previous = self.alias_version(model, "champion")
        self.client.set_registered_model_alias(model, "champion", target.version)
        if "candidate" in target.aliases:
            self.clear_alias(model, "candidate")
        if previous is not None and previous != target.version:
            self.client.set_model_version_tag(model, previous, "replaced_by", target.version)
        return previous, target.version

    def set_tags(self, model: ModelName, version: str, tags: dict[str, str]) -> None:
        for key, value in tags.items():
            self.client.set_model_version_tag(model, version, key, value)

    # -- reading ------------------------------------------------------------------------------------------
    def versions(self, model: ModelName) -> list[ModelVersion]:
        """Every version of ``model``, newest first (none when the model was never registered)."""
        from mlflow.exceptions import MlflowException

        try:
            aliases = dict(self.client.get_registered_model(model).aliases or {})
        except MlflowException:
            return []
        found = [self._describe(v) for v in self.client.search_model_versions(f"name='{model}'")]
        for version in found:  # search results leave aliases out; the registered model has them
            version.aliases = sorted(a for a, v in aliases.items() if str(v) == version.version)
        return sorted(found, key=lambda v: int(v.version), reverse=True)

    def alias_version(self, model: ModelName, alias: str) -> str | None:
        from mlflow.exceptions import MlflowException

        try:
            return str(self.client.get_model_version_by_alias(model, alias).version)
        except MlflowException:
            return None

    def version(self, model: ModelName, ref: str) -> ModelVersion:
        """A version by number or by alias (``champion``, ``candidate``)."""
        from mlflow.exceptions import MlflowException

        if model not in MODELS:
            raise RegistryError(f"model {model!r}: choose one of {', '.join(MODELS)}")
        number = self.alias_version(model, ref) if ref in ALIASES else ref
        if number is None:
            raise RegistryError(f"{model}: no version has the alias {ref!r}")
        try:
            return self._describe(self.client.get_model_version(model, number))
        except MlflowException as exc:
            raise RegistryError(f"{model}: no version {ref!r}") from exc

    def _describe(self, v: Any) -> ModelVersion:
        metrics: dict[str, float] = {}
        if v.run_id:
            metrics = dict(self.client.get_run(v.run_id).data.metrics)
        return ModelVersion(
            model=v.name,
            version=str(v.version),
            aliases=sorted(getattr(v, "aliases", []) or []),
            source=v.source,
            run_id=v.run_id,
            created_ms=int(v.creation_timestamp or 0),
            tags=dict(v.tags or {}),
            metrics=metrics,
            description=v.description or "",
        )

    def download(self, model: ModelName, ref: str, dst: Path) -> Path:
        """The version's artefact folder, copied under ``dst`` (created); returns the model folder."""
        import mlflow.artifacts

        # a progress bar per download is noise in a service's log (the learning worker, the demo)
        os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
        found = self.version(model, ref)
        dst = Path(dst)
        dst.mkdir(parents=True, exist_ok=True)
        path = mlflow.artifacts.download_artifacts(
            artifact_uri=found.source, dst_path=str(dst), tracking_uri=self.tracking_uri
        )
        return Path(path)


def register_trained(
    registry: ModelRegistry,
    model: ModelName,
    model_dir: Path,
    *,
    data_sha256: str,
    command: str,
    data_until: str | None = None,
) -> ModelVersion:
    """Register a trained model folder; a detector is first exported to ONNX (and checked against PyTorch),
    so the version holds what the edge runs and what the gate times."""
    extra: dict[str, Path] = {}
    with tempfile.TemporaryDirectory() as tmp:
        if model == "detector" and (Path(model_dir) / ONNX_NAME).is_file():
            pass  # an exported detector folder (models/demo/detector): what the edge runs is there
        elif model == "detector":
            from edge.export.onnx_export import export_onnx

            card = json.loads((Path(model_dir) / CARD_FILE).read_text(encoding="utf-8"))
            onnx = Path(tmp) / ONNX_NAME
            export_onnx(
                Path(model_dir), onnx, version=f"detector@{card.get('version', '1')}+{data_sha256[:8]}"
            )
            extra = {ONNX_NAME: onnx, onnx.with_suffix(".json").name: onnx.with_suffix(".json")}
        return registry.register(
            model,
            model_dir,
            data_sha256=data_sha256,
            command=command,
            data_until=data_until,
            extra_files=extra,
        )
