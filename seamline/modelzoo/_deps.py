"""Optional imports for model building: a missing package becomes a ``MissingDependencyError`` naming the extra."""

from __future__ import annotations

import importlib
from types import ModuleType

from seamline.errors import MissingDependencyError

TRAIN_EXTRA = "train"


def require(package: str, purpose: str, *, extra: str = TRAIN_EXTRA) -> ModuleType:
    """Import ``package`` or raise ``MissingDependencyError`` saying which extra to install for ``purpose``."""
    try:
        return importlib.import_module(package)
    except ImportError as exc:
        if exc.name is not None and exc.name.split(".")[0] != package.split(".")[0]:
            raise  # the package is there but one of its own imports failed: show that, not "install it"
        raise MissingDependencyError(package, extra, purpose) from exc
