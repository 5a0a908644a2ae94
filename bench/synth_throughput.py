"""Throughput of the synthetic line against the 20 garments/s goal (1280x720, one view, one process).

Run: .venv/bin/python bench/synth_throughput.py [--garments 200] [--workers 2]

Rows: in memory in this process with 1 and 4 views; in memory across a process pool; written to disk as
JPEG through write_dataset (single process and pool). Every row renders the same garments; the texture
bank is built before timing starts (it is built once per line and process).
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from rich.console import Console
from rich.table import Table

from seamline.synth import SynthConfig, SyntheticLine, write_dataset

GOAL = 20.0  # garments per second, 1280x720, one view, one process

_LINE: SyntheticLine | None = None


def _init(config: SynthConfig) -> None:
    global _LINE
    import cv2

    cv2.setNumThreads(1)
    _LINE = SyntheticLine(config)
    _LINE.bank  # noqa: B018  (build the textures before the clock matters)


def _render(index: int) -> int:
    assert _LINE is not None
    g = _LINE.garment(index)
    return len(g.defects)  # send back a count, not frames: this row measures rendering


def in_memory(config: SynthConfig, garments: int) -> float:
    line = SyntheticLine(config)
    line.garment(garments + 1)  # warm: textures, code paths
    start = time.perf_counter()
    for i in range(garments):
        line.garment(i)
    return time.perf_counter() - start


def in_pool(config: SynthConfig, garments: int, workers: int) -> float:
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init, initargs=(config,)) as pool:
        list(pool.map(_render, range(workers), chunksize=1))  # workers started and warm
        start = time.perf_counter()
        list(pool.map(_render, range(garments), chunksize=16))
        return time.perf_counter() - start


def to_disk(config: SynthConfig, garments: int, workers: int) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        summary = write_dataset(SyntheticLine(config), garments, Path(tmp), workers=workers, progress=False)
        return summary.seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--garments", type=int, default=200)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    n, w = args.garments, args.workers
    one, four = SynthConfig(views=1), SynthConfig(views=4)
    rows = [
        ("1 view, in memory, 1 process", 1, in_memory(one, n)),
        ("4 views, in memory, 1 process", 4, in_memory(four, n)),
        (f"1 view, in memory, {w} processes", 1, in_pool(one, n, w)),
        ("1 view, JPEG to disk (write_dataset), 1 process", 1, to_disk(one, n, 0)),
        (f"1 view, JPEG to disk (write_dataset), {w} processes, incl. start-up", 1, to_disk(one, n, w)),
    ]
    table = Table(
        title=f"seamline synth, 1280x720, {n} garments, {os.cpu_count()} CPUs (goal {GOAL:.0f} garments/s)"
    )
    for col in ("run", "garments/s", "images/s", "x goal"):
        table.add_column(col, justify="left" if col == "run" else "right")
    for name, views, seconds in rows:
        rate = n / seconds
        table.add_row(name, f"{rate:.1f}", f"{rate * views:.1f}", f"{rate / GOAL:.2f}")
    Console().print(table)


if __name__ == "__main__":
    main()
