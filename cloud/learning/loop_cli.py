"""The learning loop's commands: `seamline models list|show|promote|register` (the MLflow registry),
`seamline golden freeze|show`, `seamline gate detector|classifier` and `seamline learn run`.

Exit codes: 0 done (gate: passed); 1 the gate failed (the failing criteria on stderr) or a job ended failed or
in error; 2 bad input (configuration, no such version, no golden set, too little data).
"""

from __future__ import annotations

import json
import logging
import os
import socket
import sys
import time
from datetime import datetime
from enum import Enum
from pathlib import Path
from typing import Any

import typer

from seamline.errors import ConfigError

logger = logging.getLogger(__name__)

registry_app = typer.Typer(no_args_is_help=True)  # merged into `seamline models`
golden_app = typer.Typer(help="The golden set: frozen labels no training uses.", no_args_is_help=True)
gate_app = typer.Typer(help="Judge a candidate model version against the champion.", no_args_is_help=True)
learn_app = typer.Typer(
    help="The retraining worker: triggers -> export -> train -> register -> gate.", no_args_is_help=True
)

CONFIG = typer.Option(..., "--config", "-c", help="Seamline YAML; its cloud: section (cloud.learning).")


class Model(str, Enum):
    DETECTOR = "detector"
    CLASSIFIER = "classifier"


def _load(config: Path) -> tuple[Any, Any]:
    from cloud.config import CloudConfig
    from seamline.config.models import load_config, load_section

    seamline_config = load_config(config)
    if seamline_config.cloud is None:
        raise ConfigError(
            f"{config}: no cloud: section; the learning loop reads cloud.learning and the audit store"
        )
    return seamline_config, load_section(config, seamline_config, "cloud", CloudConfig)


def _registry(config: Path) -> Any:
    from cloud.learning.registry import ModelRegistry

    seamline_config, cloud = _load(config)
    return ModelRegistry(cloud.learning.registry, seamline_config.storage.data_dir)


def _stores(seamline_config: Any, cloud: Any) -> tuple[Any, Any]:
    from cloud.storage.audit import AuditStore
    from cloud.storage.crop_store import crop_store_from_url

    data_dir = Path(seamline_config.storage.data_dir)
    store = AuditStore.from_url(cloud.audit_store_url(data_dir), migrate=cloud.migrate_on_start)
    return store, crop_store_from_url(cloud.crop_store, base=data_dir / "cloud")


def _work_dir(seamline_config: Any, cloud: Any) -> Path:
    return Path(cloud.learning.work_dir or Path(seamline_config.storage.data_dir) / "learning")


# -- seamline models ... ------------------------------------------------------------------------------------
@registry_app.command("list")
def models_list(
    config: Path = CONFIG,
    model: Model | None = typer.Argument(None, help="detector or classifier (default: both)."),
) -> None:
    """The registered versions, newest first, with their aliases, data hash and gate result."""
    registry = _registry(config)
    names = [model.value] if model else ["detector", "classifier"]
    rows = [v.to_dict() for name in names for v in registry.versions(name)]
    for row in rows:
        tags = row["tags"]
        typer.echo(
            f"{row['model']:<10} v{row['version']:<4} {','.join(row['aliases']) or '-':<18} "
            f"data {tags.get('data_sha256', '-')[:12]:<12} gate {tags.get('gate.result', '-'):<4} "
            f"{tags.get('gate.failing', '') if tags.get('gate.result') == 'fail' else ''}",
            err=True,
        )
    typer.echo(json.dumps(rows, indent=2))


@registry_app.command("show")
def models_show(
    model: Model = typer.Argument(..., help="detector or classifier."),
    version: str = typer.Argument(..., help="A version number, or champion / candidate."),
    config: Path = CONFIG,
) -> None:
    """One version: tags, metrics, where its files are, and its model card."""
    found = _registry(config).version(model.value, version)
    if found.description:
        typer.echo(found.description, err=True)
    typer.echo(json.dumps(found.to_dict(), indent=2))


@registry_app.command("promote")
def models_promote(
    model: Model = typer.Argument(..., help="detector or classifier."),
    version: str = typer.Argument(..., help="The version to make champion (a number, or candidate)."),
    config: Path = CONFIG,
    force: bool = typer.Option(False, "--force", help="Promote a version the gate has not passed."),
) -> None:
    """Make a version the champion (the previous one is tagged replaced_by)."""
    registry = _registry(config)
    found = registry.version(model.value, version)
    if found.tags.get("gate.result") != "pass" and not force:
        raise ConfigError(
            f"{model.value} v{found.version} has not passed the gate (gate.result: "
            f"{found.tags.get('gate.result', 'never gated')}); run `seamline gate` or pass --force"
        )
    previous, now = registry.promote(model.value, found.version)
    typer.echo(json.dumps({"model": model.value, "champion": now, "previous": previous}))


@registry_app.command("download")
def models_download(
    model: Model = typer.Argument(..., help="detector or classifier."),
    version: str = typer.Argument(..., help="A version number, or champion / candidate."),
    out: Path = typer.Option(..., "--out", "-o", help="Folder to copy its files into (created)."),
    config: Path = CONFIG,
) -> None:
    """Copy one version's files out of the registry (e.g. to serve it: `seamline cloud vllm DIR`); prints
    the model folder."""
    typer.echo(str(_registry(config).download(model.value, version, out)))


@registry_app.command("register")
def models_register(
    model: Model = typer.Argument(..., help="detector or classifier."),
    model_dir: Path = typer.Argument(
        ..., help="A trained model folder (`seamline train ... --out DIR`/model)."
    ),
    config: Path = CONFIG,
    data: Path | None = typer.Option(None, "--data", help="The data it trained on (its hash is recorded)."),
    data_sha256: str | None = typer.Option(None, "--data-sha256", help="The data's hash, if not --data."),
    alias: str | None = typer.Option(
        None, "--alias", help="Also give it this alias (champion: the first model)."
    ),
    data_until: str | None = typer.Option(
        None, "--data-until", help="ISO time the training data ends (the gate judges on labels after it)."
    ),
) -> None:
    """Register a trained model (a detector folder without detector.onnx is exported first); prints it."""
    from cloud.learning.golden import folder_sha256
    from cloud.learning.registry import register_trained

    if (data is None) == (data_sha256 is None):
        raise typer.BadParameter("give --data or --data-sha256", param_hint="--data")
    digest = data_sha256 or folder_sha256(data if data.is_dir() else data.parent)  # type: ignore[union-attr]
    registry = _registry(config)
    command = " ".join(["seamline", *sys.argv[1:]])
    if data_until is not None:
        try:
            data_until = datetime.fromisoformat(data_until).isoformat()
        except ValueError as exc:
            raise typer.BadParameter(str(exc), param_hint="--data-until") from exc
    found = register_trained(
        registry, model.value, model_dir, data_sha256=digest, command=command, data_until=data_until
    )
    if alias:
        registry.set_alias(model.value, alias, found.version)
        found = registry.version(model.value, found.version)
    typer.echo(json.dumps(found.to_dict(), indent=2))


# -- seamline golden ... ------------------------------------------------------------------------------------
@golden_app.command("freeze")
def golden_freeze(config: Path = CONFIG) -> None:
    """Freeze a golden set from the verified garments in no golden set yet (cloud.learning.golden)."""
    from dataclasses import asdict

    from cloud.learning.golden import freeze

    seamline_config, cloud = _load(config)
    store, crop_store = _stores(seamline_config, cloud)
    found = freeze(
        store,
        crop_store,
        seamline_config.load_taxonomy(),
        cloud.learning.golden,
        _work_dir(seamline_config, cloud) / "golden",
        created_by=os.environ.get("USER") or socket.gethostname(),
    )
    typer.echo(json.dumps(asdict(found), indent=2))


@golden_app.command("show")
def golden_show(config: Path = CONFIG) -> None:
    """The newest golden set (its hash is checked against its files)."""
    from dataclasses import asdict

    from cloud.learning.golden import latest_golden

    seamline_config, cloud = _load(config)
    store, _ = _stores(seamline_config, cloud)
    found = latest_golden(store)
    if found is None:
        raise ConfigError("no golden set yet: run `seamline golden freeze --config FILE`")
    typer.echo(json.dumps(asdict(found), indent=2))


# -- seamline gate ... --------------------------------------------------------------------------------------
def _gate(model: Model, config: Path, candidate: str, champion: str, out: Path | None) -> None:
    from cloud.learning.gate_run import GateContext, run_gate

    seamline_config, cloud = _load(config)
    store, crop_store = _stores(seamline_config, cloud)
    ctx = GateContext(
        store,
        crop_store,
        seamline_config.load_taxonomy(),
        cloud.learning,
        cloud.routing,
        _work_dir(seamline_config, cloud),
    )
    result, report = run_gate(_registry(config), ctx, model.value, candidate, champion_ref=champion, out=out)
    typer.echo(json.dumps(result.to_dict(), indent=2))
    if result.passed:
        typer.echo(f"PASS: {model.value} v{result.candidate} (report {report}/report.md)", err=True)
        return
    for criterion in result.failing:
        typer.echo(f"FAIL {criterion.label}: {criterion.detail}", err=True)
    typer.echo(f"report: {report}/report.md", err=True)
    raise typer.Exit(1)


CANDIDATE = typer.Option(..., "--candidate", help="The version to judge (a number, or candidate).")
CHAMPION = typer.Option(
    "champion", "--champion", help="What to judge it against (default the champion alias)."
)
OUT = typer.Option(None, "--out", "-o", help="Report folder (default under cloud.learning.work_dir/gates).")


@gate_app.command("detector")
def gate_detector(
    config: Path = CONFIG, candidate: str = CANDIDATE, champion: str = CHAMPION, out: Path | None = OUT
) -> None:
    """Judge a detector version: floors, per-class recall against the champion, latency on ONNX Runtime."""
    _gate(Model.DETECTOR, config, candidate, champion, out)


@gate_app.command("int8")
def gate_int8(
    fp32: Path = typer.Argument(..., help="The exported fp32 detector (.onnx with its .json sidecar)."),
    int8: Path = typer.Argument(..., help="Its int8 model (`seamline edge export --int8`)."),
    data: Path = typer.Option(..., "--data", help="Held-out COCO data (a folder with annotations.json)."),
    threshold: float = typer.Option(0.25, "--threshold", help="The edge's operating score threshold."),
    max_drop: float = typer.Option(
        0.01, "--max-drop", min=0.0, max=1.0, help="Largest allowed drop of mAP50 and of recall."
    ),
) -> None:
    """Accept an int8 detector only within --max-drop of the fp32 model's mAP50 and recall (exit 1 if not);
    the numbers go into its sidecar, and the edge refuses an int8 model without them."""
    from cloud.learning.int8_check import check_int8

    result = check_int8(fp32, int8, data, threshold=threshold, max_drop=max_drop)
    typer.echo(json.dumps(result.to_dict(), indent=2))
    if not result.accepted:
        typer.echo(f"REFUSED: {int8}: {result.reason}", err=True)
        raise typer.Exit(1)
    typer.echo(f"ACCEPTED: {int8}: {result.reason} on {result.images} images", err=True)


@gate_app.command("classifier")
def gate_classifier(
    config: Path = CONFIG, candidate: str = CANDIDATE, champion: str = CHAMPION, out: Path | None = OUT
) -> None:
    """Judge a classifier version: floors, per-class accuracy, McNemar, routing replay, latency."""
    _gate(Model.CLASSIFIER, config, candidate, champion, out)


# -- seamline learn run -------------------------------------------------------------------------------------
@learn_app.command("run")
def learn_run(
    config: Path = CONFIG,
    once: bool = typer.Option(
        False, "--once", help="Check once (and run a job if due), then exit (for cron)."
    ),
    force: bool = typer.Option(False, "--force", help="Run a job even if no trigger fires."),
) -> None:
    """Check the retraining triggers every cloud.learning.check_interval_s; run a job when one fires."""
    from cloud.learning.worker import LearningWorker
    from seamline.children import stop_on_signals
    from seamline.comms.mqtt import MqttBus
    from seamline.contract.mqtt import topic_specs

    seamline_config, cloud = _load(config)
    topic = topic_specs()["learning"].pattern.format(
        root=seamline_config.mqtt.topic_root, site=seamline_config.site.site_id
    )
    bus = MqttBus(
        seamline_config.mqtt,
        client_id=f"seamline-learning-{seamline_config.site.site_id}",
        persistent_session=False,
    )
    bus.start()
    if not bus.wait_connected(10):
        logger.warning(
            "learning worker: broker %s not answering (%s); job events are sent once it does",
            seamline_config.mqtt.url,
            bus.last_error or "no answer",
        )
    worker = LearningWorker(seamline_config, cloud, publish=lambda payload: bus.publish(topic, payload))
    failed = False
    try:
        with stop_on_signals():  # SIGTERM: the running job is recorded abandoned, the worker exits
            while True:
                outcome = worker.run_once(force=force)
                typer.echo(json.dumps(outcome.__dict__))
                failed = outcome.state in ("failed", "error")
                if once:
                    break
                force = False
                time.sleep(cloud.learning.check_interval_s)
    finally:
        bus.stop()
    if failed:
        raise typer.Exit(1)
