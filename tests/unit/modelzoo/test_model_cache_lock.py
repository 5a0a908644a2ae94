"""The model cache builds each key once, atomically, even with several processes racing."""

from __future__ import annotations

import multiprocessing
import time
from pathlib import Path

import pytest

from seamline.modelzoo.cache import ensure_built


def _slow_build(target: Path, log: Path) -> Path:
    with open(log, "a", encoding="utf-8") as handle:
        handle.write("built\n")
    time.sleep(0.3)  # long enough for the other processes to reach the lock
    (target / "weights.bin").write_bytes(b"x" * 16)
    return target


def _race(cache_dir: str, log: str) -> None:
    ensure_built(Path(cache_dir), "model-v1", lambda d: _slow_build(d, Path(log)))


def test_builds_once_and_reuses(tmp_path):
    log = tmp_path / "log.txt"
    first = ensure_built(tmp_path / "cache", "model-v1", lambda d: _slow_build(d, log))
    second = ensure_built(tmp_path / "cache", "model-v1", lambda d: _slow_build(d, log))
    assert first == second == tmp_path / "cache" / "model-v1"
    assert (first / "weights.bin").exists()
    assert log.read_text().count("built") == 1


def test_concurrent_processes_build_once(tmp_path):
    log = tmp_path / "log.txt"
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_race, args=(str(tmp_path / "cache"), str(log))) for _ in range(3)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
        assert worker.exitcode == 0
    assert log.read_text().count("built") == 1
    leftovers = [p.name for p in (tmp_path / "cache").iterdir() if p.is_dir() and p.name != "model-v1"]
    assert leftovers == []


def test_failed_build_leaves_nothing_under_the_final_name(tmp_path):
    def broken(target: Path) -> Path:
        (target / "half.bin").write_bytes(b"x")
        raise RuntimeError("out of disk")

    with pytest.raises(RuntimeError, match="out of disk"):
        ensure_built(tmp_path, "model-v1", broken)
    assert not (tmp_path / "model-v1").exists()
    assert [p for p in tmp_path.iterdir() if p.is_dir()] == []
