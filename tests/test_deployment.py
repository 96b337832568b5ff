"""docker-compose.yml and the Dockerfile stay true to the code (no Docker engine here)."""

from pathlib import Path

import yaml

from services.alerts.settings import AlertsSettings
from services.broker.settings import KafkaSettings
from services.cli import build_parser
from services.ingest.settings import IngestSettings
from services.scoring.settings import ScoringSettings

ROOT = Path(__file__).resolve().parents[1]


def compose() -> dict:  # type: ignore[type-arg]
    data: dict = yaml.safe_load((ROOT / "docker-compose.yml").read_text())  # type: ignore[type-arg]
    return data


def known_env_vars() -> set[str]:
    names = {"KAFKA_BOOTSTRAP_SERVERS"}
    for settings in (IngestSettings, KafkaSettings, ScoringSettings, AlertsSettings):
        prefix = settings.model_config.get("env_prefix", "")
        names |= {f"{prefix}{field}".upper() for field in settings.model_fields}
    return names


def test_kafka_is_a_single_kraft_node_of_version_4() -> None:
    kafka = compose()["services"]["kafka"]
    assert kafka["image"].startswith("apache/kafka:4.")
    env = kafka["environment"]
    assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
    assert "healthcheck" in kafka


def test_every_caresignal_service_uses_real_commands_and_settings() -> None:
    services = compose()["services"]
    commands = set(build_parser()._subparsers._group_actions[0].choices)  # type: ignore[union-attr]
    known = known_env_vars()
    for name, service in services.items():
        if name in ("kafka", "postgres"):
            continue
        assert service["build"] == ".", name
        assert service["command"][0] in commands, f"{name}: unknown command {service['command']}"
        for var in service.get("environment", {}):
            assert var in known, f"{name}: {var} is not a setting the code reads"
        assert service["environment"]["KAFKA_BOOTSTRAP_SERVERS"] == "kafka:9092"


def test_ingest_listens_where_compose_publishes_it() -> None:
    ingest = compose()["services"]["ingest"]
    port = ingest["environment"]["CARESIGNAL_INGEST_PORT"]
    assert ingest["ports"] == [f"127.0.0.1:{port}:{port}"]
    assert ingest["environment"]["CARESIGNAL_INGEST_HOST"] == "0.0.0.0"
    assert ingest["depends_on"]["topics"]["condition"] == "service_completed_successfully"
    assert compose()["services"]["topics"]["depends_on"]["kafka"]["condition"] == "service_healthy"


def test_scoring_listens_where_compose_publishes_it_and_keeps_its_store() -> None:
    scoring = compose()["services"]["scoring"]
    env = scoring["environment"]
    assert scoring["ports"] == [f"127.0.0.1:{env['CARESIGNAL_SCORING_WEB_PORT']}:{env['CARESIGNAL_SCORING_WEB_PORT']}"]
    assert env["CARESIGNAL_SCORING_WEB_HOST"] == "0.0.0.0"
    assert any(v.endswith(":" + env["CARESIGNAL_SCORING_DATA_DIR"]) for v in scoring["volumes"])


def test_dockerfile_copies_every_package_and_uses_the_lock() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "uv sync --frozen" in dockerfile
    for package in ("schemas", "services"):
        assert f"COPY {package} " in dockerfile
    assert 'ENTRYPOINT ["caresignal"]' in dockerfile


def test_alerts_listens_where_compose_publishes_it_with_postgres_and_its_contact_file() -> None:
    services = compose()["services"]
    alerts = services["alerts"]
    env = alerts["environment"]
    port = env["CARESIGNAL_ALERTS_PORT"]
    assert alerts["ports"] == [f"127.0.0.1:{port}:{port}"] and env["CARESIGNAL_ALERTS_HOST"] == "0.0.0.0"
    db = services["postgres"]["environment"]
    user, password, name = db["POSTGRES_USER"], db["POSTGRES_PASSWORD"], db["POSTGRES_DB"]
    assert env["CARESIGNAL_ALERTS_DATABASE_URL"] == f"postgresql+psycopg://{user}:{password}@postgres:5432/{name}"
    assert alerts["depends_on"]["postgres"]["condition"] == "service_healthy"
    mounted = {v.split(":")[1]: v.split(":")[0] for v in alerts["volumes"]}
    source = mounted[env["CARESIGNAL_ALERTS_CONTACTS_FILE"]]
    assert (ROOT / source).is_file()
    assert env["CARESIGNAL_ALERTS_API_KEYS_FILE"] == "/run/secrets/alerts-api-keys.toml"
    assert "alerts-api-keys.toml" in compose()["secrets"]
