"""The MQTT half of the contract: topic layout and payload validation.

Both come from the files in ``protos/seamline/inspection/v1/mqtt`` (packaged as
``seamline/inspection/v1/mqtt``): ``topics.yaml`` gives the patterns, ``*.schema.json`` the payloads.
Only transport code (the MQTT clients on each side) builds topic strings; domain code publishes a
payload kind (``"verdicts"``, ``"commands"``...) and never sees a topic prefix.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml

CONTRACT_DIR = Path(__file__).resolve().parents[1] / "inspection" / "v1" / "mqtt"
# A site or line id: one MQTT topic level (the schemas' "level" pattern). The one copy in code.
TOPIC_LEVEL = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")
AVAILABILITY_ONLINE = "online"
AVAILABILITY_OFFLINE = "offline"


class PayloadError(ValueError):
    """A payload does not match its JSON Schema; the message names the field and the rule."""


@dataclass(frozen=True)
class TopicSpec:
    """One topic of the contract."""

    name: str
    pattern: str
    payload_schema: str
    qos: int
    retain: bool


@cache
def topic_specs() -> dict[str, TopicSpec]:
    """The contract's topics by name, read from ``topics.yaml``."""
    data = yaml.safe_load((CONTRACT_DIR / "topics.yaml").read_text(encoding="utf-8"))
    return {
        name: TopicSpec(name, spec["pattern"], spec["payload"], int(spec["qos"]), bool(spec["retain"]))
        for name, spec in data["topics"].items()
    }


def check_level(value: str, what: str) -> str:
    """Return ``value`` if it is a valid site/line id (one topic level), else raise ValueError."""
    if not TOPIC_LEVEL.match(value):
        raise ValueError(
            f"{what} {value!r} must be 1-64 characters of a-z, 0-9 and '-', starting with a letter or digit"
        )
    return value


def check_root(root: str) -> str:
    """Return ``root`` if it can prefix topics (non-empty, no wildcards, no trailing '/'), else raise
    ValueError."""
    if not root or any(c in root for c in "#+") or root.endswith("/"):
        raise ValueError(f"topic root {root!r} must be non-empty, without wildcards or a trailing '/'")
    return root


@dataclass(frozen=True)
class LineTopics:
    """Topic strings for one site and line under ``root``."""

    root: str
    site: str
    line: str

    def __post_init__(self) -> None:
        check_root(self.root)
        check_level(self.site, "site id")
        check_level(self.line, "line id")

    def topic(self, name: str) -> str:
        """The topic for the contract's topic ``name`` (e.g. ``"verdicts"``) on this line."""
        return topic_specs()[name].pattern.format(root=self.root, site=self.site, line=self.line)

    @property
    def verdicts(self) -> str:
        return self.topic("verdicts")

    @property
    def commands(self) -> str:
        return self.topic("commands")

    @property
    def edge_verdicts(self) -> str:
        return self.topic("edge_verdicts")

    @property
    def edge_status(self) -> str:
        return self.topic("edge_status")

    @property
    def reviews(self) -> str:
        return self.topic("reviews")

    @property
    def edge_availability(self) -> str:
        return self.topic("edge_availability")

    @property
    def detector_releases(self) -> str:
        return self.topic("detector_releases")


def every_line_topic(root: str, name: str) -> str:
    """A subscription filter for the contract's line topic ``name`` on every site and line under ``root``."""
    return topic_specs()[name].pattern.format(root=check_root(root), site="+", line="+")


def cloud_availability_topic(root: str, component: str, instance: str) -> str:
    """Availability topic of one replica (``instance``, a topic level or ``+`` for all) of a cloud component
    (``classifier``, ``review``)."""
    check_level(component, "component")
    if instance != "+":
        check_level(instance, "instance")
    return topic_specs()["cloud_availability"].pattern.format(
        root=root, component=component, instance=instance
    )


def topic_level_of(name: str) -> str:
    """A valid topic level made from any name (a replica id such as ``host:port``): lower case, every other
    character ``-``, at most 64 characters."""
    level = re.sub(r"[^a-z0-9-]", "-", name.lower()).strip("-")[:64] or "0"
    return check_level(level, "name")


@cache
def _validator(schema_name: str) -> Any:
    import jsonschema

    schema = json.loads((CONTRACT_DIR / schema_name).read_text(encoding="utf-8"))
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema, format_checker=cls.FORMAT_CHECKER)


def schema(schema_name: str) -> dict[str, Any]:
    """The parsed JSON Schema ``schema_name`` (e.g. ``"verdict.schema.json"``)."""
    return json.loads((CONTRACT_DIR / schema_name).read_text(encoding="utf-8"))


def validate_payload(topic_name: str, payload: Any) -> None:
    """Raise PayloadError naming the first failing field if ``payload`` breaks ``topic_name``'s schema."""
    validator = _validator(topic_specs()[topic_name].payload_schema)
    errors = sorted(validator.iter_errors(payload), key=lambda e: list(e.absolute_path))
    if errors:
        first = errors[0]
        where = "/".join(str(p) for p in first.absolute_path) or "(payload)"
        more = f" (+{len(errors) - 1} more)" if len(errors) > 1 else ""
        raise PayloadError(f"{topic_name} payload invalid at {where}: {first.message}{more}")
