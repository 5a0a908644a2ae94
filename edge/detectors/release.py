"""Detector releases on the edge: fetch, verify, smoke-test, swap between garments, revert on its own.

A release is announced, retained, on ``<root>/<site>/releases/detector`` (seamline/release.py says what is in
it and how it is signed). The agent's ``ReleaseManager`` handles each announcement on a thread of its own
while the line keeps running on the version it has:

1. the manifest: signed by the configured key, this site, not expired, a serial above the running one (or a
   signed rollback), this line among its lines;
2. the artefact: fetched over HTTP(S) (a presigned S3 URL, or a plant-internal server), its SHA-256 and size
   the manifest's, unpacked, the folder's own signature checked;
3. the runtime: built like the configured one with the release's detector.onnx (for ``tensorrt``, the engine
   is built from it and cached by ONNX digest, TensorRT version and GPU), warmed up, and run on the frames of
   the last garments the line saw: it must answer each within the latency budget;
4. the swap: the detection loop takes the new runtime before its next garment, so no garment waits. With a
   share, only that share of the line's garments (by garment id) go to the release.

Then a probation of ``probation_garments``: the release is reverted on its own (the previous runtime, still
loaded, takes over at the next garment) when ``max_errors`` of its garments fail in a row, its p95 detect time
exceeds ``max_detect_ms``, or the share of garments that missed their deadline rises above
``max_deadline_miss_share``. A crash that kills the process is caught at the next start: a release still on
probation after ``max_boots`` starts is dropped before it runs again. Every refusal and revert is logged,
counted and reported in ``edge/status`` with its reason; the agent keeps running the version it has.

What runs persists in ``<state_dir>/active.json``, so a restart runs the released version (its signature is
checked again) and knows the serial it must not go below.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import Field

from edge.detectors.base import DetectorRuntime
from seamline.config.base import StrictModel
from seamline.config.paths import ConfigPath
from seamline.release import ReleaseManifest, ReleaseRefused, check_manifest, unpack_artefact, verify_path
from seamline.sampling import sampled

logger = logging.getLogger(__name__)


class ReleaseConfig(StrictModel):
    """``edge.release``: take detector releases announced for this site (off without a public key)."""

    public_key: ConfigPath | None = Field(
        default=None,
        title="Public key",
        description="PEM public key (elliptic curve) releases must be signed with; unset: releases are "
        "ignored and the configured detector runs.",
    )
    state_dir: ConfigPath | None = Field(
        default=None,
        title="State folder",
        description="Released detectors and what runs now (default: releases/ beside the spool).",
    )
    fetch_timeout_s: float = Field(default=120.0, gt=0, title="Fetch timeout", description="Per download.")
    max_artefact_bytes: int = Field(
        default=2 << 30, ge=1, title="Largest artefact", description="Bigger artefacts are refused."
    )
    smoke_frames: int = Field(
        default=8, ge=1, title="Smoke-test frames", description="Recent frames a release is tried on."
    )
    probation_garments: int = Field(
        default=200, ge=1, title="Probation", description="Garments a new release is watched for."
    )
    max_errors: int = Field(
        default=3, ge=1, title="Errors in a row", description="Failed garments in a row that revert it."
    )
    max_detect_ms: float | None = Field(
        default=None,
        gt=0,
        title="Detect budget (ms)",
        description="p95 detect time (smoke test and probation) above this reverts; default: half the "
        "line's budget per garment.",
    )
    max_deadline_miss_share: float = Field(
        default=0.05,
        ge=0,
        le=1,
        title="Deadline misses",
        description="Share of its probation garments that missed their deadline above which it reverts.",
    )
    max_boots: int = Field(
        default=2, ge=1, title="Starts on probation", description="Starts a release may take to finish it."
    )


@dataclass
class _Probation:
    garments: int = 0
    errors_in_a_row: int = 0
    misses: int = 0
    detect_s: list[float] = field(default_factory=list)


@dataclass
class Running:
    """A detector runtime and the release it came from (None: the configured detector)."""

    runtime: DetectorRuntime
    manifest: ReleaseManifest | None
    folder: Path | None

    @property
    def version(self) -> str:
        return self.runtime.meta.version

    @property
    def serial(self) -> int:
        return self.manifest.serial if self.manifest else 0


class DetectorSlot:
    """The runtimes a line detects with: the stable one and, during a release, the release (which takes all
    garments, or its share). ``for_garment`` is called by the detection loop before each garment."""

    def __init__(self, stable: Running, config: ReleaseConfig, budget_ms: float) -> None:
        self.stable = stable
        self.release: Running | None = None
        self.config = config
        self.max_detect_ms = config.max_detect_ms or budget_ms / 2
        self._probation: _Probation | None = None
        self._lock = threading.Lock()
        self._retire: list[DetectorRuntime] = []
        self.on_revert: Callable[[Running, str], None] = lambda running, why: None
        self.on_settled: Callable[[Running], None] = lambda running: None
        self._garment_runtime: dict[str, Running] = {}

    @property
    def active(self) -> Running:
        """What most garments get now: the release once it takes all of them, else the stable one."""
        with self._lock:
            release = self.release
        return release if release is not None and release.manifest.share >= 1.0 else self.stable

    def install(self, release: Running) -> None:
        """From the release thread: the next garments are the release's."""
        with self._lock:
            if self.release is not None:  # a newer release over one still on probation: drop the older
                self._retire.append(self.release.runtime)
            self.release = release
            self._probation = _Probation()

    def for_garment(self, item_id: str) -> Running:
        """Which runtime detects this garment (the detection loop's thread)."""
        with self._lock:
            retire, self._retire = self._retire, []
            release = self.release
        for runtime in retire:
            runtime.close()
        if release is None:
            return self.stable
        share = release.manifest.share
        if share >= 1.0 or sampled(item_id, share, f"detector:{release.version}"):
            self._garment_runtime[item_id] = release
            return release
        return self.stable

    def observe(self, item_id: str, running: Running, ok: bool, detect_s: float) -> None:
        """A garment's outcome on the runtime that detected it; reverts or settles a release on probation."""
        with self._lock:
            probation = self._probation
            if running is not self.release or probation is None:
                return
            probation.garments += 1
            probation.errors_in_a_row = 0 if ok else probation.errors_in_a_row + 1
            if ok:
                probation.detect_s.append(detect_s)
        why = self._judge(probation)
        if why is not None:
            self.revert(why)
        elif probation.garments >= self.config.probation_garments:
            self._settle()

    def commanded(self, item_id: str, *, missed: bool) -> None:
        """The garment got its line command; ``missed``: by the fail-safe (a late verdict)."""
        running = self._garment_runtime.pop(item_id, None)  # every command: the map holds garments in flight
        if not missed:
            return
        with self._lock:
            probation = self._probation
            if running is None or running is not self.release or probation is None:
                return
            probation.misses += 1

    def _judge(self, probation: _Probation) -> str | None:
        if probation.errors_in_a_row >= self.config.max_errors:
            return f"{probation.errors_in_a_row} garments in a row failed to detect"
        if len(probation.detect_s) >= 20:
            p95 = float(np.percentile(probation.detect_s[-100:], 95)) * 1000
            if p95 > self.max_detect_ms:
                return f"p95 detect time {p95:.0f} ms is over the budget of {self.max_detect_ms:.0f} ms"
        if (
            probation.garments >= 20
            and probation.misses / probation.garments > self.config.max_deadline_miss_share
        ):
            return (
                f"{probation.misses} of {probation.garments} garments missed their deadline "
                f"(more than {self.config.max_deadline_miss_share:.0%})"
            )
        return None

    def revert(self, why: str) -> None:
        """Go back to the stable runtime from the next garment on."""
        with self._lock:
            release, self.release, self._probation = self.release, None, None
            if release is not None:
                self._retire.append(release.runtime)
        if release is not None:
            logger.error("detector release %s (serial %d) reverted: %s", release.version, release.serial, why)
            self.on_revert(release, why)

    def _settle(self) -> None:
        """Probation passed: a release that takes every garment becomes the stable runtime."""
        with self._lock:
            release, self._probation = self.release, None
            if release is None:
                return
            if release.manifest.share >= 1.0:
                self._retire.append(self.stable.runtime)
                self.stable, self.release = release, None
        logger.info("detector release %s (serial %d) passed its probation", release.version, release.serial)
        self.on_settled(release)

    @property
    def on_probation(self) -> bool:
        with self._lock:
            return self._probation is not None

    def close(self) -> None:
        with self._lock:
            runtimes = [self.stable.runtime, *([self.release.runtime] if self.release else []), *self._retire]
            self._retire = []
        for runtime in runtimes:
            runtime.close()


def fetch(url: str, *, timeout_s: float, max_bytes: int) -> bytes:
    """GET an artefact over HTTP(S); ReleaseRefused("artefact") on failure or when it is too large."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:  # noqa: S310 (http/https only)
            data = response.read(max_bytes + 1)
    except Exception as exc:
        raise ReleaseRefused("artefact", f"could not fetch the artefact: {exc}") from exc
    if len(data) > max_bytes:
        raise ReleaseRefused(
            "artefact", f"artefact larger than edge.release.max_artefact_bytes ({max_bytes})"
        )
    return data


class ReleaseManager:
    """Takes the releases announced for this site, one at a time, on its own thread."""

    def __init__(
        self,
        config: ReleaseConfig,
        state_dir: Path,
        *,
        site_id: str,
        line_id: str,
        build: Callable[[Path], DetectorRuntime],
        frames: Callable[[], list[list[np.ndarray]]],
        on_change: Callable[[], None] = lambda: None,
    ) -> None:
        """``build(onnx_path)`` makes a runtime like the configured one for a released model; ``frames()``
        returns the views of the last garments (the smoke test's input)."""
        assert config.public_key is not None
        self.config = config
        self.public_key = Path(config.public_key)
        self.state_dir = state_dir
        self.site_id, self.line_id = site_id, line_id
        self._build = build
        self._frames = frames
        self._on_change = on_change
        self._queue: queue.Queue[bytes | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self.slot: DetectorSlot | None = None
        self.last_refusal: str | None = None
        self.last_revert: str | None = None
        self.refused: dict[str, int] = {}
        self.state_dir.mkdir(parents=True, exist_ok=True)

    # what runs, across restarts ---------------------------------------------------------------------------

    @property
    def _active_file(self) -> Path:
        return self.state_dir / "active.json"

    def _read_active(self) -> dict[str, Any]:
        try:
            return json.loads(self._active_file.read_text())
        except (OSError, ValueError):
            return {}

    def _write_active(self, data: dict[str, Any]) -> None:
        tmp = self._active_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=2))
        tmp.replace(self._active_file)

    @property
    def serial(self) -> int:
        """The highest serial this edge ran or refused to go below (0: none yet)."""
        return int(self._read_active().get("serial", 0))

    @staticmethod
    def _is_stable(entry: dict[str, Any] | None) -> bool:
        """A settled release that takes every garment: what the line runs on."""
        if not entry or entry.get("probation"):
            return False
        share = ((entry.get("manifest") or {}).get("canary") or {}).get("share")
        return share is None or share >= 1.0

    def _stable_entry(self, active: dict[str, Any]) -> dict[str, Any] | None:
        release = active.get("release")
        return release if self._is_stable(release) else active.get("previous")

    def _load(self, entry: dict[str, Any] | None) -> Running | None:
        if not entry:
            return None
        folder = Path(entry["folder"])
        try:
            verify_path(folder / "detector", self.public_key, folder / "detector.sig")
            manifest = ReleaseManifest.model_validate(entry["manifest"])
            return Running(self._build(folder / "detector" / "detector.onnx"), manifest, folder)
        except Exception as exc:
            logger.error("the released detector in %s cannot run (%s)", folder, exc)
            self.last_refusal = f"released detector {entry.get('version')} unusable at start: {exc}"
            return None

    def startup(self, configured: Callable[[], DetectorRuntime]) -> tuple[Running, Running | None]:
        """(the stable runtime, a release to put back on probation or canary) to start with.

        The stable one is the last settled release that takes every garment (its signature checked again),
        else the configured detector. A release still on probation after ``max_boots`` starts is dropped:
        it crashed the agent.
        """
        active = self._read_active()
        release = active.get("release")
        if release and release.get("probation"):
            release["boots"] = int(release.get("boots", 0)) + 1
            if release["boots"] > self.config.max_boots:
                why = f"still on probation after {release['boots'] - 1} start(s): it crashed the agent"
                logger.error("detector release %s reverted: %s", release.get("version"), why)
                self.last_revert = f"{release.get('version')}: {why}"
                self._count_refusal("crash_loop")
                active["release"], active["previous"] = active.get("previous"), None
                release = active["release"]
            self._write_active(active)
        stable = self._load(self._stable_entry(active)) or Running(configured(), None, None)
        pending = None if self._is_stable(release) else self._load(release)
        return stable, pending

    def attach(self, slot: DetectorSlot, pending: Running | None = None) -> None:
        """Watch ``slot``; ``pending`` (from ``startup``) goes back on probation or canary at once."""
        self.slot = slot
        slot.on_revert = self._reverted
        slot.on_settled = self._settled
        if pending is not None:
            slot.install(pending)

    # announcements ----------------------------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="detector-release", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._queue.put(None)
        if self._thread is not None:
            self._thread.join(10)

    def on_message(self, _topic: str, payload: bytes) -> None:
        """The MQTT callback (network thread): hand the announcement to the release thread."""
        self._queue.put(bytes(payload))

    def _loop(self) -> None:
        while (payload := self._queue.get()) is not None:
            try:
                self.handle(payload)
            except ReleaseRefused as exc:
                if exc.reason == "current":
                    continue  # the retained announcement of what runs, delivered again on reconnect
                self._count_refusal(exc.reason)
                self.last_refusal = str(exc)
                logger.error(
                    "detector release refused (%s): %s; keeping %s", exc.reason, exc, self._running()
                )
                self._on_change()
            except Exception as exc:
                self._count_refusal("error")
                self.last_refusal = f"release failed: {exc!r}"
                logger.exception("detector release failed; keeping %s", self._running())
                self._on_change()

    def _running(self) -> str:
        return self.slot.active.version if self.slot else "the configured detector"

    def _count_refusal(self, reason: str) -> None:
        self.refused[reason] = self.refused.get(reason, 0) + 1

    def handle(self, payload: bytes) -> Running | None:
        """Take one announcement (the release thread; tests call it directly)."""
        assert self.slot is not None, "attach a DetectorSlot first"
        # the highest serial taken (or reverted) so far: a reverted release is not taken again, and only a
        # signed rollback may go below it
        manifest = check_manifest(payload, self.public_key, site_id=self.site_id, current_serial=self.serial)
        if not manifest.takes(self.line_id):
            self._count_refusal("not_for_this_line")
            logger.info(
                "detector release %s (serial %d) is for lines %s, not %s: not taken",
                manifest.version,
                manifest.serial,
                manifest.canary.lines if manifest.canary else None,
                self.line_id,
            )
            return None
        logger.info(
            "detector release %s (serial %d): fetching %s",
            manifest.version,
            manifest.serial,
            manifest.artefact_url.split("?")[0],
        )
        data = fetch(
            manifest.artefact_url,
            timeout_s=self.config.fetch_timeout_s,
            max_bytes=self.config.max_artefact_bytes,
        )
        folder = self.state_dir / f"serial-{manifest.serial:06d}"
        unpack_artefact(data, manifest, self.public_key, folder)
        runtime = self._build(folder / "detector" / "detector.onnx")
        try:
            self._smoke_test(runtime)
        except ReleaseRefused:
            runtime.close()
            raise
        release = Running(runtime, manifest, folder)
        active = self._read_active()
        self._write_active(
            {
                "serial": max(manifest.serial, int(active.get("serial", 0))),
                "release": self._entry(release, probation=True),
                "previous": self._stable_entry(active),
            }
        )
        self.slot.install(release)
        self.last_refusal = None
        logger.info(
            "detector release %s (serial %d) active for %s of line %s's garments, on probation",
            manifest.version,
            manifest.serial,
            "all" if manifest.share >= 1 else f"{manifest.share:.0%}",
            self.line_id,
        )
        self._on_change()
        return release

    def _smoke_test(self, runtime: DetectorRuntime) -> None:
        """Warm it up and run it on the last garments' frames: every answer well-formed and in time."""
        frames = self._frames()[-self.config.smoke_frames :]
        if not frames:  # nothing seen yet (a line just started): a mid-grey frame of a typical size
            frames = [[np.full((720, 1280, 3), 128, dtype=np.uint8)]]
        budget = self.slot.max_detect_ms if self.slot else 1e9
        try:
            runtime.warm_up(batch_sizes=(1,))
            times = []
            for views in frames:
                started = time.perf_counter()
                detections = runtime.detect(views)
                times.append((time.perf_counter() - started) * 1000)
                if len(detections) != len(views):
                    raise ValueError(f"{len(detections)} results for {len(views)} views")
                for d in detections:
                    if not (np.all(np.isfinite(d.boxes)) and np.all(np.isfinite(d.scores))):
                        raise ValueError("non-finite boxes or scores")
        except Exception as exc:
            raise ReleaseRefused("smoke_test", f"the release failed its smoke test: {exc}") from exc
        worst = max(times)
        if worst > budget:
            raise ReleaseRefused(
                "smoke_test", f"the release took {worst:.0f} ms on a stored garment (budget {budget:.0f} ms)"
            )

    def _entry(self, running: Running, *, probation: bool) -> dict[str, Any]:
        return {
            "version": running.version,
            "folder": str(running.folder),
            "manifest": running.manifest.model_dump(mode="json") if running.manifest else None,
            "probation": probation,
            "boots": 0,
        }

    def _reverted(self, release: Running, why: str) -> None:
        self.last_revert = f"{release.version} (serial {release.serial}): {why}"
        self._count_refusal("reverted")
        active = self._read_active()
        # the serial stays: the reverted release is not taken again from its retained announcement
        stable = active.get("previous")
        self._write_active(
            {"serial": active.get("serial", release.serial), "release": stable, "previous": None}
        )
        self._on_change()

    def _settled(self, release: Running) -> None:
        active = self._read_active()
        if active.get("release"):
            active["release"]["probation"] = False
        self._write_active(active)
        self._on_change()
