"""deploy/docker/: the cloud image and the Jetson edge image, checked offline (no Docker engine here).

hadolint lints each Dockerfile (any finding fails); the invariants check what the images promise: pinned
bases, the package version the wheel will have, TensorRT only from JetPack on the edge, a non-root user; and
the files each Dockerfile copies (through its .dockerignore allow-list) are enough to build Seamline's wheel.
"""

from __future__ import annotations

import fnmatch
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib

REPO = Path(__file__).resolve().parents[2]
DOCKERFILES = sorted((REPO / "deploy" / "docker").glob("*.Dockerfile"))
VERSION = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]


def test_there_is_a_cloud_and_a_jetson_image():
    assert {p.name for p in DOCKERFILES} == {"cloud.Dockerfile", "edge-jetson.Dockerfile"}


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_hadolint_finds_nothing(tools, dockerfile):
    done = tools.run(tools.bin("hadolint"), "--no-color", dockerfile)
    assert done.returncode == 0 and not done.stdout.strip(), done.stdout + done.stderr


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_images_are_pinned_versioned_and_not_root(dockerfile):
    text = dockerfile.read_text()
    args = dict(re.findall(r"^ARG (\w+)=(\S+)", text, flags=re.MULTILINE))
    for base in re.findall(r"^FROM (\S+)", text, flags=re.MULTILINE):
        base = re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], base)
        name, _, tag = base.rpartition(":")
        assert name and tag not in ("", "latest"), base
    assert args["SEAMLINE_VERSION"] == VERSION  # the wheel the build makes is the one it installs
    assert re.search(r"^USER \d+:\d+$", text, flags=re.MULTILINE), "runs as root"


def test_the_edge_image_takes_tensorrt_from_jetpack():
    text = (REPO / "deploy/docker/edge-jetson.Dockerfile").read_text()
    assert "nvcr.io/nvidia/l4t-jetpack:${L4T_JETPACK}" in text and "ARG L4T_JETPACK=r36." in text
    assert "python3-libnvinfer" in text and "--system-site-packages" in text
    installs = " ".join(re.findall(r"pip install[^\n]*", text))
    assert "tensorrt" not in installs and "[edge,edge-gpu]" in installs
    assert 'VOLUME ["/var/lib/seamline"]' in text  # spool, ledger and engine cache outlive the container


def _context(dockerfile: Path, into: Path) -> Path:
    """The build context Docker would send: the repository filtered by the Dockerfile's .dockerignore."""
    rules = [
        line.strip()
        for line in Path(f"{dockerfile}.dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]

    def ignored(relative: str) -> bool:
        verdict = False
        for rule in rules:
            keep, pattern = rule.startswith("!"), rule.lstrip("!").rstrip("/").removeprefix("**/")
            parts = relative.split("/")
            hit = any(
                fnmatch.fnmatch("/".join(parts[: i + 1]), pattern) or fnmatch.fnmatch(parts[i], pattern)
                for i in range(len(parts))
            )
            if hit:
                verdict = not keep
        return verdict

    tracked = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    for relative in tracked:
        if not ignored(relative) and (REPO / relative).is_file():
            (into / relative).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / relative, into / relative)
    return into


@pytest.mark.slow
def test_what_the_dockerfiles_copy_builds_the_wheel(tmp_path):
    """Each Dockerfile's COPY lines, from its filtered context, hold everything the wheel build needs."""
    for dockerfile in DOCKERFILES:
        context = _context(dockerfile, tmp_path / dockerfile.stem / "context")
        build = tmp_path / dockerfile.stem / "src"
        build.mkdir()
        for sources in re.findall(r"^COPY (?!--from)(.+) \S+$", dockerfile.read_text(), flags=re.MULTILINE):
            for source in sources.split():
                path = context / source.rstrip("/")
                assert path.exists(), f"{dockerfile.name}: COPY {source} is not in the build context"
                target = build / source.rstrip("/")
                if path.is_dir():
                    shutil.copytree(path, target)
                else:
                    shutil.copy2(path, target)
        wheels = tmp_path / dockerfile.stem / "wheels"
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "wheel",
                "-q",
                "--no-deps",
                "--no-build-isolation",
                "-w",
                wheels,
                build,
            ],
            capture_output=True,
            text=True,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        (wheel,) = wheels.glob("*.whl")
        assert wheel.name == f"seamline-{VERSION}-py3-none-any.whl"
