"""Prometheus metrics of the cloud service (one registry per service, so tests can run several)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server


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
        self.garments_taken_over = Counter(
            "seamline_cloud_garments_taken_over",
            "Unfinished garments the sweep took over (no live replica held them)",
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

        self.publishing_ok.set(1)
        self._server = None

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
