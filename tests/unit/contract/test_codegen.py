"""The generated stubs must match protos/; a changed .proto without regeneration must be caught."""

import shutil
from pathlib import Path

from seamline.contract import codegen


def test_installed_stubs_match_the_protos():
    assert codegen.check_stubs() == []


def _copy_protos(tmp_path: Path) -> Path:
    root = tmp_path / "protos"
    shutil.copytree(codegen.PROTO_ROOT, root)
    return root


def test_a_changed_proto_is_reported_stale(tmp_path):
    root = _copy_protos(tmp_path)
    proto = root / "seamline/inspection/v1/inspection.proto"
    text = proto.read_text()
    assert "string station_id = 4;" in text
    proto.write_text(text.replace("string station_id = 4;", "string station_id = 4;\n  string belt_id = 99;"))
    problems = codegen.check_stubs(root, codegen.OUT_ROOT)
    assert any("inspection.proto" in p and "differ" in p for p in problems), problems


def test_a_changed_comment_is_not_stale(tmp_path):
    root = _copy_protos(tmp_path)
    proto = root / "seamline/inspection/v1/inspection.proto"
    proto.write_text("// an extra comment\n" + proto.read_text())
    assert codegen.check_stubs(root, codegen.OUT_ROOT) == []


def test_a_changed_schema_is_reported_stale(tmp_path):
    root = _copy_protos(tmp_path)
    schema = root / "seamline/inspection/v1/mqtt/verdict.schema.json"
    schema.write_text(schema.read_text().replace('"maxItems": 256', '"maxItems": 255'))
    problems = codegen.check_stubs(root, codegen.OUT_ROOT)
    assert any("verdict.schema.json" in p for p in problems), problems


def test_generate_writes_importable_stubs(tmp_path):
    out = tmp_path / "out"
    written = codegen.generate(codegen.PROTO_ROOT, out)
    names = {p.name for p in written}
    assert {
        "inspection_pb2.py",
        "inspection_pb2.pyi",
        "inspection_pb2_grpc.py",
        "verdict.schema.json",
    } <= names
    assert codegen.check_stubs(codegen.PROTO_ROOT, out) == []
