"""Optional dependencies: import one, or raise ``MissingDependencyError`` naming the extra that installs it.

Heavy and platform-bound libraries (torch, onnxruntime, TensorRT, boto3, paho-mqtt...) are imported only
inside the code that uses them, through ``require``, so that each side's runtime path stays light and a
missing one is reported with the command that fixes it.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from seamline.errors import MissingDependencyError


def require(module: str, purpose: str, *, extra: str, package: str | None = None) -> ModuleType:
    """Import ``module`` or say which extra to install for ``purpose``.

    Args:
        module: the dotted module to import, e.g. ``"paho.mqtt.client"``.
        purpose: what needs it, as the start of a sentence ("The onnxruntime detector").
        extra: the ``seamline[...]`` extra that installs it.
        package: the distribution's name where it differs from the module's (``"paho-mqtt"``).

    Returns:
        The imported module.

    Raises:
        MissingDependencyError: ``module`` (or its top-level package) is not installed.
        ImportError: it is installed but one of its own imports failed; shown as is, not as "install it".
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        if exc.name is not None and exc.name.split(".")[0] != module.split(".")[0]:
            raise
        raise MissingDependencyError(package or module.split(".")[0], extra, purpose) from exc
