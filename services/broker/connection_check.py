"""Can this client reach, and log in to, the Kafka cluster? And if not, why not.

kafka-python retries a refused login until its bootstrap timeout and then reports only
"Unable to bootstrap", so a wrong password looked like a broker that was down, after a
wait. This check opens one connection per bootstrap address with aiokafka's connection
(an ApiVersions request, then the TLS and SASL handshakes) and names what failed:
authentication, the certificate, the protocol, or the address.
"""

import asyncio
import ssl
from concurrent.futures import ThreadPoolExecutor

import kafka.errors
from aiokafka.conn import create_conn
from aiokafka.errors import (
    KafkaConnectionError,
    KafkaError,
    SaslAuthenticationFailed,
    UnsupportedSaslMechanismError,
)

from services.broker.security import KafkaSecurity


class KafkaConnectionFailed(kafka.errors.KafkaError):  # type: ignore[misc]
    """No bootstrap address accepted a connection with these settings; the message says why.

    A kafka-python KafkaError, so that the callers' existing handling of an unreachable
    broker (ingest's 503 and readiness, the alert consumer's retry) covers it too."""


def _addresses(bootstrap_servers: str) -> list[tuple[str, int]]:
    addresses = []
    for entry in bootstrap_servers.split(","):
        host, _, port = entry.strip().rpartition(":")
        addresses.append((host.strip("[]") or entry.strip(), int(port) if port.isdigit() else 9092))
    return addresses


def _reason(error: BaseException, security: KafkaSecurity) -> str:
    if isinstance(error, SaslAuthenticationFailed):
        return (
            f"authentication failed for user {security.sasl_username!r} with {security.sasl_mechanism} "
            f"(check KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD): {error}"
        )
    if isinstance(error, UnsupportedSaslMechanismError):
        return f"authentication failed: this listener does not offer {security.sasl_mechanism} (KAFKA_SASL_MECHANISM)"
    if isinstance(error, ssl.SSLCertVerificationError):
        return f"TLS: the broker's certificate was not accepted ({error.verify_message}; KAFKA_SSL_CAFILE)"
    if isinstance(error, ssl.SSLError):
        return f"TLS handshake failed ({error.reason}): is KAFKA_SECURITY_PROTOCOL={security.protocol} right?"
    if isinstance(error, TimeoutError):
        return "no answer in time (a firewall, or a TLS or SASL listener spoken to in another protocol?)"
    if isinstance(error, OSError):
        return f"cannot connect: {error.strerror or error}"
    if isinstance(error, KafkaConnectionError):
        return (
            f"the broker closed the connection: is KAFKA_SECURITY_PROTOCOL={security.protocol} "
            f"what this listener speaks?"
        )
    return f"{type(error).__name__}: {error}"


async def _try(host: str, port: int, security: KafkaSecurity, timeout_s: float) -> str | None:
    try:
        async with asyncio.timeout(timeout_s):
            conn = await create_conn(
                host,
                port,
                client_id="caresignal-check",
                request_timeout_ms=int(timeout_s * 1000),
                **security.aiokafka(),
            )
    except (KafkaError, OSError, TimeoutError) as exc:
        return _reason(exc, security)
    conn.close()
    return None


async def _first_success(bootstrap_servers: str, security: KafkaSecurity, timeout_s: float) -> str | None:
    addresses = _addresses(bootstrap_servers)
    problems = []
    for host, port in addresses:
        problem = await _try(host, port, security, timeout_s)
        if problem is None:
            return None
        problems.append(f"{host}:{port}: {problem}" if len(addresses) > 1 else problem)
    return "; ".join(problems)


def connection_problem(bootstrap_servers: str, security: KafkaSecurity, timeout_s: float = 5.0) -> str | None:
    """None when a bootstrap address accepts us; otherwise what went wrong (never the password).

    Blocking. A caller whose thread already runs an event loop (a synchronous API driven
    from a loop, e.g. Playwright's in the browser tests) gets its own thread for the check:
    `asyncio.run` refuses to start a second loop in one thread.
    """
    check = _first_success(bootstrap_servers, security, timeout_s)
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(check)
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="kafka-connection-check") as pool:
        return pool.submit(asyncio.run, check).result()


def require_connection(bootstrap_servers: str, security: KafkaSecurity, timeout_s: float = 5.0) -> None:
    problem = connection_problem(bootstrap_servers, security, timeout_s)
    if problem is not None:
        raise KafkaConnectionFailed(f"Kafka at {bootstrap_servers} as {security.describe()}: {problem}")
