"""Paths in configuration: relative means relative to the configuration file, wherever the process runs.

The loader validates every model with ``{"source": <file path>}`` as pydantic's validation context
(``seamline.config.loader``); these types read it. A model built in code or from command-line arguments has no
context, and its paths stay as given (relative to the working directory, as for any command-line path).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import AfterValidator, ValidationInfo


def config_dir(info: ValidationInfo) -> Path | None:
    """The folder of the configuration file being validated, or None when not validating a file."""
    source = (info.context or {}).get("source")
    return None if source is None else Path(source).resolve().parent


def _against_file(value: Path, info: ValidationInfo) -> Path:
    base = config_dir(info)
    return value if base is None or value.is_absolute() else base / value


def _against_file_if_there(value: str, info: ValidationInfo) -> str:
    # A name that is not a file beside the configuration stays a name (a hub id such as "org/model").
    base = config_dir(info)
    if base is None or Path(value).is_absolute() or not (base / value).exists():
        return value
    return str(base / value)


ConfigPath = Annotated[Path, AfterValidator(_against_file)]
"""A path in a configuration file: relative to the file's folder (every path field of every config model)."""

ConfigPathOrName = Annotated[str, AfterValidator(_against_file_if_there)]
"""A local path, relative to the configuration file if it exists there; else a name as written (a hub id)."""
