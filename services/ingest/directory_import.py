"""`caresignal directory import FILE.csv`: bulk loads of directory records.

Every row is validated before anything is published: a half-loaded directory would route
alerts to some placing authorities and not others, which is worse than no load at all.
"""

import csv
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ValidationError

from schemas.directory import Authority, Location, Placement
from schemas.topics import Topics
from services.broker.security import PLAINTEXT, KafkaSecurity
from services.ingest.bulk_publish import send_all
from services.ingest.publisher import OutRecord

KINDS: dict[str, type[Location] | type[Placement] | type[Authority]] = {
    "locations": Location,
    "placements": Placement,
    "authorities": Authority,
}


class DirectoryImportError(ValueError):
    """The file cannot be imported; nothing was published."""


@dataclass(frozen=True)
class RowProblem:
    line: int
    field: str
    reason: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.field}: {self.reason}"


def infer_kind(header: Sequence[str]) -> str:
    columns = set(header)
    matches = [
        kind
        for kind, model in KINDS.items()
        if {n for n, f in model.model_fields.items() if f.is_required()} <= columns
        and columns <= set(model.model_fields)
    ]
    if len(matches) != 1:
        raise DirectoryImportError(f"cannot tell the record kind from columns {sorted(columns)}; pass --kind")
    return matches[0]


def read_records(path: Path, kind: str | None = None) -> tuple[str, list[BaseModel], list[RowProblem]]:
    with path.open(newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        header = reader.fieldnames or []
        kind = kind or infer_kind(header)
        if kind not in KINDS:
            raise DirectoryImportError(f"unknown kind {kind!r}; one of {sorted(KINDS)}")
        model = KINDS[kind]
        records: list[BaseModel] = []
        problems: list[RowProblem] = []
        for row in reader:
            line = reader.line_num
            data = {k: v for k, v in row.items() if k is not None and v not in (None, "")}
            if None in row:
                problems.append(RowProblem(line, "(row)", "more values than columns"))
                continue
            try:
                records.append(model.model_validate(data))
            except ValidationError as exc:
                for err in exc.errors(include_input=False):
                    field = ".".join(str(p) for p in err["loc"]) or "(row)"
                    problems.append(RowProblem(line, field, err["msg"]))
    return kind, records, problems


def publish(
    records: list[BaseModel],
    kind: str,
    bootstrap_servers: str,
    topics: Topics,
    timeout_s: float = 30,
    security: KafkaSecurity = PLAINTEXT,
) -> int:
    topic = {"locations": topics.locations, "placements": topics.placements, "authorities": topics.authorities}[kind]
    out = [
        OutRecord(topic, key=r.key.encode(), value=r.model_dump_json().encode())  # type: ignore[attr-defined]
        for r in records
    ]
    return send_all(out, bootstrap_servers, "caresignal-directory-import", timeout_s, security)
