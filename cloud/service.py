"""The cloud service: ingress -> classifier -> routing -> audit -> MQTT verdicts (and the review queue).

One asyncio loop. The ingress acks a garment once it is stored and puts it on the work queue; workers classify
its crops concurrently, route it, record the verdict (queue it for review if people must decide) in the audit
store, and only then publish it (QoS 1). A restart resumes from the audit store: verdicts recorded but not
acknowledged by the broker are published again with the same id, garments accepted but not classified are
classified.
"""

from __future__ import annotations

import asyncio
import logging
import time

from cloud.classifiers.vllm_backend import VllmClassifier
from cloud.config import CloudConfig
from cloud.ingress.server import create_server, set_serving
from cloud.ingress.servicer import InspectionServicer
from cloud.publishing.publisher import VerdictPublisher
from cloud.publishing.verdicts import build_verdict
from cloud.records import GarmentRecord
from cloud.routing.policy import RoutingPolicy
from cloud.routing.regions import region_results
from cloud.storage.audit import AuditStore, garment_record, recorded_verdict
from cloud.storage.crop_store import CropStore, crop_store_from_url
from seamline.comms.mqtt import MqttBus
from seamline.config.models import SeamlineConfig
from seamline.contract.messages import ReviewEvent, Verdict
from seamline.contract.mqtt import cloud_availability_topic
from seamline.domain import Route

logger = logging.getLogger(__name__)


class CloudService:
    """Everything the cloud runs for a set of lines."""

    def __init__(
        self, config: SeamlineConfig, cloud: CloudConfig, *, classifier_base_url: str | None = None
    ) -> None:
        self.config = config
        self.cloud = cloud
        data_dir = config.storage.data_dir
        self.crop_store: CropStore = crop_store_from_url(cloud.crop_store, base=data_dir / "cloud")
        self.audit = AuditStore.from_url(cloud.audit_url or f"sqlite:///{data_dir / 'cloud' / 'audit.db'}")
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
            client_id=f"{config.mqtt.client_id_prefix}-cloud-classifier",
            availability_topic=cloud_availability_topic(config.mqtt.topic_root, "classifier"),
        )
        self.publisher = VerdictPublisher(self.bus, config.mqtt.topic_root)
        self.queue: asyncio.Queue[GarmentRecord] = asyncio.Queue()
        self.published = 0
        self.classified = 0
        self._workers: list[asyncio.Task] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self.port = 0

    # lifecycle --------------------------------------------------------------------------------------------

    async def start(self) -> int:
        """Connect, resume unfinished work, start serving; returns the gRPC port."""
        self._loop = asyncio.get_running_loop()
        self.classifier = VllmClassifier(self.classifier_config, self.taxonomy)
        self.bus.start()
        servicer = InspectionServicer(
            crop_store=self.crop_store,
            audit=self.audit,
            limits=self.cloud.limits,
            lines=self.cloud.served_lines(),
            on_accepted=self.queue.put_nowait,
        )
        self.servicer = servicer
        self.server, self.port, self.health = create_server(
            self.config.grpc.listen_address, servicer, max_message_bytes=self.config.grpc.max_message_bytes
        )
        await self._resume()
        self._workers = [
            asyncio.create_task(self._work(), name=f"classify-{i}")
            for i in range(self.cloud.max_garments_in_flight)
        ]
        await self.server.start()
        await set_serving(self.health, True)
        self.bus.set_available(True)
        logger.info(
            "cloud service serving on port %d (classifier %s)", self.port, self.classifier_config.base_url
        )
        return self.port

    async def stop(self, grace: float | None = None) -> None:
        """NOT_SERVING, drain the streams, finish queued work, then close."""
        grace = self.cloud.shutdown_grace_s if grace is None else grace
        await set_serving(self.health, False)
        await self.server.stop(grace)
        try:
            await asyncio.wait_for(self.queue.join(), timeout=grace)
        except TimeoutError:
            logger.warning(
                "%d garment(s) still queued at shutdown; they resume on the next start", self.queue.qsize()
            )
        for task in self._workers:
            task.cancel()
        await asyncio.gather(*self._workers, return_exceptions=True)
        await self.classifier.aclose()
        self.bus.set_available(False)
        self.bus.stop()
        self.audit.engine.dispose()

    async def _resume(self) -> None:
        pending = await asyncio.to_thread(self.audit.pending, 100_000)
        for item_id in pending:
            row = await asyncio.to_thread(self.audit.garment, item_id)
            if row is None:
                continue
            verdict = recorded_verdict(row)
            if verdict is not None:
                self._publish(verdict)
            else:
                self.queue.put_nowait(await asyncio.to_thread(garment_record, row, self.crop_store.get))
        if pending:
            logger.info("resumed %d garment(s) from the audit store", len(pending))

    # the pipeline -----------------------------------------------------------------------------------------

    async def _work(self) -> None:
        while True:
            record = await self.queue.get()
            try:
                await self.process(record)
            except Exception:
                logger.exception(
                    "could not process garment; it stays pending and resumes on restart",
                    extra={"item_id": record.item_id},
                )
            finally:
                self.queue.task_done()

    async def process(self, record: GarmentRecord) -> None:
        """Classify, route, record, publish one garment."""
        started = time.perf_counter()
        readings = dict(record.sensor_readings) or None
        notes = {c.operator_note for c in record.crops if c.operator_note}
        note = "; ".join(filter(None, [record.operator_note, *sorted(notes)])) or None
        classified = await self.classifier.classify_garment(
            [(c.crop_id, c.image, c.encoding) for c in record.crops],
            operator_note=note,
            sensor_readings=readings,
        )
        classify_s = time.perf_counter() - started
        routing = self.policy.decide(region_results(record, list(classified)))
        verdict = build_verdict(
            record,
            list(classified),
            routing,
            classifier_version=self.classifier.model_version,
            prompt_version=self.classifier.prompt_version,
            policy_version=self.cloud.routing.version,
            classify_s=classify_s,
        )
        review_priority = routing.priority.value if routing.route is Route.HUMAN else None
        await asyncio.to_thread(self.audit.record_verdict, verdict, review_priority=review_priority)
        self.classified += 1
        self._publish(verdict)
        if review_priority is not None:
            event = ReviewEvent(
                type="new",
                review_id=record.item_id,
                item_id=record.item_id,
                site_id=record.site_id,
                line_id=record.line_id,
                status="queued",
                priority=review_priority,
                verdict_id=verdict.verdict_id,  # type: ignore[arg-type]
            )
            self.publisher.publish_review_event(event)
        logger.info(
            "verdict %s/%s (%.3f) in %.2f s",
            routing.decision.value,
            routing.route.value,
            routing.confidence,
            classify_s,
            extra={"item_id": record.item_id},
        )

    def _publish(self, verdict: Verdict) -> None:
        """Publish a recorded verdict; the broker's ack marks it published in the audit store."""
        item_id = verdict.item_id

        def acked() -> None:
            self.audit.mark_published(item_id)
            self.published += 1

        self.publisher.publish(verdict, on_acked=acked)
