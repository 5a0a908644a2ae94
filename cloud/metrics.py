"""Prometheus metrics of the cloud service (one registry per service, so tests can run several)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

# Seconds: a tiny model on CPU answers in ~0.1-1 s, Qwen2.5-VL-7B on a GPU in ~0.2-2 s per crop.
_LATENCY_BUCKETS = (0.05, 0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 6.4, 12.8, 25.6)


class CloudMetrics:
    """What an operator watches to know every accepted garment gets its verdict out."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.garments_accepted = Counter(
            "seamline_cloud_garments_accepted", "Garments stored and acknowledged", registry=r
        )
        self.verdicts_recorded = Counter(
            "seamline_cloud_verdicts_recorded", "Verdicts recorded in the audit store", registry=r
        )
        self.verdicts_published = Counter(
            "seamline_cloud_verdicts_published", "Verdicts the broker acknowledged", registry=r
        )
        self.verdict_publish_refused = Counter(
            "seamline_cloud_verdict_publish_refused",
            "Verdict publishes the broker refused (e.g. its ACL)",
            registry=r,
        )
        self.verdicts_unpublished = Gauge(
            "seamline_cloud_verdicts_unpublished",
            "Verdicts recorded and held by this replica but not yet acknowledged by the broker",
            registry=r,
        )
        self.classify_failures = Counter(
            "seamline_cloud_classify_failures", "Garments whose classification failed (retried)", registry=r
        )
        self.garments_refused = Counter(
            "seamline_cloud_garments_refused",
            "Garments (and drop records) refused at the ingress, by refusal code",
            ["code"],
            registry=r,
        )
        self.queue_depth = Gauge(
            "seamline_cloud_queue_depth", "Garments waiting for a classification worker", registry=r
        )
        self.verdicts = Counter(
            "seamline_cloud_verdicts",
            "Verdicts recorded, by route and decision",
            ["route", "decision"],
            registry=r,
        )
        self.classify_seconds = Histogram(
            "seamline_cloud_classify_seconds",
            "Time to classify a garment (all its crops)",
            registry=r,
            buckets=_LATENCY_BUCKETS,
        )
        self.classifier_request_seconds = Histogram(
            "seamline_cloud_classifier_request_seconds",
            "Classifier requests answered, by server",
            ["server"],
            registry=r,
            buckets=_LATENCY_BUCKETS,
        )
        self.classifier_errors = Counter(
            "seamline_cloud_classifier_errors",
            "Classifier requests that failed in transport, timed out or got 429/5xx, by server",
            ["server"],
            registry=r,
        )
        self.oldest_unfinished_age = Gauge(
            "seamline_cloud_oldest_unfinished_age_seconds",
            "Age of the oldest stored garment whose verdict is not yet published (every replica's)",
            registry=r,
        )
        self.garments_taken_over = Counter(
            "seamline_cloud_garments_taken_over",
            "Unfinished garments the sweep took over (no live replica held them)",
            registry=r,
        )
        self.verdicts_superseded = Counter(
            "seamline_cloud_verdicts_superseded",
            "Classifications dropped because the garment already had a verdict (the stored one is published)",
            registry=r,
        )
        self.audit_samples = Counter(
            "seamline_cloud_audit_samples",
            "Automatically settled garments also queued for a blind review (audit samples)",
            registry=r,
        )
        self.passed_audit_samples = Counter(
            "seamline_cloud_passed_audit_samples",
            "Garments the edge passed (nothing detected) whose views came, sampled, for a blind review",
            registry=r,
        )
        self.leases_lost = Counter(
            "seamline_cloud_leases_lost",
            "Garment leases this replica found taken over or finished when it renewed them",
            registry=r,
        )
        self.garments_held = Gauge(
            "seamline_cloud_garments_held", "Unfinished garments this replica holds", registry=r
        )
        self.mqtt_connected = Gauge(
            "seamline_cloud_mqtt_connected", "1 while the verdict broker connection is up", registry=r
        )
        self.publishing_ok = Gauge(
            "seamline_cloud_publishing_ok", "0 while verdicts cannot be published at all", registry=r
        )
        self.rollout_revision = Gauge(
            "seamline_cloud_rollout_revision",
            "The classifier rollout revision this replica applies (seamline rollout classifier status)",
            registry=r,
        )
        self.rollout_garments = Counter(
            "seamline_cloud_rollout_garments",
            "Garments classified, by the version that decided them and its arm (champion or candidate)",
            ["version", "arm"],
            registry=r,
        )
        self.rollout_fallbacks = Counter(
            "seamline_cloud_rollout_fallbacks",
            "Canary garments the candidate could not answer at all, decided by the champion instead",
            registry=r,
        )
        self.shadow_garments = Counter(
            "seamline_cloud_shadow_garments",
            "Garments also classified by the shadow candidate (stored, never routing)",
            registry=r,
        )
        self.shadow_skipped = Counter(
            "seamline_cloud_shadow_skipped",
            "Shadow classifications skipped because the shadow's backlog was full (the line comes first)",
            registry=r,
        )

        self.publishing_ok.set(1)
        self._server = None

    def classifier_request(self, server: str, seconds: float, ok: bool) -> None:
        """The classifier's server pool reports each request here."""
        if ok:
            self.classifier_request_seconds.labels(server=server).observe(seconds)
        else:
            self.classifier_errors.labels(server=server).inc()

    def serve(self, address: str) -> int:
        """Expose /metrics over HTTP at ``host:port``; returns the bound port."""
        host, _, port = address.rpartition(":")
        self._server, _thread = start_http_server(int(port), addr=host or "127.0.0.1", registry=self.registry)
        return int(self._server.server_port)

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
