"""Prometheus metrics of the review console, served on its ``/metrics``.

The queue's state is read from the audit store at each scrape, so every console replica reports the same
numbers: items waiting by priority, in review, the oldest waiting item's age, decisions per reviewer (all
time). Lease expiries are counted by the process that returned the item to the queue.
"""

from __future__ import annotations

from collections.abc import Iterator

import sqlalchemy as sa
from prometheus_client import CollectorRegistry, Counter
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from cloud.storage.tables import review_decisions, review_items
from seamline.clock import utcnow

PRIORITIES = ("high", "medium", "low")


class _QueueCollector(Collector):
    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        with self.engine.connect() as conn:
            waiting = dict(
                conn.execute(
                    sa.select(review_items.c.priority, sa.func.count())
                    .where(review_items.c.status == "queued")
                    .group_by(review_items.c.priority)
                ).all()
            )
            in_review = conn.execute(
                sa.select(sa.func.count())
                .select_from(review_items)
                .where(review_items.c.status == "in_review")
            ).scalar()
            oldest = conn.execute(
                sa.select(sa.func.min(review_items.c.queued_at)).where(review_items.c.status == "queued")
            ).scalar()
            decisions = conn.execute(
                sa.select(review_decisions.c.reviewer_id, sa.func.count()).group_by(
                    review_decisions.c.reviewer_id
                )
            ).all()
        depth = GaugeMetricFamily(
            "seamline_review_queue_depth", "Items waiting for a reviewer, by priority", labels=["priority"]
        )
        for priority in PRIORITIES:
            depth.add_metric([priority], waiting.get(priority, 0))
        yield depth
        yield GaugeMetricFamily(
            "seamline_review_in_review", "Items a reviewer holds now", value=in_review or 0
        )
        yield GaugeMetricFamily(
            "seamline_review_oldest_waiting_seconds",
            "Age of the oldest item waiting for a reviewer (0 when none waits)",
            value=(utcnow() - oldest).total_seconds() if oldest else 0.0,
        )
        per_reviewer = CounterMetricFamily(
            "seamline_review_decisions", "Decisions taken, by reviewer", labels=["reviewer"]
        )
        for reviewer_id, count in decisions:
            per_reviewer.add_metric([reviewer_id], count)
        yield per_reviewer


class ReviewMetrics:
    """The console's registry: the queue read from the store, and this process's lease expiries."""

    def __init__(self, engine: sa.Engine) -> None:
        self.registry = CollectorRegistry()
        self.registry.register(_QueueCollector(engine))
        self.lease_expiries = Counter(
            "seamline_review_lease_expiries",
            "Items whose reviewer went quiet past the lease: returned to the queue",
            registry=self.registry,
        )
