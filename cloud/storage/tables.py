"""The audit store's tables, as SQLAlchemy Core. The schema itself is made by the Alembic migrations in
``migrations/``; a test checks that the two agree.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import sqlalchemy as sa


class UtcDateTime(sa.TypeDecorator):
    """A timezone-aware UTC timestamp on every database. PostgreSQL keeps the offset; SQLite keeps none, so
    values are stored converted to UTC and come back marked UTC (callers never see a naive datetime)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is not None and dialect.name == "sqlite":
            return value.astimezone(timezone.utc)
        return value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        return value.replace(tzinfo=timezone.utc) if value is not None and value.tzinfo is None else value


TZ = UtcDateTime()

metadata = sa.MetaData()

garments = sa.Table(
    "garments",
    metadata,
    sa.Column("item_id", sa.String(128), primary_key=True),
    sa.Column("site_id", sa.String(64), nullable=False),
    sa.Column("line_id", sa.String(64), nullable=False),
    sa.Column("station_id", sa.String(64), nullable=False),
    sa.Column("agent_id", sa.String(128), nullable=False),
    sa.Column("captured_at", TZ, nullable=False),
    sa.Column("deadline_at", TZ),
    sa.Column("received_at", TZ, nullable=False),
    sa.Column("detector_version", sa.String(128), nullable=False),
    sa.Column("views", sa.JSON, nullable=False),
    sa.Column("operator_note", sa.Text),
    sa.Column("sensor_readings", sa.JSON, nullable=False),
    # accepted -> classified -> published; or dropped_at_edge (a GarmentDropped record: the edge never
    # inspected it, so it has no crops, no views, an empty detector_version and is never classified)
    sa.Column("status", sa.String(16), nullable=False, default="accepted"),
    # inspect: crops are detections to classify; audit_passed: the edge passed it, crops are its views,
    # sampled for a blind review (nothing is classified or published for it)
    sa.Column("purpose", sa.String(16), nullable=False, server_default="inspect"),
    sa.Column("verdict_id", sa.String(64)),
    sa.Column("verdict", sa.JSON),
    sa.Column("classified_at", TZ),
    sa.Column("published_at", TZ),
    # Who is seeing the garment through to a published verdict, and until when (cloud/service.py). A
    # replica renews its leases while it holds the garment; an expired lease hands it to whichever replica
    # sweeps next.
    sa.Column("owner", sa.String(128)),
    sa.Column("lease_until", TZ),
    # Set only for dropped_at_edge: why, the edge's words, the line action it commanded, when it dropped it.
    sa.Column("drop_reason", sa.String(32)),
    sa.Column("drop_detail", sa.Text),
    sa.Column("drop_line_action", sa.String(16)),
    sa.Column("dropped_at", TZ),
)
sa.Index("garments_status", garments.c.status, garments.c.received_at)
sa.Index("garments_lease", garments.c.status, garments.c.lease_until)

crops = sa.Table(
    "crops",
    metadata,
    sa.Column(
        "item_id", sa.String(128), sa.ForeignKey("garments.item_id", ondelete="CASCADE"), primary_key=True
    ),
    sa.Column("crop_id", sa.String(64), primary_key=True),
    sa.Column("view_index", sa.Integer, nullable=False),
    sa.Column("box", sa.JSON, nullable=False),
    sa.Column("crop_box", sa.JSON, nullable=False),
    sa.Column("detector_score", sa.Float, nullable=False),
    sa.Column("detector_label", sa.String(64), nullable=False),
    sa.Column("encoding", sa.String(8), nullable=False),
    sa.Column("width", sa.Integer, nullable=False),
    sa.Column("height", sa.Integer, nullable=False),
    sa.Column("size_bytes", sa.Integer, nullable=False),
    sa.Column("uri", sa.Text, nullable=False),
    sa.Column("operator_note", sa.Text),
)


# Garments routed to people wait here, highest priority first, oldest first within a priority
# (cloud/review/queue.py). A reviewer claims one with a lease; an expired lease puts it back.
review_items = sa.Table(
    "review_items",
    metadata,
    sa.Column(
        "item_id", sa.String(128), sa.ForeignKey("garments.item_id", ondelete="CASCADE"), primary_key=True
    ),
    sa.Column("site_id", sa.String(64), nullable=False),
    sa.Column("line_id", sa.String(64), nullable=False),
    sa.Column("priority", sa.String(8), nullable=False),
    sa.Column("priority_rank", sa.Integer, nullable=False),  # 0 high, 1 medium, 2 low: sortable
    sa.Column("status", sa.String(16), nullable=False, default="queued"),
    sa.Column("verdict_id", sa.String(64), nullable=False),
    sa.Column("queued_at", TZ, nullable=False),
    # queued -> in_review (claimed_by, lease) -> decided; an expired lease returns it to queued
    sa.Column("claimed_by", sa.String(64)),
    sa.Column("claimed_at", TZ),
    sa.Column("lease_expires_at", TZ),
    sa.Column("decided_at", TZ),
    # routed: the policy sent it to people (the line waits on them); audit: settled automatically and sampled
    # for a blind check (ground truth only; the line command stands; cloud/routing/audit.py); passed_audit:
    # passed at the edge (nothing detected), its views sampled to measure what the detector misses.
    sa.Column("kind", sa.String(16), nullable=False, server_default="routed"),
)
sa.Index("review_items_queue", review_items.c.status, review_items.c.priority_rank, review_items.c.queued_at)
# A reviewer holds at most one item (two "take next" clicks at once cannot both claim).
sa.Index(
    "review_items_one_per_reviewer",
    review_items.c.claimed_by,
    unique=True,
    sqlite_where=sa.text("status = 'in_review'"),
    postgresql_where=sa.text("status = 'in_review'"),
)


reviewers = sa.Table(
    "reviewers",
    metadata,
    sa.Column("reviewer_id", sa.String(64), primary_key=True),
    sa.Column("display_name", sa.String(128), nullable=False),
    sa.Column("password_hash", sa.String(256), nullable=False),  # argon2id, see cloud/review/auth.py
    sa.Column("active", sa.Boolean, nullable=False),
    sa.Column("created_at", TZ, nullable=False),
    # "reviewer" (reviews) or "admin" (also manages reviewers, reads reports, downloads exports)
    sa.Column("role", sa.String(16), nullable=False, server_default="reviewer"),
)

# Failed logins per reviewer name, shared by every console replica: a fixed window that opens at the first
# failure; at the limit the name is blocked until the window ends (cloud/review/auth.py, LoginThrottle).
login_throttle = sa.Table(
    "login_throttle",
    metadata,
    sa.Column("name", sa.String(128), primary_key=True),
    sa.Column("failures", sa.Integer, nullable=False),
    sa.Column("window_start", TZ, nullable=False),
)

# A browser session: the cookie holds a random token, the table only its SHA-256.
review_sessions = sa.Table(
    "review_sessions",
    metadata,
    sa.Column("token_hash", sa.String(64), primary_key=True),
    sa.Column(
        "reviewer_id",
        sa.String(64),
        sa.ForeignKey("reviewers.reviewer_id", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column("csrf_token", sa.String(64), nullable=False),
    sa.Column("created_at", TZ, nullable=False),
    sa.Column("expires_at", TZ, nullable=False),
)
sa.Index("review_sessions_reviewer", review_sessions.c.reviewer_id)

# One human decision per garment, with the final verdict it produced (published_at set on the broker's ack).
review_decisions = sa.Table(
    "review_decisions",
    metadata,
    sa.Column(
        "item_id", sa.String(128), sa.ForeignKey("garments.item_id", ondelete="CASCADE"), primary_key=True
    ),
    sa.Column("reviewer_id", sa.String(64), nullable=False),
    sa.Column("decision", sa.String(8), nullable=False),  # pass | reject
    sa.Column("note", sa.Text),
    sa.Column("decided_at", TZ, nullable=False),
    sa.Column("ai_verdict_id", sa.String(64), nullable=False),
    sa.Column(
        "ai_call", sa.String(8), nullable=False
    ),  # pass | review | reject: what the classifier suggested
    sa.Column(
        "outcome", sa.String(24), nullable=False
    ),  # garment-level feedback type (cloud/review/feedback.py)
    sa.Column("verdict_id", sa.String(64), nullable=False),
    sa.Column("verdict", sa.JSON, nullable=False),
    sa.Column("published_at", TZ),
)
sa.Index("review_decisions_decided", review_decisions.c.decided_at)

# The AI's answer and the person's for every region of a reviewed garment: crops, and boxes the reviewer drew
# for defects the detector missed (crop_id NULL, ai_* NULL).
review_feedback = sa.Table(
    "review_feedback",
    metadata,
    sa.Column(
        "item_id", sa.String(128), sa.ForeignKey("garments.item_id", ondelete="CASCADE"), primary_key=True
    ),
    sa.Column("region_id", sa.String(64), primary_key=True),
    sa.Column("crop_id", sa.String(64)),
    sa.Column("view_index", sa.Integer, nullable=False),
    sa.Column("box", sa.JSON, nullable=False),
    sa.Column("ai_type", sa.String(48)),
    sa.Column("ai_severity", sa.String(8)),
    sa.Column("ai_decision", sa.String(8)),
    sa.Column("ai_score", sa.Float),
    sa.Column("human_type", sa.String(48), nullable=False),
    sa.Column("human_severity", sa.String(8), nullable=False),
    sa.Column("outcome", sa.String(24), nullable=False),
    sa.Column("severity_agrees", sa.Boolean),
    sa.Column("reviewer_id", sa.String(64), nullable=False),
    sa.Column("decided_at", TZ, nullable=False),
)
sa.Index("review_feedback_decided", review_feedback.c.decided_at)

# The verified store: human labels, the ground truth that exports (COCO, JSONL, Label Studio) and
# retraining read.
verified_labels = sa.Table(
    "verified_labels",
    metadata,
    sa.Column(
        "item_id", sa.String(128), sa.ForeignKey("garments.item_id", ondelete="CASCADE"), primary_key=True
    ),
    sa.Column("region_id", sa.String(64), primary_key=True),
    sa.Column("crop_id", sa.String(64)),
    sa.Column("view_index", sa.Integer, nullable=False),
    sa.Column("box", sa.JSON, nullable=False),
    sa.Column("type", sa.String(48), nullable=False),
    sa.Column("severity", sa.String(8), nullable=False),
    sa.Column("source", sa.String(16), nullable=False),  # review (later: imports from Label Studio)
    sa.Column("reviewer_id", sa.String(64), nullable=False),
    sa.Column("verified_at", TZ, nullable=False),
)
sa.Index("verified_labels_verified", verified_labels.c.verified_at)

# The audit trail of deleted garments (cloud/storage/retention.py): what was deleted, by whom (a person, or
# "retention" for the sweep), when and why. The garment's rows are gone (ON DELETE CASCADE); its crop objects
# are deleted right after the rows, and ``crops_deleted_at`` stays empty until they all are (a sweep retries).
deletions = sa.Table(
    "deletions",
    metadata,
    sa.Column("item_id", sa.String(128), primary_key=True),
    sa.Column("site_id", sa.String(64), nullable=False),
    sa.Column("line_id", sa.String(64), nullable=False),
    sa.Column("captured_at", TZ, nullable=False),
    sa.Column("deleted_at", TZ, nullable=False),
    sa.Column("deleted_by", sa.String(128), nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("crop_uris", sa.JSON, nullable=False),
    sa.Column("crops_deleted_at", TZ),
)
sa.Index("deletions_crops_pending", deletions.c.crops_deleted_at)

# The golden sets (cloud/learning/golden.py): frozen, stratified samples of verified garments that no
# training ever uses. ``golden_items`` names every garment of every set; the verified-store export leaves
# them out unless asked for the golden set itself.
golden_sets = sa.Table(
    "golden_sets",
    metadata,
    sa.Column("sha256", sa.String(64), primary_key=True),
    sa.Column("created_at", TZ, nullable=False),
    sa.Column("created_by", sa.String(128), nullable=False),
    sa.Column("path", sa.Text, nullable=False),
    sa.Column("garments", sa.Integer, nullable=False),
    sa.Column("labels", sa.Integer, nullable=False),
    sa.Column("strata", sa.JSON, nullable=False),
)
golden_items = sa.Table(
    "golden_items",
    metadata,
    sa.Column(
        "sha256", sa.String(64), sa.ForeignKey("golden_sets.sha256", ondelete="CASCADE"), primary_key=True
    ),
    sa.Column("item_id", sa.String(128), primary_key=True),
)
sa.Index("golden_items_item", golden_items.c.item_id)

# The learning loop's jobs (cloud/learning/worker.py): what fired, what data it trained on, what the gate
# said. At most one job is ``running`` (a partial unique index), whichever worker process starts it.
learning_jobs = sa.Table(
    "learning_jobs",
    metadata,
    sa.Column("job_id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("state", sa.String(16), nullable=False),  # running | passed | failed | error | abandoned
    sa.Column("started_at", TZ, nullable=False),
    sa.Column("heartbeat_at", TZ, nullable=False),
    sa.Column("finished_at", TZ),
    sa.Column("worker", sa.String(128), nullable=False),
    sa.Column("triggers", sa.JSON, nullable=False),  # the reasons that fired, in words
    sa.Column("data_sha256", sa.String(64)),
    sa.Column("data_until", TZ),  # verified labels up to here went into the export
    sa.Column("golden_sha256", sa.String(64)),
    sa.Column("models", sa.JSON, nullable=False),  # per model: registered version, gate result, failing
    sa.Column("report", sa.Text),  # where the job's gate reports are
    sa.Column("error", sa.Text),
)
sa.Index(
    "learning_jobs_one_running",
    learning_jobs.c.state,
    unique=True,
    sqlite_where=learning_jobs.c.state == "running",
    postgresql_where=learning_jobs.c.state == "running",
)
sa.Index("learning_jobs_started", learning_jobs.c.started_at)

# Model rollouts (cloud/storage/rollouts.py): every change of a model's rollout state is a new row with the
# next revision, so the history is the audit trail and every replica sees the same current state (the highest
# revision). ``state`` is the RolloutState as JSON.
rollouts = sa.Table(
    "rollouts",
    metadata,
    sa.Column("model", sa.String(16), primary_key=True),  # classifier
    sa.Column("revision", sa.Integer, primary_key=True),
    sa.Column("mode", sa.String(16), nullable=False),  # off | shadow | canary | promoted | rolled_back
    sa.Column("state", sa.JSON, nullable=False),
    sa.Column("set_by", sa.String(128), nullable=False),
    sa.Column("set_at", TZ, nullable=False),
)

# A shadow candidate's answers (cloud/classifiers/rollout.py): stored beside the champion's (in the garment's
# verdict), never routing anything. One row per crop and candidate version.
shadow_answers = sa.Table(
    "shadow_answers",
    metadata,
    sa.Column(
        "item_id", sa.String(128), sa.ForeignKey("garments.item_id", ondelete="CASCADE"), primary_key=True
    ),
    sa.Column("crop_id", sa.String(64), primary_key=True),
    sa.Column("version", sa.String(128), primary_key=True),
    sa.Column("revision", sa.Integer, nullable=False),  # the rollout revision that asked for it
    sa.Column("type", sa.String(48)),
    sa.Column("severity", sa.String(8)),
    sa.Column("decision", sa.String(8)),
    sa.Column("confidence", sa.Float),
    sa.Column("error", sa.Text),
    sa.Column("latency_ms", sa.Float, nullable=False),
    sa.Column("answered_at", TZ, nullable=False),
)
sa.Index("shadow_answers_answered", shadow_answers.c.answered_at)
