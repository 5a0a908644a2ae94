"""``seamline cloud ...``: serve the classifier service; start a local vLLM server."""

from __future__ import annotations

import asyncio
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
