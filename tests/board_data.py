"""Level changes and directory records for the board's tests, stored the consumer's way."""

from datetime import UTC, datetime, timedelta
from typing import Any

from schemas.directory import Location, Placement, PlacementStatus, ServiceType
from schemas.risk import LevelChange
from schemas.topics import Topics
from services.alerts.app import AlertRuntime
from services.alerts.consumer import ChangeConsumer, ConsumerConfig

LEVELS = ["none", "minor", "moderate", "major"]


def change_doc(
    location_id: str, provider_id: str, seq: int, old: str, new: str, at: datetime, **extra: Any
) -> dict[str, Any]:
    return {
        "change_id": f"{location_id}:{seq}",
        "sequence": seq,
        "location_id": location_id,
        "provider_id": provider_id,
        "old_level": old,
        "new_level": new,
        "direction": "escalation" if LEVELS.index(new) > LEVELS.index(old) else "de-escalation",
        "score": 10.0,
        "reasons": [
            {
                "rule_id": "serious_abuse_or_neglect",
                "family": "trigger",
                "level": new,
                "description": "A concern related to serious abuse or neglect",
                "evidence_count": 2,
                "evidence": [
                    {
                        "event_id": f"ev-{location_id}-{seq}-{i}",
                        "source": "urn:caresignal:source:police",
                        "type": "uk.caresignal.safeguarding_concern.v1",
                        "time": (at - timedelta(days=3 * i + 1)).isoformat(),
                    }
                    for i in range(2)
                ],
            }
        ]
        if new != "none"
        else [],
        "actions": [{"action": "Contact the police", "lead": "Safeguarding"}] if new == "major" else [],
        "meaning": "People are not protected from unsafe care" if new == "major" else "",
        "policy_version": "test-1",
        "decided_at": at.isoformat(),
        **extra,
    }


def put_location(
    runtime: AlertRuntime,
    location_id: str,
    provider_id: str,
    host: str,
    name: str | None,
    kind: str = "care_home",
    provider_name: str | None = None,
) -> None:
    runtime.directory.put_location(
        Location(
            location_id=location_id,
            provider_id=provider_id,
            service_type=ServiceType(kind),
            capacity=30,
            host_authority=host,
            name=name,
            provider_name=provider_name,
        )
    )


def key_file_entry(name: str, source: str, source_name: str | None = None) -> str:
    """One entry of an ingest API key file (what names a source to the alert service)."""
    label = f'source_name = "{source_name}"\n' if source_name else ""
    return f'[[key]]\nname = "{name}"\nsha256 = "{"0" * 64}"\nsource = "{source}"\n{label}event_types = []\n\n'


def put_placement(runtime: AlertRuntime, authority: str, location_id: str, active: bool = True) -> None:
    status = PlacementStatus.active if active else PlacementStatus.ended
    runtime.directory.put_placement(
        Placement(authority=authority, location_id=location_id, people_placed=2, status=status)
    )


def store_changes(runtime: AlertRuntime, *docs: dict[str, Any]) -> list[str]:
    """Route and store the changes as the consumer does (without Kafka); the alert ids."""
    config = ConsumerConfig("127.0.0.1:1", Topics.with_prefix("unused"), "unused", 60.0)
    consumer = ChangeConsumer(config, runtime.store, runtime.contacts, runtime.directory, runtime.metrics, lambda: None)
    items = [
        consumer.build_alert(LevelChange.model_validate(doc), datetime.now(UTC).timestamp(), set(), frozenset())
        for doc in docs
    ]
    runtime.store.record(items, datetime.now(UTC).timestamp())
    return [item.alert_id for item in items]
