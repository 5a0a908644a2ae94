"""Secrets in configuration come from the environment or from files, never from the YAML itself."""

from __future__ import annotations

import os

from pydantic import Field, SecretStr, model_validator

from seamline.config.base import StrictModel
from seamline.config.paths import ConfigPath
from seamline.errors import ConfigError


class Secret(StrictModel):
    """Where to read a secret: ``{env: NAME}`` or ``{file: /run/secrets/name}`` (exactly one)."""

    env: str | None = Field(
        default=None, title="Environment variable", description="Read the secret from this variable."
    )
    file: ConfigPath | None = Field(
        default=None, title="File", description="Read the secret from this file (trailing newline stripped)."
    )

    @model_validator(mode="after")
    def _exactly_one(self) -> Secret:
        if (self.env is None) == (self.file is None):
            raise ValueError("give exactly one of 'env' or 'file'")
        return self

    def resolve(self) -> SecretStr:
        """The secret's value; ConfigError if the variable is unset or the file unreadable."""
        if self.env is not None:
            value = os.environ.get(self.env)
            if value is None:
                raise ConfigError(f"secret: environment variable {self.env} is not set")
            return SecretStr(value)
        assert self.file is not None
        try:
            return SecretStr(self.file.read_text(encoding="utf-8").rstrip("\n"))
        except OSError as exc:
            raise ConfigError(f"secret: cannot read {self.file}: {exc.strerror or exc}") from exc
