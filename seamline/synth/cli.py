"""``seamline synth``: write a synthetic conveyor-line data set."""

from __future__ import annotations

import logging
from pathlib import Path

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from seamline.errors import SeamlineError

log = logging.getLogger(__name__)


def _fail(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code=2)


def _one_line(err: ValidationError) -> str:
    first = err.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or "config"
    return f"{where}: {first['msg']}"


def synth(
    garments: int = typer.Option(200, "--garments", "-n", help="How many garments to render."),
    out: Path = typer.Option(
        ..., "--out", "-o", help="Output folder (images/, annotations.json, truth.jsonl)."
    ),
    views: int = typer.Option(1, "--views", help="Camera views per garment, 1-4."),
    seed: int = typer.Option(0, "--seed", help="Seed of the line; the same seed gives the same garments."),
    width: int = typer.Option(1280, "--width", help="Frame width in pixels."),
    height: int = typer.Option(720, "--height", help="Frame height in pixels."),
    workers: int = typer.Option(0, "--workers", "-j", help="Worker processes; 0 renders in this process."),
    image_format: str = typer.Option("jpg", "--image-format", help="Image format: jpg or png."),
    quality: int = typer.Option(92, "--quality", help="JPEG quality, 1-100."),
    defect_free_share: float = typer.Option(
        0.4, "--defect-free-share", help="Share of garments without defects."
    ),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar."),
) -> None:
    """Render garments on a synthetic conveyor belt, with COCO boxes and per-garment truth."""
    from seamline.config.synth import SynthConfig
    from seamline.synth.dataset import IMAGE_FORMATS, write_dataset
    from seamline.synth.line import SyntheticLine

    if garments < 1:
        raise _fail("--garments must be at least 1")
    if workers < 0:
        raise _fail("--workers must be 0 or more")
    if image_format.lower() not in IMAGE_FORMATS:
        raise _fail(f"--image-format must be jpg or png, not {image_format!r}")
    if not 1 <= quality <= 100:
        raise _fail("--quality must be between 1 and 100")
    try:
        config = SynthConfig(
            views=views, seed=seed, width=width, height=height, defect_free_share=defect_free_share
        )
        line = SyntheticLine(config)
    except ValidationError as err:
        raise _fail(_one_line(err)) from None
    except SeamlineError as err:
        raise _fail(str(err).splitlines()[0]) from None
    if out.exists() and not out.is_dir():
        raise _fail(f"--out {out} exists and is not a folder")
    try:
        summary = write_dataset(
            line,
            garments,
            out,
            workers=workers,
            image_format=image_format,
            quality=quality,
            progress=progress,
        )
    except OSError as err:
        log.exception("synth could not write to %s", out)
        raise _fail(f"could not write the data set: {err}") from None

    console = Console()
    console.print(
        f"[bold]{summary.garments}[/] garments, [bold]{summary.images}[/] images, "
        f"[bold]{summary.annotations}[/] annotations in {summary.seconds:.1f} s "
        f"([bold]{summary.garments_per_s:.1f}[/] garments/s) -> {summary.out_dir}"
    )
    decisions = ", ".join(f"{k} {v}" for k, v in sorted(summary.decisions.items()))
    console.print(f"expected decisions: {decisions}")
    table = Table("defect type", "annotations", title="annotations per type")
    for type_id, count in summary.per_type.items():
        table.add_row(type_id, str(count))
    console.print(table)
