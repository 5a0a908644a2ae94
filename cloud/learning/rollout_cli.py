"""`seamline rollout classifier status|shadow|canary|promote|rollback` and `seamline rollout report`.

The rollout state lives in the audit store, so a change here decides the next garment on every cloud replica
without a restart (cloud/storage/rollouts.py). Each command prints the state it wrote as JSON.

Exit codes: 0 done; 2 bad input (configuration, a share out of range, no candidate, a version the gate has
not passed without --force); 1 the state changed under the command (run it again).
"""

from __future__ import annotations

import getpass
import json
import logging
import os
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import typer

from cloud.learning.loop_cli import CONFIG, _load
from seamline.errors import ConfigError, SeamlineError

logger = logging.getLogger(__name__)

app = typer.Typer(
    help="Roll a candidate model out: shadow, canary, promote, roll back.", no_args_is_help=True
)
classifier_app = typer.Typer(
    help="The classifier's rollout (shared by every cloud replica).", no_args_is_help=True
)
app.add_typer(classifier_app, name="classifier")


class RolloutChanged(SeamlineError):
    exit_code = 1


class PublishFailed(SeamlineError):
    exit_code = 1


def _engine(config: Path) -> tuple[Any, Any, Any]:
    from cloud.storage.audit import AuditStore

    seamline_config, cloud = _load(config)
    store = AuditStore.from_url(
        cloud.audit_store_url(Path(seamline_config.storage.data_dir)), migrate=cloud.migrate_on_start
    )
    return seamline_config, cloud, store.engine


def _who() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no user name in a container
        return "cli"


def _write(engine: Any, state: Any, after: int) -> None:
    from cloud.storage.rollouts import RolloutConflict, write

    try:
        stored = write(engine, state, after=after)
    except RolloutConflict as exc:
        raise RolloutChanged(str(exc)) from exc
    typer.echo(
        f"classifier rollout revision {stored.revision}: {stored.mode}"
        + (f" {stored.share:g}" if stored.share else ""),
        err=True,
    )
    typer.echo(stored.model_dump_json(indent=2))


def _candidate(
    cloud: Any,
    now: Any,
    version: str | None,
    model: str | None,
    base_url: list[str] | None,
    registry_version: str | None,
) -> Any:
    """The candidate named on the command line, else the current one, else cloud.rollout.candidate."""
    from pydantic import ValidationError

    from cloud.storage.rollout_state import Endpoint

    known = (now.candidate if now and now.mode not in ("promoted",) else None) or cloud.rollout.candidate
    if version is None and model is None and base_url is None and registry_version is None:
        if known is None:
            raise ConfigError(
                "no candidate: name it (--version, --model, and --base-url for a server of its own) or set "
                "cloud.rollout.candidate"
            )
        return known
    fields = known.model_dump() if known and (version is None or version == known.version) else {}
    for key, value in (
        ("version", version),
        ("model", model),
        ("base_url", base_url),
        ("registry_version", registry_version),
    ):
        if value:
            fields[key] = value
    try:
        return Endpoint.model_validate(fields)
    except ValidationError as exc:
        raise ConfigError(f"candidate: {exc.errors()[0]['loc']}: {exc.errors()[0]['msg']}") from exc


VERSION = typer.Option(None, "--version", help="The candidate's version, recorded on verdicts.")
MODEL = typer.Option(None, "--model", help="Its served model name (or LoRA adapter name).")
BASE_URL = typer.Option(None, "--base-url", help="Its vLLM server(s); none: the champion's (an adapter).")
REGISTRY = typer.Option(
    None,
    "--registry-version",
    help="Its version in the model registry (promote moves the champion alias to it).",
)
REASON = typer.Option(None, "--reason", help="Why, for the record.")


@classifier_app.command("status")
def status(config: Path = CONFIG) -> None:
    """The current rollout and its last changes."""
    from cloud.storage.rollouts import history

    _, _, engine = _engine(config)
    states = history(engine, limit=10)
    if not states:
        typer.echo("no rollout set yet: the champion (cloud.classifier) decides every garment", err=True)
    for state in states:
        typer.echo(
            f"rev {state.revision:<4} {state.mode:<12} {state.share:<5g} "
            f"{state.candidate.version if state.candidate else '-':<20} {state.set_by:<10} "
            f"{state.set_at.isoformat() if state.set_at else ''} {state.reason or ''}",
            err=True,
        )
    typer.echo(json.dumps([s.model_dump(mode="json") for s in states], indent=2))


def _set(
    config: Path,
    mode: str,
    share: float,
    version: str | None,
    model: str | None,
    base_url: list[str] | None,
    registry_version: str | None,
    reason: str | None,
) -> None:
    from pydantic import ValidationError

    from cloud.storage.rollout_state import RolloutState
    from cloud.storage.rollouts import current

    _, cloud, engine = _engine(config)
    now = current(engine)
    candidate = _candidate(cloud, now, version, model, base_url, registry_version)
    try:
        state = RolloutState(
            mode=mode,
            share=share,
            candidate=candidate,
            champion=now.champion if now else None,
            set_by=_who(),
            reason=reason,
        )
    except ValidationError as exc:
        raise ConfigError(str(exc.errors()[0]["msg"])) from exc
    _write(engine, state, now.revision if now else 0)


def _share(value: float) -> float:
    if not 0 < value <= 1:
        raise typer.BadParameter(f"{value}: a share is in (0, 1], e.g. 0.1 for 10 %")
    return value


@classifier_app.command("shadow")
def shadow(
    config: Path = CONFIG,
    share: float = typer.Option(
        1.0, "--share", help="Share of garments the candidate also answers.", callback=_share
    ),
    version: str | None = VERSION,
    model: str | None = MODEL,
    base_url: list[str] | None = BASE_URL,
    registry_version: str | None = REGISTRY,
    reason: str | None = REASON,
) -> None:
    """The candidate also answers a share of garments; its answers are stored and route nothing."""
    _set(config, "shadow", share, version, model, base_url, registry_version, reason)


@classifier_app.command("canary")
def canary(
    share: float = typer.Argument(
        ..., help="Share of garments the candidate decides, e.g. 0.1.", callback=_share
    ),
    config: Path = CONFIG,
    version: str | None = VERSION,
    model: str | None = MODEL,
    base_url: list[str] | None = BASE_URL,
    registry_version: str | None = REGISTRY,
    reason: str | None = REASON,
) -> None:
    """A share of garments (by a hash of the garment id) is decided by the candidate."""
    _set(config, "canary", share, version, model, base_url, registry_version, reason)


@classifier_app.command("rollback")
def rollback(config: Path = CONFIG, reason: str | None = REASON) -> None:
    """The candidate decides nothing from the next garment on (its endpoint is kept for the record)."""
    from cloud.storage.rollouts import current

    _, _, engine = _engine(config)
    now = current(engine)
    if now is None:
        raise ConfigError("nothing to roll back: no rollout was ever set")
    try:
        state = now.rolled_back(_who(), reason)
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc
    _write(engine, state, now.revision)
    _tag_registry(config, now.candidate, {"rollout": "rolled_back"})


@classifier_app.command("promote")
def promote(
    config: Path = CONFIG,
    reason: str | None = REASON,
    force: bool = typer.Option(
        False, "--force", help="Promote a registered version the gate has not passed."
    ),
) -> None:
    """The candidate becomes the champion: it decides every garment (the registry's champion alias moves)."""
    from cloud.storage.rollouts import current

    _, _, engine = _engine(config)
    now = current(engine)
    if now is None:
        raise ConfigError("nothing to promote: no rollout was ever set")
    try:
        state = now.promoted(_who(), reason)
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc
    registry = _registry_or_none(config) if now.candidate.registry_version is not None else None
    if registry is not None:
        found = registry.version("classifier", now.candidate.registry_version)
        if found.tags.get("gate.result") != "pass" and not force:
            raise ConfigError(
                f"classifier v{found.version} has not passed the gate; run `seamline gate classifier` or "
                "pass --force"
            )
    _write(engine, state, now.revision)
    if registry is not None:
        previous, new = registry.promote("classifier", now.candidate.registry_version)
        typer.echo(f"registry: classifier champion v{previous} -> v{new}", err=True)


def _registry_or_none(config: Path) -> Any:
    seamline_config, cloud = _load(config)
    try:
        from cloud.learning.registry import ModelRegistry

        return ModelRegistry(cloud.learning.registry, seamline_config.storage.data_dir)
    except ImportError:  # the learn extra is not installed: the rollout works without a registry
        logger.warning("no model registry (pip install 'seamline[learn]'): the registry's aliases stay")
        return None


def _tag_registry(config: Path, candidate: Any, tags: dict[str, str]) -> None:
    if candidate.registry_version is None:
        return
    registry = _registry_or_none(config)
    if registry is not None:
        registry.set_tags("classifier", candidate.registry_version, tags)


@app.command("report")
def report(
    config: Path = CONFIG,
    since: str | None = typer.Option(
        None, "--since", help="ISO time; default cloud.learning.promotion window_days back."
    ),
    out: Path | None = typer.Option(None, "--out", help="Also write report.json and report.md here."),
) -> None:
    """Per model version over the window: automated share, accuracy of automatic decisions (audit samples,
    95 % interval), routed agreement, latency, late verdicts, missed defects; and the recommendation."""
    from cloud.learning.rollout_report import report_markdown, rollout_report

    seamline_config, cloud, engine = _engine(config)
    start = None
    if since is not None:
        try:
            start = datetime.fromisoformat(since)
        except ValueError as exc:
            raise typer.BadParameter(str(exc), param_hint="--since") from exc
        if start.tzinfo is None:
            raise typer.BadParameter("give a time zone, e.g. 2026-12-07T00:00:00+00:00", param_hint="--since")
    found = rollout_report(
        engine, cloud.learning.promotion, since=start, normal_id=seamline_config.load_taxonomy().normal.id
    )
    text = report_markdown(found)
    typer.echo(text, err=True)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        (out / "report.json").write_text(json.dumps(found, indent=2) + "\n", encoding="utf-8")
        (out / "report.md").write_text(text, encoding="utf-8")
    typer.echo(json.dumps(found, indent=2))


# -- seamline rollout detector ... --------------------------------------------------------------------------
detector_app = typer.Typer(
    help="Detector releases: a signed artefact and a signed manifest, retained for the site's edges.",
    no_args_is_help=True,
)
app.add_typer(detector_app, name="detector")


def upload_artefact(store: str, name: str, data: bytes, url_expires_s: int) -> str:
    """Put the artefact in the S3 store; a presigned HTTPS (or the endpoint's HTTP) URL to it."""
    from cloud.storage.crop_store import S3CropStore, crop_store_from_url

    target = crop_store_from_url(store)
    if not isinstance(target, S3CropStore):
        raise ConfigError(f"--store {store!r}: an s3://bucket/prefix?endpoint=... URL")
    key = f"{target.prefix}/{name}" if target.prefix else name
    target.client.put_object(Bucket=target.bucket, Key=key, Body=data)
    import boto3
    from botocore.config import Config

    # Signature V4: what AWS and S3-compatible servers accept in a presigned URL (V2 is deprecated)
    presigner = boto3.client(
        "s3",
        endpoint_url=target.client.meta.endpoint_url,
        region_name=target.client.meta.region_name,
        config=Config(signature_version="s3v4", s3={"addressing_style": "path"}),
    )
    return presigner.generate_presigned_url(
        "get_object", Params={"Bucket": target.bucket, "Key": key}, ExpiresIn=url_expires_s
    )


@detector_app.command("publish")
def detector_publish(
    artefact: Path = typer.Argument(..., help="The folder `seamline edge export` wrote (detector.onnx)."),
    config: Path = typer.Option(..., "--config", "-c", help="Seamline YAML: its mqtt: and site: sections."),
    key: Path = typer.Option(..., "--key", help="The release signing key (EC private key, PEM)."),
    version: str | None = typer.Option(
        None, "--version", help="The version edges will report (default and must be: the artefact's own)."
    ),
    serial: int = typer.Option(..., "--serial", min=1, help="Above the site's last release (or --rollback)."),
    store: str | None = typer.Option(None, "--store", help="s3://bucket/prefix?endpoint=...: upload there."),
    artefact_url: str | None = typer.Option(
        None, "--artefact-url", help="Where you will host the tar (with --out) instead of --store."
    ),
    out: Path | None = typer.Option(None, "--out", help="Also write the signed artefact tar here."),
    expires_in_h: float = typer.Option(168.0, "--expires-in-h", min=0.01, help="The manifest's lifetime."),
    lines: list[str] | None = typer.Option(None, "--line", help="Only these lines take it (repeat)."),
    share: float | None = typer.Option(
        None, "--share", min=0.0001, max=1.0, help="Share of each line's garments."
    ),
    rollback: bool = typer.Option(False, "--rollback", help="A return to an earlier version (lower serial)."),
    notes: str | None = typer.Option(None, "--notes", help="Why, for the record."),
    site: str | None = typer.Option(None, "--site", help="The site (default: the configuration's site)."),
) -> None:
    """Sign an exported detector, upload it, and announce its signed manifest (retained) to the site."""
    from datetime import timedelta

    from seamline.clock import utcnow
    from seamline.comms.mqtt import MqttBus
    from seamline.config.models import load_config
    from seamline.contract.mqtt import LineTopics
    from seamline.release import (
        ReleaseCanary,
        ReleaseManifest,
        artefact_version,
        pack_artefact,
        sign_manifest,
    )

    if (store is None) == (artefact_url is None):
        raise typer.BadParameter(
            "give --store (upload) or --artefact-url (hosted by you)", param_hint="--store"
        )
    if not key.exists():
        raise ConfigError(f"--key {key}: no such file")
    seamline_config = load_config(config)
    site_id = site or seamline_config.site.site_id
    own = artefact_version(artefact)
    if version is not None and version != own:
        raise ConfigError(
            f"--version {version!r}: the artefact reports {own!r} on every garment; release that"
        )
    version = own
    data = pack_artefact(artefact, key)
    if out is not None:
        out.write_bytes(data)
    lifetime = timedelta(hours=expires_in_h)
    url = artefact_url or upload_artefact(
        store,
        f"detector/{serial:06d}-{version}.tar",
        data,
        int(lifetime.total_seconds()),  # type: ignore[arg-type]
    )
    import hashlib

    now = utcnow()
    manifest = ReleaseManifest(
        site_id=site_id,
        version=version,
        serial=serial,
        artefact_url=url,
        sha256=hashlib.sha256(data).hexdigest(),
        size_bytes=len(data),
        canary=ReleaseCanary(lines=lines or None, share=share) if lines or share else None,
        rollback=rollback,
        issued_at=now,
        expires_at=now + lifetime,
        notes=notes,
    )
    payload = sign_manifest(manifest, key)
    topic = LineTopics(seamline_config.mqtt.topic_root, site_id, "x").detector_releases
    bus = MqttBus(seamline_config.mqtt, client_id=f"seamline-release-{os.getpid()}", persistent_session=False)
    done: dict[str, str | None] = {}
    bus.start()
    try:
        if not bus.wait_connected(15):
            raise PublishFailed(f"no connection to the broker: {bus.last_error}")
        bus.publish(
            topic,
            payload,
            retain=True,
            on_acked=lambda: done.setdefault("ok", None),
            on_refused=lambda why: done.setdefault("refused", why),
        )
        deadline = time.monotonic() + 15
        while not done and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        bus.stop()
    if "refused" in done or not done:
        raise PublishFailed(
            f"the broker did not take the release on {topic}: {done.get('refused', 'no answer')}"
        )
    typer.echo(f"released {version} (serial {serial}) on {topic}", err=True)
    typer.echo(manifest.model_dump_json(indent=2))
