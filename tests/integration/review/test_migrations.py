"""The audit store's schema is made by Alembic, matches the code's tables, and upgrades older databases."""

import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from cloud.storage.audit import AuditStore
from cloud.storage.schema import alembic_config, current_revision, head_revision, upgrade
from cloud.storage.tables import metadata


def test_a_new_store_is_at_head_and_matches_the_tables(audit_store):
    assert current_revision(audit_store.engine) == head_revision() == "0008"
    with audit_store.engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), metadata) == []


def test_a_store_made_before_migrations_is_stamped_and_upgraded(tmp_path):
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'old.db'}")
    upgrade(engine, "0001")  # issue 4's schema, then forget Alembic was ever there
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO garments (item_id, site_id, line_id, station_id, agent_id, captured_at, "
                "received_at, detector_version, views, sensor_readings, status) "
                "VALUES ('old-1', 's', 'l', 'st', 'a', "
                "'2026-01-01 00:00:00', '2026-01-01 00:00:00', 'd', '[]', '{}', 'published')"
            )
        )
        conn.execute(sa.text("DROP TABLE alembic_version"))
    engine.dispose()
    store = AuditStore.from_url(f"sqlite:///{tmp_path / 'old.db'}")
    assert current_revision(store.engine) == "0008"
    assert store.has("old-1")
    assert "verified_labels" in sa.inspect(store.engine).get_table_names()


def test_migrations_downgrade_and_upgrade_again(tmp_path):
    store = AuditStore.from_url(f"sqlite:///{tmp_path / 'a.db'}")
    with store.engine.begin() as conn:
        command.downgrade(alembic_config(conn), "0001")
    assert "reviewers" not in sa.inspect(store.engine).get_table_names()
    upgrade(store.engine)
    assert current_revision(store.engine) == "0008"


def test_downgrading_below_edge_drops_removes_their_rows_so_no_older_service_classifies_them(tmp_path):
    store = AuditStore.from_url(f"sqlite:///{tmp_path / 'a.db'}")
    now = "2026-01-01 00:00:00"
    with store.engine.begin() as conn:
        for item_id, status in (("sent-1", "published"), ("drop-1", "dropped_at_edge")):
            conn.execute(
                sa.text(
                    "INSERT INTO garments (item_id, site_id, line_id, station_id, agent_id, captured_at, "
                    "received_at, detector_version, views, sensor_readings, status) "
                    "VALUES (:item_id, 's', 'l', 'st', 'a', :now, :now, '', '[]', '{}', :status)"
                ),
                {"item_id": item_id, "now": now, "status": status},
            )
        command.downgrade(alembic_config(conn), "0003")
    columns = {c["name"] for c in sa.inspect(store.engine).get_columns("garments")}
    assert "drop_reason" not in columns and store.has("sent-1") and not store.has("drop-1")
    upgrade(store.engine)
    assert "drop_reason" in {c["name"] for c in sa.inspect(store.engine).get_columns("garments")}


def test_reviewers_of_an_older_store_keep_working_as_reviewers(tmp_path):
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'a.db'}")
    upgrade(engine, "0004")
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO reviewers (reviewer_id, display_name, password_hash, active, created_at) "
                "VALUES ('old', 'Old', 'scrypt$x', 1, '2026-01-01 00:00:00')"
            )
        )
    engine.dispose()
    store = AuditStore.from_url(f"sqlite:///{tmp_path / 'a.db'}")
    with store.engine.connect() as conn:
        assert conn.execute(sa.text("SELECT role FROM reviewers")).scalar_one() == "reviewer"
    assert "login_throttle" in sa.inspect(store.engine).get_table_names()
