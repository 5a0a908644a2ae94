"""``seamline cloud ...``: serve the classifier service; start a local vLLM server."""

from __future__ import annotations

import asyncio
import getpass
import json
import logging
import signal
from contextlib import ExitStack
from pathlib import Path

import typer

from seamline.children import STOP_SIGNALS, StopRequested, stop_on_signals

logger = logging.getLogger(__name__)

app = typer.Typer(help="The cloud classifier service.", no_args_is_help=True)


@app.command("serve")
def serve(
    config: Path = typer.Option(..., "--config", "-c", help="Seamline YAML with a 'cloud:' section."),
) -> None:
    """Run the cloud service (and its local vLLM server, if configured) until SIGTERM/SIGINT."""
    from cloud.config import CloudConfig
    from cloud.service import CloudService
    from seamline.config.models import load_config, load_section
    from seamline.errors import ConfigError
    from seamline.logs import setup_logging

    seamline_config = load_config(config)
    cloud_config = load_section(config, seamline_config, "cloud", CloudConfig)
    if not cloud_config.lines:
        raise ConfigError(
            f"{config}: cloud.lines names no line; list the lines this service serves, "
            "e.g. lines: [{site_id: site1, line_id: line1}]"
        )
    if seamline_config.grpc.tls is not None:
        from cloud.ingress.tls import ServerTls

        ServerTls(seamline_config.grpc.tls)  # a bad certificate file fails now, not after vLLM's start
    setup_logging(seamline_config.logging.level, seamline_config.logging.json_lines)

    async def main(base_url: str | None) -> None:
        service = CloudService(seamline_config, cloud_config, classifier_base_url=base_url)
        port = await service.start()
        typer.echo(f"cloud service listening on port {port}")
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in STOP_SIGNALS:
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        await service.stop()

    # A stop before the service serves (vLLM can take minutes to start) is as clean a stop as one after.
    with stop_on_signals(), ExitStack() as stack:
        try:
            base_url = None
            if (local := cloud_config.local_vllm) is not None:
                from cloud.classifiers.vllm_server import start_vllm_server

                vllm = stack.enter_context(
                    start_vllm_server(
                        local.model, port=local.port, served_model_name=cloud_config.classifier.model
                    )
                )
                typer.echo(f"starting local vLLM on {vllm.url} with {local.model} (log {vllm.log_path}) ...")
                vllm.wait_ready(local.ready_timeout_s)
                base_url = vllm.openai_base_url
            asyncio.run(main(base_url))
        except StopRequested:
            pass


@app.command("migrate")
def migrate(
    config: Path = typer.Option(..., "--config", "-c", help="Seamline YAML with a 'cloud:' section."),
) -> None:
    """Bring the audit store's schema to this version's revision and exit (a deployment's migration step)."""
    from cloud.config import CloudConfig
    from cloud.storage.audit import create_audit_engine
    from cloud.storage.schema import current_revision, upgrade
    from seamline.config.models import load_config, load_section

    seamline_config = load_config(config)
    cloud = load_section(config, seamline_config, "cloud", CloudConfig)
    engine = create_audit_engine(cloud.audit_store_url(seamline_config.storage.data_dir))
    try:
        before = current_revision(engine)
        upgrade(engine)
        after = current_revision(engine)
    finally:
        engine.dispose()
    typer.echo(
        json.dumps(
            {"audit_store": engine.url.render_as_string(hide_password=True), "from": before, "to": after}
        )
    )


@app.command("health")
def health(
    address: str = typer.Argument(..., help="host:port of the service's health_address (plaintext gRPC)."),
    timeout_s: float = typer.Option(3.0, "--timeout", help="Seconds to wait for the answer."),
) -> None:
    """Exit 0 when the cloud service answers SERVING on gRPC health, 1 otherwise (container healthchecks)."""
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    with grpc.insecure_channel(address) as channel:
        try:
            answer = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=timeout_s
            )
        except grpc.RpcError as exc:
            typer.echo(f"{address}: {exc.code().name}: {exc.details()}", err=True)
            raise typer.Exit(1) from None
    status = health_pb2.HealthCheckResponse.ServingStatus.Name(answer.status)
    typer.echo(f"{address}: {status}")
    if answer.status != health_pb2.HealthCheckResponse.SERVING:
        raise typer.Exit(1)


@app.command("vllm")
def vllm(
    model: Path = typer.Argument(..., help="A local Qwen2.5-VL model directory."),
    port: int = typer.Option(8000, help="Port on 127.0.0.1."),
    served_model_name: str = typer.Option("Qwen/Qwen2.5-VL-7B-Instruct", help="The name requests use."),
) -> None:
    """Start a local vLLM server (CPU build here; the GPU build elsewhere) and keep it running."""
    from cloud.classifiers.vllm_server import start_vllm_server

    with (
        stop_on_signals(),
        start_vllm_server(model, port=port, served_model_name=served_model_name) as server,
    ):
        typer.echo(f"vLLM starting on {server.url} (log {server.log_path})")
        try:
            seconds = server.wait_ready(600)
            typer.echo(f"ready after {seconds:.0f} s; Ctrl-C stops it")
            while True:
                signal.pause()
        except StopRequested:
            pass  # leaving the block stops the server


# ``seamline data ...``: the cloud's stored data. ``seamline data delete ITEM_ID`` deletes a garment's data
# on request (a privacy request, a mistaken capture); exit 2 when it is unknown, still being classified or
# waiting for a person. See cloud/storage/retention.py.
data_app = typer.Typer(help="The cloud's stored data: delete a garment.", no_args_is_help=True)


@data_app.command("delete")
def delete(
    item_id: str = typer.Argument(..., help="The garment's item id."),
    config: Path = typer.Option(..., "--config", "-c", help="Seamline YAML with a 'cloud:' section."),
    by: str | None = typer.Option(
        None, "--by", help="Who asks (default: the login name); kept in the trail."
    ),
    reason: str = typer.Option("deletion requested", "--reason", help="Why; kept in the audit trail."),
) -> None:
    """Delete one finished garment's crops and records; the audit trail keeps that it was deleted."""
    from cloud.config import CloudConfig
    from cloud.storage.audit import AuditStore
    from cloud.storage.crop_store import crop_store_from_url
    from cloud.storage.retention import Retention
    from seamline.config.models import load_config, load_section

    seamline_config = load_config(config)
    cloud = load_section(config, seamline_config, "cloud", CloudConfig)
    data_dir = seamline_config.storage.data_dir
    store = AuditStore.from_url(cloud.audit_store_url(data_dir), migrate=cloud.migrate_on_start)
    crop_store = crop_store_from_url(cloud.crop_store, base=data_dir / "cloud")
    try:
        deleted = Retention(store.engine, crop_store).delete(item_id, by or getpass.getuser(), reason)
    finally:
        store.engine.dispose()
    typer.echo(
        json.dumps({"deleted": deleted.item_id, "crops": deleted.crops, "crops_pending": deleted.pending})
    )
