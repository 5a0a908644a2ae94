"""Load YAML into pydantic models, reporting errors by key path *and* file line.

PyYAML's composed node tree keeps a line mark for every key and value; we walk it once to map each key
path to its line, then translate pydantic's error locations through that map.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from seamline.errors import ConfigError

M = TypeVar("M", bound=BaseModel)
KeyPath = tuple[str | int, ...]


def _construct(node: yaml.Node, path: KeyPath, lines: dict[KeyPath, int]) -> Any:
    lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        result: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                raise ConfigError(f"line {key_node.start_mark.line + 1}: mapping keys must be plain scalars")
            key = key_node.value
            if key in result:
                raise ConfigError(f"line {key_node.start_mark.line + 1}: duplicate key {key!r}")
            lines[(*path, key)] = key_node.start_mark.line + 1
            result[key] = _construct(value_node, (*path, key), lines)
        return result
    if isinstance(node, yaml.SequenceNode):
        return [_construct(item, (*path, i), lines) for i, item in enumerate(node.value)]
    # Scalars: let the safe constructor resolve ints, floats, bools, nulls with YAML 1.1 rules.
    return yaml.SafeLoader("").construct_object(node, deep=True)  # type: ignore[arg-type]


def parse_yaml(text: str, source: str = "<string>") -> tuple[Any, dict[KeyPath, int]]:
    """Parse YAML text into plain data plus a map from key path to 1-based line number."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: not valid YAML: {exc}") from exc
    lines: dict[KeyPath, int] = {}
    if node is None:
        return {}, lines
    return _construct(node, (), lines), lines


def _line_for(loc: KeyPath, lines: dict[KeyPath, int]) -> int | None:
    # Walk up the path until a known node: an unknown key's own line, a missing key's parent line.
    path = tuple(loc)
    while path:
        if path in lines:
            return lines[path]
        path = path[:-1]
    return lines.get(())


def format_validation_error(
    exc: ValidationError, lines: dict[KeyPath, int], source: str, prefix: KeyPath = ()
) -> list[str]:
    """One line per pydantic error: ``file:line: key.path: message`` (``prefix``: the section read)."""
    problems = []
    for err in exc.errors():
        # Drop pydantic's union/tag bookkeeping segments from the location.
        loc = prefix + tuple(
            p for p in err["loc"] if not (isinstance(p, str) and ("[" in p or p.startswith("function-")))
        )
        dotted = ".".join(str(p) for p in loc) or "(top level)"
        line = _line_for(loc, lines)
        where = f"{source}:{line}" if line else source
        message = err["msg"]
        if err["type"] == "extra_forbidden":
            message = "unknown key (check the spelling; see `seamline validate-config --help`)"
        problems.append(f"{where}: {dotted}: {message}")
    return problems


def load_yaml_model(path: Path, model: type[M], *, text: str | None = None) -> M:
    """Read ``path`` (or ``text``) and validate it as ``model``; ConfigError lists each problem and line."""
    source = str(path)
    if text is None:
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"{source}: cannot read: {exc.strerror or exc}") from exc
    data, lines = parse_yaml(text, source)
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: the top level must be a mapping of keys, not {type(data).__name__}")
    try:
        return model.model_validate(data, context={"source": path})
    except ValidationError as exc:
        problems = format_validation_error(exc, lines, source)
        raise ConfigError(f"{source}: {len(problems)} invalid setting(s)", problems) from exc


def validate_section(path: Path, key: str, section: dict[str, Any], model: type[M]) -> M:
    """Validate one top-level section of a file (already parsed) as ``model``, with line-numbered errors.

    The model receives ``{"source": path}`` as validation context, from which its ``ConfigPath`` fields
    resolve relative paths (``seamline.config.paths``).
    """
    source = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{source}: cannot read: {exc.strerror or exc}") from exc
    _, lines = parse_yaml(text, source)
    try:
        return model.model_validate(section, context={"source": path})
    except ValidationError as exc:
        problems = format_validation_error(exc, lines, source, prefix=(key,))
        raise ConfigError(f"{source}: {len(problems)} invalid setting(s) in '{key}'", problems) from exc
