"""Prometheus metrics of the edge agent (one registry per agent, so tests can run several)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from edge.sources.base import CameraState, CameraStatus


class EdgeMetrics:
    """What an operator watches on the line."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.frames = Counter("seamline_edge_frames", "Camera views processed", registry=r)
        self.garments = Counter("seamline_edge_garments", "Garments captured", registry=r)
        self.frames_skipped = Counter(
            "seamline_edge_frames_skipped", "Unreadable frames or files skipped", registry=r
        )
        self.garments_dropped = Counter(
            "seamline_edge_garments_dropped", "Garments dropped because the detector fell behind", registry=r
        )
        self.detections = Counter("seamline_edge_detections", "Candidate regions above threshold", registry=r)
        self.crops = Counter("seamline_edge_crops", "Crops sent to the cloud", registry=r)
        self.crop_bytes = Counter(
            "seamline_edge_crop_bytes", "Encoded crop bytes sent to the cloud", registry=r
        )
        self.local_passes = Counter(
            "seamline_edge_local_passes", "Garments passed at the edge (nothing detected)", registry=r
        )
        self.passed_audit_samples = Counter(
            "seamline_edge_passed_audit_samples",
            "Garments passed at the edge whose views were spooled, sampled, for a blind review",
            registry=r,
        )
        self.commands = Counter(
            "seamline_edge_line_commands", "Line commands issued", ["action", "cause"], registry=r
        )
        self.deadline_misses = Counter(
            "seamline_edge_deadline_misses", "Garments diverted because no verdict came in time", registry=r
        )
        self.late_verdicts = Counter(
            "seamline_edge_late_verdicts", "Verdicts that arrived after the command", registry=r
        )
        self.spool_depth = Gauge("seamline_edge_spool_depth", "Garments waiting in the spool", registry=r)
        self.spool_bytes = Gauge("seamline_edge_spool_bytes", "Bytes waiting in the spool", registry=r)
        self.spool_set_aside = Gauge(
            "seamline_edge_spool_set_aside",
            "Poison garments set aside in the spool (refused by the cloud while it took others)",
            registry=r,
        )
        self.commands_expired = Gauge(
            "seamline_edge_commands_expired",
            "Line commands never acknowledged whose garment passed the diverter (not sent again)",
            registry=r,
        )
        self.uplink_connected = Gauge(
            "seamline_edge_uplink_connected", "1 while the gRPC stream is up", registry=r
        )
        self.camera_state = Gauge(
            "seamline_edge_camera_state",
            "1 for the state each live camera is in (connecting, running, reconnecting, failed, closed), "
            "0 for the others",
            ["camera", "state"],
            registry=r,
        )
        self.camera_reconnects = Counter(
            "seamline_edge_camera_reconnects",
            "Reopen attempts of a live camera that could not be opened or whose stream dropped or stalled",
            ["camera"],
            registry=r,
        )
        self._reconnects_seen: dict[str, int] = {}
        self.detect_seconds = Histogram(
            "seamline_edge_detect_seconds",
            "Detector time per garment (all views)",
            registry=r,
            buckets=(0.005, 0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56),
        )
        self.verdict_latency = Histogram(
            "seamline_edge_verdict_latency_seconds",
            "Capture to verdict received",
            registry=r,
            buckets=(0.05, 0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 6.4, 12.8),
        )

    def record_camera(self, camera: CameraStatus) -> None:
        """Set one camera's state gauges and bring its reconnect counter up to the source's count."""
        for state in CameraState:
            self.camera_state.labels(camera.camera_id, state.value).set(1 if camera.state is state else 0)
        counter = self.camera_reconnects.labels(camera.camera_id)
        new = camera.reconnects - self._reconnects_seen.get(camera.camera_id, 0)
        if new > 0:
            counter.inc(new)
            self._reconnects_seen[camera.camera_id] = camera.reconnects

    def serve(self, host: str, port: int) -> int:
        """Expose /metrics over HTTP; returns the bound port."""
        server, _thread = start_http_server(port, addr=host, registry=self.registry)
        return int(server.server_port)
