"""Every environment variable Seamline reads, in one typed table.

Read a value with ``envs.SEAMLINE_CACHE_DIR`` (module attribute access); nothing else in the
code base calls ``os.environ`` for Seamline's own settings.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

_REPO_ROOT = Path(__file__).resolve().parent.parent


def _default_cache_dir() -> Path:
    # A checkout keeps its caches beside it (tests, demo); an installed package uses XDG.
    if (_REPO_ROOT / "pyproject.toml").exists():
        return _REPO_ROOT / ".cache"
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "seamline"


environment_variables: dict[str, Callable[[], Any]] = {
    # Where built tiny models, compile caches and vLLM's files go.
    "SEAMLINE_CACHE_DIR": lambda: (
        Path(os.environ["SEAMLINE_CACHE_DIR"])
        if os.environ.get("SEAMLINE_CACHE_DIR")
        else _default_cache_dir()
    ),
    # MQTT broker the tests use when one answers there (mqtt://host:port).
    "MQTT_URL": lambda: os.environ.get("MQTT_URL", "mqtt://127.0.0.1:1883"),
    # Force the test broker fixture to a kind: "external", "mosquitto" or "embedded".
    "SEAMLINE_TEST_BROKER": lambda: os.environ.get("SEAMLINE_TEST_BROKER", ""),
    # The MQTT protocol version when a configuration does not name one ("5" or "3.1.1"; default "5"). The test
    # broker fixture sets it for an embedded broker, which speaks only 3.1.1.
    "SEAMLINE_MQTT_PROTOCOL": lambda: os.environ.get("SEAMLINE_MQTT_PROTOCOL") or "5",
    # Log level for the CLI and services.
    "SEAMLINE_LOG_LEVEL": lambda: os.environ.get("SEAMLINE_LOG_LEVEL", "INFO"),
}


def __getattr__(name: str) -> Any:
    if name in environment_variables:
        return environment_variables[name]()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return list(environment_variables)
