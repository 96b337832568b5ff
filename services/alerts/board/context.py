"""What the board's routes share: the store, the directory, sessions and templates."""

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from fastapi import Request

from services.alerts.board.render import Pages
from services.alerts.board.session import Session, Sessions
from services.alerts.names import NameBook
from services.alerts.routing import Directory
from services.alerts.store import AlertFilter, AlertNotFound, AlertStore


class NotVisible(LookupError):
    """Not found, or not for this viewer: both answer 404, as in the API (need to know)."""


@dataclass
class Board:
    store: AlertStore
    directory: Directory
    sessions: Sessions
    pages: Pages
    names: NameBook


def board_of(request: Request) -> Board:
    board: Board = request.app.state.board
    return board


def visible_alert(board: Board, session: Session, alert_id: str) -> dict[str, Any]:
    """The alert with the deliveries this viewer may see, or NotVisible."""
    authority = session.viewer.authority
    try:
        row = board.store.get_alert(alert_id)
    except AlertNotFound:
        raise NotVisible(alert_id) from None
    if authority is not None and not board.store.received(alert_id, authority):
        raise NotVisible(alert_id)
    row["deliveries"] = [d for d in row["deliveries"] if authority is None or d["authority"] == authority]
    row["recipient_authorities"] = [r["authority"] for r in json.loads(row["recipients_json"])]
    # When the level changed (the alert may be recorded much later, e.g. from history).
    row["decided_at"] = datetime.fromisoformat(json.loads(row["change_json"])["decided_at"])
    return row


def alerts_about(board: Board, session: Session, location_id: str, limit: int = 20) -> list[dict[str, Any]]:
    rows = board.store.list_alerts(AlertFilter(location_id=location_id, limit=limit), session.viewer.authority)
    found = [visible_alert(board, session, row["id"]) for row in rows]
    return sorted(found, key=lambda a: (a["decided_at"], a["created_at"]), reverse=True)
