"""Ingest settings: every one overridable by a `CARESIGNAL_` environment variable."""

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.broker.settings import PROJECT_ROOT


class IngestSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CARESIGNAL_INGEST_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = 8000
    api_keys_file: Path = PROJECT_ROOT / ".cache" / "api-keys.toml"
    # How long a caller waits for Kafka's acknowledgement before it is told 503.
    produce_timeout_s: float = Field(default=10.0, gt=0)
    retry_after_s: int = Field(default=5, ge=1)
    max_event_bytes: int = Field(default=64 * 1024, ge=1024)
    max_batch_bytes: int = Field(default=16 * 1024 * 1024, ge=1024)
    max_batch_events: int = Field(default=1000, ge=1, le=10_000)
    future_tolerance_s: int = Field(default=300, ge=0)
    # Events older than this are refused unless the key may backfill. The default is the
    # default policy's retention_days: an older event could no longer change any level,
    # but a live one that late would raise alerts about the past.
    max_event_age_days: int = Field(default=400, ge=1)
    # 0: under load records still batch while a request is in flight, and a lone event
    # is not held back (5 ms of linger cost 5 ms on every single-event answer).
    linger_ms: int = Field(default=0, ge=0)
