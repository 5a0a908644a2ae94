"""The cloud service: ingress -> classifier -> routing -> audit -> MQTT verdicts (and the review queue).

One asyncio loop. The ingress acks a garment once it is stored, under this replica's lease, and hands it to
the work queue (live garments first); workers classify its crops concurrently, route it, record the verdict
(queue it for review if people must decide) in the audit store, and only then publish it (QoS 1); the
broker's ack marks it published and ends the lease.

The invariant: every garment acknowledged as stored reaches a published verdict without a restart. A sweep
(every ``sweep_interval_s``) keeps it:

* it renews the leases of the garments this replica holds;
* it retries, with exponential backoff, a classification that failed or a verdict the broker refused;
* it takes over unfinished garments that no live replica holds (their lease ran out: a replica died, or a
  stream was cut in a way that left a garment stored and unqueued) and classifies or publishes them.

A replica started again under its own ``replica_id`` frees what its previous run held and takes it back at
once. While no verdict can be published at all (broker unreachable or refusing) for ``publish_grace_s``, the
service says so in the log at ERROR, in its metrics and as NOT_SERVING on gRPC health.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
import uuid
from dataclasses import dataclass
from datetime import timedelta

import grpc

from cloud.classifiers.rollout import ClassifierRollout
from cloud.classifiers.vllm_backend import RegionClassification
from cloud.config import CloudConfig
from cloud.ingress.server import create_health_server, create_server, set_serving
from cloud.ingress.servicer import InspectionServicer
from cloud.ingress.tls import ServerTls
from cloud.metrics import CloudMetrics
from cloud.publishing.publisher import VerdictPublisher
from cloud.publishing.verdicts import build_verdict
from cloud.records import GarmentRecord
from cloud.routing.audit import sampled
from cloud.routing.policy import RoutingPolicy
from cloud.routing.regions import region_results
from cloud.storage import rollouts
from cloud.storage.audit import AuditStore, garment_record, recorded_verdict
from cloud.storage.crop_store import CropStore, crop_store_from_url
from cloud.storage.retention import Retention
from cloud.worklist import LiveFirstQueue
from seamline.clock import utcnow
from seamline.comms.mqtt import MqttBus
from seamline.config.models import SeamlineConfig
from seamline.contract.messages import ModelVersions, ReviewEvent, Verdict, VerdictTimestamps
from seamline.contract.mqtt import cloud_availability_topic, topic_level_of
from seamline.domain import Decision, Priority, Route

logger = logging.getLogger(__name__)


def default_replica_id(listen_address: str) -> str:
    """``host:port`` of the gRPC listener: stable across restarts of the same replica. A listener on port 0
    has no stable name, so it gets a random one (its garments wait out the lease after a crash)."""
    port = listen_address.rpartition(":")[2]
    suffix = port if port not in ("", "0") else f"0-{uuid.uuid4().hex[:8]}"
    return f"{socket.gethostname()}:{suffix}"


def _warn_about_transport(tls: ServerTls | None, address: str) -> None:
    if tls is None:
        logger.warning(
            "gRPC on %s is PLAINTEXT and unauthenticated: anyone who reaches the port can send garments "
            "for any served line. Set grpc.tls (cert_file, key_file and ca_file for mutual TLS).",
            address,
        )
    elif not tls.mutual:
        logger.warning(
            "gRPC on %s uses TLS without client certificates: edges are not authenticated. Set "
            "grpc.tls.ca_file to require them (mutual TLS).",
            address,
        )
    else:
        logger.info("gRPC on %s: mutual TLS, each stream bound to its client certificate's identity", address)


@dataclass
class _Retry:
    due: float  # time.monotonic()
    attempts: int


class CloudService:
    """Everything the cloud runs for a set of lines."""

    def __init__(
        self, config: SeamlineConfig, cloud: CloudConfig, *, classifier_base_url: str | None = None
    ) -> None:
        self.config = config
        self.cloud = cloud
        self.replica_id = cloud.replica_id or default_replica_id(config.grpc.listen_address)
        data_dir = config.storage.data_dir
        self.crop_store: CropStore = crop_store_from_url(cloud.crop_store, base=data_dir / "cloud")
        self.audit = AuditStore.from_url(cloud.audit_store_url(data_dir), migrate=cloud.migrate_on_start)
        self.taxonomy = config.load_taxonomy()
        classifier_config = cloud.classifier
        if classifier_base_url:
            classifier_config = classifier_config.model_copy(update={"base_url": classifier_base_url})
        self.classifier_config = classifier_config
        self.policy = RoutingPolicy(
            cloud.routing, reject_at=self.taxonomy.reject_at_severity, normal_id=self.taxonomy.normal.id
        )
        self.bus = MqttBus(
            config.mqtt,
            # One client id and availability topic per replica: replicas sharing an id would take each other's
            # connection over in turn, and one replica's last will would mark the others offline.
            client_id=f"{config.mqtt.client_id_prefix}-cloud-{topic_level_of(self.replica_id)}"[:64],
            availability_topic=cloud_availability_topic(
                config.mqtt.topic_root, "classifier", topic_level_of(self.replica_id)
            ),
        )
        self.publisher = VerdictPublisher(self.bus, config.mqtt.topic_root)
        # Checked here, before anything starts: a bad certificate file is a configuration error (exit 2).
        self.tls = ServerTls(config.grpc.tls) if config.grpc.tls else None
        self.metrics = CloudMetrics()
        self.queue = LiveFirstQueue()
        self.published = 0
        self.classified = 0
        self.metrics_port: int | None = None
        self.health_server: grpc.aio.Server | None = None
        self.health_port: int | None = None
        # Unfinished garments this replica holds the lease of, and which of them wait for a retry.
        self._held: set[str] = set()
        self._unpublished: set[str] = set()  # held, verdict recorded, not yet acknowledged by the broker
        self._retries: dict[str, _Retry] = {}
        self._failures: dict[str, int] = {}
        # Publishing health: since when the broker has been unreachable / refusing every verdict.
        self._down_since: float | None = None
        self._refusing_since: float | None = None
        self._last_refusal = ""
        self.publishing_problem: str | None = None
        self._workers: list[asyncio.Task] = []
        self._sweeper: asyncio.Task | None = None
        self._retention_task: asyncio.Task | None = None
        self.retention = Retention(self.audit.engine, self.crop_store)
        self._loop: asyncio.AbstractEventLoop | None = None
        self.port = 0

    # lifecycle --------------------------------------------------------------------------------------------

    async def start(self) -> int:
        """Connect, take back unfinished work, start serving; returns the gRPC port."""
        self._loop = asyncio.get_running_loop()
        seeded = await asyncio.to_thread(
            rollouts.seed_from_config, self.audit.engine, self.cloud.rollout.state()
        )
        if seeded is not None and seeded.set_by == "config" and seeded.config_digest:
            logger.info("classifier rollout set from the configuration: revision %d", seeded.revision)
        self.rollout = ClassifierRollout(
            self.classifier_config,
            self.taxonomy,
            read_state=lambda: rollouts.current(self.audit.engine),
            store_shadow=self._store_shadow,
            observe=self.metrics.classifier_request,
            max_shadow_in_flight=self.cloud.rollout.max_shadow_in_flight,
            on_event=self._rollout_event,
        )
        await self.rollout.refresh()
        self.bus.start()
        grpc_config = self.config.grpc
        servicer = InspectionServicer(
            crop_store=self.crop_store,
            audit=self.audit,
            limits=self.cloud.limits,
            lines=self.cloud.served_lines(),
            on_accepted=self._accepted,
            server_id=self.replica_id,
            lease_s=self.cloud.lease_s,
            bind_identity=self.tls is not None and self.tls.mutual,
            on_refused=lambda code: self.metrics.garments_refused.labels(code=code).inc(),
        )
        self.servicer = servicer
        self.server, self.port, self.health = create_server(
            grpc_config.listen_address,
            servicer,
            max_message_bytes=grpc_config.max_message_bytes,
            credentials=self.tls.credentials() if self.tls else None,
            max_connection_age_s=grpc_config.max_connection_age_s,
            max_connection_age_grace_s=grpc_config.max_connection_age_grace_s,
        )
        _warn_about_transport(self.tls, grpc_config.listen_address)
        if self.cloud.health_address:
            self.health_server, self.health_port = create_health_server(
                self.cloud.health_address, self.health
            )
            await self.health_server.start()  # NOT_SERVING until the main server serves
        if self.cloud.metrics_address:
            self.metrics_port = self.metrics.serve(self.cloud.metrics_address)
        freed = await asyncio.to_thread(self.audit.release, self.replica_id)
        if freed:
            logger.info("taking back %d unfinished garment(s) held by this replica's previous run", freed)
        await self.sweep()
        self._workers = [
            asyncio.create_task(self._work(), name=f"classify-{i}")
            for i in range(self.cloud.max_garments_in_flight)
        ]
        self._sweeper = asyncio.create_task(self._sweep_forever(), name="sweep")
        self._retention_task = asyncio.create_task(self._retention_forever(), name="retention")
        await self.server.start()
        await set_serving(self.health, True)
        self.bus.set_available(True)
        logger.info(
            "cloud service %s serving on port %d (classifier %s)",
            self.replica_id,
            self.port,
            self.classifier_config.base_url,
        )
        return self.port

    async def stop(self, grace: float | None = None) -> None:
        """NOT_SERVING, drain the streams, finish queued work, then close and free the leases."""
        grace = self.cloud.shutdown_grace_s if grace is None else grace
        for task in (self._sweeper, self._retention_task):
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        await set_serving(self.health, False)
        await self.server.stop(grace)
        if self.health_server is not None:
            await self.health_server.stop(0)
        try:
            await asyncio.wait_for(self.queue.join(), timeout=grace)
        except asyncio.TimeoutError:  # not the builtin TimeoutError before Python 3.11
            logger.warning(
                "%d garment(s) still queued at shutdown; another replica or the next start takes them over",
                self.queue.qsize(),
            )
        for task in self._workers:
            task.cancel()
        await asyncio.gather(*self._workers, return_exceptions=True)
        await self.rollout.drain_shadows(timeout=min(grace, 5.0))
        await self.rollout.aclose()
        self.bus.set_available(False)
        self.bus.stop()
        await asyncio.to_thread(self.audit.release, self.replica_id)
        self.metrics.close()
        self.audit.engine.dispose()

    # holding garments until their verdict is out ----------------------------------------------------------

    def _accepted(self, record: GarmentRecord) -> None:
        """Ingress stored a new garment under our lease: classify it."""
        self.metrics.garments_accepted.inc()
        self._held.add(record.item_id)
        self.queue.put_nowait(record)

    def _done(self, item_id: str) -> None:
        self._held.discard(item_id)
        self._unpublished.discard(item_id)
        self._retries.pop(item_id, None)
        self._failures.pop(item_id, None)

    def _retry_later(self, item_id: str) -> float:
        """Schedule another try of the garment's next step with exponential backoff; returns the delay."""
        attempts = self._failures.get(item_id, 0) + 1
        self._failures[item_id] = attempts
        delay = min(self.cloud.retry_max_s, self.cloud.retry_initial_s * 2 ** (attempts - 1))
        self._retries[item_id] = _Retry(time.monotonic() + delay, attempts)
        return delay

    async def _continue(self, item_id: str) -> None:
        """Take a held garment's next step from what the audit store says: publish its verdict if it has one,
        else classify it."""
        try:
            row = await asyncio.to_thread(self.audit.garment, item_id)
            if row is None or row["status"] == "published":
                self._done(item_id)
                return
            verdict = recorded_verdict(row)
            if verdict is not None:
                self._publish(verdict)
            else:
                self.queue.put_nowait(await asyncio.to_thread(garment_record, row, self.crop_store.get))
        except Exception as exc:
            delay = self._retry_later(item_id)
            logger.warning(
                "could not reload garment (%s); retrying in %.0f s", exc, delay, extra={"item_id": item_id}
            )

    async def sweep(self) -> None:
        """Renew leases, retry what is due, take over garments nobody holds, check publishing."""
        if self._held:
            lost = await asyncio.to_thread(
                self.audit.renew, self.replica_id, list(self._held), lease_s=self.cloud.lease_s
            )
            # Its lease ran out (this replica stalled past ``lease_s``) and another replica has it now, or it
            # is published: let go. Work still queued for it finds the verdict already written.
            let_go = lost - self._unpublished
            for item_id in let_go:
                self._done(item_id)
            if let_go:
                self.metrics.leases_lost.inc(len(let_go))
                logger.warning(
                    "%d garment lease(s) ran out: another replica took them over or finished them",
                    len(let_go),
                )
        now = time.monotonic()
        for item_id in [i for i, retry in self._retries.items() if retry.due <= now]:
            del self._retries[item_id]
            await self._continue(item_id)
        room = 4 * self.cloud.max_garments_in_flight - self.queue.qsize()
        if room > 0:
            claimed = await asyncio.to_thread(
                self.audit.claim, self.replica_id, lease_s=self.cloud.lease_s, limit=room
            )
            taken = [item_id for item_id in claimed if item_id not in self._held]
            for item_id in taken:
                self._held.add(item_id)
                await self._continue(item_id)
            if taken:
                self.metrics.garments_taken_over.inc(len(taken))
                logger.info("took over %d unfinished garment(s) that no live replica held", len(taken))
        await self._check_publishing()
        self.metrics.garments_held.set(len(self._held))
        self.metrics.verdicts_unpublished.set(len(self._unpublished))
        self.metrics.queue_depth.set(self.queue.qsize())
        oldest = await asyncio.to_thread(self.audit.oldest_unfinished)
        self.metrics.oldest_unfinished_age.set((utcnow() - oldest).total_seconds() if oldest else 0.0)

    async def _sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(self.cloud.sweep_interval_s)
            try:
                await self.sweep()
            except Exception:
                logger.exception("sweep failed; trying again in %.1f s", self.cloud.sweep_interval_s)

    async def _retention_forever(self) -> None:
        """Delete what is past ``storage.retention_days``, first at start, then every interval."""
        days = self.config.storage.retention_days
        keep = timedelta(days=days) if days is not None else None
        while True:
            try:
                await asyncio.to_thread(self.retention.sweep, keep)
            except Exception:
                logger.exception("retention sweep failed; trying again at the next interval")
            await asyncio.sleep(self.cloud.retention_sweep_interval_s)

    # the pipeline -----------------------------------------------------------------------------------------

    async def _work(self) -> None:
        while True:
            record = await self.queue.get()
            try:
                await self.process(record)
            except Exception:
                self.metrics.classify_failures.inc()
                delay = self._retry_later(record.item_id)
                logger.exception(
                    "could not process garment; retrying in %.0f s", delay, extra={"item_id": record.item_id}
                )
            finally:
                self.queue.task_done()

    async def process(self, record: GarmentRecord) -> None:
        """Classify, route, record, publish one garment."""
        if record.purpose == "audit_passed":
            await self._queue_passed_audit(record)
            return
        started = time.perf_counter()
        readings = dict(record.sensor_readings) or None
        notes = {c.operator_note for c in record.crops if c.operator_note}
        note = "; ".join(filter(None, [record.operator_note, *sorted(notes)])) or None
        classified = await self.rollout.classify_garment(
            record.item_id,
            [(c.crop_id, c.image, c.encoding) for c in record.crops],
            operator_note=note,
            sensor_readings=readings,
        )
        classify_s = time.perf_counter() - started
        self.metrics.classify_seconds.observe(classify_s)
        routing = self.policy.decide(region_results(record, classified.results))
        verdict = build_verdict(
            record,
            classified.results,
            routing,
            classifier_version=classified.version,
            prompt_version=classified.prompt_version,
            policy_version=self.cloud.routing.version,
            classify_s=classify_s,
            rollout=classified.rollout,
        )
        review_priority, review_kind = None, "routed"
        if routing.route is Route.HUMAN:
            review_priority = routing.priority.value
        elif routing.route is Route.AUTO and sampled(
            record.item_id, self.cloud.audit.share_for(record.line_id)
        ):
            review_priority, review_kind = Priority.LOW.value, "audit"  # the verdict and line command stand
        stored = await asyncio.to_thread(
            self.audit.record_verdict, verdict, review_priority=review_priority, review_kind=review_kind
        )
        if stored.verdict_id != verdict.verdict_id:
            # Another classification of this garment was recorded first (a replica that held it before its
            # lease ran out): that verdict is the garment's, ours is dropped and nothing is queued twice.
            self.metrics.verdicts_superseded.inc()
            logger.warning(
                "garment already had verdict %s (another replica classified it); publishing that one",
                stored.verdict_id,
                extra={"item_id": record.item_id},
            )
            self._publish(stored)
            return
        self.classified += 1
        self.metrics.verdicts_recorded.inc()
        self.metrics.verdicts.labels(route=verdict.route, decision=verdict.decision).inc()
        if review_kind == "audit":
            self.metrics.audit_samples.inc()
        self._publish(verdict)
        if review_priority is not None:
            self._announce_queued(record, verdict, review_priority)
        logger.info(
            "verdict %s/%s (%.3f) in %.2f s",
            routing.decision.value,
            routing.route.value,
            routing.confidence,
            classify_s,
            extra={"item_id": record.item_id},
        )

    def _store_shadow(
        self, item_id: str, version: str, revision: int, results: list[RegionClassification]
    ) -> None:
        """A shadow candidate's answers, beside the champion's verdict (on a worker thread)."""
        rows = [
            {
                "crop_id": r.crop_id,
                "type": r.answer.type if r.answer else None,
                "severity": r.answer.severity.value if r.answer and r.answer.severity else None,
                "decision": r.answer.decision.value if r.answer else None,
                "confidence": r.confidence,
                "error": r.error,
                "latency_ms": r.latency_s * 1000,
            }
            for r in results
        ]
        rollouts.record_shadow(self.audit.engine, item_id, version, revision, rows)

    def _rollout_event(self, name: str, labels: dict) -> None:
        m = self.metrics
        if name == "revision":
            m.rollout_revision.set(labels["revision"])
        elif name == "garment":
            m.rollout_garments.labels(**labels).inc()
        elif name == "fallback":
            m.rollout_fallbacks.inc()
        elif name == "shadow":
            m.shadow_garments.inc()
        elif name == "shadow_skipped":
            m.shadow_skipped.inc()

    async def _queue_passed_audit(self, record: GarmentRecord) -> None:
        """A garment the edge passed (nothing detected), sampled with its views: record the edge's decision
        as its verdict (never published: the edge's pass stands) and queue it for a blind review, low
        priority."""
        now = utcnow()
        verdict = Verdict(
            item_id=record.item_id,
            site_id=record.site_id,
            line_id=record.line_id,
            station_id=record.station_id,
            source="edge",
            final=True,
            decision=Decision.PASS,
            route=Route.AUTO,
            priority=Priority.NONE,
            confidence=round(1.0 - max(c.detector_score for c in record.crops), 6),
            models=ModelVersions(detector=record.detector_version),
            timestamps=VerdictTimestamps(captured_at=record.captured_at, decided_at=now),
        )
        await asyncio.to_thread(
            self.audit.record_verdict,
            verdict,
            review_priority=Priority.LOW.value,
            review_kind="passed_audit",
            publish=False,
        )
        self.metrics.passed_audit_samples.inc()
        self._done(record.item_id)
        self._announce_queued(record, verdict, Priority.LOW.value)
        logger.info(
            "passed at the edge, sampled for audit: queued for review", extra={"item_id": record.item_id}
        )

    def _announce_queued(self, record: GarmentRecord, verdict: Verdict, priority: str) -> None:
        """The review event ``new`` for a garment just queued (consoles update their queue from it)."""
        event = ReviewEvent(
            type="new",
            review_id=record.item_id,
            item_id=record.item_id,
            site_id=record.site_id,
            line_id=record.line_id,
            status="queued",
            priority=priority,
            verdict_id=verdict.verdict_id,  # type: ignore[arg-type]
        )
        self.publisher.publish_review_event(event)

    # publishing -------------------------------------------------------------------------------------------

    def _publish(self, verdict: Verdict) -> None:
        """Publish a recorded verdict; the broker's ack marks it published in the audit store, a refusal is
        retried with backoff."""
        item_id = verdict.item_id
        loop = self._loop
        assert loop is not None
        self._held.add(item_id)
        self._unpublished.add(item_id)

        def acked() -> None:  # on the MQTT network thread
            try:
                self.audit.mark_published(item_id)
            except Exception as exc:
                logger.warning(
                    "verdict published but not marked in the audit store (%s); it will be sent again", exc
                )
                loop.call_soon_threadsafe(self._retry_later, item_id)
                return
            loop.call_soon_threadsafe(self._published, item_id)

        def refused(reason: str) -> None:  # on the MQTT network thread
            loop.call_soon_threadsafe(self._refused, item_id, reason)

        self.publisher.publish(verdict, on_acked=acked, on_refused=refused)

    def _published(self, item_id: str) -> None:
        self._done(item_id)
        self.published += 1
        self.metrics.verdicts_published.inc()
        self._refusing_since = None

    def _refused(self, item_id: str, reason: str) -> None:
        self.metrics.verdict_publish_refused.inc()
        if self._refusing_since is None:
            self._refusing_since = time.monotonic()
        self._last_refusal = reason
        delay = self._retry_later(item_id)
        logger.warning(
            "the broker refused the verdict (%s); it stays unpublished and is retried in %.0f s",
            reason,
            delay,
            extra={"item_id": item_id},
        )

    async def _check_publishing(self) -> None:
        """Report NOT_SERVING (and log at ERROR) while no verdict can be published at all."""
        now = time.monotonic()
        connected = self.bus.connected
        self.metrics.mqtt_connected.set(1 if connected else 0)
        if connected:
            self._down_since = None
        elif self._down_since is None:
            self._down_since = now
        grace = self.cloud.publish_grace_s
        problem = None
        if self._down_since is not None and now - self._down_since >= grace:
            problem = f"no connection to the MQTT broker ({self.bus.last_error or 'not connected'})"
        elif self._refusing_since is not None and now - self._refusing_since >= grace:
            problem = f"the MQTT broker refuses every verdict ({self._last_refusal})"
        if problem == self.publishing_problem:
            return
        if problem is not None:
            logger.error(
                "no verdict can be published: %s; %d verdict(s) wait, the line fails safe on its deadlines; "
                "reporting NOT_SERVING",
                problem,
                len(self._unpublished),
            )
        else:
            logger.warning("verdicts are being published again; reporting SERVING")
        self.publishing_problem = problem
        self.metrics.publishing_ok.set(0 if problem else 1)
        await set_serving(self.health, problem is None)
