"""How every Kafka client of the project authenticates and encrypts: the one place that
turns the security settings into kafka-python's, aiokafka's and Faust's arguments.

All three libraries get the same `ssl.SSLContext`, built here, so certificate checks
cannot differ between the ingest producer, the scorer and the alert consumer.
"""

import logging
import ssl
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import SecretStr

if TYPE_CHECKING:
    from faust.types.auth import CredentialsT

SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN"]

TLS_PROTOCOLS: frozenset[str] = frozenset({"SSL", "SASL_SSL"})
SASL_PROTOCOLS: frozenset[str] = frozenset({"SASL_PLAINTEXT", "SASL_SSL"})


class RedactedStr(str):
    """A password as the client libraries need it (a str), whose repr hides it: kafka-python
    logs its whole configuration at debug level when an admin client starts."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "'**********'"


# At debug level these log every request, and the raw bytes sent: a PLAIN login's password
# among them. With SASL in use they never go below INFO, whatever the root logger says.
WIRE_DUMP_LOGGERS = ("kafka.net.connection", "kafka.protocol.parser", "aiokafka.conn")


def _keep_wire_dumps_out_of_logs() -> None:
    for name in WIRE_DUMP_LOGGERS:
        logger = logging.getLogger(name)
        if logger.getEffectiveLevel() < logging.INFO:
            logger.setLevel(logging.INFO)


@dataclass(frozen=True)
class KafkaSecurity:
    """Validated security settings (see KafkaSettings); PLAINTEXT by default."""

    protocol: SecurityProtocol = "PLAINTEXT"
    sasl_mechanism: SaslMechanism = "SCRAM-SHA-512"
    sasl_username: str | None = None
    sasl_password: SecretStr | None = field(default=None, repr=False)
    ssl_cafile: Path | None = None
    ssl_certfile: Path | None = None
    ssl_keyfile: Path | None = None
    ssl_key_password: SecretStr | None = field(default=None, repr=False)
    ssl_check_hostname: bool = True

    @property
    def uses_tls(self) -> bool:
        return self.protocol in TLS_PROTOCOLS

    @property
    def uses_sasl(self) -> bool:
        return self.protocol in SASL_PROTOCOLS

    def describe(self) -> str:
        """For logs and messages: never the password."""
        if not self.uses_sasl:
            return self.protocol
        return f"{self.protocol} ({self.sasl_mechanism} as {self.sasl_username})"

    @cached_property
    def ssl_context(self) -> ssl.SSLContext | None:
        if not self.uses_tls:
            return None
        context = ssl.create_default_context(
            ssl.Purpose.SERVER_AUTH, cafile=str(self.ssl_cafile) if self.ssl_cafile else None
        )
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.check_hostname = self.ssl_check_hostname
        if self.ssl_certfile is not None:
            # A client certificate: for brokers that require one (ssl.client.auth=required).
            context.load_cert_chain(
                str(self.ssl_certfile),
                keyfile=str(self.ssl_keyfile) if self.ssl_keyfile else None,
                password=self.ssl_key_password.get_secret_value() if self.ssl_key_password else None,
            )
        return context

    def _sasl(self) -> dict[str, Any]:
        if not self.uses_sasl:
            return {}
        _keep_wire_dumps_out_of_logs()
        assert self.sasl_username is not None and self.sasl_password is not None  # KafkaSettings validated
        return {
            "sasl_mechanism": self.sasl_mechanism,
            "sasl_plain_username": self.sasl_username,
            "sasl_plain_password": RedactedStr(self.sasl_password.get_secret_value()),
        }

    def _client_config(self) -> dict[str, Any]:
        config: dict[str, Any] = {"security_protocol": self.protocol, **self._sasl()}
        if self.ssl_context is not None:
            config["ssl_context"] = self.ssl_context
        return config

    def kafka_python(self) -> dict[str, Any]:
        """Keyword arguments for kafka-python's KafkaProducer, KafkaConsumer, KafkaAdminClient."""
        return self._client_config()

    def aiokafka(self) -> dict[str, Any]:
        """Keyword arguments for aiokafka's AIOKafkaProducer, AIOKafkaConsumer, AIOKafkaAdminClient
        (the two libraries happen to name these the same)."""
        return self._client_config()

    def faust_credentials(self) -> "CredentialsT | None":
        """faust.App's `broker_credentials`: faust-streaming hands these to aiokafka
        (faust.transport.drivers.aiokafka.credentials_to_aiokafka_auth)."""
        import faust

        if self.uses_sasl:
            assert self.sasl_password is not None  # KafkaSettings validated
            # SASL_SSL when a context is given, SASL_PLAINTEXT otherwise (faust.auth).
            return faust.SASLCredentials(
                username=self.sasl_username,
                password=RedactedStr(self.sasl_password.get_secret_value()),
                ssl_context=self.ssl_context,
                mechanism=self.sasl_mechanism,
            )
        if self.ssl_context is not None:
            return faust.SSLCredentials(self.ssl_context)
        return None


PLAINTEXT = KafkaSecurity()
