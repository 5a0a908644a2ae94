"""The learning jobs' records in the audit store (table ``learning_jobs``): claim one (at most one runs, by a
partial unique index, whichever worker process asks), keep its heartbeat, finish it, list the recent ones
(the console's reports page) and turn one into its MQTT event (``learning_job.schema.json``)."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from cloud.storage.tables import learning_jobs
from seamline.clock import utcnow

FINISHED = ("passed", "failed", "error", "abandoned")


def abandon_stale(engine: sa.Engine, stale_s: float) -> int:
    """Mark running jobs whose worker has not reported for ``stale_s`` as abandoned; returns how many."""
    now = utcnow()
    with engine.begin() as conn:
        result = conn.execute(
            sa.update(learning_jobs)
            .where(learning_jobs.c.state == "running")
            .where(learning_jobs.c.heartbeat_at < now - timedelta(seconds=stale_s))
            .values(state="abandoned", finished_at=now, error="its worker stopped reporting")
        )
    return int(result.rowcount or 0)


def claim(engine: sa.Engine, worker: str, triggers: list[str], models: dict[str, Any]) -> int | None:
    """Start a job; None if another one is running."""
    now = utcnow()
    try:
        with engine.begin() as conn:
            result = conn.execute(
                sa.insert(learning_jobs).values(
                    state="running",
                    started_at=now,
                    heartbeat_at=now,
                    worker=worker,
                    triggers=triggers,
                    models=models,
                )
            )
            return int(result.inserted_primary_key[0])
    except sa.exc.IntegrityError:
        return None


def update(engine: sa.Engine, job_id: int, **values: Any) -> None:
    with engine.begin() as conn:
        conn.execute(
            sa.update(learning_jobs)
            .where(learning_jobs.c.job_id == job_id)
            .values(heartbeat_at=utcnow(), **values)
        )


def finish(engine: sa.Engine, job_id: int, state: str, **values: Any) -> None:
    assert state in FINISHED, state
    update(engine, job_id, state=state, finished_at=utcnow(), **values)


def job(engine: sa.Engine, job_id: int) -> dict[str, Any]:
    with engine.connect() as conn:
        row = conn.execute(sa.select(learning_jobs).where(learning_jobs.c.job_id == job_id)).mappings().one()
    return dict(row)


def last_data_until(engine: sa.Engine) -> datetime | None:
    """The end of the export of the newest job that got as far as exporting (None: no job yet)."""
    with engine.connect() as conn:
        return conn.execute(
            sa.select(sa.func.max(learning_jobs.c.data_until)).where(learning_jobs.c.data_until.is_not(None))
        ).scalar()


def recent_jobs(engine: sa.Engine, limit: int = 20) -> list[dict[str, Any]]:
    """The newest jobs first, with timestamps as ISO text (for the console and JSON)."""
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(learning_jobs).order_by(learning_jobs.c.job_id.desc()).limit(limit)
        ).mappings()
        return [
            {k: (v.isoformat(timespec="seconds") if isinstance(v, datetime) else v) for k, v in row.items()}
            for row in rows
        ]


def job_event(row: dict[str, Any], site_id: str) -> dict[str, Any]:
    """The job's ``learning`` topic payload."""
    return {
        "schema_version": "1.0",
        "event_id": uuid.uuid4().hex,
        "job_id": int(row["job_id"]),
        "site_id": site_id,
        "state": row["state"],
        "triggers": list(row["triggers"]),
        "data_sha256": row.get("data_sha256"),
        "golden_sha256": row.get("golden_sha256"),
        "models": row["models"],
        "error": row.get("error"),
        "at": utcnow().isoformat(),
    }
