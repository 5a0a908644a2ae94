"""deploy/systemd/: the edge agent's unit for a plain JetPack install, and its example configuration.

``systemd-analyze verify`` checks the unit (it reports unknown keys and bad values on stderr but still exits
0, so stderr must be empty; and it checks that ExecStart's program exists, so the test points it at this
environment's ``seamline``). The invariants tie the unit to what the agent does: it speaks sd_notify
(Type=notify, a watchdog), exits 1 when a camera gave up (Restart=on-failure), 2 for a configuration that a
restart cannot fix, and writes only under its state directory, which the example configuration uses.
"""

from __future__ import annotations

import configparser
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
UNIT = REPO / "deploy" / "systemd" / "seamline-edge.service"
EXAMPLE = REPO / "deploy" / "systemd" / "edge.yaml"
INSTALLED_SEAMLINE = "/opt/seamline/venv/bin/seamline"
SYSTEMD_ANALYZE = shutil.which("systemd-analyze")
needs_systemd_analyze = pytest.mark.skipif(
    SYSTEMD_ANALYZE is None, reason="systemd-analyze is not installed (Debian/Ubuntu: apt install systemd)"
)


def _unit() -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None, delimiters=("=",))
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # systemd keys are case-sensitive
    parser.read_string(UNIT.read_text())
    return parser


def _verify(unit_text: str, folder: Path) -> subprocess.CompletedProcess[str]:
    """``systemd-analyze verify`` on ``unit_text`` with ExecStart pointed at this environment's seamline."""
    seamline = Path(sys.executable).with_name("seamline")
    assert seamline.is_file(), f"{seamline}: the test runs from the project's environment"
    assert INSTALLED_SEAMLINE in unit_text
    path = folder / UNIT.name
    path.write_text(unit_text.replace(INSTALLED_SEAMLINE, str(seamline)))
    assert SYSTEMD_ANALYZE is not None
    return subprocess.run(
        [SYSTEMD_ANALYZE, "verify", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "SYSTEMD_LOG_COLOR": "0", "LANG": "C.UTF-8"},
    )


@needs_systemd_analyze
def test_the_unit_verifies_without_a_warning(tmp_path):
    done = _verify(UNIT.read_text(), tmp_path)
    assert done.returncode == 0 and done.stderr == "", done.stderr
    assert done.stdout == "", done.stdout


@needs_systemd_analyze
def test_the_verifier_would_catch_a_mistake(tmp_path):
    """The check above means something: a misspelt key and a bad value are reported on stderr, exit 0."""
    broken = UNIT.read_text().replace("Restart=on-failure", "Restart=sometimes\nWatchdogSecs=30")
    done = _verify(broken, tmp_path)
    assert "Unknown key 'WatchdogSecs'" in done.stderr and "sometimes" in done.stderr, done.stderr
    assert done.returncode == 0  # which is why stderr is what the test reads


def test_the_unit_supervises_the_agent_as_it_behaves():
    service = _unit()["Service"]
    assert service["Type"] == "notify" and service["NotifyAccess"] == "main"  # edge.systemd.SystemdNotifier
    assert int(service["WatchdogSec"]) >= 10  # the agent pings every few hundred ms, at half the interval
    assert service["Restart"] == "on-failure"  # a camera that gave up: exit 1
    assert service["RestartPreventExitStatus"] == "2"  # bad configuration: a restart would not help
    assert service["User"] == "seamline" and "video" in service["SupplementaryGroups"].split()
    assert service["EnvironmentFile"] == "/etc/seamline/edge.env"
    command = service["ExecStart"].split()
    assert command[:5] == [INSTALLED_SEAMLINE, "edge", "run", "--config", "/etc/seamline/edge.yaml"]
    help_text = subprocess.run(
        [sys.executable, "-m", "seamline", "edge", "run", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    assert "--config" in help_text  # the option the unit passes is the command's own


def test_the_unit_is_hardened_but_leaves_the_gpu_reachable():
    service = _unit()["Service"]
    for key, value in {
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "CapabilityBoundingSet": "",
    }.items():
        assert service.get(key) == value, key
    # The Jetson GPU is /dev/nvhost-* and /dev/nvmap; CUDA and TensorRT need writable+executable memory.
    assert "PrivateDevices" not in service and "DevicePolicy" not in service
    assert "MemoryDenyWriteExecute" not in service and "PrivateUsers" not in service


def test_the_example_configuration_validates_and_writes_only_where_the_unit_lets_it(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "seamline", "validate-config", str(EXAMPLE)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert done.returncode == 0 and done.stdout.startswith("OK: "), done.stdout + done.stderr
    service = _unit()["Service"]
    state = Path("/var/lib") / service["StateDirectory"]
    writable = [state, *map(Path, service.get("ReadWritePaths", "").split())]
    config = yaml.safe_load(EXAMPLE.read_text())
    assert Path(config["storage"]["data_dir"]) == state  # spool and ledger under StateDirectory=
    assert Path(service["WorkingDirectory"]) == state
    engine = Path(config["edge"]["detector"]["engine"])
    assert any(engine.is_relative_to(folder) for folder in writable)  # built on the device, so writable
    assert Path(re.sub(r"^CUDA_CACHE_PATH=", "", service["Environment"].split()[-1])).is_relative_to(state)
    # secrets by reference only
    assert config["mqtt"]["password"] == {"env": "SEAMLINE_MQTT_PASSWORD"}
