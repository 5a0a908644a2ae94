"""The InspectionService implementation: one long-lived stream per edge agent.

Per stream: the AgentHello is checked (a bad one ends the stream with INVALID_ARGUMENT; one for a line not
served here, or under mutual TLS one that does not match the client certificate, with PERMISSION_DENIED),
the ServerHello grants limits, then each garment is validated, stored durably (crops, then the audit row)
and only then acked; a garment that breaks the contract is refused with a precise reason and the stream
goes on. A re-sent item id is acked as a duplicate and not handed on again.
A GarmentDropped record (a garment the edge did not inspect) is checked, stored as one audit row and acked
the same way; nothing is handed on, since there is nothing to classify.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator, Callable, Iterable

import grpc
from google.protobuf.message import DecodeError

from cloud.ingress.tls import identity_mismatch, peer_identities
from cloud.ingress.validation import (
    GarmentInvalid,
    IngressLimits,
    check_hello,
    validate_drop,
    validate_garment,
)
from cloud.records import GarmentRecord
from cloud.storage.audit import AuditStore
from cloud.storage.crop_store import CropKeyError, CropStore
from seamline import __version__
from seamline.clock import utcnow
from seamline.inspection.v1 import inspection_pb2 as pb
from seamline.inspection.v1 import inspection_pb2_grpc as pb_grpc

logger = logging.getLogger(__name__)


def _ack(item_id: str, duplicate: bool) -> pb.DownlinkMessage:
    ack = pb.GarmentAck(item_id=item_id, duplicate=duplicate)
    ack.accepted_at.FromDatetime(utcnow())
    return pb.DownlinkMessage(ack=ack)


def _refusal(item_id: str, code: int, reason: str, retryable: bool) -> pb.DownlinkMessage:
    return pb.DownlinkMessage(
        refusal=pb.GarmentRefusal(item_id=item_id, code=code, reason=reason, retryable=retryable)
    )


async def _uplink_messages(
    request_iterator: AsyncIterator[pb.UplinkMessage], context: grpc.aio.ServicerContext
) -> AsyncIterator[pb.UplinkMessage]:
    """The stream's messages; bytes that do not parse as an UplinkMessage end it with INVALID_ARGUMENT.

    gRPC parses each request as it is read and raises protobuf's DecodeError from the iterator; left alone it
    ends the stream as UNKNOWN with Python's error text (and a traceback in the log).
    """
    received = 0
    messages = aiter(request_iterator)
    while True:
        try:
            message = await anext(messages)
        except StopAsyncIteration:
            return
        except DecodeError:
            logger.warning(
                "message %d from %s does not parse as an UplinkMessage", received + 1, context.peer()
            )
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"message {received + 1} on the stream is not an UplinkMessage: its bytes do not parse as "
                "protobuf",
            )
        received += 1
        yield message


class InspectionServicer(pb_grpc.InspectionServiceServicer):
    """Accepts garments from edge agents.

    Args:
        crop_store: where crop bytes go.
        audit: where garment and crop records go.
        limits: what is accepted.
        lines: ``(site_id, line_id)`` of the lines served; a hello from any other is refused with
            PERMISSION_DENIED (its verdicts would go out on a line nobody configured).
        on_accepted: called (in the event loop) with each newly accepted garment, e.g. to queue
            classification.
        server_id: this replica's name: in the ServerHello, and the owner of the garments it accepts.
        lease_s: how long an accepted garment's lease runs before the owner must renew it.
        on_refused: called with the refusal code's name for every garment or drop record refused (metrics).
        bind_identity: mutual TLS is in force: a hello must name the site, line and agent of the peer's
            client certificate, or the stream is refused with PERMISSION_DENIED before anything is stored.
    """

    def __init__(
        self,
        *,
        crop_store: CropStore,
        audit: AuditStore,
        limits: IngressLimits,
        lines: Iterable[tuple[str, str]],
        on_accepted: Callable[[GarmentRecord], None] | None = None,
        server_id: str | None = None,
        lease_s: float = 30.0,
        bind_identity: bool = False,
        on_refused: Callable[[str], None] | None = None,
    ) -> None:
        self.crop_store = crop_store
        self.audit = audit
        self.limits = limits
        self.lines = frozenset(lines)
        if not self.lines:
            raise ValueError("the ingress serves no line: name at least one (cloud.lines)")
        self.on_accepted = on_accepted or (lambda record: None)
        self.server_id = server_id or f"cloud-{uuid.uuid4().hex[:8]}"
        self.lease_s = lease_s
        self.bind_identity = bind_identity
        self.on_refused = on_refused or (lambda code: None)
        self.accepted = 0
        self.drops_recorded = 0
        self.duplicates = 0
        self.refused = 0

    def _store(self, record: GarmentRecord) -> bool:
        """Crops first (fsync'd), then the audit row in one transaction: durable before the ack."""
        if self.audit.has(record.item_id):
            return False
        day = record.captured_at.strftime("%Y-%m-%d")
        uris = {
            c.crop_id: self.crop_store.put(
                f"{record.site_id}/{record.line_id}/{day}/{record.item_id}/{c.crop_id}", c.image, c.encoding
            )
            for c in record.crops
        }
        return self.audit.accept(record, uris, owner=self.server_id, lease_s=self.lease_s)

    async def _accept(self, record: GarmentRecord) -> bool:
        """Store the garment and, if new, hand it on. Runs to the end even when the stream is cancelled
        meanwhile (see ``_handle``)."""
        new = await asyncio.to_thread(self._store, record)
        if new:
            self.accepted += 1
            self.on_accepted(record)
        return new

    async def _handle(self, garment: pb.Garment, hello: pb.AgentHello) -> pb.DownlinkMessage:
        item_id = garment.item_id
        try:
            # Decoding crops is CPU work: keep the event loop free for other streams.
            record = await asyncio.to_thread(
                validate_garment, garment, hello, self.limits, agent_id=hello.agent_id
            )
        except GarmentInvalid as exc:
            self.refused += 1
            logger.warning(
                "refused garment from %s: %s", hello.agent_id, exc.reason, extra={"item_id": item_id[:128]}
            )
            return _refusal(item_id[:128], exc.code, exc.reason, retryable=False)
        try:
            # Shielded: a stream cancelled while its garment is being stored (a WAN drop, an agent restart)
            # must not leave the garment stored but never handed on; the edge's re-send is then a duplicate.
            new = await asyncio.shield(self._accept(record))
        except CropKeyError as exc:  # validation should have caught it; the store's guard did
            self.refused += 1
            logger.warning("refused garment from %s: %s", hello.agent_id, exc, extra={"item_id": item_id})
            return _refusal(
                item_id, pb.REFUSAL_CODE_INVALID, f"cannot store its crops: {exc}", retryable=False
            )
        except Exception:
            logger.exception("could not store garment", extra={"item_id": item_id})
            return _refusal(
                item_id, pb.REFUSAL_CODE_UNAVAILABLE, "storage unavailable; retry later", retryable=True
            )
        if not new:
            self.duplicates += 1
            logger.info("duplicate garment acked again", extra={"item_id": item_id})
            return _ack(item_id, duplicate=True)
        return _ack(item_id, duplicate=False)

    async def _handle_drop(self, dropped: pb.GarmentDropped, hello: pb.AgentHello) -> pb.DownlinkMessage:
        """Store a dropped garment's record before acking it; the refusal rules are a garment's."""
        item_id = dropped.item_id[:128]
        try:
            record = validate_drop(dropped, hello, agent_id=hello.agent_id)
        except GarmentInvalid as exc:
            self.refused += 1
            logger.warning(
                "refused drop record from %s: %s", hello.agent_id, exc.reason, extra={"item_id": item_id}
            )
            return _refusal(item_id, exc.code, exc.reason, retryable=False)
        try:
            new = await asyncio.to_thread(self.audit.record_drop, record)
        except Exception:
            logger.exception("could not store drop record", extra={"item_id": item_id})
            return _refusal(
                item_id, pb.REFUSAL_CODE_UNAVAILABLE, "storage unavailable; retry later", retryable=True
            )
        if not new:
            self.duplicates += 1
            logger.info("duplicate drop record acked again", extra={"item_id": item_id})
            return _ack(item_id, duplicate=True)
        self.drops_recorded += 1
        logger.info(
            "garment dropped at the edge recorded (%s, line %s)",
            record.reason,
            record.line_action,
            extra={"item_id": item_id},
        )
        return _ack(item_id, duplicate=False)

    async def StreamGarments(
        self, request_iterator: AsyncIterator[pb.UplinkMessage], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.DownlinkMessage]:
        messages = _uplink_messages(request_iterator, context)
        try:
            first = await anext(messages)
        except StopAsyncIteration:
            return
        if first.WhichOneof("kind") != "hello":
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT, "the first message on a stream must be an AgentHello"
            )
        hello = first.hello
        try:
            check_hello(hello)
        except ValueError as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        if self.bind_identity:
            mismatch = identity_mismatch(
                hello.site_id, hello.line_id, hello.agent_id, peer_identities(context)
            )
            if mismatch is not None:
                logger.warning("refused edge agent %s (%s): %s", hello.agent_id, context.peer(), mismatch)
                await context.abort(grpc.StatusCode.PERMISSION_DENIED, mismatch)
        if (hello.site_id, hello.line_id) not in self.lines:
            logger.warning(
                "refused edge agent %s (%s): line %s/%s is not served here (serving %s)",
                hello.agent_id,
                context.peer(),
                hello.site_id,
                hello.line_id,
                ", ".join(f"{site}/{line}" for site, line in sorted(self.lines)),
            )
            await context.abort(
                grpc.StatusCode.PERMISSION_DENIED,
                f"line {hello.site_id}/{hello.line_id} is not served by this cloud service "
                "(it serves the lines in its configuration's cloud.lines)",
            )
        logger.info(
            "edge agent %s connected (%s/%s, %s)",
            hello.agent_id,
            hello.site_id,
            hello.line_id,
            context.peer(),
        )
        yield pb.DownlinkMessage(
            hello=pb.ServerHello(
                server_id=self.server_id,
                software_version=__version__,
                max_garment_bytes=self.limits.max_garment_bytes,
                max_crops_per_garment=self.limits.max_crops_per_garment,
                max_in_flight=self.limits.max_in_flight,
            )
        )
        async for message in messages:
            kind = message.WhichOneof("kind")
            if kind in ("garment", "dropped"):
                if kind == "garment":
                    answer = await self._handle(message.garment, hello)
                else:
                    answer = await self._handle_drop(message.dropped, hello)
                if answer.WhichOneof("kind") == "refusal":
                    self.on_refused(pb.RefusalCode.Name(answer.refusal.code))
                yield answer
            elif kind == "hello":
                await context.abort(
                    grpc.StatusCode.INVALID_ARGUMENT, "AgentHello may only be the first message of a stream"
                )
            else:
                await context.abort(
                    grpc.StatusCode.INVALID_ARGUMENT, "empty UplinkMessage (no hello, garment or dropped)"
                )
        logger.info("edge agent %s disconnected", hello.agent_id)
