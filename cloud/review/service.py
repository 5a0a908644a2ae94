"""The review console's service: queue actions with their MQTT side effects, and live queue updates.

Routes (console/app.py) call these methods in a worker thread. Every state change is committed to the audit
store first and announced afterwards: review events (update when an item is taken or returned, end when it is
decided) and the garment's final verdict. A final verdict is marked published when the broker acknowledges it;
one that is not (broker down, crash) is published again on every (re)connect, at the next start, and by a
background sweep; one still in paho's hands (it re-sends those itself) is not handed over twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from datetime import timedelta

from cloud.config import CloudConfig
from cloud.publishing.publisher import VerdictPublisher
from cloud.review.auth import Reviewers
from cloud.review.config import ReviewConfig
from cloud.review.decision import HumanDecision
from cloud.review.live import QueueWatch
from cloud.review.metrics import ReviewMetrics
from cloud.review.queue import DecisionResult, ReviewItem, ReviewQueue
from cloud.storage.audit import AuditStore
from cloud.storage.crop_store import CropStore, crop_store_from_url
from seamline.comms.mqtt import MqttBus
from seamline.config.models import SeamlineConfig
from seamline.contract.messages import ReviewEvent, Verdict
from seamline.contract.mqtt import cloud_availability_topic, every_line_topic, topic_level_of

logger = logging.getLogger(__name__)
SWEEP_S = 15.0


class ReviewService:
    """Everything behind the console for one deployment."""

    def __init__(self, config: SeamlineConfig, cloud: CloudConfig, review: ReviewConfig) -> None:
        self.config = config
        self.review = review
        self.learning = cloud.learning
        data_dir = config.storage.data_dir
        self.audit = AuditStore.from_url(cloud.audit_store_url(data_dir), migrate=cloud.migrate_on_start)
        self.crop_store: CropStore = crop_store_from_url(cloud.crop_store, base=data_dir / "cloud")
        self.taxonomy = config.load_taxonomy()
        self.queue = ReviewQueue(
            self.audit.engine, self.taxonomy, lease=timedelta(minutes=review.lease_minutes)
        )
        self.reviewers = Reviewers(self.audit.engine, session_ttl=timedelta(hours=review.session_hours))
        self.watch = QueueWatch()
        self.metrics = ReviewMetrics(self.audit.engine)
        root = config.mqtt.topic_root
        self._root = root
        instance = topic_level_of(f"{socket.gethostname()}-{review.port}")  # one per console replica
        self.bus = MqttBus(
            config.mqtt,
            client_id=f"{config.mqtt.client_id_prefix}-review-{instance}"[:64],
            availability_topic=cloud_availability_topic(root, "review", instance),
        )
        self.publisher = VerdictPublisher(self.bus, root)
        self._sweeper: asyncio.Task | None = None

    # lifecycle ---------------------------------------------------------------------------------------------

    async def start(self) -> None:
        self.watch.bind(asyncio.get_running_loop())
        self.bus.subscribe(every_line_topic(self._root, "reviews"), lambda *_: self.watch.changed())
        # at start and after every reconnect: what the broker never acked
        self.bus.on_connect(self._republish)
        self.bus.start()
        self._sweeper = asyncio.create_task(self._sweep(), name="review-sweep")
        self.bus.set_available(True)

    async def stop(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
        self.bus.set_available(False)
        self.bus.stop()
        self.audit.engine.dispose()

    async def _sweep(self) -> None:
        while True:
            await asyncio.sleep(SWEEP_S)
            try:
                await asyncio.to_thread(self.expire)
                await asyncio.to_thread(self._republish, timedelta(seconds=SWEEP_S))
            except Exception:
                logger.exception("review sweep failed; retrying in %.0f s", SWEEP_S)

    # queue actions (blocking: call in a thread) -------------------------------------------------------------

    def take_next(self, reviewer_id: str) -> ReviewItem | None:
        item, expired = self.queue.take_next(reviewer_id)
        self.metrics.lease_expiries.inc(len(expired))
        for back in expired:
            self._event(back, "update")
        if item is not None:
            self._event(item, "update")
        self.watch.changed()
        return item

    def release(self, reviewer_id: str, item_id: str) -> ReviewItem:
        item = self.queue.release(reviewer_id, item_id)
        self._event(item, "update")
        self.watch.changed()
        return item

    def decide(self, reviewer_id: str, item_id: str, decision: HumanDecision) -> DecisionResult:
        result = self.queue.decide(reviewer_id, item_id, decision)
        # The decision is committed: whatever happens to publishing now, the reviewer's answer is success, and
        # the sweep publishes an unacknowledged verdict again.
        try:
            self._publish_verdict(result.verdict)
            self._event(result.item, "end", decision=decision.decision, verdict_id=result.verdict.verdict_id)
        except Exception:
            logger.exception(
                "publishing the final verdict failed; the sweep retries it", extra={"item_id": item_id}
            )
        self.watch.changed()
        return result

    def expire(self) -> list[ReviewItem]:
        expired = self.queue.expire_leases()
        self.metrics.lease_expiries.inc(len(expired))
        for item in expired:
            self._event(item, "update")
        if expired:
            self.watch.changed()
        return expired

    # MQTT ---------------------------------------------------------------------------------------------------

    def _event(self, item: ReviewItem, kind: str, **extra: str) -> None:
        event = ReviewEvent(
            type=kind,
            review_id=item.item_id,
            item_id=item.item_id,
            site_id=item.site_id,
            line_id=item.line_id,  # type: ignore[arg-type]
            status=item.status,
            priority=item.priority,
            reviewer_id=item.claimed_by,
            **extra,  # type: ignore[arg-type]
        )
        self.publisher.publish_review_event(event)

    def _publish_verdict(self, verdict: Verdict) -> None:
        item_id = verdict.item_id
        self.publisher.publish(verdict, on_acked=lambda: self.queue.mark_published(item_id))

    def _republish(self, older_than: timedelta = timedelta(0)) -> None:
        """Publish final verdicts the broker has not acknowledged. Paho keeps and re-sends what it was given
        across reconnects, so a verdict still in its hands is not handed over again (no pile of duplicates
        while the broker is down)."""
        if not self.bus.connected:
            return
        in_flight = self.publisher.in_flight()
        pending = [v for v in self.queue.unpublished(older_than=older_than) if v.verdict_id not in in_flight]
        for verdict in pending:
            self._publish_verdict(verdict)
        if pending:
            logger.info("republished %d final verdict(s) not yet acknowledged by the broker", len(pending))
