"""A deployment's migration step: `seamline cloud migrate` brings the audit store to head and exits; services
with `cloud.migrate_on_start: false` refuse an older schema with exit 2 and say what to run (compose's migrate
service and the Helm hook rely on both), and start on a migrated one. On SQLite and PostgreSQL."""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa
import yaml

from cloud.storage.audit import AuditStore, create_audit_engine
from cloud.storage.schema import current_revision, head_revision
from seamline.errors import ConfigError
from tests.integration.cli.test_validate_config import _run

pytestmark = pytest.mark.integration


def _config(tmp_path, audit_url: str, migrate_on_start: bool) -> str:
    path = tmp_path / "seamline.yaml"
    cloud = {
        "lines": [{"site_id": "site1", "line_id": "line1"}],
        "audit_url": audit_url,
        "migrate_on_start": migrate_on_start,
    }
    path.write_text(yaml.safe_dump({"storage": {"data_dir": str(tmp_path / "data")}, "cloud": cloud}))
    return str(path)


@pytest.fixture(params=["sqlite", "postgresql"])
def audit_url(request, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'audit.db'}"
    return request.getfixturevalue("postgres_url")


def test_migrate_brings_the_store_to_head_once(tmp_path, audit_url):
    config = _config(tmp_path, audit_url, migrate_on_start=False)
    first = _run("cloud", "migrate", "--config", config)
    assert first.returncode == 0, first.stderr
    report = json.loads(first.stdout)
    assert report["from"] is None and report["to"] == head_revision()
    again = _run("cloud", "migrate", "--config", config)
    assert again.returncode == 0 and json.loads(again.stdout)["from"] == head_revision()
    # with the schema at head, a store that must not migrate opens
    AuditStore.from_url(audit_url, migrate=False).engine.dispose()


def test_a_service_that_must_not_migrate_refuses_an_old_schema(tmp_path, audit_url):
    engine = create_audit_engine(audit_url)
    try:
        with pytest.raises(ConfigError, match="seamline cloud migrate"):
            AuditStore(engine, migrate=False)
        assert current_revision(engine) is None  # nothing was created
        with engine.connect() as conn:
            assert "garments" not in sa.inspect(conn).get_table_names()
    finally:
        engine.dispose()
    # the command line: exit 2, the message names the revisions and the command to run
    done = _run("data", "delete", "nothing", "--config", _config(tmp_path, audit_url, migrate_on_start=False))
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert "schema revision none" in done.stderr and "seamline cloud migrate" in done.stderr
