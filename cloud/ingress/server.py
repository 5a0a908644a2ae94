"""The cloud's gRPC server: the InspectionService plus the standard health and reflection services.

``create_server`` builds the server and returns ``(server, port, health servicer)``, so tests bind port 0;
``set_serving`` flips the health status. The cloud service (``cloud/service.py``) starts it and reports
SERVING; when stopped (``seamline cloud serve`` on SIGTERM/SIGINT) it reports NOT_SERVING and lets in-flight
streams drain for the grace period before the server stops.
"""

from __future__ import annotations

import logging

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from cloud.ingress.servicer import InspectionServicer
from seamline.inspection.v1 import inspection_pb2 as pb
from seamline.inspection.v1 import inspection_pb2_grpc as pb_grpc

logger = logging.getLogger(__name__)

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["InspectionService"].full_name


def create_server(
    address: str,
    servicer: InspectionServicer,
    *,
    max_message_bytes: int,
    credentials: grpc.ServerCredentials | None = None,
    max_connection_age_s: float | None = None,
    max_connection_age_grace_s: float = 30.0,
) -> tuple[grpc.aio.Server, int, health.aio.HealthServicer]:
    """Build (not start) the server; returns it, the bound port and its health servicer (at NOT_SERVING).

    With ``credentials`` it listens with TLS only. ``max_connection_age_s`` makes clients reconnect that
    often (load spreading over replicas, rotated certificates); a stream then has the grace to finish.
    """
    age = (
        [
            ("grpc.max_connection_age_ms", int(max_connection_age_s * 1000)),
            ("grpc.max_connection_age_grace_ms", int(max_connection_age_grace_s * 1000)),
        ]
        if max_connection_age_s
        else []
    )
    server = grpc.aio.server(
        options=age
        + [
            # A little headroom over the garment limit, so an over-limit garment reaches validation and gets a
            # precise refusal; far larger messages fail in transport with RESOURCE_EXHAUSTED.
            ("grpc.max_receive_message_length", max_message_bytes + 64 * 1024),
            ("grpc.max_send_message_length", 4 * 1024 * 1024),
            ("grpc.keepalive_time_ms", 20_000),
            ("grpc.keepalive_timeout_ms", 5_000),
            ("grpc.http2.min_ping_interval_without_data_ms", 5_000),
            ("grpc.keepalive_permit_without_calls", 1),
        ]
    )
    pb_grpc.add_InspectionServiceServicer_to_server(servicer, server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    try:
        from grpc_reflection.v1alpha import reflection

        reflection.enable_server_reflection(
            (SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME), server
        )
    except ImportError:
        logger.debug("grpcio-reflection not installed; reflection disabled")
    port = server.add_secure_port(address, credentials) if credentials else server.add_insecure_port(address)
    if port == 0:
        raise OSError(f"could not bind gRPC server to {address}")
    return server, port, health_servicer


def create_health_server(
    address: str, health_servicer: health.aio.HealthServicer
) -> tuple[grpc.aio.Server, int]:
    """A plaintext server with only ``health_servicer`` (the main server's), for probes without client
    certificates; returns it (not started) and its port."""
    server = grpc.aio.server()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    port = server.add_insecure_port(address)
    if port == 0:
        raise OSError(f"could not bind the gRPC health server to {address}")
    return server, port


async def set_serving(health_servicer: health.aio.HealthServicer, serving: bool) -> None:
    status = health_pb2.HealthCheckResponse.SERVING if serving else health_pb2.HealthCheckResponse.NOT_SERVING
    for name in ("", SERVICE_NAME):
        await health_servicer.set(name, status)
