"""deploy/helm/seamline: the cloud on Kubernetes, validated offline (issue 15).

Helm's own SDK (``helm-python-sdk``, run by tests/deploy/helm_chart.py in the tools environment) lints the
chart strictly and renders it for a matrix of values files; ``kubernetes-validate --strict`` checks every
rendered object against two Kubernetes versions' schemas. The invariants below check what an operator relies
on: every container has resource requests and limits, probes and a pinned image and runs unprivileged;
secrets are only referenced; every name one object gives another (a Service's pods and ports, a volume's
ConfigMap, a file the configuration reads) resolves; production is highly available; the migrations run as a
hook with a configuration of their own; and the Seamline configuration each component mounts passes
``seamline validate-config``. values.schema.json rejects bad values, naming the path.

Optional dependencies (EMQX, vLLM's production stack) are never fetched here (no network): the chart is
rendered with them declared but absent, which checks this chart's side of the wiring only.
"""

from __future__ import annotations

import copy
import json
import posixpath
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import yaml

from cloud.classifiers.vllm_server import DEFAULT_MM_LIMITS, STRUCTURED_OUTPUTS_CONFIG

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "deploy" / "helm" / "seamline"
HERE = Path(__file__).parent
VALUES = HERE / "helm-values"
RELEASE, NAMESPACE = "seamline", "inspection"
KUBERNETES_VERSIONS = ("1.29.0", "1.33.0")
# What strict lint says of a chart whose optional dependencies are declared but not fetched (tests never
# fetch them); anything else at warning level or above fails the lint test.
UNFETCHED_DEPENDENCIES = "chart directory is missing these dependencies: emqx,vllm-stack"

MATRIX: dict[str, list[Path]] = {
    "default": [],
    "production": [CHART / "values-production.yaml"],
    "external-vllm": [VALUES / "external-vllm.yaml"],
    "tls": [VALUES / "tls.yaml"],
    "ingress": [VALUES / "ingress.yaml"],
    "production-external-vllm": [CHART / "values-production.yaml", VALUES / "external-vllm.yaml"],
    "emqx": [VALUES / "emqx.yaml"],
    "vllm-stack": [VALUES / "vllm-stack.yaml"],
}
CASES = list(MATRIX)
SECRET_ENV = re.compile(r"(PASSWORD|SECRET|TOKEN|API_KEY|ACCESS_KEY|CREDENTIAL)")
SECRET_CONFIG_KEYS = {"password", "api_key", "username"}  # username may be a reference too


def _helm(tools, tmp_path: Path, jobs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    request = tmp_path / "helm-request.json"
    request.write_text(
        json.dumps({"chart": str(CHART), "release": RELEASE, "namespace": NAMESPACE, "jobs": jobs})
    )
    done = tools.run(tools.python, HERE / "helm_chart.py", request)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.fixture(scope="module")
def helm(tools, tmp_path_factory) -> dict[str, dict[str, Any]]:
    """Lint report, rendered manifests and error of every values case, from one run of Helm's SDK."""
    jobs = [
        {"id": case, "values_files": [str(p) for p in files], "lint": True, "render": True}
        for case, files in MATRIX.items()
    ]
    return _helm(tools, tmp_path_factory.mktemp("helm"), jobs)


@pytest.fixture(scope="module")
def rendered(helm) -> dict[str, list[dict[str, Any]]]:
    """case -> the rendered Kubernetes objects."""
    objects = {}
    for case, result in helm.items():
        assert result["error"] is None, f"{case}: {result['error']}"
        objects[case] = [
            doc
            for template, text in sorted(result["manifests"].items())
            if not template.endswith("NOTES.txt")
            for doc in yaml.safe_load_all(text)
            if doc
        ]
    return objects


def _one(objects, kind: str, name: str) -> dict[str, Any]:
    found = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind} {name}: {len(found)} rendered"
    return found[0]


def _workloads(objects):
    """(object, pod spec) of every Deployment and Job."""
    for o in objects:
        if o["kind"] in ("Deployment", "Job"):
            yield o, o["spec"]["template"]["spec"]


def _configs(objects) -> dict[tuple[str, str], dict[str, Any]]:
    """(ConfigMap name, key) -> the Seamline configuration it holds."""
    return {
        (o["metadata"]["name"], key): yaml.safe_load(text)
        for o in objects
        if o["kind"] == "ConfigMap"
        for key, text in o["data"].items()
    }


def _mounted_config(objects, pod: dict[str, Any]) -> dict[str, Any]:
    """The configuration a pod mounts at /etc/seamline/seamline.yaml."""
    (container,) = pod["containers"]
    (mount,) = [m for m in container["volumeMounts"] if m["mountPath"] == "/etc/seamline/seamline.yaml"]
    volume = next(v for v in pod["volumes"] if v["name"] == mount["name"])["configMap"]
    (key,) = [item["key"] for item in volume["items"] if item["path"] == mount["subPath"]]
    return _configs(objects)[(volume["name"], key)]


def _name(component: str) -> str:
    return f"{RELEASE}-{component}"


def _pod(objects, kind: str, component: str) -> dict[str, Any]:
    """The pod spec of the chart's ``kind`` (Deployment or Job) for ``component``."""
    return _one(objects, kind, _name(component))["spec"]["template"]["spec"]


# --- Helm: lint and render -------------------------------------------------------------------------------


@pytest.mark.parametrize("case", CASES)
def test_strict_lint_passes(helm, case):
    report = helm[case]["lint"]
    assert report is not None, helm[case]["error"]
    problems = [m["error"] for m in report["messages"] if m["severity"] >= 2]
    assert problems == [UNFETCHED_DEPENDENCIES], problems


@pytest.mark.parametrize("case", CASES)
def test_the_chart_renders(rendered, case):
    kinds = {(o["kind"], o["metadata"]["name"]) for o in rendered[case]}
    for expected in [
        ("Deployment", _name("classifier")),
        ("Service", _name("classifier")),
        ("Deployment", _name("review")),
        ("Service", _name("review")),
        ("ConfigMap", RELEASE),
        ("Job", _name("migrations")),
    ]:
        assert expected in kinds
    assert not any(kind == "Secret" for kind, _ in kinds), "the chart must never create a Secret"


def test_kubernetes_validate_rejects_a_bad_field(tools, rendered, tmp_path):
    """The validator itself works: an unknown field in a rendered object fails it."""
    broken = copy.deepcopy(_one(rendered["default"], "Deployment", _name("classifier")))
    broken["spec"]["template"]["spec"]["containers"][0]["livenessProb"] = {}
    path = tmp_path / "broken.yaml"
    path.write_text(yaml.safe_dump(broken))
    done = tools.run(tools.bin("kubernetes-validate"), "--strict", "-k", KUBERNETES_VERSIONS[0], path)
    assert done.returncode == 1 and "livenessProb" in done.stdout + done.stderr


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_every_object_passes_kubernetes_validate(tools, rendered, tmp_path, version):
    files = []
    for case, objects in rendered.items():
        files.append(tmp_path / f"{case}.yaml")
        files[-1].write_text(yaml.safe_dump_all(objects))
    done = tools.run(tools.bin("kubernetes-validate"), "--strict", "--quiet", "-k", version, *files)
    # ServiceMonitor is a custom resource with no bundled schema: a warning, not a failure.
    assert done.returncode == 0, done.stdout + done.stderr
    assert "ERROR" not in done.stdout + done.stderr


# --- invariants of every rendered object ------------------------------------------------------------------


@pytest.mark.parametrize("case", CASES)
def test_every_container_has_requests_limits_and_probes(rendered, case):
    for workload, pod in _workloads(rendered[case]):
        for container in pod["containers"]:
            where = f"{workload['metadata']['name']}/{container['name']}"
            resources = container.get("resources", {})
            for part in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(resources.get(part, {})), f"{where}: {part}"
            if workload["kind"] == "Job":
                continue  # a Job runs to completion: nothing to probe
            assert {"livenessProbe", "readinessProbe", "startupProbe"} <= set(container), where


@pytest.mark.parametrize("case", CASES)
def test_every_image_is_pinned(rendered, case):
    for workload, pod in _workloads(rendered[case]):
        for container in pod["containers"]:
            image = container["image"]
            tag = image.rpartition(":")[2] if "@" not in image else "digest"
            assert "/" not in tag and tag not in ("", "latest"), f"{workload['metadata']['name']}: {image}"


@pytest.mark.parametrize("case", CASES)
def test_containers_run_unprivileged_on_a_read_only_root(rendered, case):
    for _, pod in _workloads(rendered[case]):
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["runAsUser"] > 0
        assert pod["automountServiceAccountToken"] is False
        for container in pod["containers"]:
            context = container["securityContext"]
            assert context["readOnlyRootFilesystem"] is True and context["allowPrivilegeEscalation"] is False
            assert context["capabilities"]["drop"] == ["ALL"]
            tmp = next(m for m in container["volumeMounts"] if m["mountPath"] == "/tmp")
            assert "emptyDir" in next(v for v in pod["volumes"] if v["name"] == tmp["name"])


@pytest.mark.parametrize("case", CASES)
def test_secrets_are_only_referenced(rendered, case):
    objects = rendered[case]
    for _, pod in _workloads(objects):
        for container in pod["containers"]:
            for env in container.get("env", []):
                if SECRET_ENV.search(env["name"]):
                    assert "value" not in env and "secretKeyRef" in env.get("valueFrom", {}), env
    for (name, key), config in _configs(objects).items():
        for path, value in _walk(config):
            if path[-1] in SECRET_CONFIG_KEYS and not (path[-1] == "username" and isinstance(value, str)):
                assert isinstance(value, dict) and len(value) == 1 and set(value) <= {"env", "file"}, path
            if isinstance(value, str):
                assert not re.search(r"://[^/@\s]+:[^/@\s]*@", value), f"{name}/{key}: a password in {path}"


def _walk(node, path=()):
    if isinstance(node, dict):
        for key, value in node.items():
            yield (*path, key), value
            yield from _walk(value, (*path, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _walk(value, (*path, index))


@pytest.mark.parametrize("case", CASES)
def test_every_reference_between_objects_resolves(rendered, case):
    objects = rendered[case]
    pods = {o["metadata"]["name"]: o["spec"]["template"] for o in objects if o["kind"] == "Deployment"}

    def pods_selected(selector: dict[str, str]) -> list[dict[str, Any]]:
        return [t for t in pods.values() if selector.items() <= t["metadata"]["labels"].items()]

    services = {o["metadata"]["name"]: o for o in objects if o["kind"] == "Service"}
    for name, service in services.items():
        (template,) = pods_selected(service["spec"]["selector"])
        ports = {p["name"] for c in template["spec"]["containers"] for p in c.get("ports", [])}
        assert {p["targetPort"] for p in service["spec"]["ports"]} <= ports, name
    for o in objects:
        kind, spec = o["kind"], o.get("spec", {})
        if kind in ("PodDisruptionBudget",):
            assert len(pods_selected(spec["selector"]["matchLabels"])) == 1, o["metadata"]["name"]
        if kind == "HorizontalPodAutoscaler":
            assert spec["scaleTargetRef"]["name"] in pods
        if kind == "Ingress":
            for rule in spec["rules"]:
                for path in rule["http"]["paths"]:
                    backend = path["backend"]["service"]
                    ports = {p["name"] for p in services[backend["name"]]["spec"]["ports"]}
                    assert backend["port"]["name"] in ports
        if kind == "ServiceMonitor":
            labels = spec["selector"]["matchLabels"]
            (service,) = [s for s in services.values() if labels.items() <= s["metadata"]["labels"].items()]
            assert {e["port"] for e in spec["endpoints"]} <= {p["name"] for p in service["spec"]["ports"]}
    names = {(o["kind"], o["metadata"]["name"]) for o in objects}
    for workload, pod in _workloads(objects):
        if workload["kind"] == "Deployment" and "serviceAccountName" in pod:
            assert ("ServiceAccount", pod["serviceAccountName"]) in names
        for volume in pod["volumes"]:
            if "configMap" in volume:
                assert ("ConfigMap", volume["configMap"]["name"]) in names
            if "persistentVolumeClaim" in volume:
                assert ("PersistentVolumeClaim", volume["persistentVolumeClaim"]["claimName"]) in names


@pytest.mark.parametrize("case", CASES)
def test_every_file_and_variable_the_configuration_reads_is_provided(rendered, case):
    """Each Deployment's configuration names files (passwords, TLS) that a mounted Secret provides, and
    variables its container sets. (The migrations read only the database: their copy is not checked.)"""
    objects = rendered[case]
    for workload, pod in _workloads(objects):
        if workload["kind"] != "Deployment" or workload["metadata"]["name"] == _name("vllm"):
            continue
        config = _mounted_config(objects, pod)
        (container,) = pod["containers"]
        env = {e["name"] for e in container["env"]}
        volumes = {v["name"]: v for v in pod["volumes"]}
        mounts = {m["mountPath"]: volumes[m["name"]] for m in container["volumeMounts"]}
        for path, value in _walk(config):
            if path[-1] == "env" and isinstance(value, str):
                assert value in env, f"{workload['metadata']['name']}: {path} = {value}"
            if path[-1] in ("file", "ca_file", "cert_file", "key_file"):
                folder, file = posixpath.split(value)
                secret = mounts[folder]["secret"]
                assert file in {item["path"] for item in secret["items"]}, f"{path} = {value}"


# --- the components' settings -----------------------------------------------------------------------------


@pytest.mark.parametrize("case", CASES)
def test_the_classifier_probes_its_plaintext_health_port_and_drains_in_time(rendered, case):
    objects = rendered[case]
    pod = _pod(objects, "Deployment", "classifier")
    config = _mounted_config(objects, pod)
    (container,) = pod["containers"]
    assert container["command"] == ["seamline", "cloud", "serve", "--config", "/etc/seamline/seamline.yaml"]
    health_port = int(config["cloud"]["health_address"].rpartition(":")[2])
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["grpc"] == {"port": health_port, "service": ""}
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports["grpc"] == int(config["grpc"]["listen_address"].rpartition(":")[2])
    assert ports["metrics"] == int(config["cloud"]["metrics_address"].rpartition(":")[2])
    assert pod["terminationGracePeriodSeconds"] > config["cloud"]["shutdown_grace_s"]
    assert config["grpc"]["max_connection_age_s"] > 0 and config["grpc"]["max_connection_age_grace_s"] > 0
    assert config["cloud"]["migrate_on_start"] is False
    assert "replica_id" not in config["cloud"]  # the default, <pod name>:<port>, is unique per replica


@pytest.mark.parametrize("case", CASES)
def test_the_review_console_listens_on_its_probed_port(rendered, case):
    objects = rendered[case]
    pod = _pod(objects, "Deployment", "review")
    config = _mounted_config(objects, pod)
    (container,) = pod["containers"]
    assert container["command"] == ["seamline", "review", "serve", "--config", "/etc/seamline/seamline.yaml"]
    assert config["review"]["host"] == "0.0.0.0"
    assert container["ports"] == [
        {"name": "http", "containerPort": config["review"]["port"], "protocol": "TCP"}
    ]
    assert container["readinessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    ingress = [o for o in objects if o["kind"] == "Ingress"]
    assert config["review"]["secure_cookies"] is bool(ingress and ingress[0]["spec"].get("tls"))
    assert config["mqtt"]["username"] == "seamline-review"  # its own broker user (least privilege)
    assert "tls" not in config["grpc"]  # the gRPC server's key stays with the classifier


@pytest.mark.parametrize("case", ["production", "production-external-vllm"])
def test_production_is_highly_available(rendered, case):
    objects = rendered[case]
    deployment = _one(objects, "Deployment", _name("classifier"))
    hpa = _one(objects, "HorizontalPodAutoscaler", _name("classifier"))
    assert hpa["apiVersion"] == "autoscaling/v2" and hpa["spec"]["minReplicas"] >= 2
    assert "replicas" not in deployment["spec"]  # the autoscaler's, never reset by an upgrade
    pdb = _one(objects, "PodDisruptionBudget", _name("classifier"))
    assert (
        pdb["spec"]["selector"]["matchLabels"].items()
        <= deployment["spec"]["template"]["metadata"]["labels"].items()
    )
    assert any(o["kind"] == "ServiceMonitor" for o in objects)
    config = _mounted_config(objects, deployment["spec"]["template"]["spec"])
    assert set(config["grpc"]["tls"]) == {"ca_file", "cert_file", "key_file"}  # mutual TLS for the edges


def test_the_default_classifier_has_two_replicas_and_a_pdb(rendered):
    objects = rendered["default"]
    assert _one(objects, "Deployment", _name("classifier"))["spec"]["replicas"] == 2
    _one(objects, "PodDisruptionBudget", _name("classifier"))


@pytest.mark.parametrize("case", CASES)
def test_the_migrations_run_first_as_a_hook_with_their_own_configuration(rendered, case):
    objects = rendered[case]
    job = _one(objects, "Job", _name("migrations"))
    hook_config = _one(objects, "ConfigMap", _name("migrations"))
    for hook in (job, hook_config):
        annotations = hook["metadata"]["annotations"]
        assert annotations["helm.sh/hook"] == "pre-install,pre-upgrade"
        assert annotations["helm.sh/hook-delete-policy"] == "before-hook-creation,hook-succeeded"
    # Created before the Job (lower weight): the release's own ConfigMap does not exist yet on install.
    weights = [int(o["metadata"]["annotations"]["helm.sh/hook-weight"]) for o in (hook_config, job)]
    assert weights[0] < weights[1]
    pod = job["spec"]["template"]["spec"]
    assert pod["restartPolicy"] == "Never" and "serviceAccountName" not in pod
    (container,) = pod["containers"]
    assert container["command"] == ["seamline", "cloud", "migrate", "--config", "/etc/seamline/seamline.yaml"]
    (config_volume,) = [v for v in pod["volumes"] if "configMap" in v]
    assert config_volume["configMap"]["name"] == _name("migrations")
    # The same database as the services, which only check the schema.
    services = _one(objects, "ConfigMap", RELEASE)["data"]
    assert (
        _mounted_config(objects, pod)["cloud"]["audit_url"]
        == yaml.safe_load(services["classifier.yaml"])["cloud"]["audit_url"]
    )


@pytest.mark.parametrize("case", CASES)
def test_vllm_serves_what_the_classifier_asks_for(rendered, case):
    objects = rendered[case]
    classifier = _mounted_config(objects, _pod(objects, "Deployment", "classifier"))["cloud"]["classifier"]
    vllm = [o for o in objects if o["kind"] == "Deployment" and o["metadata"]["name"] == _name("vllm")]
    if case in ("external-vllm", "production-external-vllm"):
        assert not vllm and classifier["base_url"] == [
            "http://vllm-a.gpu.example.com:8000/v1",
            "http://vllm-b.gpu.example.com:8000/v1",
        ]
        assert classifier["api_key"] == {"env": "SEAMLINE_CLASSIFIER_API_KEY"}
        return
    if case == "vllm-stack":
        assert not vllm and classifier["base_url"] == f"http://{RELEASE}-router-service:80/v1"
        return
    (container,) = vllm[0]["spec"]["template"]["spec"]["containers"]
    args = container["args"]
    option = {name: args[i + 1] for i, name in enumerate(args[:-1]) if name.startswith("--")}
    assert container["image"].startswith("vllm/vllm-openai:v")
    assert option["--served-model-name"] == classifier["model"]
    assert json.loads(option["--structured-outputs-config"]) == STRUCTURED_OUTPUTS_CONFIG
    assert json.loads(option["--limit-mm-per-prompt"]) == DEFAULT_MM_LIMITS
    assert (
        container["resources"]["limits"]["nvidia.com/gpu"]
        == container["resources"]["requests"]["nvidia.com/gpu"]
    )
    port = container["ports"][0]["containerPort"]
    assert classifier["base_url"] == f"http://{_name('vllm')}:{port}/v1"


def test_emqx_of_the_release_is_the_broker_when_no_url_is_given(rendered):
    objects = rendered["emqx"]
    for component in ("classifier", "review"):
        config = _mounted_config(objects, _pod(objects, "Deployment", component))
        assert config["mqtt"]["url"] == f"mqtt://{RELEASE}-emqx:1883"


# --- the Seamline configuration -------------------------------------------------------------------------


def test_every_rendered_configuration_passes_validate_config(rendered, tmp_path):
    texts = {}  # the same text once (the migrations' copy is the classifier's)
    for case, objects in rendered.items():
        for o in objects:
            if o["kind"] == "ConfigMap":
                for key, text in o["data"].items():
                    texts.setdefault(text, f"{case}--{o['metadata']['name']}--{key}")
    files = []
    for text, name in texts.items():
        files.append(tmp_path / name)
        files[-1].write_text(text)

    def validate(path: Path) -> tuple[Path, subprocess.CompletedProcess[str]]:
        command = [sys.executable, "-m", "seamline", "validate-config", str(path)]
        return path, subprocess.run(command, capture_output=True, text=True, cwd=REPO)

    with ThreadPoolExecutor(max_workers=4) as pool:
        failed = [(p.name, d.stdout + d.stderr) for p, d in pool.map(validate, files) if d.returncode != 0]
    assert not failed, failed


# --- values.schema.json and the chart's own checks ------------------------------------------------------

BAD_VALUES = {
    "negative-replicas": ({"classifier": {"replicas": -1}}, "/classifier/replicas"),
    "port-not-a-number": ({"classifier": {"grpc": {"port": "fifty"}}}, "/classifier/grpc/port"),
    "misspelt-key": ({"review": {"replica": 2}}, "/review"),
    "latest-tag": ({"image": {"tag": "latest"}}, "/image/tag"),
    "bad-sslmode": ({"postgres": {"sslMode": "yes"}}, "/postgres/sslMode"),
    "no-resources-limits": ({"classifier": {"resources": {"limits": None}}}, "/classifier/resources"),
}
# Combinations the schema cannot see; the templates refuse them, naming the key to set.
BAD_COMBINATIONS = {
    "no-broker": ({"mqtt": {"url": ""}}, "mqtt.url"),
    "no-vllm": ({"vllm": {"enabled": False}}, "classifier.baseUrl"),
    "two-vllms": ({"vllmStack": {"enabled": True}}, "vllmStack.enabled"),
    "tls-without-secret": (
        {"classifier": {"grpc": {"tls": {"enabled": True}}}},
        "classifier.grpc.tls.existingSecret",
    ),
}


@pytest.fixture(scope="module")
def refused(tools, tmp_path_factory) -> dict[str, dict[str, Any]]:
    jobs = [
        {"id": case, "values": values, "render": True}
        for case, (values, _) in {**BAD_VALUES, **BAD_COMBINATIONS}.items()
    ]
    return _helm(tools, tmp_path_factory.mktemp("refused"), jobs)


@pytest.mark.parametrize("case", BAD_VALUES)
def test_the_schema_rejects_bad_values_naming_the_path(refused, case):
    error = refused[case]["error"]
    assert error is not None and error.startswith("HelmValuesError:"), error
    assert f"at '{BAD_VALUES[case][1]}'" in error, error


@pytest.mark.parametrize("case", BAD_COMBINATIONS)
def test_the_chart_refuses_inconsistent_values_naming_the_key(refused, case):
    error = refused[case]["error"]
    assert error is not None and BAD_COMBINATIONS[case][1] in error, error
