"""Alert service settings: every one overridable by a `CARESIGNAL_ALERTS_` variable."""

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.broker.settings import PROJECT_ROOT


class AlertsSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CARESIGNAL_ALERTS_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = 8002
    # SQLite file by default; a postgresql+psycopg:// URL selects PostgreSQL.
    database_url: str = f"sqlite:///{PROJECT_ROOT / '.cache' / 'alerts' / 'alerts.db'}"
    # Contact points (webhooks with their secrets, email addresses, minimum levels) per
    # authority. Re-read when it changes; a broken edit is refused and the last good
    # version stays in force.
    contacts_file: Path = PROJECT_ROOT / "deploy" / "alerts" / "contacts.yaml"
    contacts_poll_s: float = Field(default=2.0, gt=0)
    api_keys_file: Path = PROJECT_ROOT / ".cache" / "alerts-api-keys.toml"
    # The ingest API key file, read only for the names of the sources its keys are bound
    # to (the board and emails name the source of each piece of evidence); ingest's own
    # default. Missing: sources show by their ids.
    source_names_file: Path = PROJECT_ROOT / ".cache" / "api-keys.toml"
    consumer_group: str = "caresignal-alerts"
    # How long the broker waits for a silent member of the group before it hands the
    # member's partitions on: a killed instance holds its partitions this long, and so
    # does each instance killed while it was joining (Kafka's default, 45 s).
    session_timeout_s: float = Field(default=45.0, ge=6)
    # Where people reach this service: messages link to its board pages under it.
    public_url: str = "http://127.0.0.1:8002"
    # The risk board: GOV.UK Frontend is served from here (`npm ci` installs it), and
    # sessions are signed with this secret (random per process when unset: a restart
    # then signs everyone out).
    board_node_modules: Path = PROJECT_ROOT / "node_modules"
    board_session_secret: SecretStr | None = None

    # Delivery
    retry_window_h: float = Field(default=72.0, gt=0)
    backoff_initial_s: float = Field(default=5.0, gt=0)
    backoff_max_s: float = Field(default=3600.0, gt=0)
    http_timeout_s: float = Field(default=10.0, gt=0)
    max_in_flight: int = Field(default=32, ge=1)
    poll_interval_s: float = Field(default=0.5, gt=0)
    # A claimed delivery whose sender died is retried after this long.
    claim_lease_s: float = Field(default=60.0, gt=0)
    user_agent: str = "CareSignal-Alerts/1"

    smtp_host: str = "127.0.0.1"
    smtp_port: int = 8025
    smtp_from: str = "alerts@caresignal.invalid"
    smtp_starttls: bool = False
    smtp_username: str | None = None
    smtp_password: str | None = None

    # After a backfill: a subject with no newer change for this long (wall time) is told
    # its current level once, instead of every change about the past.
    backfill_settle_s: float = Field(default=60.0, gt=0)

    # Reminders for an unacknowledged Major alert.
    reminder_interval_h: float = Field(default=24.0, gt=0)
    reminder_check_s: float = Field(default=30.0, gt=0)

    log_level: Literal["debug", "info", "warning", "error"] = "info"
