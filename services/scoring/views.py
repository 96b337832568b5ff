"""The scorer's web pages: a location's risk, the risk board, directory records, health."""

import json
from typing import TYPE_CHECKING, Any

import faust
from faust.web import Request, Response, View
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from schemas.risk import Level
from services.scoring.model import LocationState
from services.scoring.policy import Policy

if TYPE_CHECKING:
    from services.scoring.worker import Scorer


def register_views(app: faust.App, scorer: "Scorer") -> None:
    @app.page("/v1/locations/{location_id}/risk")
    class LocationRisk(View):
        # Routed to the worker that holds the location's partition.
        # faust's stub types the routed method without URL parameters.
        @app.table_route(table=scorer.states, match_info="location_id")  # type: ignore[arg-type]
        async def get(self, request: Request, location_id: str) -> Response:
            raw = scorer.states.get(location_id)
            if not raw:
                return self.json({"detail": f"no events scored for location {location_id}"}, status=404)
            return self.json(risk_view(LocationState.model_validate_json(raw), scorer.policy))

    @app.page("/v1/directory/locations/{location_id}")
    class DirectoryRecord(View):
        # What the scorer knows of a location: its rates and roll-up depend on it.
        @app.table_route(table=scorer.locations, match_info="location_id")  # type: ignore[arg-type]
        async def get(self, request: Request, location_id: str) -> Response:
            raw = scorer.locations.get(location_id)
            if not raw:
                return self.json({"detail": f"no directory record for location {location_id}"}, status=404)
            return self.json(json.loads(raw))

    @app.page("/v1/locations")
    class RiskBoard(View):
        async def get(self, request: Request) -> Response:
            scorer.ensure_index()
            wanted = request.query.get("level")
            if wanted is not None and wanted not in Level.__members__:
                return self.json({"detail": f"level must be one of {list(Level.__members__)}"}, status=422)
            rows = [
                {"location_id": k, "level": v.name}
                for k, v in sorted(scorer.index.levels.items(), key=lambda kv: (-kv[1], kv[0]))
                if wanted is None or v.name == wanted
            ]
            return self.json({"locations": rows, "count": len(rows), "scope": "this worker's partitions"})

    @app.page("/metrics")
    class Metrics(View):
        async def get(self, request: Request) -> Response:
            return self.bytes(generate_latest(scorer.metrics.registry), content_type=CONTENT_TYPE_LATEST.split(";")[0])

    @app.page("/healthz")
    class Health(View):
        async def get(self, request: Request) -> Response:
            return self.json({"status": "ok"})

    @app.page("/readyz")
    class Ready(View):
        async def get(self, request: Request) -> Response:
            recovery = getattr(app.tables, "recovery", None)
            recovering = recovery is None or not recovery.completed.is_set()
            if recovering:
                return self.json({"status": "recovering state from changelogs"}, status=503)
            return self.json({"status": "ready", "policy_version": scorer.policy.version})


def risk_view(state: LocationState, policy: Policy) -> dict[str, Any]:
    current = state.current
    spec = policy.spec(current.level)
    recent = state.evidence[-20:]
    return {
        "location_id": state.location_id,
        "level": current.level.name,
        "since": current.since.isoformat() if current.since else None,
        "score": current.score,
        "evaluated_at": current.at.isoformat() if current.at else None,
        "policy_version": state.policy_version,
        "reasons": [r.model_dump(mode="json") for r in current.reasons],
        "actions": [a.model_dump(mode="json") for a in spec.actions] if spec else [],
        "meaning": spec.meaning if spec else None,
        "recent_evidence": [
            {"event_id": e.id, "source": e.source, "type": e.type, "time": e.time.isoformat()} for e in reversed(recent)
        ],
    }
