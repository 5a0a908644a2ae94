"""Build the tiny test models once per machine and reuse them.

Each model lives in ``<cache>/<key>/`` where the key names the model, its builder version, what its output
depends on (the tokenizer corpus, the transformers major version that wrote the files) and the seed. A build
goes into a temporary sibling directory that is renamed into place only when complete, so a directory under
its final name is always whole; an exclusive ``fcntl`` lock per key makes a second process wait for the first
build instead of repeating it (pytest-xdist workers, a demo started beside the tests).
"""

from __future__ import annotations

import fcntl
import importlib.metadata
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from seamline import envs
from seamline.modelzoo import tiny_qwen, tiny_rtdetr
from seamline.modelzoo.qwen_tokenizer import corpus_digest

logger = logging.getLogger(__name__)

_SEED = 0


@dataclass(frozen=True)
class TinyModels:
    """Directories of the tiny test models, each loadable with ``from_pretrained``."""

    rtdetr: Path  # RT-DETR tiny, one class "defect", 320 px input
    qwen: Path  # Qwen2.5-VL tiny, random weights; vLLM serves it


def default_models_dir() -> Path:
    """``$SEAMLINE_CACHE_DIR/models``."""
    return envs.SEAMLINE_CACHE_DIR / "models"


def _transformers_major() -> str:
    try:
        return importlib.metadata.version("transformers").split(".")[0]
    except importlib.metadata.PackageNotFoundError:
        return "none"  # the build itself will raise MissingDependencyError


def rtdetr_cache_key() -> str:
    """Cache directory name of the tiny RT-DETR."""
    return f"rtdetr-tiny-b{tiny_rtdetr.BUILDER_VERSION}-tf{_transformers_major()}-s{_SEED}"


def qwen_cache_key() -> str:
    """Cache directory name of the tiny Qwen2.5-VL (changes with the taxonomy, which feeds its tokenizer)."""
    return (
        f"qwen2_5_vl-tiny-b{tiny_qwen.BUILDER_VERSION}-tf{_transformers_major()}-c{corpus_digest()}-s{_SEED}"
    )


@contextmanager
def _exclusive(lock_path: Path) -> Iterator[None]:
    with open(lock_path, "a+b") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def ensure_built(cache_dir: Path, key: str, build: Callable[[Path], Path]) -> Path:
    """Return ``cache_dir / key``, running ``build(tmp_dir)`` first if it does not exist yet.

    Safe to call from several processes at once: one builds, the others wait on the lock and reuse the result.
    """
    final = cache_dir / key
    if final.is_dir():
        return final
    cache_dir.mkdir(parents=True, exist_ok=True)
    with _exclusive(cache_dir / f".{key}.lock"):
        if final.is_dir():  # another process finished it while we waited
            return final
        started = time.perf_counter()
        scratch = Path(tempfile.mkdtemp(prefix=f".{key}.building-", dir=cache_dir))
        try:
            build(scratch)
            os.chmod(
                scratch, 0o755
            )  # mkdtemp makes it 0700; the cache is meant to be readable like any other
            os.rename(scratch, final)
        except BaseException:
            shutil.rmtree(scratch, ignore_errors=True)
            raise
        logger.info("built %s in %.1f s", final, time.perf_counter() - started)
    return final


def ensure_tiny_models(cache_dir: Path | None = None) -> TinyModels:
    """The tiny RT-DETR and Qwen2.5-VL, built on first use into ``cache_dir``.

    ``cache_dir`` defaults to ``default_models_dir()``.
    """
    cache_dir = Path(cache_dir) if cache_dir is not None else default_models_dir()
    rtdetr = ensure_built(
        cache_dir, rtdetr_cache_key(), lambda d: tiny_rtdetr.build_tiny_rtdetr(d, seed=_SEED)
    )
    qwen = ensure_built(cache_dir, qwen_cache_key(), lambda d: tiny_qwen.build_tiny_qwen2_5_vl(d, seed=_SEED))
    return TinyModels(rtdetr=rtdetr, qwen=qwen)
