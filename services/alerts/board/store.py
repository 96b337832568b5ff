"""The board's reads and writes in the alert store: levels from risk changes, concerns processes."""

import json
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import Connection, func, select, update

from schemas.risk import Level, LevelChange
from services.alerts.board.concerns import Outcome, RecordedStep, Step, check_step
from services.alerts.board.tables import concern_steps, concerns, level_history, subject_levels
from services.alerts.tables import StoreBase, audit


class ProcessNotFound(LookupError):
    pass


@dataclass(frozen=True)
class StepEntry:
    step: Step
    held_on: date
    lead: str
    outcome: Outcome | None
    actor: str


class BoardStore(StoreBase):
    # --- levels, written in the consumer's transaction --------------------------------

    def note_change(self, conn: Connection, change: LevelChange, now: float) -> None:
        """Keep the subject's latest level and its history; a replayed change is a no-op."""
        decided = change.decided_at.timestamp()
        conn.execute(
            self._insert_ignore(
                level_history,
                [
                    {
                        "change_id": change.change_id,
                        "scope": change.scope,
                        "subject": change.key,
                        "sequence": change.sequence,
                        "old_level": change.old_level.value,
                        "level": change.new_level.value,
                        "decided_at": decided,
                        "backfill": int(change.backfill),
                    }
                ],
                "change_id",
            )
        )
        values = {
            "provider_id": change.provider_id,
            "level": change.new_level.value,
            "level_rank": int(Level[change.new_level.value]),
            "sequence": change.sequence,
            "change_id": change.change_id,
            "change_json": change.model_dump_json(),
            "decided_at": decided,
            "received_at": now,
        }
        key = (subject_levels.c.scope == change.scope) & (subject_levels.c.subject == change.key)
        current = conn.scalar(select(subject_levels.c.sequence).where(key))
        if current is None:
            conn.execute(subject_levels.insert().values(scope=change.scope, subject=change.key, **values))
        elif change.sequence > current:  # an older change arriving late never wins
            conn.execute(update(subject_levels).where(key).values(**values))

    # --- levels, read by the pages ----------------------------------------------------

    def subjects(self, scope: str) -> list[dict[str, Any]]:
        """Every subject's level, without its reasons (the board lists thousands)."""
        with self.engine.connect() as conn:
            c = subject_levels.c
            query = select(c.subject, c.provider_id, c.level, c.decided_at).where(c.scope == scope)
            return [dict(r) for r in conn.execute(query).mappings()]

    def subject(self, scope: str, subject: str) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            row = (
                conn.execute(
                    select(subject_levels).where(subject_levels.c.scope == scope, subject_levels.c.subject == subject)
                )
                .mappings()
                .first()
            )
            return dict(row) if row else None

    def history(self, scope: str, subject: str) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            query = (
                select(level_history)
                .where(level_history.c.scope == scope, level_history.c.subject == subject)
                .order_by(level_history.c.decided_at, level_history.c.sequence)
            )
            return [dict(r) for r in conn.execute(query).mappings()]

    def board_version(self) -> str:
        """Changes whenever the board would: a new change, alert or acknowledgement."""
        with self.engine.connect() as conn:
            changes = conn.scalar(select(func.count()).select_from(level_history)) or 0
            latest = conn.scalar(select(func.max(audit.c.id))) or 0
            return f"{changes}-{latest}"

    # --- provider concerns processes --------------------------------------------------

    def open_process(
        self, location_id: str, authority: str | None, alert_id: str | None, actor: str, now: float
    ) -> int:
        with self._tx() as conn:
            inserted = conn.execute(
                concerns.insert().values(
                    location_id=location_id, authority=authority, alert_id=alert_id, opened_by=actor, opened_at=now
                )
            ).inserted_primary_key
            assert inserted is not None
            process_id = int(inserted[0])
            self._audit(
                conn, now, actor, "concern.opened", alert_id, {"process_id": process_id, "location_id": location_id}
            )
            return process_id

    def processes(self, location_id: str | None, authority: str | None) -> list[dict[str, Any]]:
        query = select(concerns).order_by(concerns.c.opened_at.desc(), concerns.c.id.desc())
        if location_id is not None:
            query = query.where(concerns.c.location_id == location_id)
        if authority is not None:
            query = query.where(concerns.c.authority == authority)
        with self.engine.connect() as conn:
            return [dict(r) for r in conn.execute(query).mappings()]

    def process(self, process_id: int, authority: str | None) -> dict[str, Any]:
        """The process with its steps and audit; an authority finds only its own."""
        with self.engine.connect() as conn:
            query = select(concerns).where(concerns.c.id == process_id)
            if authority is not None:
                query = query.where(concerns.c.authority == authority)
            row = conn.execute(query).mappings().first()
            if row is None:
                raise ProcessNotFound(process_id)
            result = dict(row)
            result["steps"] = [
                dict(s)
                for s in conn.execute(
                    select(concern_steps)
                    .where(concern_steps.c.process_id == process_id)
                    .order_by(concern_steps.c.held_on, concern_steps.c.id)
                ).mappings()
            ]
            marker = f'"process_id": {process_id}'
            result["audit"] = [
                dict(a)
                for a in conn.execute(
                    select(audit)
                    .where(audit.c.action.like("concern.%"), audit.c.detail.contains(marker))
                    .order_by(audit.c.at, audit.c.id)
                ).mappings()
                if json.loads(a["detail"] or "{}").get("process_id") == process_id
            ]
            return result

    def record_step(self, process_id: int, authority: str | None, entry: StepEntry, today: date, now: float) -> None:
        """Record one step (checked against the steps already recorded, in the same transaction)."""
        with self._tx() as conn:
            query = select(concerns).where(concerns.c.id == process_id)
            if authority is not None:
                query = query.where(concerns.c.authority == authority)
            row = conn.execute(query).mappings().first()
            if row is None:
                raise ProcessNotFound(process_id)
            recorded = [
                RecordedStep(Step(s.step), date.fromisoformat(s.held_on))
                for s in conn.execute(select(concern_steps).where(concern_steps.c.process_id == process_id))
            ]
            check_step(recorded, row["closed_at"] is not None, entry.step, entry.held_on, today, entry.outcome)
            conn.execute(
                concern_steps.insert().values(
                    process_id=process_id,
                    step=entry.step.value,
                    held_on=entry.held_on.isoformat(),
                    lead=entry.lead,
                    recorded_by=entry.actor,
                    recorded_at=now,
                )
            )
            detail: dict[str, Any] = {
                "process_id": process_id,
                "step": entry.step.value,
                "held_on": entry.held_on.isoformat(),
                "lead": entry.lead,
            }
            self._audit(conn, now, entry.actor, "concern.step", row["alert_id"], detail)
            if entry.step is Step.formal_closure and entry.outcome is not None:
                conn.execute(
                    update(concerns)
                    .where(concerns.c.id == process_id)
                    .values(closed_at=now, closed_by=entry.actor, outcome=entry.outcome.value)
                )
                closed = {"process_id": process_id, "outcome": entry.outcome.value}
                self._audit(conn, now, entry.actor, "concern.closed", row["alert_id"], closed)

    @staticmethod
    def _audit(conn: Connection, now: float, actor: str, action: str, alert_id: str | None, detail: Any) -> None:
        conn.execute(
            audit.insert().values(at=now, actor=actor, action=action, alert_id=alert_id, detail=json.dumps(detail))
        )
