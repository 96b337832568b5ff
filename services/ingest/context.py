"""What the request handlers share, built once by the app factory."""

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from schemas.events import EventParser
from schemas.topics import Topics
from services.ingest.metrics import IngestMetrics
from services.ingest.publisher import KafkaPublisher
from services.ingest.settings import IngestSettings


@dataclass(frozen=True)
class IngestContext:
    settings: IngestSettings
    topics: Topics
    parser: EventParser
    publisher: KafkaPublisher
    metrics: IngestMetrics


async def get_context(request: Request) -> IngestContext:
    context: IngestContext = request.app.state.context
    return context


IngestDep = Annotated[IngestContext, Depends(get_context)]
