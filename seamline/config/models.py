"""The Seamline configuration file (one YAML for a site: edge and cloud read the sections they need).

Defaults run everything on one laptop; scaling out changes URLs, not structure.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, TypeVar
from urllib.parse import urlsplit

from pydantic import BaseModel, Field, ValidationInfo, field_validator, model_validator

from seamline import envs
from seamline.config.base import StrictModel
from seamline.config.paths import ConfigPath
from seamline.config.secrets import Secret
from seamline.config.taxonomy import DEFAULT_TAXONOMY_PATH, Taxonomy, load_taxonomy
from seamline.contract.mqtt import check_level

M = TypeVar("M", bound=BaseModel)


class SiteConfig(StrictModel):
    """Which site, line and station this file describes."""

    site_id: str = Field(
        default="site1", title="Site id", description="Plant or warehouse id; one MQTT topic level."
    )
    line_id: str = Field(
        default="line1", title="Line id", description="Conveyor line id; one MQTT topic level."
    )
    station_id: str = Field(
        default="station1",
        min_length=1,
        max_length=64,
        title="Station id",
        description="Camera station on the line (1-64 characters; the cloud refuses longer ones).",
    )

    @field_validator("site_id", "line_id")
    @classmethod
    def _level(cls, value: str, info: ValidationInfo) -> str:
        return check_level(value, info.field_name or "id")


class TlsConfig(StrictModel):
    """TLS material (mutual TLS when a client certificate is given)."""

    ca_file: ConfigPath | None = Field(
        default=None, title="CA file", description="CA bundle that signs the peer's certificate."
    )
    cert_file: ConfigPath | None = Field(
        default=None, title="Certificate", description="This side's certificate (PEM)."
    )
    key_file: ConfigPath | None = Field(
        default=None, title="Private key", description="This side's private key (PEM)."
    )

    @model_validator(mode="after")
    def _pair(self) -> TlsConfig:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("cert_file and key_file go together")
        return self


class MqttConfig(StrictModel):
    """The MQTT broker that carries verdicts, line commands, review events and availability."""

    url: str = Field(
        default="mqtt://127.0.0.1:1883",
        title="Broker URL",
        description="mqtt://host:port, or mqtts://host:port for TLS (then see 'tls').",
    )
    topic_root: str = Field(
        default="seamline", title="Topic root", description="First topic level for all Seamline topics."
    )
    client_id_prefix: str = Field(
        default="seamline",
        title="Client id prefix",
        description="Each process appends its component and a unique suffix.",
    )
    username: str | Secret | None = Field(
        default=None,
        title="Username",
        description=(
            "Broker username, if the broker wants one; or {env: NAME} / {file: PATH} where one file serves "
            "processes that log in as different users (compose's cloud and review)."
        ),
    )
    password: Secret | None = Field(
        default=None, title="Password", description="Broker password: {env: NAME} or {file: PATH}."
    )
    keepalive_s: int = Field(
        default=30, ge=5, le=3600, title="Keepalive (s)", description="MQTT keepalive interval."
    )
    tls: TlsConfig | None = Field(default=None, title="TLS", description="TLS for mqtts:// URLs.")
    protocol: Literal["5", "3.1.1"] = Field(
        default_factory=lambda: envs.SEAMLINE_MQTT_PROTOCOL,
        title="MQTT protocol version",
        description=(
            "5 (MQTT 5): the broker's PUBACK says when it refuses a publish (an ACL denial), which Seamline "
            "reports. 3.1.1 only for a broker without MQTT 5 (the embedded test broker): a broker drops a "
            "refused 3.1.1 publish and still acknowledges it, so such a refusal goes unnoticed. Unset: "
            "$SEAMLINE_MQTT_PROTOCOL, else 5."
        ),
    )

    @field_validator("protocol", mode="before")
    @classmethod
    def _protocol(cls, value: Any) -> Any:
        # YAML reads `protocol: 5` as the integer 5.
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
            raise ValueError("must look like mqtt://host:port or mqtts://host:port")
        try:
            _ = parts.port  # parsing the port is the check
        except ValueError as exc:
            raise ValueError(f"bad port: {exc}") from exc
        return value

    @property
    def host(self) -> str:
        return urlsplit(self.url).hostname or "127.0.0.1"

    @property
    def port(self) -> int:
        parts = urlsplit(self.url)
        return parts.port or (8883 if parts.scheme == "mqtts" else 1883)


class GrpcConfig(StrictModel):
    """The edge -> cloud gRPC link (protos/seamline/inspection/v1)."""

    cloud_address: str = Field(
        default="127.0.0.1:50051",
        title="Cloud address",
        description=(
            "What the edge agent dials: host:port (a Kubernetes Service or load balancer in front of cloud "
            "replicas at scale), dns:///host:port, or ipv4:host:port,host:port,... to list the replicas."
        ),
    )
    listen_address: str = Field(
        default="127.0.0.1:50051",
        title="Listen address",
        description="host:port the cloud service binds; 0.0.0.0:50051 to accept remote edges.",
    )
    max_message_bytes: int = Field(
        default=8 * 1024 * 1024,
        ge=64 * 1024,
        le=256 * 1024 * 1024,
        title="Max message size",
        description="Largest gRPC message either side accepts (one Garment with its crops).",
    )
    tls: TlsConfig | None = Field(
        default=None,
        title="TLS",
        description=(
            "Cloud: cert_file + key_file serve TLS; ca_file too requires client certificates from that CA "
            "(mutual TLS) and binds each stream to the certificate's identity. Edge: ca_file trusts the "
            "cloud; cert_file + key_file are its client certificate. Files are re-read when they change."
        ),
    )
    max_connection_age_s: float = Field(
        default=1800.0,
        gt=0,
        title="Max connection age (s)",
        description=(
            "Cloud: a connection older than this is asked to reconnect, so edges spread over replicas and "
            "pick up rotated certificates; the spool loses nothing."
        ),
    )
    max_connection_age_grace_s: float = Field(
        default=30.0,
        ge=0,
        title="Max connection age grace (s)",
        description="Cloud: how long a stream on a connection past its age may go on before it is cut.",
    )

    @field_validator("listen_address")
    @classmethod
    def _host_port(cls, value: str) -> str:
        if not _is_host_port(value):
            raise ValueError("must be host:port")
        return value

    @field_validator("cloud_address")
    @classmethod
    def _target(cls, value: str) -> str:
        """``host:port``, ``dns:///host:port`` (every address of the name), or ``ipv4:``/``ipv6:`` and a
        comma-separated list of addresses (gRPC name syntax; on a failure the edge dials the next)."""
        scheme, sep, rest = value.partition(":")
        if sep and scheme in ("ipv4", "ipv6"):
            ok = bool(rest) and all(_is_host_port(a) for a in rest.split(","))
        elif value.startswith("dns:"):
            ok = _is_host_port(value.removeprefix("dns:").lstrip("/"))
        else:
            ok = _is_host_port(value)
        if not ok:
            raise ValueError("must be host:port, dns:///host:port, or ipv4:host:port,host:port,...")
        return value


def _is_host_port(value: str) -> bool:
    host, sep, port = value.rpartition(":")
    return bool(sep and host and "," not in host and port.isdigit() and 0 <= int(port) <= 65535)


class StorageConfig(StrictModel):
    """Where local state lives (edge spool, cloud stores default under it)."""

    data_dir: ConfigPath = Field(
        default=Path("data"),
        validate_default=True,  # the default, too, is relative to the file
        title="Data directory",
        description="Root for local state; relative to this file.",
    )
    retention_days: float | None = Field(
        default=None,
        gt=0,
        title="Retention (days)",
        description=(
            "Cloud: garments received longer ago than this are deleted with their crops, verdicts and review "
            "records, unless a person is still to decide them (the deletion is kept in the audit trail); "
            "null: kept for ever. The edge's own retention is edge.spool.retention_h."
        ),
    )


class LoggingConfig(StrictModel):
    """Log output."""

    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        default="INFO", title="Level", description="Minimum log level."
    )
    json_lines: bool = Field(
        default=False, title="JSON lines", description="One JSON object per line (for log shippers)."
    )


class SeamlineConfig(StrictModel):
    """A Seamline configuration file."""

    site: SiteConfig = Field(
        default_factory=SiteConfig, title="Site", description="Site, line and station ids."
    )
    mqtt: MqttConfig = Field(
        default_factory=MqttConfig, title="MQTT", description="Broker connection and topic root."
    )
    grpc: GrpcConfig = Field(default_factory=GrpcConfig, title="gRPC", description="Edge -> cloud link.")
    taxonomy: ConfigPath | Taxonomy = Field(
        default=DEFAULT_TAXONOMY_PATH,
        title="Taxonomy",
        description="Path to a taxonomy YAML (relative to this file), or the taxonomy inline. "
        "Default: Seamline's 12 types.",
    )
    # Validated from {} when absent (not built by StorageConfig()), so its data_dir default sees the file.
    storage: StorageConfig = Field(
        default_factory=dict, validate_default=True, title="Storage", description="Local state."
    )
    logging: LoggingConfig = Field(default_factory=LoggingConfig, title="Logging", description="Log output.")
    # Each side validates its own section with its own models (edge/config.py, cloud/config.py), so the core
    # needs neither side's code; `seamline validate-config` checks both.
    edge: dict[str, Any] | None = Field(
        default=None, title="Edge agent", description="The edge agent's settings (see edge/config.py)."
    )
    cloud: dict[str, Any] | None = Field(
        default=None, title="Cloud service", description="The cloud service's settings (see cloud/config.py)."
    )
    review: dict[str, Any] | None = Field(
        default=None,
        title="Review console",
        description="The review console's settings (see cloud/review/config.py).",
    )

    def load_taxonomy(self) -> Taxonomy:
        """The taxonomy this file selects (loading it from its path if needed)."""
        if isinstance(self.taxonomy, Taxonomy):
            return self.taxonomy
        return load_taxonomy(self.taxonomy)


def load_config(path: Path | str) -> SeamlineConfig:
    """Load and fully validate a configuration file, including the taxonomy it points to.

    Raises ConfigError whose problems name each failing key path and its line.
    """
    from seamline.config.loader import load_yaml_model

    config = load_yaml_model(Path(path), SeamlineConfig)
    config.load_taxonomy()
    return config


def load_section(path: Path | str, config: SeamlineConfig, key: str, model: type[M]) -> M:
    """Validate section ``key`` of the file at ``path`` as ``model`` (errors carry ``key.`` paths and lines).

    Relative paths inside the section are resolved against the file's folder (``ConfigPath``), as for the
    core sections.
    """
    from seamline.config.loader import validate_section

    return validate_section(Path(path), key, getattr(config, key) or {}, model)
