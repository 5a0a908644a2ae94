"""The rollout state in the audit store (SQLite and PostgreSQL): revisions, conflicts, the configuration's
seed applied once per change, and shadow answers."""

import pytest

from cloud.storage import rollouts
from cloud.storage.audit import AuditStore
from cloud.storage.rollout_state import Endpoint, RolloutState

pytestmark = pytest.mark.integration
CANDIDATE = Endpoint(version="classifier@7", model="cand-7", base_url="http://vllm-b:8000/v1")


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request, tmp_path):
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'audit.db'}"
    else:
        url = request.getfixturevalue("postgres_url")
    store = AuditStore.from_url(url)
    yield store.engine
    store.engine.dispose()


def test_each_change_is_the_next_revision_and_a_stale_writer_is_refused(engine):
    assert rollouts.current(engine) is None
    first = rollouts.write(engine, RolloutState(mode="shadow", share=0.2, candidate=CANDIDATE, set_by="ada"))
    assert first.revision == 1 and first.set_at is not None
    second = rollouts.write(
        engine, RolloutState(mode="canary", share=0.1, candidate=CANDIDATE, set_by="ada"), after=1
    )
    assert second.revision == 2
    now = rollouts.current(engine)
    assert now == second and now.candidate.base_url == ["http://vllm-b:8000/v1"]
    with pytest.raises(rollouts.RolloutConflict, match="revision 2, not 1"):
        rollouts.write(engine, RolloutState(mode="off", set_by="bob"), after=1)
    assert [s.revision for s in rollouts.history(engine)] == [2, 1]


def test_the_configured_rollout_is_applied_once_per_change_of_the_file(engine):
    configured = RolloutState(mode="shadow", share=0.5, candidate=CANDIDATE)
    seeded = rollouts.seed_from_config(engine, configured)
    assert seeded.revision == 1 and seeded.set_by == "config"
    # the CLI changes it; a restart with the same file must not undo that
    rollouts.write(engine, RolloutState(mode="canary", share=0.1, candidate=CANDIDATE, set_by="ada"))
    assert rollouts.seed_from_config(engine, configured).mode == "canary"
    # the file changed: it applies
    changed = rollouts.seed_from_config(engine, configured.model_copy(update={"share": 0.25}))
    assert (changed.revision, changed.mode, changed.share) == (3, "shadow", 0.25)
    assert rollouts.seed_from_config(engine, None).revision == 3  # no rollout configured: left alone


def test_shadow_answers_are_stored_per_crop_and_replaced_by_a_second_classification(engine, tmp_path):
    import sqlalchemy as sa

    from cloud.storage.tables import garments, shadow_answers
    from seamline.clock import utcnow

    with engine.begin() as conn:
        conn.execute(
            garments.insert().values(
                item_id="g1",
                site_id="s",
                line_id="l",
                station_id="st",
                agent_id="a",
                captured_at=utcnow(),
                received_at=utcnow(),
                detector_version="d",
                views=[],
                sensor_readings={},
                status="accepted",
            )
        )
    row = {
        "type": "hole",
        "severity": "minor",
        "decision": "reject",
        "confidence": 0.4,
        "error": None,
        "latency_ms": 12.0,
    }
    rollouts.record_shadow(
        engine, "g1", "classifier@7", 1, [{"crop_id": "c0", **row}, {"crop_id": "c1", **row}]
    )
    rollouts.record_shadow(engine, "g1", "classifier@7", 2, [{"crop_id": "c0", **row, "type": "stain"}])
    with engine.connect() as conn:
        stored = conn.execute(sa.select(shadow_answers)).mappings().all()
    assert [(r["crop_id"], r["type"], r["revision"]) for r in stored] == [("c0", "stain", 2)]
