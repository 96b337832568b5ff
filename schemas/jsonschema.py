"""JSON Schema files for non-Python producers, generated from the pydantic models."""

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from schemas.alerts import AlertNotification
from schemas.directory import Authority, Location, Placement
from schemas.events import EVENT_MODELS, TYPE_PREFIX

JSON_DIR = Path(__file__).resolve().parent / "json"
SCHEMA_BASE = "https://caresignal.example/schemas/"


def _schema(model: type[BaseModel], name: str) -> dict[str, Any]:
    schema = model.model_json_schema()
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": SCHEMA_BASE + name, **schema}


def generate() -> dict[str, str]:
    """File name -> file text, for every event type, directory record and the alert webhook body."""
    files: dict[str, dict[str, Any]] = {}
    for model in EVENT_MODELS:
        type_name: str = model.model_fields["type"].annotation.__args__[0]  # type: ignore[union-attr]
        name = type_name.removeprefix(TYPE_PREFIX) + ".schema.json"
        files[name] = _schema(model, name)
    for record in (Location, Placement, Authority):
        name = f"directory.{record.__name__.lower()}.schema.json"
        files[name] = _schema(record, name)
    # What receivers of alert webhooks can validate against.
    files["alert.notification.schema.json"] = _schema(AlertNotification, "alert.notification.schema.json")
    return {name: json.dumps(schema, indent=2, sort_keys=True) + "\n" for name, schema in sorted(files.items())}


def write(directory: Path = JSON_DIR) -> list[str]:
    directory.mkdir(parents=True, exist_ok=True)
    files = generate()
    for stale in directory.glob("*.schema.json"):
        if stale.name not in files:
            stale.unlink()
    for name, text in files.items():
        (directory / name).write_text(text)
    return sorted(files)


def drift(directory: Path = JSON_DIR) -> list[str]:
    """Names of files that are missing, stale or extra compared with the models."""
    files = generate()
    on_disk = {p.name: p.read_text() for p in directory.glob("*.schema.json")}
    return sorted([n for n, text in files.items() if on_disk.get(n) != text] + [n for n in on_disk if n not in files])
