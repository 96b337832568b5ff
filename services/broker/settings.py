"""Where the Kafka cluster is, how to connect to it securely, and what the topics are called."""

from pathlib import Path
from typing import Self

from pydantic import AliasChoices, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from schemas.topics import Topics
from services.broker.security import SASL_PROTOCOLS, TLS_PROTOCOLS, KafkaSecurity, SaslMechanism, SecurityProtocol

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def heartbeat_interval_s(session_timeout_s: float) -> float:
    """How often a consumer group member heartbeats: Kafka's advice is a third of the
    session at most, and the clients' usual 3 s when the session allows it."""
    return min(3.0, session_timeout_s / 3)


def _env(name: str) -> AliasChoices:
    # The conventional KAFKA_* names, as managed Kafka services document them.
    return AliasChoices(name)


class KafkaSettings(BaseSettings):
    # hide_input_in_errors: a validation error would otherwise print the password it was given.
    model_config = SettingsConfigDict(env_prefix="CARESIGNAL_", extra="ignore", hide_input_in_errors=True)

    # KAFKA_BOOTSTRAP_SERVERS is the conventional name; when it is set the project uses
    # that cluster and never starts a broker of its own.
    external_bootstrap_servers: str | None = Field(default=None, validation_alias=_env("KAFKA_BOOTSTRAP_SERVERS"))
    kafka_port: int = 9092
    kafka_controller_port: int = 9093
    kafka_heap: str = "768m"
    kafka_home: Path = PROJECT_ROOT / ".cache" / "kafka"
    topic_prefix: str = ""
    topic_replication: int = Field(default=1, ge=1)

    # --- security (every client: ingest, scorer, alerts, the CLI, importers, simulator) ---
    security_protocol: SecurityProtocol = Field(default="PLAINTEXT", validation_alias=_env("KAFKA_SECURITY_PROTOCOL"))
    sasl_mechanism: SaslMechanism = Field(default="SCRAM-SHA-512", validation_alias=_env("KAFKA_SASL_MECHANISM"))
    sasl_username: str | None = Field(default=None, validation_alias=_env("KAFKA_SASL_USERNAME"))
    sasl_password: SecretStr | None = Field(default=None, validation_alias=_env("KAFKA_SASL_PASSWORD"))
    # A file holding the password (a mounted secret), instead of KAFKA_SASL_PASSWORD.
    sasl_password_file: Path | None = Field(default=None, validation_alias=_env("KAFKA_SASL_PASSWORD_FILE"))
    # The CA that signed the brokers' certificates (unset: the system's trusted CAs).
    ssl_cafile: Path | None = Field(default=None, validation_alias=_env("KAFKA_SSL_CAFILE"))
    # A client certificate (PEM) and its key, for brokers that require one.
    ssl_certfile: Path | None = Field(default=None, validation_alias=_env("KAFKA_SSL_CERTFILE"))
    ssl_keyfile: Path | None = Field(default=None, validation_alias=_env("KAFKA_SSL_KEYFILE"))
    ssl_key_password: SecretStr | None = Field(default=None, validation_alias=_env("KAFKA_SSL_KEY_PASSWORD"))
    ssl_check_hostname: bool = Field(default=True, validation_alias=_env("KAFKA_SSL_CHECK_HOSTNAME"))

    @model_validator(mode="after")
    def _security_is_consistent(self) -> Self:
        protocol = self.security_protocol
        problems: list[str] = []
        if protocol in SASL_PROTOCOLS:
            if not self.sasl_username:
                problems.append(f"KAFKA_SECURITY_PROTOCOL={protocol} needs KAFKA_SASL_USERNAME")
            if self.sasl_password is None and self.sasl_password_file is None:
                problems.append(
                    f"KAFKA_SECURITY_PROTOCOL={protocol} needs KAFKA_SASL_PASSWORD or KAFKA_SASL_PASSWORD_FILE"
                )
            if self.sasl_password is not None and self.sasl_password_file is not None:
                problems.append("set KAFKA_SASL_PASSWORD or KAFKA_SASL_PASSWORD_FILE, not both")
        elif self.sasl_username or self.sasl_password is not None or self.sasl_password_file is not None:
            # Credentials that would silently not be used are a misconfiguration.
            problems.append(
                f"KAFKA_SASL_* is set but KAFKA_SECURITY_PROTOCOL={protocol} does not use SASL "
                f"(SASL_SSL or SASL_PLAINTEXT)"
            )
        tls_files = {
            "KAFKA_SSL_CAFILE": self.ssl_cafile,
            "KAFKA_SSL_CERTFILE": self.ssl_certfile,
            "KAFKA_SSL_KEYFILE": self.ssl_keyfile,
        }
        if protocol in TLS_PROTOCOLS:
            for name, path in tls_files.items():
                if path is not None and not path.is_file():
                    problems.append(f"{name}={path}: no such file")
            if self.ssl_keyfile is not None and self.ssl_certfile is None:
                problems.append("KAFKA_SSL_KEYFILE needs KAFKA_SSL_CERTFILE (the client certificate)")
        elif any(path is not None for path in tls_files.values()):
            problems.append(
                f"KAFKA_SSL_* is set but KAFKA_SECURITY_PROTOCOL={protocol} does not use TLS (SSL or SASL_SSL)"
            )
        if protocol != "PLAINTEXT" and self.external_bootstrap_servers is None:
            problems.append(
                f"KAFKA_SECURITY_PROTOCOL={protocol} needs KAFKA_BOOTSTRAP_SERVERS: "
                f"the local development broker speaks PLAINTEXT only"
            )
        password_file = self.sasl_password_file
        if password_file is not None and protocol in SASL_PROTOCOLS and not password_file.is_file():
            problems.append(f"KAFKA_SASL_PASSWORD_FILE={password_file}: no such file")
        if problems:
            raise ValueError("Kafka connection settings: " + "; ".join(problems))
        return self

    @property
    def security(self) -> KafkaSecurity:
        password = self.sasl_password
        if password is None and self.sasl_password_file is not None and self.security_protocol in SASL_PROTOCOLS:
            # Read when the clients are configured, so that a rotated secret file is picked up on restart.
            password = SecretStr(self.sasl_password_file.read_text().strip())
        return KafkaSecurity(
            protocol=self.security_protocol,
            sasl_mechanism=self.sasl_mechanism,
            sasl_username=self.sasl_username,
            sasl_password=password,
            ssl_cafile=self.ssl_cafile,
            ssl_certfile=self.ssl_certfile,
            ssl_keyfile=self.ssl_keyfile,
            ssl_key_password=self.ssl_key_password,
            ssl_check_hostname=self.ssl_check_hostname,
        )

    @property
    def bootstrap_servers(self) -> str:
        return self.external_bootstrap_servers or f"127.0.0.1:{self.kafka_port}"

    @property
    def external(self) -> bool:
        return self.external_bootstrap_servers is not None

    @property
    def topics(self) -> Topics:
        return Topics.with_prefix(self.topic_prefix)
