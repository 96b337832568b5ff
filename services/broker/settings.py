"""Where the Kafka cluster is and what the topics are called."""

from pathlib import Path

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from schemas.topics import Topics

PROJECT_ROOT = Path(__file__).resolve().parents[2]


class KafkaSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CARESIGNAL_", extra="ignore")

    # KAFKA_BOOTSTRAP_SERVERS is the conventional name; when it is set the project uses
    # that cluster and never starts a broker of its own.
    external_bootstrap_servers: str | None = Field(
        default=None, validation_alias=AliasChoices("KAFKA_BOOTSTRAP_SERVERS")
    )
    kafka_port: int = 9092
    kafka_controller_port: int = 9093
    kafka_heap: str = "768m"
    kafka_home: Path = PROJECT_ROOT / ".cache" / "kafka"
    topic_prefix: str = ""
    topic_replication: int = Field(default=1, ge=1)

    @property
    def bootstrap_servers(self) -> str:
        return self.external_bootstrap_servers or f"127.0.0.1:{self.kafka_port}"

    @property
    def external(self) -> bool:
        return self.external_bootstrap_servers is not None

    @property
    def topics(self) -> Topics:
        return Topics.with_prefix(self.topic_prefix)
