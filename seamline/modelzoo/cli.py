"""``seamline models``: build models from config on this machine (no download)."""

from __future__ import annotations

import json
import logging
import time
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from seamline.errors import SeamlineError

logger = logging.getLogger(__name__)

app = typer.Typer(
    help="Build models from config on this machine: the tiny RT-DETR and Qwen2.5-VL used by tests and the "
    "demo.",
    no_args_is_help=True,
)


class TinyModel(str, Enum):
    """Which tiny model to build."""

    RTDETR = "rtdetr"
    QWEN = "qwen"


class DetectorSizeOption(str, Enum):
    """RT-DETR size for ``tiny --detector-size``."""

    TINY = "tiny"
    R18 = "r18"
    L = "l"


@app.callback()
def _models() -> None:
    """Build models from config on this machine (no download)."""


def _describe(path: Path, seconds: float) -> str:
    files = [p for p in path.rglob("*") if p.is_file()]
    size_mb = sum(p.stat().st_size for p in files) / 1e6
    note_path = path / "seamline_model.json"
    note = json.loads(note_path.read_text(encoding="utf-8")) if note_path.exists() else {}
    params = note.get("parameters")
    params_text = f"{params / 1e6:.2f} M params" if params else "? params"
    return f"{path}  {params_text}, {size_mb:.1f} MB on disk, {len(files)} files, built in {seconds:.1f} s"


def _quiet_progress_bars() -> None:
    # transformers draws a "Writing model shards" bar per save; the summary lines say what matters.
    from seamline.torch_compat import ensure_cpu_torch_compat

    ensure_cpu_torch_compat()  # before transformers' first import
    try:
        from transformers.utils import logging as transformers_logging
    except ImportError:
        return  # the build reports the missing dependency
    transformers_logging.disable_progress_bar()


@app.command("tiny")
def tiny(
    out_dir: Annotated[
        Path,
        typer.Argument(metavar="DIR", help="Directory to write the models into (one subdirectory each)."),
    ],
    only: Annotated[
        TinyModel | None, typer.Option("--only", help="Build only this model (default: both).")
    ] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed for the random weights.")] = 0,
    detector_size: Annotated[
        DetectorSizeOption,
        typer.Option(
            "--detector-size", help="RT-DETR size: tiny (~3.5 M params), r18 (~20 M) or l (~32.8 M)."
        ),
    ] = DetectorSizeOption.TINY,
    per_type: Annotated[
        bool,
        typer.Option(
            "--per-type", help="Give the detector one class per taxonomy defect type, not one 'defect'."
        ),
    ] = False,
) -> None:
    """Build the tiny RT-DETR and/or Qwen2.5-VL into DIR and print what was written."""
    try:
        from seamline.modelzoo.tiny_qwen import build_tiny_qwen2_5_vl
        from seamline.modelzoo.tiny_rtdetr import build_tiny_rtdetr

        _quiet_progress_bars()

        if only in (None, TinyModel.RTDETR):
            labels = None
            if per_type:
                from seamline.config.taxonomy import default_taxonomy

                labels = list(default_taxonomy().type_ids)
            started = time.perf_counter()
            path = build_tiny_rtdetr(
                out_dir / f"rtdetr-{detector_size.value}", labels=labels, size=detector_size.value, seed=seed
            )
            typer.echo(f"rtdetr: {_describe(path, time.perf_counter() - started)}")
        if only in (None, TinyModel.QWEN):
            started = time.perf_counter()
            path = build_tiny_qwen2_5_vl(out_dir / "qwen2_5_vl-tiny", seed=seed)
            typer.echo(f"qwen:   {_describe(path, time.perf_counter() - started)}")
    except SeamlineError as exc:
        logger.debug("model build failed", exc_info=True)
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(code=1) from exc
