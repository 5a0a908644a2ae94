"""Build the Python side of the contract from ``protos/``.

``protos/`` is the source of truth. At build/install time (setup.py) and on demand
(``python -m seamline.contract.codegen``) this module:

* compiles every ``.proto`` under ``protos/seamline`` into ``seamline/inspection/v1/*_pb2.py``,
  ``*_pb2_grpc.py`` and ``.pyi`` stubs for type checkers (the import path follows the proto package, so
  ``seamline.inspection.v1`` is both the proto package and the Python module);
* copies the MQTT JSON Schemas (``protos/.../mqtt/*.schema.json``) next to them, so an installed wheel
  carries the same files the docs describe.

``check_stubs`` tells whether the generated files are stale: it compiles the protos afresh into
descriptors and compares them with the descriptors the installed stubs embed, and compares schema bytes.
It runs in the test suite, so changing a ``.proto`` without regenerating fails CI.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import stat
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from seamline.optional import require

logger = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[2]
PROTO_ROOT = REPO_ROOT / "protos"
OUT_ROOT = REPO_ROOT  # seamline/inspection/v1/... is created under here


@dataclass(frozen=True)
class ProtoFile:
    """One .proto file, relative to the proto root (its import path)."""

    relative: Path

    @property
    def module(self) -> str:
        """Dotted name of the generated ``_pb2`` module."""
        return ".".join(self.relative.with_suffix("").parts) + "_pb2"


def find_protos(proto_root: Path = PROTO_ROOT) -> list[ProtoFile]:
    """Every .proto under ``proto_root/seamline``, sorted."""
    return [ProtoFile(p.relative_to(proto_root)) for p in sorted((proto_root / "seamline").rglob("*.proto"))]


def find_schemas(proto_root: Path = PROTO_ROOT) -> list[Path]:
    """The MQTT half of the contract (JSON Schemas and topics.yaml), relative to ``proto_root``."""
    root = proto_root / "seamline"
    files = [*root.rglob("mqtt/*.schema.json"), *root.rglob("mqtt/topics.yaml")]
    return sorted(p.relative_to(proto_root) for p in files)


def _grpc_tools_include() -> str:
    grpc_tools = require("grpc_tools", "Compiling the protos", extra="dev", package="grpcio-tools")
    return str(Path(grpc_tools.__file__).parent / "_proto")


def _protoc(args: list[str]) -> None:
    from grpc_tools import protoc

    argv = ["grpc_tools.protoc", f"-I{_grpc_tools_include()}", *args]
    code = protoc.main(argv)
    if code != 0:
        raise RuntimeError(f"protoc failed (exit {code}): {' '.join(argv)}")


def _mypy_grpc_plugin(workdir: Path) -> Path | None:
    """A protoc plugin script running mypy-protobuf's gRPC stub generator with this interpreter."""
    try:
        import mypy_protobuf.main  # noqa: F401
    except ImportError:
        return None
    script = workdir / "protoc-gen-mypy_grpc"
    script.write_text(
        f"#!/bin/sh\nexec '{sys.executable}' -c 'from mypy_protobuf.main import grpc; grpc()'\n"
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return script


def generate(proto_root: Path = PROTO_ROOT, out_root: Path = OUT_ROOT) -> list[Path]:
    """Compile every .proto and copy every schema; returns the files written."""
    protos = find_protos(proto_root)
    if not protos:
        raise RuntimeError(f"no .proto files under {proto_root / 'seamline'}")
    out_root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="seamline-protoc-") as tmp:
        args = [
            f"-I{proto_root}",
            f"--python_out={out_root}",
            f"--pyi_out={out_root}",
            f"--grpc_python_out={out_root}",
        ]
        plugin = _mypy_grpc_plugin(Path(tmp))
        if plugin is not None:
            args += [f"--plugin=protoc-gen-mypy_grpc={plugin}", f"--mypy_grpc_out={out_root}"]
        else:
            logger.warning("mypy-protobuf not installed: no .pyi for the gRPC service stubs")
        _protoc(args + [str(p.relative) for p in protos])
    written = []
    for proto in protos:
        stem = out_root / proto.relative.with_suffix("")
        written += [p for p in stem.parent.glob(stem.name + "_pb2*") if p.is_file()]
    for schema in find_schemas(proto_root):
        target = out_root / schema
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(proto_root / schema, target)
        written.append(target)
    return sorted(written)


def _fresh_descriptors(proto_root: Path) -> dict[str, bytes]:
    """Compile the protos to a descriptor set; map each file name to its serialized FileDescriptorProto."""
    from google.protobuf import descriptor_pb2

    with tempfile.TemporaryDirectory(prefix="seamline-protoc-") as tmp:
        out = Path(tmp) / "set.pb"
        _protoc(
            [f"-I{proto_root}", f"--descriptor_set_out={out}"]
            + [str(p.relative) for p in find_protos(proto_root)]
        )
        fds = descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes())
    return {f.name: _canonical(f) for f in fds.file}


def _canonical(file_proto) -> bytes:  # type: ignore[no-untyped-def]
    """Serialized descriptor without ``json_name``, which protoc adds to descriptor sets but not to stubs."""
    copy = type(file_proto)()
    copy.CopyFrom(file_proto)
    messages = list(copy.message_type)
    while messages:
        message = messages.pop()
        for field in (*message.field, *message.extension):
            field.ClearField("json_name")
        messages.extend(message.nested_type)
    for field in copy.extension:
        field.ClearField("json_name")
    return copy.SerializeToString(deterministic=True)


def check_stubs(proto_root: Path = PROTO_ROOT, stub_root: Path = OUT_ROOT) -> list[str]:
    """Problems that make the generated stubs stale (empty list: up to date)."""
    import importlib.util

    from google.protobuf import descriptor_pb2

    problems: list[str] = []
    fresh = _fresh_descriptors(proto_root)
    for proto in find_protos(proto_root):
        stem = stub_root / proto.relative.with_suffix("")
        pb2 = stem.parent / f"{stem.name}_pb2.py"
        for suffix in ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py"):
            if not (stem.parent / f"{stem.name}{suffix}").exists():
                problems.append(f"{proto.relative}: missing generated {stem.name}{suffix}")
        if not pb2.exists():
            continue
        # Load the stub in isolation (not from sys.modules) so a stale import cache cannot hide a change.
        spec = importlib.util.spec_from_file_location(f"_seamline_stub_check_{stem.name}", pb2)
        assert spec and spec.loader
        module = importlib.util.module_from_spec(spec)
        try:
            spec.loader.exec_module(module)
        except Exception as exc:  # a stub that no longer imports is stale too
            problems.append(f"{proto.relative}: generated stub fails to import: {exc}")
            continue
        embedded = descriptor_pb2.FileDescriptorProto.FromString(module.DESCRIPTOR.serialized_pb)
        if _canonical(embedded) != fresh[str(proto.relative)]:
            problems.append(f"{proto.relative}: stubs differ from the .proto (regenerate them)")
    for schema in find_schemas(proto_root):
        copy = stub_root / schema
        if not copy.exists() or copy.read_bytes() != (proto_root / schema).read_bytes():
            problems.append(f"{schema}: packaged copy is missing or differs")
    return problems


def main(argv: list[str] | None = None) -> int:
    """``python -m seamline.contract.codegen [--check]``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only report stale stubs; exit 1 if any")
    parser.add_argument("--proto-root", type=Path, default=PROTO_ROOT)
    parser.add_argument("--out-root", type=Path, default=OUT_ROOT)
    args = parser.parse_args(argv)
    if args.check:
        problems = check_stubs(args.proto_root, args.out_root)
        for p in problems:
            print(p, file=sys.stderr)
        return 1 if problems else 0
    for path in generate(args.proto_root, args.out_root):
        print(os.path.relpath(path))
    return 0


if __name__ == "__main__":
    sys.exit(main())
