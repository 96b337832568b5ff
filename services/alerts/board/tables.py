"""The board's tables, in the alert store's schema (SQLite and PostgreSQL alike).

Built from the risk-change topic as the consumer stores its alerts, in the same
transaction: every subject's latest level and reasons, every level it has had, and the
provider concerns processes leads record against a location.
"""

from sqlalchemy import Column, Double, ForeignKey, Index, Integer, String, Table, Text

from services.alerts.tables import metadata

# One row per subject (a location, or an organisation): its latest change.
subject_levels = Table(
    "board_subjects",
    metadata,
    Column("scope", String(16), primary_key=True),
    Column("subject", String(32), primary_key=True),
    Column("provider_id", String(32), nullable=True),
    Column("level", String(16), nullable=False),
    Column("level_rank", Integer, nullable=False),
    Column("sequence", Integer, nullable=False),
    Column("change_id", String(200), nullable=False),
    # The latest LevelChange as published: reasons, evidence references, actions.
    Column("change_json", Text, nullable=False),
    Column("decided_at", Double, nullable=False),
    Column("received_at", Double, nullable=False),
    Index("ix_board_subjects_rank", "level_rank", "received_at"),
    Index("ix_board_subjects_provider", "provider_id"),
)

# Every level a subject has had, for its chart; the change id makes a replay a no-op.
level_history = Table(
    "board_level_history",
    metadata,
    Column("change_id", String(200), primary_key=True),
    Column("scope", String(16), nullable=False),
    Column("subject", String(32), nullable=False),
    Column("sequence", Integer, nullable=False),
    Column("old_level", String(16), nullable=False),
    Column("level", String(16), nullable=False),
    Column("decided_at", Double, nullable=False),
    Column("backfill", Integer, nullable=False, default=0),
    Index("ix_board_history_subject", "scope", "subject", "decided_at"),
)

# A provider concerns process about one location, opened by one authority.
concerns = Table(
    "concern_processes",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("location_id", String(32), nullable=False),
    Column("authority", String(16), nullable=True),  # None: opened by an operator
    Column("alert_id", String(64), ForeignKey("alerts.id"), nullable=True),
    Column("opened_by", String(100), nullable=False),
    Column("opened_at", Double, nullable=False),
    Column("closed_by", String(100), nullable=True),
    Column("closed_at", Double, nullable=True),
    Column("outcome", String(40), nullable=True),
    Index("ix_concerns_location", "location_id"),
)

concern_steps = Table(
    "concern_steps",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("process_id", Integer, ForeignKey("concern_processes.id"), nullable=False),
    Column("step", String(40), nullable=False),
    Column("held_on", String(10), nullable=False),  # ISO date: the day of the meeting or decision
    Column("lead", String(40), nullable=False),
    Column("recorded_by", String(100), nullable=False),
    Column("recorded_at", Double, nullable=False),
    Index("ix_concern_steps_process", "process_id"),
)
