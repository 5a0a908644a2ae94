"""`seamline learn run`: the retraining worker. It checks the triggers (cloud/learning/triggers.py) on a
schedule and, when one fires and verified labels arrived since the last job's export, runs one job:

1. claim it in the audit store (one job at a time, whichever process asks) and announce it on MQTT;
2. export the verified store (golden garments left out) and hash the export;
3. per model in ``cloud.learning.train.models``: train a candidate resuming from the champion's weights (the
   configured trainer's settings; from scratch when there is no champion yet), register it with the export's
   hash and window, and gate it against the champion (cloud/learning/gate_run.py);
4. record the outcome (passed: every candidate passed and holds the ``candidate`` alias; failed: a gate
   said no, naming the criterion; error) and announce it.

A pass never makes a model champion: the rollout does, or `seamline models promote`.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from cloud.learning import jobs
from cloud.learning.config import train_config
from cloud.learning.gate_run import GateContext, run_gate
from cloud.learning.golden import folder_sha256, latest_golden
from cloud.learning.registry import ModelRegistry, register_trained
from cloud.learning.triggers import retrain_reasons
from seamline.children import StopRequested
from seamline.clock import utcnow

logger = logging.getLogger(__name__)
HEARTBEAT_S = 30.0


@dataclass
class JobOutcome:
    job_id: int | None
    state: str  # passed | failed | error | idle (nothing fired) | busy (another job runs)
    triggers: list[str]
    detail: str = ""


class LearningWorker:
    """One worker process. ``publish(payload)`` sends a job event (None: not announced)."""

    def __init__(self, config: Any, cloud: Any, *, publish: Any = None) -> None:
        from cloud.storage.audit import AuditStore
        from cloud.storage.crop_store import crop_store_from_url

        self.config, self.cloud, self.learning = config, cloud, cloud.learning
        data_dir = Path(config.storage.data_dir)
        self.store = AuditStore.from_url(cloud.audit_store_url(data_dir), migrate=cloud.migrate_on_start)
        self.crop_store = crop_store_from_url(cloud.crop_store, base=data_dir / "cloud")
        self.taxonomy = config.load_taxonomy()
        self.work_dir = Path(self.learning.work_dir or data_dir / "learning")
        self.registry = ModelRegistry(self.learning.registry, data_dir)
        self.publish = publish
        self.name = f"{socket.gethostname()}:{id(self):x}"

    # -- triggers ---------------------------------------------------------------------------------------
    def due(self, now: datetime | None = None) -> tuple[list[str], int]:
        """(triggers that fire, verified labels since the last job's export)."""
        from cloud.review.report import weekly_report
        from cloud.storage.tables import golden_items, verified_labels

        now = now or utcnow()
        cfg = self.learning.triggers
        since = jobs.last_data_until(self.store.engine)
        query = (
            sa.select(sa.func.count())
            .select_from(verified_labels)
            .where(verified_labels.c.item_id.not_in(sa.select(golden_items.c.item_id)))
        )
        if since is not None:
            query = query.where(verified_labels.c.verified_at >= since)
        with self.store.engine.connect() as conn:
            new = int(conn.execute(query).scalar() or 0)
        report = weekly_report(
            self.store.engine,
            now - timedelta(days=cfg.window_days),
            self.taxonomy,
            days=cfg.window_days,
            triggers=cfg,
            trend_weeks=1,
        )
        return retrain_reasons(report, cfg, new), new

    # -- one job ------------------------------------------------------------------------------------------
    def act_on_rollout(self) -> str | None:
        """With ``cloud.learning.promotion.auto_promote``: promote or roll back the running canary when its
        rollout report says so. Returns the action taken, if any."""
        from cloud.learning.rollout_report import rollout_report
        from cloud.storage import rollouts

        if not self.learning.promotion.auto_promote:
            return None
        report = rollout_report(self.store.engine, self.learning.promotion, normal_id=self.taxonomy.normal.id)
        action, reasons = report["recommendation"]["action"], report["recommendation"]["reasons"]
        now = rollouts.current(self.store.engine)
        if action not in ("promote", "rollback") or now is None:
            return None
        why = f"auto_promote: {'; '.join(reasons)}"
        state = now.promoted(self.name, why) if action == "promote" else now.rolled_back(self.name, why)
        rollouts.write(self.store.engine, state, after=now.revision)
        if action == "promote" and now.candidate is not None and now.candidate.registry_version:
            self.registry.promote("classifier", now.candidate.registry_version)
        logger.warning("classifier rollout %s by the learning worker: %s", state.mode, why)
        return action

    def run_once(self, *, force: bool = False) -> JobOutcome:
        """Check the triggers and, if one fires (or ``force``), run a job to its end."""
        try:
            self.act_on_rollout()
        except Exception:  # the rollout stays as it is; retraining goes on
            logger.exception("could not act on the classifier rollout report")
        abandoned = jobs.abandon_stale(self.store.engine, self.learning.stale_job_s)
        if abandoned:
            logger.warning("marked %d learning job(s) abandoned: their worker stopped reporting", abandoned)
        reasons, new = self.due()
        if force:
            reasons = reasons or ["asked for (--force)"]
        if not reasons:
            return JobOutcome(None, "idle", [], f"no trigger fired ({new} new verified labels)")
        if new == 0 and not force:
            return JobOutcome(
                None, "idle", reasons, "triggers fire but no verified label arrived since the last job"
            )
        models = {name: {"state": "pending"} for name in self.learning.train.models}
        job_id = jobs.claim(self.store.engine, self.name, reasons, models)
        if job_id is None:
            return JobOutcome(None, "busy", reasons, "another learning job is running")
        logger.info("learning job %d: %s", job_id, "; ".join(reasons))
        self._announce(job_id)
        stop = threading.Event()
        beat = threading.Thread(
            target=self._heartbeat, args=(job_id, stop), daemon=True, name="learn-heartbeat"
        )
        beat.start()
        try:
            state = self._job(job_id, models)
            jobs.finish(self.store.engine, job_id, state, models=models)
            detail = ""
        except StopRequested:
            jobs.finish(self.store.engine, job_id, "abandoned", models=models, error="the worker was stopped")
            self._announce(job_id)
            raise
        except Exception as exc:  # the job ends in error; the worker lives on to the next check
            logger.exception("learning job %d failed", job_id)
            detail = f"{type(exc).__name__}: {exc}"
            jobs.finish(self.store.engine, job_id, "error", models=models, error=detail[:2000])
            state = "error"
        finally:
            stop.set()
            beat.join(5)
        self._announce(job_id)
        return JobOutcome(job_id, state, reasons, detail)

    def _job(self, job_id: int, models: dict[str, Any]) -> str:
        from cloud.learning.golden import freeze
        from cloud.review.export import export_verified

        folder = self.work_dir / "jobs" / f"job-{job_id}"
        golden = latest_golden(self.store)
        if golden is None:  # the first job: hold a golden set out before anything trains
            golden = freeze(
                self.store,
                self.crop_store,
                self.taxonomy,
                self.learning.golden,
                self.work_dir / "golden",
                created_by=f"seamline learn run (job {job_id})",
            )
            logger.info(
                "learning job %d: froze golden set %s (%d garments)",
                job_id,
                golden.sha256[:12],
                golden.garments,
            )
        until = utcnow()
        data = folder / "data"
        for fmt in ("coco", "jsonl"):
            export_verified(self.store.engine, self.crop_store, self.taxonomy, data / fmt, fmt, until=until)
        data_sha = folder_sha256(data)
        jobs.update(
            self.store.engine, job_id, data_sha256=data_sha, data_until=until, golden_sha256=golden.sha256
        )
        ctx = GateContext(
            self.store, self.crop_store, self.taxonomy, self.learning, self.cloud.routing, self.work_dir
        )
        passed = True
        for name in self.learning.train.models:
            entry = models[name]
            champion = self.registry.alias_version(name, "champion")
            entry.update(state="training", champion=champion)
            jobs.update(self.store.engine, job_id, models=models)
            self._announce(job_id)
            command = (
                f"seamline learn run (job {job_id}): {name} from champion {champion or 'none'} "
                f"on {data_sha[:12]}"
            )
            model_dir = self._train(name, folder, data, champion, golden.path, command)
            version = register_trained(
                self.registry,
                name,
                model_dir,
                data_sha256=data_sha,
                command=command,
                data_until=until.isoformat(),
            )
            entry.update(state="gating", version=version.version)
            jobs.update(self.store.engine, job_id, models=models)
            result, report = run_gate(self.registry, ctx, name, version.version, out=folder / "gate" / name)
            entry.update(
                state="passed" if result.passed else "failed",
                gate="pass" if result.passed else "fail",
                failing=[c.label for c in result.failing],
                report=str(report),
            )
            jobs.update(self.store.engine, job_id, models=models, report=str(folder / "gate"))
            passed = passed and result.passed
        return "passed" if passed else "failed"

    def _train(
        self, name: str, folder: Path, data: Path, champion: str | None, golden: str, command: str
    ) -> Path:
        from cloud.learning.classifier_training import train_classifier
        from cloud.learning.detector_training import train_detector

        settings = dict(getattr(self.learning.train, name))
        out = folder / "train" / name
        start: dict[str, Any] = {}
        if champion is not None:
            weights = self.registry.download(name, champion, folder / "champion" / name)  # type: ignore[arg-type]
            if (weights / "config.json").is_file():  # resume from the champion's weights
                start = {"init": str(weights)} if name == "detector" else {"base": str(weights)}
            else:  # e.g. a detector registered as its ONNX export only: nothing to resume from
                logger.warning(
                    "%s champion v%s has no trainable weights (only an export); training from the configured "
                    "start instead",
                    name,
                    champion,
                )
        source = data / "coco" if name == "detector" else data / "jsonl" / "crops.jsonl"
        cfg = train_config(name, settings, data=source, out_dir=out, golden=golden, **start)
        trainer = train_detector if name == "detector" else train_classifier
        return trainer(cfg, command=command, show_progress=False).model_dir

    # -- plumbing -----------------------------------------------------------------------------------------
    def _heartbeat(self, job_id: int, stop: threading.Event) -> None:
        while not stop.wait(HEARTBEAT_S):
            try:
                jobs.update(self.store.engine, job_id)
            except sa.exc.SQLAlchemyError:
                logger.warning("learning job %d: heartbeat not recorded", job_id, exc_info=True)

    def _announce(self, job_id: int) -> None:
        if self.publish is None:
            return
        payload = jobs.job_event(jobs.job(self.store.engine, job_id), self.config.site.site_id)
        self.publish(json.dumps(payload))
