"""Seamline's own exceptions. Boundaries turn them into a gRPC status, an HTTP problem or a CLI exit code.

The command line exits with the error's ``exit_code``: 1 when the job ran and failed (a server that does not
start, an export that fails, a missing optional package), 2 for bad input (``InputError``: configuration,
arguments, data), as the README's exit codes say.
"""

from __future__ import annotations


class SeamlineError(Exception):
    """Base of every error Seamline raises on purpose: by default, the job failed."""

    exit_code = 1


class InputError(SeamlineError):
    """Bad input: configuration, arguments or data the command cannot use."""

    exit_code = 2


class ConfigError(InputError):
    """A configuration file is missing, unreadable or invalid.

    ``problems`` holds one line per failing key, each naming the key path and the file line.
    """

    def __init__(self, message: str, problems: list[str] | None = None) -> None:
        super().__init__(message)
        self.problems = problems or []

    def __str__(self) -> str:
        head = super().__str__()
        if not self.problems:
            return head
        return head + "\n" + "\n".join(f"  - {p}" for p in self.problems)


class MissingDependencyError(SeamlineError, ImportError):
    """An optional dependency is not installed; the message names the extra to install."""

    def __init__(self, package: str, extra: str, purpose: str) -> None:
        super().__init__(
            f"{purpose} needs the {package!r} package, which is not installed. "
            f"Install it with: pip install 'seamline[{extra}]'"
        )
        self.package = package
        self.extra = extra
