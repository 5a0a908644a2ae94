"""A model's rollout state, shared by every replica through the audit store.

The classifier's rollout is one of five modes:

* ``off``: the champion decides every garment.
* ``shadow``: the champion decides; a ``share`` of garments is also classified by the candidate, whose
  answers are stored (``shadow_answers``) and never route anything.
* ``canary``: a ``share`` of garments is decided by the candidate.
* ``promoted``: the candidate became the champion (its endpoint decides every garment).
* ``rolled_back``: the candidate decides nothing any more; its endpoint is kept for the record.

Which garments: a hash of the garment id and the candidate's version (``seamline.sampling``), independent of
the audit sample's, so every crop of a garment, every replica and any retry or replay picks the same model,
and a larger share keeps the garments of a smaller one.

Each change is a new row with the next revision (``rollouts``); the highest is the current state. The
service reads it before every garment, so a change made by ``seamline rollout classifier ...`` on any
machine decides the next garment, with no restart.
"""

from __future__ import annotations

import hashlib
import json

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from cloud.storage.rollout_state import Arm, Endpoint, Mode, RolloutState
from cloud.storage.tables import rollouts, shadow_answers
from seamline.clock import utcnow

__all__ = ["Arm", "Endpoint", "Mode", "RolloutState", "RolloutConflict", "current", "history", "write"]


class RolloutConflict(Exception):
    """Another writer set the rollout between this one's read and write."""


def current(engine: sa.Engine, model: str = "classifier") -> RolloutState | None:
    """The rollout state now (the highest revision), or None if none was ever set."""
    with engine.connect() as conn:
        row = conn.execute(
            sa.select(rollouts.c.state)
            .where(rollouts.c.model == model)
            .order_by(rollouts.c.revision.desc())
            .limit(1)
        ).scalar()
    return RolloutState.model_validate(row) if row is not None else None


def history(engine: sa.Engine, model: str = "classifier", limit: int = 50) -> list[RolloutState]:
    """The latest ``limit`` revisions, newest first."""
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(rollouts.c.state)
            .where(rollouts.c.model == model)
            .order_by(rollouts.c.revision.desc())
            .limit(limit)
        ).scalars()
        return [RolloutState.model_validate(r) for r in rows]


def write(engine: sa.Engine, state: RolloutState, *, after: int | None = None) -> RolloutState:
    """Store ``state`` as the next revision and return it as stored.

    ``after``: the revision the writer read; if another was written since, RolloutConflict (read again).
    """
    with engine.begin() as conn:
        latest = conn.execute(
            sa.select(sa.func.max(rollouts.c.revision)).where(rollouts.c.model == state.model)
        ).scalar()
        latest = latest or 0
        if after is not None and latest != after:
            raise RolloutConflict(
                f"the {state.model} rollout changed (revision {latest}, not {after}); read it again"
            )
        stored = state.model_copy(update={"revision": latest + 1, "set_at": utcnow()})
        try:
            conn.execute(
                rollouts.insert().values(
                    model=stored.model,
                    revision=stored.revision,
                    mode=stored.mode,
                    state=stored.model_dump(mode="json"),
                    set_by=stored.set_by,
                    set_at=stored.set_at,
                )
            )
        except IntegrityError as exc:  # a concurrent writer took the same revision
            raise RolloutConflict(f"the {state.model} rollout changed while setting it; try again") from exc
    return stored


def config_digest(payload: object) -> str:
    """A stable digest of a configuration section (sorted JSON)."""
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]


def seed_from_config(engine: sa.Engine, configured: RolloutState | None) -> RolloutState | None:
    """Apply the rollout the configuration file names, once per change of that section.

    The configuration and the CLI both set the rollout; the last change wins. A restart with the same file
    does not undo a change made with the CLI since: the configured state is written only when its digest
    differs from the last one the configuration wrote. Returns the current state.
    """
    now = current(engine, configured.model if configured else "classifier")
    if configured is None:
        return now
    digest = config_digest(configured.model_dump(mode="json", exclude={"set_at", "revision"}))
    for past in history(engine, configured.model, limit=1000):
        if past.set_by == "config":
            if past.config_digest == digest:
                return now
            break
    return write(engine, configured.model_copy(update={"set_by": "config", "config_digest": digest}))


def record_shadow(engine: sa.Engine, item_id: str, version: str, revision: int, rows: list[dict]) -> None:
    """Store a shadow candidate's answers for a garment's crops (each row: crop_id, type, severity,
    decision, confidence, error, latency_ms); a second classification of the garment replaces the first."""
    now = utcnow()
    with engine.begin() as conn:
        conn.execute(
            shadow_answers.delete().where(
                shadow_answers.c.item_id == item_id, shadow_answers.c.version == version
            )
        )
        if rows:
            conn.execute(
                shadow_answers.insert(),
                [
                    {**row, "item_id": item_id, "version": version, "revision": revision, "answered_at": now}
                    for row in rows
                ],
            )
