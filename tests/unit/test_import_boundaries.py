"""The architecture: the edge and the cloud stay apart, and the cloud's layers import only downwards.

The edge's runtime path must not drag in the cloud's or the trainer's heavy libraries.
"""

import ast
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
HEAVY = ("torch", "vllm", "transformers", "fastapi", "sqlalchemy", "tensorrt")

# The core modules an edge agent imports at run time.
EDGE_RUNTIME_MODULES = [
    "seamline.config",
    "seamline.contract.mqtt",
    "seamline.contract.messages",
    "seamline.imaging",
    "seamline.localbroker",
    "seamline.inspection.v1.inspection_pb2_grpc",
    "edge.agent",
    "edge.cli",
    "seamline.cli",  # the `seamline` command itself: every subcommand module it registers
]


def test_core_and_edge_import_without_heavy_libraries():
    code = (
        "import sys\n"
        + "".join(f"import {m}\n" for m in EDGE_RUNTIME_MODULES)
        + f"loaded = sorted(m for m in {HEAVY!r} if m in sys.modules)\n"
        + "print(','.join(loaded))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "", f"edge runtime path imported: {result.stdout.strip()}"


def _imported_top_levels(
    package: Path, skip: tuple[str, ...] = (), skip_dirs: tuple[str, ...] = ()
) -> set[str]:
    names: set[str] = set()
    for path in package.rglob("*.py"):
        if path.name in skip or any(part in skip_dirs for part in path.relative_to(package).parts[:-1]):
            continue
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module.split(".")[0])
    return names


def _imported_modules(path: Path) -> set[str]:
    """Every module ``path`` imports, at any depth (``from a import b`` counts as ``a`` and ``a.b``)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def _under(name: str, roots: tuple[str, ...] | list[str], sep: str = ".") -> bool:
    return any(name == root or name.startswith(root + sep) for root in roots)


# Tooling in the core that runtime code must not lean on: model builders for tests and training, and the
# synthetic line's renderer.
TOOLING = ("seamline.modelzoo", "seamline.synth")
# Where edge/ or cloud/ may still use it, and why.
TOOLING_EXCEPTIONS = {
    "cloud/learning": "the training tool builds and trains models; the cloud service never loads it",
    "edge/sources/synthetic.py": "the synthetic line as a camera; it loads the renderer only when it runs",
}


def test_edge_and_cloud_runtime_code_does_not_import_tooling():
    offenders = [
        f"{path.relative_to(REPO).as_posix()}: {module}"
        for side in ("edge", "cloud")
        for path in sorted((REPO / side).rglob("*.py"))
        if not _under(path.relative_to(REPO).as_posix(), list(TOOLING_EXCEPTIONS), sep="/")
        for module in sorted(_imported_modules(path))
        if _under(module, TOOLING)
    ]
    assert not offenders, "runtime code imports tooling:\n" + "\n".join(offenders)


def test_the_edge_agent_and_the_cloud_service_load_no_tooling():
    # The exceptions above import it lazily: loading the agent, the service or their configuration does not.
    code = (
        "import sys\nimport edge.agent, edge.cli, edge.config, cloud.service, cloud.cli\n"
        f"print(','.join(sorted(m for m in sys.modules if m.startswith({TOOLING!r}))))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "", f"loaded tooling: {result.stdout.strip()}"


def test_edge_and_cloud_never_import_each_other():
    assert "cloud" not in _imported_top_levels(REPO / "edge")
    # cloud/learning is the one exception: it trains and scores the edge's detector through the
    # edge's own pre- and post-processing (exactly what the edge will run). It is a tool the ML
    # team runs, not the service.
    assert "edge" not in _imported_top_levels(REPO / "cloud", skip_dirs=("learning",))
    assert "edge" in _imported_top_levels(
        REPO / "cloud" / "learning"
    )  # the exception is still needed (else drop it)


# The cloud section's schema includes ``cloud.learning`` (settings only: pydantic models, no ML library).
LEARNING_SETTINGS = ("cloud.learning", "cloud.learning.config", "cloud.learning.registry")


def test_the_cloud_service_loads_neither_the_edge_nor_training():
    code = (
        "import sys\nimport cloud.service, cloud.cli\n"
        "print(','.join(sorted(m for m in sys.modules "
        "if m.split('.')[0] in ('edge', 'torch', 'mlflow', 'transformers') "
        f"or (m.startswith('cloud.learning') and m not in {LEARNING_SETTINGS!r}))))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "", f"the cloud service imported: {result.stdout.strip()}"


def test_only_tests_import_tests_and_only_tests_and_bench_import_the_harness():
    # bench/ shares the tests' set-up through harness/, never through tests/; shipped packages use neither.
    assert "tests" not in _imported_top_levels(REPO / "bench")
    assert "tests" not in _imported_top_levels(REPO / "harness")
    for shipped in ("seamline", "edge", "cloud"):
        assert not {"tests", "bench", "harness"} & _imported_top_levels(REPO / shipped), shipped


def test_core_imports_neither_side():
    # cli.py is the composition root that mounts each side's commands; nothing else in the core may.
    assert not {"edge", "cloud"} & _imported_top_levels(REPO / "seamline", skip=("cli.py",))


# The cloud's layers, lowest first: a module may import its own layer and those below it, never one above.
# (cloud/learning, the training tool, and the entry points service.py and cli.py sit on top.)
CLOUD_LAYERS = ("records", "storage", "ingress", "classifiers", "routing", "publishing", "config", "review")


def _cloud_layer(module: str) -> int | None:
    parts = module.split(".")
    if parts[0] != "cloud" or len(parts) < 2 or parts[1] not in CLOUD_LAYERS or parts[-1] == "cli":
        return None  # command modules are entry points, like cloud/cli.py: they wire the layers together
    return CLOUD_LAYERS.index(parts[1])


def test_cloud_imports_never_run_back_up():
    upward = []
    for path in sorted((REPO / "cloud").rglob("*.py")):
        module = ".".join(path.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__")
        layer = _cloud_layer(module)
        if layer is None:
            continue
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            targets = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [node.module]
            for target in targets:
                target_layer = _cloud_layer(target)
                if target_layer is not None and target_layer > layer:
                    upward.append(f"{module} imports {target}")
    assert upward == [], "imports that run back up the cloud's layers:\n" + "\n".join(upward)
