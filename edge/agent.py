"""The edge agent: source -> detector -> crops -> spool/uplink, and verdicts -> line commands.

Threads: the source fills a bounded buffer; the detection loop empties it; the uplink drains the spool; paho's
network thread delivers verdicts; the fail-safe timer diverts each garment whose deadline passes without a
verdict, on a thread that does nothing else. Everything a garment needs to get its one line command (its
deadline, the command itself) is in SQLite before it matters, so the agent can be killed at any point and
restarted without losing or doubling a command; on restart, garments left undecided are settled before the
detector loads.

The agent says ``online`` on ``edge/availability`` only while it can inspect: the detector is warm and
every camera delivers frames. A camera that is reconnecting turns it ``offline`` until frames flow again
(``edge/status`` says which camera and why); one that gives up ends the run with ``source_error`` set, so
``seamline edge run`` exits 1 and systemd restarts it.

A garment the agent drops without inspecting it (the detector fell behind the camera, or the edge could not
process it) is still diverted to review, and a small record of the drop goes through the spool to the cloud,
so the cloud's audit trail counts every garment, not only those with crops.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

from edge.config import EdgeConfig
from edge.crops import make_crops, view_crops
from edge.detectors import DetectorRuntime, build_detector
from edge.detectors.release import DetectorSlot, ReleaseManager, Running
from edge.linecontrol.controller import LineController, VerdictOutcome
from edge.linecontrol.ledger import CommandLedger, DecidedCommand
from edge.linecontrol.mqtt_link import MqttCommandSink, verdict_listener
from edge.metrics import EdgeMetrics
from edge.sources import CapturedGarment, GarmentBuffer, GarmentSource, ItemIds, build_source
from edge.sources.base import CameraState, SourceState
from edge.uplink.client import Uplink, insecure_channel_factory, tls_channel_factory
from edge.uplink.convert import dropped_message, garment_message
from edge.uplink.spool import RecordKind, Spool, SpoolFull
from seamline import __version__
from seamline.clock import utcnow
from seamline.comms.mqtt import MqttBus
from seamline.config.models import SeamlineConfig
from seamline.contract.messages import (
    CameraReport,
    DetectorReport,
    EdgeStatus,
    ModelVersions,
    SpoolStatus,
    UplinkStatus,
    Verdict,
    VerdictTimestamps,
)
from seamline.contract.mqtt import LineTopics
from seamline.domain import Decision, LineAction, Priority, Route
from seamline.inspection.v1 import inspection_pb2 as pb
from seamline.sampling import sampled

logger = logging.getLogger(__name__)
PRUNE_INTERVAL_S = 600.0


class EdgeAgent:
    """One agent for one camera station. ``start()``, then ``run()`` until the source ends or ``stop()``.

    Args:
        config: the whole configuration (site, MQTT, gRPC, storage).
        edge: its ``edge:`` section.
        source: where garments come from; default: the one ``edge.source`` describes.
        load_detector: builds the detector (not warmed up); default: the runtime ``edge.detector`` describes.
        heartbeat: called from the detection loop at least every 0.2 s while it runs (and while ``drain``
            waits): the systemd watchdog's ping.
    """

    def __init__(
        self,
        config: SeamlineConfig,
        edge: EdgeConfig,
        *,
        source: GarmentSource | None = None,
        load_detector: Callable[[], DetectorRuntime] | None = None,
        heartbeat: Callable[[], None] | None = None,
    ) -> None:
        self.config = config
        self.edge = edge
        site = config.site
        self.site_id, self.line_id, self.station_id = site.site_id, site.line_id, site.station_id
        self.agent_id = edge.agent_id or f"{self.site_id}-{self.line_id}-{self.station_id}"
        self.topics = LineTopics(config.mqtt.topic_root, self.site_id, self.line_id)
        channel_factory = self._channel_factory()  # first: a bad certificate file is exit 2, nothing opened
        # Next, for the same reason: a camera option this machine cannot honour (GStreamer) is exit 2.
        self.source = source or build_source(edge.source, ItemIds(self.line_id, self.station_id))
        self.source_error: BaseException | None = None  # why the source stopped early (a camera gave up)
        self._heartbeat = heartbeat or (lambda: None)
        self._ready = False  # the detector is warm and the threads run
        self._available: bool | None = None  # what edge/availability says now
        self._availability_lock = threading.Lock()
        self._counts_due = threading.Event()
        self._expired = self._set_aside = 0
        self._last_status: dict | None = None
        self.metrics = EdgeMetrics()
        data_dir = config.storage.data_dir
        spool_path = edge.spool.path if edge.spool.path.is_absolute() else data_dir / edge.spool.path
        self.spool = Spool(
            spool_path,
            max_items=edge.spool.max_items,
            max_bytes=edge.spool.max_bytes,
            full_policy=edge.spool.full_policy,
        )
        self.ledger = CommandLedger(spool_path.with_name("commands.db"))
        self.bus = MqttBus(
            config.mqtt,
            client_id=f"{config.mqtt.client_id_prefix}-edge-{self.agent_id}",
            availability_topic=self.topics.edge_availability,
        )
        margin = edge.timing.actuation_margin_s
        self.sink = MqttCommandSink(
            self.bus,
            self.topics,
            on_published=self.ledger.mark_published,
            on_sent=self._count_command,
            actuation_margin_s=margin,
        )
        self.controller = LineController(self.ledger, self.sink, actuation_margin_s=margin)
        self.uplink = Uplink(
            self.spool,
            channel_factory,
            pb.AgentHello(
                agent_id=self.agent_id,
                site_id=self.site_id,
                line_id=self.line_id,
                software_version=__version__,
                contract_version="v1",
            ),
            edge.uplink,
            on_refused=self._refused,
            on_set_aside=lambda item_id, reason: self._counts_due.set(),
        )
        self.buffer = GarmentBuffer(edge.buffer_capacity, edge.drop_strategy)
        self._load_detector = load_detector or (lambda: build_detector(edge.detector, warm_up=False))
        self.slot: DetectorSlot | None = None  # the runtimes detecting: stable, and a release on trial
        self._recent_views: deque[list] = deque(maxlen=edge.release.smoke_frames)  # a release's smoke test
        self.releases: ReleaseManager | None = None
        if edge.release.public_key is not None:
            state_dir = edge.release.state_dir or spool_path.parent / "releases"
            self.releases = ReleaseManager(
                edge.release,
                Path(state_dir),
                site_id=self.site_id,
                line_id=self.line_id,
                build=self._build_release,
                frames=lambda: list(self._recent_views),
                on_change=lambda: self._counts_due.set(),
            )
        self.captured_at: dict[str, datetime] = {}
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.metrics_port: int | None = None
        self.processed = 0

    def _channel_factory(self):  # type: ignore[no-untyped-def]
        grpc_config = self.config.grpc
        if grpc_config.tls is not None:
            return tls_channel_factory(
                grpc_config.cloud_address,
                grpc_config.tls,
                max_message_bytes=grpc_config.max_message_bytes,
                keepalive_s=self.edge.uplink.keepalive_s,
            )
        logger.warning(
            "gRPC to %s is PLAINTEXT: set grpc.tls (ca_file, cert_file, key_file) for mutual TLS",
            grpc_config.cloud_address,
        )
        return insecure_channel_factory(
            grpc_config.cloud_address,
            max_message_bytes=grpc_config.max_message_bytes,
            keepalive_s=self.edge.uplink.keepalive_s,
        )

    # lifecycle --------------------------------------------------------------------------------------------

    def start(self) -> None:
        """Resume unfinished work and keep every deadline, then load and warm the detector; report online.

        Loading and warming the detector takes seconds (about 8 on a Jetson), so everything that does not need
        it comes first: commands a killed run decided but never got acknowledged go out again, garments whose
        deadline passed while the agent was down are diverted, the live ones get their fail-safe timers, and
        verdicts and the spool flow again.
        """
        self.bus.subscribe(
            self.topics.verdicts,
            verdict_listener(self.controller, self.site_id, self.line_id, self._verdict_outcome),
        )
        self.bus.start()  # paho queues what is published before the connection is up
        # Commands decided before a crash and never acknowledged go out again, same ids (the PLC dedupes).
        resent = self.controller.resend_unpublished()
        if resent:
            logger.info("re-sent %d line command(s) left unacknowledged by the previous run", resent)
        diverted = self.controller.start()
        if diverted:
            logger.warning("diverted %d garment(s) whose deadline passed while the agent was down", diverted)
        self.prune()  # at start; then every PRUNE_INTERVAL_S (the gauges thread)
        self.uplink.start()
        pending = None
        if self.releases is not None:
            stable, pending = self.releases.startup(self._load_detector)
        else:
            stable = Running(self._load_detector(), None, None)
        stable.runtime.warm_up(batch_sizes=(1, 2, 4))
        self.slot = DetectorSlot(stable, self.edge.release, self.edge.timing.budget_s * 1000)
        if self.releases is not None:
            self.releases.attach(self.slot, pending)
            self.releases.start()
            self.bus.subscribe(self.topics.detector_releases, self.releases.on_message)
        if self.edge.metrics_port is not None:
            self.metrics_port = self.metrics.serve(self.edge.metrics_host, self.edge.metrics_port)
        self.source.on_change(self._source_changed)
        for target, name in (
            (self._source_loop, "source"),
            (self._gauges_loop, "gauges"),
        ):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)
        self._ready = True
        self._source_changed()  # the cameras' first states into the metrics; online if they deliver already
        logger.info(
            "edge agent %s ready: detector %s, budget %.2f s per garment, spool %d waiting",
            self.agent_id,
            self.slot.active.version,
            self.edge.timing.budget_s,
            len(self.spool),
        )

    def run(self) -> None:
        """Detect until the source ends (or ``stop()``); returns once the buffer is empty."""
        while not self._stop.is_set():
            self._heartbeat()
            try:
                garment = self.buffer.get(timeout=0.2)
            except Exception:
                continue
            if garment is None:
                break
            try:
                self.process(garment)
            except Exception as exc:
                logger.exception(
                    "could not process garment; diverting it to review", extra={"item_id": garment.item_id}
                )
                command = self.controller.settle(
                    garment.item_id, LineAction.DIVERT_REVIEW, "edge_error"
                ) or self.ledger.command_for(garment.item_id)
                # A garment passed at the edge (nothing detected) was inspected: only record the others.
                if command is not None and command.cause != "no_detection":
                    self._record_drop(
                        garment, "edge_error", f"could not process the garment: {exc!r}", command.action
                    )

    def drain(self, timeout: float) -> bool:
        """Wait until every garment has its command and the spool is empty (for tests and the demo)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._heartbeat()
            counts = self.ledger.counts()
            if counts["waiting"] == 0 and counts["unpublished"] == 0 and len(self.spool) == 0:
                return True
            time.sleep(0.05)
        return False

    def stop(self) -> None:
        """Stop the source, leave the last status (a camera that gave up stays on record), say offline, close
        everything."""
        self._stop.set()
        self.source.stop()
        self.uplink.stop()
        self.controller.stop()
        with self._availability_lock:
            self._ready, self._available = False, False  # from here on only this says offline
        self._publish_status(self.spool.depth()[0], force=True)
        self.bus.set_available(False)
        self.bus.stop()
        for thread in self._threads:
            thread.join(5)
        if self.releases is not None:
            self.releases.stop()
        if self.slot is not None:
            self.slot.close()
        self.spool.close()
        self.ledger.close()

    # the pipeline -----------------------------------------------------------------------------------------

    def _source_changed(self) -> None:
        """The source or one of its cameras changed state (on the source's thread)."""
        for camera in self.source.cameras():
            self.metrics.record_camera(camera)
        self._refresh_availability()

    def _refresh_availability(self) -> None:
        """Publish ``online`` while the agent can inspect garments, ``offline`` while it cannot."""
        with self._availability_lock:
            available = self._ready and not self._stop.is_set() and self.source.delivering
            if available == self._available:
                return
            self._available = available
            self.bus.set_available(available)
        if available:
            logger.info("edge agent %s online: its source delivers", self.agent_id)
        elif self._ready:
            trouble = self.source.state in (SourceState.RECONNECTING, SourceState.FAILED)
            (logger.warning if trouble else logger.info)(
                "edge agent %s offline: its %s source is %s (cameras: %s)",
                self.agent_id,
                self.source.kind,
                self.source.state.value,
                ", ".join(f"{c.camera_id} {c.state.value}" for c in self.source.cameras()) or "none",
            )

    def _source_loop(self) -> None:
        skipped = 0
        try:
            for garment in self.source.garments():
                # Start the deadline clock at capture: even a garment dropped later gets its fail-safe
                # command.
                self.controller.track(
                    garment.item_id, self.station_id, self._deadline(garment.captured_at).timestamp()
                )
                self.captured_at[garment.item_id] = garment.captured_at
                self.metrics.garments.inc()
                dropped = self.buffer.put(garment)
                if dropped is not None:
                    self.metrics.garments_dropped.inc()
                    logger.warning(
                        "detector behind: dropped a garment (it will be diverted at its deadline)",
                        extra={"item_id": dropped.item_id},
                    )
                    self._record_drop(
                        dropped,
                        "detector_behind",
                        "detector behind the camera: dropped as the oldest of "
                        f"{self.edge.buffer_capacity} garments waiting for it",
                    )
                if self.source.skipped > skipped:
                    self.metrics.frames_skipped.inc(self.source.skipped - skipped)
                    skipped = self.source.skipped
        except Exception as exc:  # garments() logged it with its trace; the CLI turns it into exit 1
            self.source_error = exc
        finally:
            self.buffer.put(None)

    @property
    def detector(self) -> DetectorRuntime | None:
        """The runtime most garments are detected with now (None until it is loaded)."""
        return self.slot.active.runtime if self.slot is not None else None

    def _build_release(self, onnx: Path) -> DetectorRuntime:
        """A runtime like the configured one for a released detector.onnx."""
        config = self.edge.detector
        if config.type == "onnxruntime":
            return build_detector(config.model_copy(update={"model": onnx}), warm_up=False)
        if config.type == "tensorrt":
            from edge.export.tensorrt_export import cached_engine

            engine = cached_engine(onnx, Path(config.engine).parent / "engines")
            return build_detector(config.model_copy(update={"engine": engine}), warm_up=False)
        raise ValueError(f"detector releases are ONNX: the {config.type} runtime cannot run one")

    def process(self, garment: CapturedGarment) -> None:
        """Detect, crop, and either pass locally or spool for the cloud."""
        assert self.slot is not None
        running = self.slot.for_garment(garment.item_id)
        detector = running.runtime
        started = time.perf_counter()
        views = list(garment.views)
        try:
            detections = detector.detect(views)
        except Exception:
            self.slot.observe(garment.item_id, running, False, time.perf_counter() - started)
            raise
        detect_s = time.perf_counter() - started
        self.slot.observe(garment.item_id, running, True, detect_s)
        self._recent_views.append(views)
        self.metrics.detect_seconds.observe(detect_s)
        self.metrics.frames.inc(len(views))
        self.metrics.detections.inc(sum(len(d) for d in detections))
        crops = make_crops(views, detections, detector.label_names, self.edge.crops)
        crops_s = time.perf_counter() - started - detect_s
        deadline_at = self._deadline(garment.captured_at)
        self.processed += 1
        if not crops:
            top_score = max((d.top_score for d in detections), default=0.0)
            self._pass_locally(garment, detector, top_score, detect_s, deadline_at)
            if sampled(garment.item_id, self.edge.audit.passed_share, "passed"):
                self._spool_passed_sample(garment, detector, [d.top_score for d in detections], deadline_at)
            return
        message = garment_message(
            item_id=garment.item_id,
            site_id=self.site_id,
            line_id=self.line_id,
            station_id=self.station_id,
            captured_at=garment.captured_at,
            deadline_at=deadline_at,
            view_sizes=[v.shape[:2] for v in views],
            camera_ids=list(garment.camera_ids),
            crops=crops,
            detector_version=detector.meta.version,
            edge_timings_ms={
                "wait": max(0.0, (utcnow() - garment.captured_at).total_seconds() - detect_s - crops_s)
                * 1000,
                "detect": detect_s * 1000,
                "crops": crops_s * 1000,
            },
        )
        try:
            self.spool.put(garment.item_id, message.SerializeToString(), deadline_at=deadline_at.timestamp())
        except SpoolFull as exc:
            logger.error("%s; diverting to review", exc, extra={"item_id": garment.item_id})
            self.controller.settle(garment.item_id, LineAction.DIVERT_REVIEW, "edge_error")
            self._record_drop(garment, "edge_error", f"could not spool the garment: {exc}")
            return
        self.metrics.crops.inc(len(crops))
        self.metrics.crop_bytes.inc(sum(len(c.jpeg) for c in crops))
        self.uplink.notify()
        timings = message.edge_timings_ms
        logger.info(
            "spooled for the cloud: %d crop(s) from %d view(s); wait %.0f ms, detect %.0f ms, crops %.0f ms",
            len(crops),
            len(views),
            timings["wait"],
            timings["detect"],
            timings["crops"],
            extra={"item_id": garment.item_id},
        )

    def _deadline(self, captured_at: datetime) -> datetime:
        """When a garment captured at ``captured_at`` reaches the diverter."""
        return captured_at + timedelta(seconds=self.edge.timing.budget_s)

    def _record_drop(
        self,
        garment: CapturedGarment,
        reason: str,
        detail: str,
        line_action: LineAction = LineAction.DIVERT_REVIEW,
    ) -> None:
        """Spool the record of a garment dropped without inspection, for the cloud's audit trail.

        ``line_action`` is the garment's line command: divert_review for a dropped garment, at its deadline
        or at once. A garment already spooled keeps its garment record (the spool dedupes by item id). When
        even this small record cannot be spooled (spool full, disk error), the drop stays in the ledger and
        the log only.
        """
        message = dropped_message(
            item_id=garment.item_id,
            site_id=self.site_id,
            line_id=self.line_id,
            station_id=self.station_id,
            captured_at=garment.captured_at,
            deadline_at=self._deadline(garment.captured_at),
            dropped_at=utcnow(),
            reason=reason,
            detail=detail,
            line_action=line_action,
        )
        try:
            self.spool.put(garment.item_id, message.SerializeToString(), RecordKind.DROPPED)
        except SpoolFull as exc:
            logger.error(
                "%s; the cloud will not hear of this dropped garment", exc, extra={"item_id": garment.item_id}
            )
            return
        except Exception:  # the record is for the audit trail: never let it stop the camera or the detector
            logger.exception(
                "could not spool the record of a dropped garment", extra={"item_id": garment.item_id}
            )
            return
        self.uplink.notify()

    def _pass_locally(
        self,
        garment: CapturedGarment,
        detector: DetectorRuntime,
        top_score: float,
        detect_s: float,
        deadline_at: datetime,
    ) -> None:
        """Nothing found: the edge decides pass itself, publishes that verdict and commands pass."""
        now = utcnow()
        verdict = Verdict(
            item_id=garment.item_id,
            site_id=self.site_id,
            line_id=self.line_id,
            station_id=self.station_id,
            source="edge",
            final=True,
            decision=Decision.PASS,
            route=Route.AUTO,
            priority=Priority.NONE,
            # Not the seed's flat 1.0: how far the best candidate stayed below the threshold.
            confidence=round(1.0 - top_score, 6),
            models=ModelVersions(detector=detector.meta.version),
            timings_ms={
                "detect": detect_s * 1000,
                "total": (now - garment.captured_at).total_seconds() * 1000,
            },
            timestamps=VerdictTimestamps(
                captured_at=garment.captured_at, decided_at=now, deadline_at=deadline_at
            ),
        )
        # For the record, on the edge's own verdict topic: edges never publish on the cloud's.
        self.controller.settle(garment.item_id, LineAction.PASS, "no_detection", verdict.verdict_id)
        self.bus.publish(self.topics.edge_verdicts, verdict.to_json(), qos=1)
        self.metrics.local_passes.inc()
        logger.info(
            "nothing detected (top score %.3f): passed at the edge; detect %.0f ms",
            top_score,
            detect_s * 1000,
            extra={"item_id": garment.item_id},
        )

    def _spool_passed_sample(
        self,
        garment: CapturedGarment,
        detector: DetectorRuntime,
        top_scores: list[float],
        deadline_at: datetime,
    ) -> None:
        """An audit sample of a garment passed here: its views, downscaled, go to the cloud for a blind review
        (GARMENT_PURPOSE_AUDIT_PASSED), so the defects the detector misses are counted. The pass stands; a
        sample that cannot be spooled is only logged."""
        audit = self.edge.audit
        crops = view_crops(list(garment.views), top_scores, audit.view_max_side, audit.jpeg_quality)
        message = garment_message(
            item_id=garment.item_id,
            site_id=self.site_id,
            line_id=self.line_id,
            station_id=self.station_id,
            captured_at=garment.captured_at,
            deadline_at=deadline_at,
            view_sizes=[v.shape[:2] for v in garment.views],
            camera_ids=list(garment.camera_ids),
            crops=crops,
            detector_version=detector.meta.version,
            purpose=pb.GARMENT_PURPOSE_AUDIT_PASSED,
        )
        try:
            self.spool.put(garment.item_id, message.SerializeToString())  # no deadline: backlog, not live
        except Exception as exc:  # the pass is given; a lost sample only thins the measurement
            logger.warning(
                "audit sample of a passed garment not spooled: %s", exc, extra={"item_id": garment.item_id}
            )
            return
        self.metrics.passed_audit_samples.inc()
        self.uplink.notify()

    # callbacks ----------------------------------------------------------------------------------------------

    def _refused(self, item_id: str, code: str, reason: str) -> None:
        self.controller.settle(item_id, LineAction.DIVERT_REVIEW, "refused")

    def _verdict_outcome(self, verdict: Verdict, outcome: VerdictOutcome) -> None:
        captured = self.captured_at.pop(verdict.item_id, None)
        if captured is not None and outcome in (VerdictOutcome.COMMANDED, VerdictOutcome.LATE):
            self.metrics.verdict_latency.observe((utcnow() - captured).total_seconds())
        if outcome is VerdictOutcome.LATE:
            self.metrics.late_verdicts.inc()

    def _count_command(self, command: DecidedCommand) -> None:
        self.metrics.commands.labels(command.action.value, command.cause).inc()
        missed = command.cause == "deadline_missed"
        if missed:
            self.metrics.deadline_misses.inc()
        if self.slot is not None:
            self.slot.commanded(command.item_id, missed=missed)

    def prune(self) -> tuple[int, int]:
        """Forget what is past ``edge.spool.retention_h``: settled commands in the ledger, poison garments in
        the spool. Returns (ledger rows, spool records) removed. At start and every ``PRUNE_INTERVAL_S``."""
        older_than = time.time() - self.edge.spool.retention_h * 3600
        pruned = self.ledger.prune(older_than), self.spool.prune_set_aside(older_than)
        if any(pruned):
            logger.info("pruned %d settled line command(s) and %d set-aside garment(s)", *pruned)
        return pruned

    def _gauges_loop(self) -> None:
        last_prune, last_counts = time.monotonic(), 0.0  # start() pruned already
        while not self._stop.is_set():
            if time.monotonic() - last_prune > PRUNE_INTERVAL_S:
                self.prune()
                last_prune = time.monotonic()
            if self._counts_due.is_set() or time.monotonic() - last_counts > 30:  # whole-table counts
                self._counts_due.clear()
                self._expired = self.ledger.counts()["expired"]
                self._set_aside = len(self.spool.set_aside_items())
                self.metrics.commands_expired.set(self._expired)
                self.metrics.spool_set_aside.set(self._set_aside)
                last_counts = time.monotonic()
            # Capture times only serve the verdict-latency metric; forget garments whose verdict never came.
            horizon = utcnow() - timedelta(seconds=self.edge.timing.budget_s + 600)
            for item_id, captured in list(self.captured_at.items()):
                if captured < horizon:
                    self.captured_at.pop(item_id, None)
            count, size = self.spool.depth()
            self.metrics.spool_depth.set(count)
            self.metrics.spool_bytes.set(size)
            self.metrics.uplink_connected.set(1 if self.uplink.stats.connected else 0)
            self._publish_status(count)
            self._stop.wait(1.0)

    def status(self, waiting: int) -> EdgeStatus:
        """The agent's health for ``edge/status``: the link to the cloud, the spool, what needs a person."""
        stats = self.uplink.stats
        problems = []
        if stats.refused_agent:
            problems.append(
                f"the cloud refuses this agent ({stats.last_error}): check its site/line ids, agent id and "
                "client certificate against the cloud's configuration"
            )
        elif not stats.connected:
            problems.append(f"no link to the cloud: {stats.last_error or 'connecting'}")
        if self._set_aside:
            problems.append(
                f"{self._set_aside} garment(s) set aside: the cloud kept refusing them (see the agent's log)"
            )
        cameras = self.source.cameras()
        for camera in cameras:
            where = f"camera {camera.camera_id} ({camera.url})"
            if camera.state is CameraState.RECONNECTING:
                problems.append(
                    f"{where} is reconnecting: {camera.last_error} ({camera.failures} failure(s) in a row); "
                    "no garment is inspected meanwhile"
                )
            elif camera.state is CameraState.FAILED:
                problems.append(
                    f"{where} gave up: {camera.last_error}; the agent stops (its supervisor restarts it)"
                )
        return EdgeStatus(
            agent_id=self.agent_id,
            site_id=self.site_id,
            line_id=self.line_id,
            station_id=self.station_id,
            uplink=UplinkStatus(
                connected=stats.connected,
                refused=stats.refused_agent,
                last_error=stats.last_error[:1000] or None,
            ),
            spool=SpoolStatus(waiting=waiting, set_aside=self._set_aside),
            commands_expired=self._expired,
            detector=self._detector_report(),
            cameras=tuple(
                CameraReport(
                    camera_id=c.camera_id,
                    url=c.url[:2000],
                    state=c.state.value,
                    failures=c.failures,
                    reconnects=c.reconnects,
                    last_error=c.last_error[:1000] if c.last_error else None,
                )
                for c in cameras
            ),
            problems=tuple(p[:1000] for p in problems),
        )

    def _detector_report(self) -> DetectorReport | None:
        if self.slot is None:
            return None
        release, releases = self.slot.release, self.releases
        return DetectorReport(
            version=self.slot.active.version,
            serial=self.slot.active.serial,
            release=release.version if release else None,
            release_share=release.manifest.share if release and release.manifest else None,
            on_probation=self.slot.on_probation,
            last_refusal=(releases.last_refusal or "")[:1000] or None if releases else None,
            last_revert=(releases.last_revert or "")[:1000] or None if releases else None,
        )

    def _publish_status(self, waiting: int, *, force: bool = False) -> None:
        """Retained on ``edge/status`` whenever anything but the time changes (and after a reconnect, which
        re-publishes nothing by itself: the broker keeps the last one); ``force``: even if nothing did."""
        status = self.status(waiting)
        key = status.model_dump(exclude={"updated_at"})
        if (force or key != self._last_status) and self.bus.connected:
            self.bus.publish(self.topics.edge_status, status.to_json(), retain=True)
            self._last_status = key
