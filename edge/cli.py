"""``seamline edge ...``: run the agent (telling systemd how it is doing), export the detector."""

from __future__ import annotations

import logging
import signal
import threading
from pathlib import Path

import typer

logger = logging.getLogger(__name__)

app = typer.Typer(help="The edge agent beside the conveyor.", no_args_is_help=True)


@app.command("run")
def run(
    config: Path = typer.Option(..., "--config", "-c", help="Seamline YAML with an 'edge:' section."),
) -> None:
    """Run the edge agent until the source ends or SIGTERM/SIGINT; exit 1 if a camera gave up."""
    # Exit 0 when the source ends or on a signal; 1 when a camera gave up (or the source failed), so that a
    # supervisor restarts it; 2 for a configuration this machine cannot run (e.g. GStreamer without it).
    # Under systemd (Type=notify) it reports ready once the detector is warm, pings the watchdog from the
    # detection loop, and says stopping.
    from edge.agent import EdgeAgent
    from edge.config import EdgeConfig
    from seamline.config.models import load_config, load_section
    from seamline.errors import SeamlineError
    from seamline.logs import setup_logging

    seamline_config = load_config(config)
    edge_config = load_section(config, seamline_config, "edge", EdgeConfig)
    setup_logging(seamline_config.logging.level, seamline_config.logging.json_lines)
    from edge.systemd import SystemdNotifier

    notifier = SystemdNotifier()
    agent = EdgeAgent(seamline_config, edge_config, heartbeat=notifier.watchdog)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: (stop.set(), agent.source.stop()))
    try:
        agent.start()  # inside: a detector that fails to load still gets the agent's orderly stop
        notifier.ready(f"edge agent {agent.agent_id} running")
        agent.run()
        # Finite sources (and a camera that gave up): the last garments get their verdicts or deadlines.
        if not stop.is_set():
            agent.drain(timeout=edge_config.timing.budget_s + 30)
    finally:
        notifier.stopping("stopping" if agent.source_error is None else f"stopping: {agent.source_error}")
        agent.stop()
        notifier.close()
    typer.echo(f"processed {agent.processed} garments")
    error = agent.source_error
    if isinstance(error, SeamlineError):
        raise error
    if error is not None:
        raise SeamlineError(f"the {agent.source.kind} source failed: {error!r}") from error


@app.command("export")
def export(
    checkpoint: Path = typer.Argument(..., help="Hugging Face RT-DETR / RT-DETRv2 checkpoint directory."),
    out: Path = typer.Option(
        Path("detector.onnx"), "--out", "-o", help="ONNX file to write (a .json sidecar goes beside it)."
    ),
    opset: int = typer.Option(17, help="ONNX opset (17 for TensorRT 8.6 / JetPack 6)."),
    version: str | None = typer.Option(None, help="Detector version stamped on crops and verdicts."),
    tensorrt: bool = typer.Option(
        False, "--tensorrt", help="Also build a TensorRT engine (needs TensorRT: run on the Jetson)."
    ),
    precision: str = typer.Option("fp16", help="Engine precision: fp32, fp16 or int8."),
    calibration_dir: Path | None = typer.Option(
        None, help="Folder of representative frames for int8 calibration."
    ),
    max_batch: int = typer.Option(4, help="Largest batch the engine accepts (views per garment)."),
    int8: bool = typer.Option(
        False,
        "--int8",
        help="Also write an ONNX Runtime int8 model (static QDQ), calibrated on --calibration-dir; the edge "
        "runs it only once `seamline gate int8` accepts it.",
    ),
) -> None:
    """Checkpoint -> ONNX (checked against PyTorch) [-> int8 ONNX] [-> TensorRT engine]."""
    from edge.export.onnx_export import export_onnx

    if int8 and calibration_dir is None:
        raise typer.BadParameter("--int8 needs --calibration-dir (frames of the line)", param_hint="--int8")
    result = export_onnx(checkpoint, out, opset=opset, version=version)
    typer.echo(
        f"ONNX: {result.path} ({result.size_bytes / 1e6:.1f} MB, opset {result.opset}) "
        f"in {result.seconds:.1f} s; "
        f"vs PyTorch: scores {result.max_score_diff:.1e}, boxes {result.max_box_diff:.1e} px"
    )
    if int8:
        quantize_command(out, calibration_dir, max_frames=64)  # type: ignore[arg-type]
    if tensorrt:
        build_engine_command(out, None, precision, calibration_dir, max_batch)


@app.command("quantize")
def quantize_command(
    onnx: Path = typer.Argument(..., help="An exported fp32 detector (.onnx with its .json sidecar)."),
    calibration_dir: Path = typer.Option(
        ..., "--calibration-dir", help="Frames of the line to calibrate on."
    ),
    max_frames: int = typer.Option(64, "--max-frames", min=1, help="Calibrate on at most this many frames."),
) -> None:
    """fp32 ONNX -> int8 ONNX (static QDQ) beside it, unaccepted until `seamline gate int8` passes."""
    from edge.export.int8 import quantize_int8

    quantized = quantize_int8(onnx, calibration_dir, max_frames=max_frames)
    typer.echo(
        f"int8: {quantized.path} ({quantized.size_bytes / 1e6:.1f} MB) from {quantized.frames} frames "
        f"({quantized.batches} network inputs) in {quantized.seconds:.1f} s; not accepted until "
        f"`seamline gate int8 {onnx} {quantized.path} --data HELD_OUT_COCO_DIR` passes"
    )


@app.command("build-engine")
def build_engine_command(
    onnx: Path = typer.Argument(..., help="The exported detector (.onnx with its .json sidecar)."),
    out: Path | None = typer.Option(None, "--out", "-o", help="Engine file (default: beside the ONNX)."),
    precision: str = typer.Option("fp16", help="fp32, fp16 or int8."),
    calibration_dir: Path | None = typer.Option(
        None, help="Representative frames for int8 calibration (not needed for a QDQ-quantised model)."
    ),
    max_batch: int = typer.Option(4, help="Largest batch the engine accepts (views per garment)."),
) -> None:
    """ONNX -> TensorRT engine, on the device that will run it (a Jetson: no torch needed, only JetPack)."""
    from edge.export.tensorrt_export import build_engine

    engine = build_engine(
        onnx,
        out or onnx.with_suffix(".engine"),
        precision=precision,
        calibration_dir=calibration_dir,
        max_batch=max_batch,
        opt_batch=max_batch,
    )
    typer.echo(
        f"TensorRT: {engine.path} ({engine.size_bytes / 1e6:.1f} MB, {engine.precision}) "
        f"in {engine.seconds:.0f} s"
    )
