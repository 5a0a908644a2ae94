"""The gRPC uplink: drains the spool to the cloud over one long-lived stream, live garments first, with flow
control.

* A garment is in the spool before it is sent and leaves it only on the cloud's ack (at-least-once; the cloud
  dedupes re-sends by item id).
* At most ``max_in_flight`` garments are unanswered at a time (the smaller of ours and the server's).
* Send order (``Spool.in_send_order``), chosen afresh for every free slot: live garments, whose deadline is
  more than ``live_margin_s`` away, earliest deadline first; then the backlog, whose fail-safe command is
  already out, oldest first. So after an outage the garments still on the belt are classified before the
  backlog, and a garment captured while the backlog drains overtakes it.
* A broken stream (cloud down, WAN cut, no ack within ``ack_timeout_s``) is re-opened with exponential backoff
  and jitter; every garment still in the spool is sent again, in that order.
* A refusal that the cloud marks not retryable removes the garment and reports it, so line control can divert
  it to review; a retryable one stays spooled and is re-sent after ``backoff_max_s`` while the garments after
  it go on. A garment still refused after ``poison_after_attempts`` sends (or ``poison_after_s`` in the
  spool), while the cloud acknowledged other garments since it first refused it, is a poison record: it is
  set aside in the spool (kept on disk, never sent again, pruned after the retention), logged at ERROR and
  reported. Its line command is the fail-safe divert at its deadline. While the cloud refuses everything
  (storage down), nothing is set aside: every garment waits.
* The record of a garment dropped before inspection (``GarmentDropped``) travels the same way. Line control
  diverts that garment whatever the cloud says: a refusal for good is only logged and counted, not reported.
"""

from __future__ import annotations

import logging
import queue
import random
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import grpc
from pydantic import Field

from edge.uplink.spool import RecordKind, Spool, SpooledGarment
from seamline.config.base import StrictModel
from seamline.config.models import TlsConfig
from seamline.inspection.v1 import inspection_pb2 as pb
from seamline.inspection.v1 import inspection_pb2_grpc as pb_grpc
from seamline.tls import WatchedTlsFiles

logger = logging.getLogger(__name__)


class UplinkConfig(StrictModel):
    """Behaviour of the edge -> cloud link."""

    max_in_flight: int = Field(
        default=32, ge=1, le=10_000, title="Max in flight", description="Garments sent and not yet answered."
    )
    ack_timeout_s: float = Field(
        default=10.0,
        gt=0,
        title="Ack timeout (s)",
        description="No answer for a garment this long: the stream is re-opened.",
    )
    hello_timeout_s: float = Field(
        default=10.0, gt=0, title="Hello timeout (s)", description="How long to wait for the server's hello."
    )
    backoff_initial_s: float = Field(
        default=0.2, gt=0, title="Initial backoff (s)", description="First reconnect delay."
    )
    backoff_max_s: float = Field(
        default=5.0, gt=0, title="Max backoff (s)", description="Longest reconnect delay."
    )
    keepalive_s: float = Field(
        default=10.0,
        ge=1,
        title="Keepalive (s)",
        description="HTTP/2 ping interval that detects a dead link.",
    )
    poison_after_attempts: int = Field(
        default=10,
        ge=1,
        title="Poison after attempts",
        description="A garment refused as retryable this many times, while the cloud takes others, is set "
        "aside (not sent again; its line command is the fail-safe divert).",
    )
    poison_after_s: float = Field(
        default=3600.0,
        gt=0,
        title="Poison after (s)",
        description="Likewise for a garment still refused this long after it was spooled.",
    )
    live_margin_s: float = Field(
        default=0.5,
        ge=0,
        title="Live margin (s)",
        description="A garment whose deadline is more than this away is live and sent before the backlog, "
        "earliest deadline first; closer than this, its verdict cannot come back in time.",
    )


@dataclass
class UplinkStats:
    """Counters for metrics and tests."""

    sent: int = 0
    acked: int = 0
    duplicates: int = 0
    refused: int = 0
    set_aside: int = 0
    reconnects: int = 0
    refused_agent: bool = False  # the cloud refuses this agent as configured (PERMISSION_DENIED...)
    connected: bool = False
    last_error: str = ""
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)


# Stream ends that mean the cloud will not take this agent as configured (a line it does not serve, a bad
# hello, credentials it refuses): retrying fast cannot help, so the uplink says so at ERROR and waits the
# longest backoff.
_REFUSED_AGENT = frozenset(
    {grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.UNAUTHENTICATED}
)


class _StreamBroken(Exception):
    pass


class Uplink:
    """Background sender; call ``start()``, ``notify()`` after each spool put, ``stop()`` at shutdown.

    Args:
        spool: the durable queue to drain.
        channel_factory: makes a new ``grpc.Channel`` (insecure or TLS) per connection attempt.
        hello: this agent's ``AgentHello``.
        on_refused: called with (item_id, code name, reason) for a garment refused for good.
        on_acked: called with the item id when the cloud stored a garment or a drop record.
        on_set_aside: called with (item_id, reason) when a poison record is set aside.
    """

    def __init__(
        self,
        spool: Spool,
        channel_factory: Callable[[], grpc.Channel],
        hello: pb.AgentHello,
        config: UplinkConfig | None = None,
        *,
        on_refused: Callable[[str, str, str], None] | None = None,
        on_acked: Callable[[str], None] | None = None,
        on_set_aside: Callable[[str, str], None] | None = None,
    ) -> None:
        self.spool = spool
        self.channel_factory = channel_factory
        self.hello = hello
        self.config = config or UplinkConfig()
        self.on_refused = on_refused or (lambda item_id, code, reason: None)
        self.on_acked = on_acked or (lambda item_id: None)
        self.on_set_aside = on_set_aside or (lambda item_id, reason: None)
        # item id -> the cloud's ack count when it first refused the item as retryable
        self._acks_at_refusal: dict[str, int] = {}
        self.stats = UplinkStats()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="uplink", daemon=True)
        self._thread.start()

    def notify(self) -> None:
        """A garment was spooled: send soon."""
        self._wake.set()

    def stop(self, timeout: float = 10.0) -> None:
        self._stopping.set()
        self._wake.set()
        if self._thread:
            self._thread.join(timeout)

    def _run(self) -> None:
        backoff = self.config.backoff_initial_s
        while not self._stopping.is_set():
            started = time.monotonic()
            try:
                self._session()
            except _StreamBroken as exc:
                self._record_error(str(exc))
            except grpc.RpcError as exc:
                code, refused = exc.code(), exc.code() in _REFUSED_AGENT  # type: ignore[attr-defined]
                self._record_error(f"{code.name}: {exc.details()}", refused=refused)  # type: ignore[attr-defined]
                if refused:  # only a change of configuration helps: no fast retries
                    backoff = self.config.backoff_max_s
            except Exception as exc:  # keep the uplink alive whatever happens; the spool keeps the data
                logger.exception("uplink session failed")
                self._record_error(repr(exc))
            self.stats.connected = False
            if self._stopping.is_set():
                break
            if time.monotonic() - started > 30:
                backoff = self.config.backoff_initial_s  # a long healthy session resets the backoff
            delay = backoff * random.uniform(0.5, 1.0)
            logger.info("uplink reconnecting in %.2f s", delay)
            self._stopping.wait(delay)
            backoff = min(backoff * 2, self.config.backoff_max_s)
            with self.stats.lock:
                self.stats.reconnects += 1

    def _record_error(self, message: str, *, refused: bool = False) -> None:
        self.stats.refused_agent = refused
        if message != self.stats.last_error:
            if refused:
                logger.error(
                    "the cloud refuses this agent (%s); check the agent's site/line ids and credentials "
                    "against the cloud's configuration (cloud.lines); retrying every %.0f s, garments stay "
                    "spooled and fail safe at their deadlines",
                    message,
                    self.config.backoff_max_s,
                )
            else:
                logger.warning("uplink stream down: %s", message)
        self.stats.last_error = message

    def _session(self) -> None:
        """One stream: hello, then send from the spool and process answers until something breaks."""
        outbox: queue.Queue[pb.UplinkMessage | None] = queue.Queue()

        def requests() -> Iterator[pb.UplinkMessage]:
            while True:
                message = outbox.get()
                if message is None:
                    return
                yield message

        channel = self.channel_factory()
        try:
            call = pb_grpc.InspectionServiceStub(channel).StreamGarments(requests())
            outbox.put(pb.UplinkMessage(hello=self.hello))
            answers: queue.Queue[pb.DownlinkMessage | BaseException] = queue.Queue()
            reader = threading.Thread(
                target=self._read, args=(call, answers), name="uplink-reader", daemon=True
            )
            reader.start()
            try:
                first = answers.get(timeout=self.config.hello_timeout_s)
            except queue.Empty:
                raise _StreamBroken("no server hello") from None
            if isinstance(first, BaseException):
                raise first
            if first.WhichOneof("kind") != "hello":
                raise _StreamBroken(f"expected a server hello, got {first.WhichOneof('kind')}")
            window = max(
                1, min(self.config.max_in_flight, first.hello.max_in_flight or self.config.max_in_flight)
            )
            self.stats.connected = True
            self.stats.refused_agent = False
            logger.info("uplink connected to %s (window %d)", first.hello.server_id or "cloud", window)
            self._pump(outbox, answers, window)
        finally:
            outbox.put(None)
            channel.close()

    @staticmethod
    def _read(call: Iterator[pb.DownlinkMessage], answers: queue.Queue) -> None:
        try:
            for message in call:
                answers.put(message)
            answers.put(_StreamBroken("server closed the stream"))
        except BaseException as exc:  # grpc.RpcError on disconnect
            answers.put(exc)

    def _pump(self, outbox: queue.Queue, answers: queue.Queue, window: int) -> None:
        in_flight: dict[str, float] = {}  # item id -> monotonic send time
        retry_after: dict[str, float] = {}
        while not self._stopping.is_set():
            if len(in_flight) < window:
                self._send_next(outbox, in_flight, retry_after, window)
            try:
                answer = answers.get(timeout=0.05 if not in_flight else 0.01)
            except queue.Empty:
                answer = None
            if isinstance(answer, BaseException):
                raise answer
            if answer is not None:
                kind = answer.WhichOneof("kind")
                if kind == "ack":
                    self._acked(answer.ack, in_flight)
                elif kind == "refusal":
                    self._refused(answer.refusal, in_flight, retry_after)
                continue
            if in_flight and time.monotonic() - min(in_flight.values()) > self.config.ack_timeout_s:
                raise _StreamBroken(
                    f"no answer within {self.config.ack_timeout_s:.0f} s for {len(in_flight)} garment(s)"
                )
            if not in_flight and self.spool.depth()[0] == 0:
                self._wake.wait(0.2)
                self._wake.clear()
            elif not in_flight:
                self._wake.wait(0.05)
                self._wake.clear()

    def _send_next(
        self, outbox: queue.Queue, in_flight: dict[str, float], retry_after: dict[str, float], window: int
    ) -> None:
        """Fill the free slots of the window from the spool, in send order."""
        live_after = time.time() + self.config.live_margin_s  # deadlines are wall-clock, like the ledger's
        now = time.monotonic()
        for item_id in [i for i, due in retry_after.items() if due <= now]:
            del retry_after[item_id]
        skip = in_flight.keys() | retry_after.keys()  # in flight, or waiting out a retryable refusal
        for garment in self.spool.in_send_order(live_after, limit=window - len(in_flight), skip=skip):
            outbox.put(_uplink_message(garment))
            self.spool.mark_sent(garment.item_id)
            in_flight[garment.item_id] = now
            with self.stats.lock:
                self.stats.sent += 1

    def _acked(self, ack: pb.GarmentAck, in_flight: dict[str, float]) -> None:
        in_flight.pop(ack.item_id, None)
        self._acks_at_refusal.pop(ack.item_id, None)
        self.spool.ack(ack.item_id)
        with self.stats.lock:
            self.stats.acked += 1
            self.stats.duplicates += int(ack.duplicate)
        self.on_acked(ack.item_id)

    def _refused(
        self, refusal: pb.GarmentRefusal, in_flight: dict[str, float], retry_after: dict[str, float]
    ) -> None:
        in_flight.pop(refusal.item_id, None)
        code = pb.RefusalCode.Name(refusal.code)
        if refusal.retryable:
            if self._is_poison(refusal.item_id):
                self._set_aside(refusal.item_id, f"{code}: {refusal.reason}")
                return
            logger.warning(
                "cloud refused garment for now (%s): %s",
                code,
                refusal.reason,
                extra={"item_id": refusal.item_id},
            )
            retry_after[refusal.item_id] = time.monotonic() + self.config.backoff_max_s
            return
        dropped = self.spool.kind_of(refusal.item_id) is RecordKind.DROPPED
        logger.error(
            "cloud refused %s for good (%s): %s",
            "the record of a dropped garment" if dropped else "garment",
            code,
            refusal.reason,
            extra={"item_id": refusal.item_id},
        )
        self.spool.ack(refusal.item_id)
        with self.stats.lock:
            self.stats.refused += 1
        if not dropped:
            self.on_refused(refusal.item_id, code, refusal.reason)

    def _is_poison(self, item_id: str) -> bool:
        """Refused as retryable after enough tries, while the cloud took other garments since it first refused
        this one: the trouble is this garment, not the cloud."""
        acked_at_first = self._acks_at_refusal.setdefault(item_id, self.stats.acked)
        tried = self.spool.attempts_and_age(item_id)
        if self.stats.acked == acked_at_first or tried is None:
            return False
        attempts, age_s = tried
        return attempts >= self.config.poison_after_attempts or age_s >= self.config.poison_after_s

    def _set_aside(self, item_id: str, reason: str) -> None:
        self._acks_at_refusal.pop(item_id, None)
        if not self.spool.set_aside(item_id, reason):
            return
        with self.stats.lock:
            self.stats.set_aside += 1
        logger.error(
            "set aside a garment the cloud keeps refusing while it takes others (%s); it is not sent again "
            "and its line command is the fail-safe divert; it stays in the spool for the retention period",
            reason,
            extra={"item_id": item_id},
        )
        self.on_set_aside(item_id, reason)


def _uplink_message(spooled: SpooledGarment) -> pb.UplinkMessage:
    """The stream message for a spooled record, by its kind."""
    if spooled.kind is RecordKind.DROPPED:
        return pb.UplinkMessage(dropped=pb.GarmentDropped.FromString(spooled.payload))
    return pb.UplinkMessage(garment=pb.Garment.FromString(spooled.payload))


def insecure_channel_factory(
    address: str, *, max_message_bytes: int, keepalive_s: float = 10.0
) -> Callable[[], grpc.Channel]:
    """Channels to ``address`` without TLS (loopback, tests, a VPN); see ``tls_channel_factory`` for mTLS."""
    options = _channel_options(max_message_bytes, keepalive_s)
    return lambda: grpc.insecure_channel(address, options=options)


def tls_channel_factory(
    address: str,
    tls: TlsConfig,
    *,
    max_message_bytes: int,
    keepalive_s: float = 10.0,
) -> Callable[[], grpc.Channel]:
    """Channels with TLS: ``tls.ca_file`` trusts the cloud (the system's roots without one); with
    ``cert_file`` and ``key_file``, mutual TLS.

    The files are checked now (ConfigError names a bad one) and re-read for the next connection whenever they
    change, so a rotated client certificate is presented from the next reconnect on; a rotation that leaves
    them unusable is logged at ERROR and the last good ones stay in use.
    """
    options = _channel_options(max_message_bytes, keepalive_s)
    watched = WatchedTlsFiles(tls, "grpc.tls")

    def factory() -> grpc.Channel:
        watched.refresh()
        files = watched.files
        credentials = grpc.ssl_channel_credentials(
            root_certificates=files.ca, private_key=files.key, certificate_chain=files.cert
        )
        return grpc.secure_channel(address, credentials, options=options)

    return factory


def _channel_options(max_message_bytes: int, keepalive_s: float) -> list[tuple[str, int]]:
    return [
        ("grpc.max_send_message_length", max_message_bytes),
        ("grpc.max_receive_message_length", max_message_bytes),
        ("grpc.keepalive_time_ms", int(keepalive_s * 1000)),
        ("grpc.keepalive_timeout_ms", 5000),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.max_pings_without_data", 0),
        ("grpc.initial_reconnect_backoff_ms", 200),
        ("grpc.max_reconnect_backoff_ms", 5000),
    ]
