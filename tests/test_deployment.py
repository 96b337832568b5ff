"""docker-compose.yml and the Dockerfile stay true to the code (no Docker engine here).

No container can be pulled or run here, so the file is checked the other ways it can be:
a compose implementation's own parser (Debian's docker-compose, installed by `make test`)
must accept it, and each service is read against the Dockerfile (users, directories,
owners), the settings classes, the CLI's parser and the contact file it mounts.
"""

import importlib
import re
import shlex
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml
from pydantic import AliasChoices
from pydantic_settings import BaseSettings

from services.alerts.contacts import load_contacts
from services.cli import build_parser, main
from services.ingest.auth import ApiKeyRegistry
from services.ingest.directory_import import read_records

ROOT = Path(__file__).resolve().parents[1]
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
IMAGE_UID = 10001
# The official apache/kafka image (docker/jvm/Dockerfile in apache/kafka) makes this
# directory, owned by its user `appuser`, and declares it a VOLUME.
KAFKA_IMAGE_DATA_DIR = "/var/lib/kafka/data"

Service = dict[str, Any]


def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(COMPOSE_FILE.read_text())
    return data


def services() -> dict[str, Service]:
    found: dict[str, Service] = compose()["services"]
    return found


def ours() -> dict[str, Service]:
    """The services run from this project's image."""
    return {name: s for name, s in services().items() if "build" in s}


@dataclass(frozen=True)
class Mount:
    source: str
    target: str
    read_only: bool
    named: bool  # a named volume (else a bind mount of a host path)


def mounts(service: Service) -> list[Mount]:
    found = []
    for spec in service.get("volumes", []):
        assert isinstance(spec, str), f"long volume syntax is not read by this test: {spec}"
        parts = spec.split(":")
        source, target = parts[0], parts[1]
        found.append(
            Mount(source, target, len(parts) > 2 and "ro" in parts[2].split(","), source in compose()["volumes"])
        )
    return found


def env(service: Service) -> dict[str, str]:
    return {k: str(v) for k, v in (service.get("environment") or {}).items()}


@dataclass
class Image:
    """What the Dockerfile leaves behind: its users, its directories and their owners, its USER."""

    uids: dict[str, int] = field(default_factory=dict)
    owners: dict[str, str] = field(default_factory=dict)
    user: str = "root"

    def uid_of(self, user: str) -> int:
        name = user.split(":")[0]
        return int(name) if name.isdigit() else self.uids.get(name, 0 if name == "root" else -1)

    def owner_uid(self, path: str) -> int | None:
        owner = self.owners.get(path.rstrip("/"))
        return None if owner is None else self.uid_of(owner)


def read_dockerfile(text: str) -> Image:
    image = Image()
    lines = re.sub(r"\\\n", " ", text).splitlines()
    for line in lines:
        instruction, _, rest = line.strip().partition(" ")
        if instruction == "USER":
            image.user = rest.strip()
        elif instruction == "RUN":
            for command in re.split(r"&&|;", rest):
                words = shlex.split(command)
                if not words:
                    continue
                if words[0] == "useradd" and "--uid" in words:
                    image.uids[words[-1]] = int(words[words.index("--uid") + 1])
                elif words[0] == "mkdir":
                    for path in (w for w in words[1:] if not w.startswith("-")):
                        created = PurePosixPath(path)
                        for directory in (created, *created.parents):
                            image.owners.setdefault(str(directory), "root")
                elif words[0] == "chown":
                    recursive = "-R" in words
                    owner, *targets = [w for w in words[1:] if not w.startswith("-")]
                    for target in targets:
                        target = target.rstrip("/")
                        for path in list(image.owners):
                            if path == target or (recursive and path.startswith(target + "/")):
                                image.owners[path] = owner
    return image


def image() -> Image:
    return read_dockerfile(DOCKERFILE.read_text())


def settings_variables() -> set[str]:
    """Every environment variable a settings class of the project reads."""
    names: set[str] = set()
    for module_file in sorted((ROOT / "services").glob("*/settings.py")):
        module = importlib.import_module(f"services.{module_file.parent.name}.settings")
        for value in vars(module).values():
            if isinstance(value, type) and issubclass(value, BaseSettings) and value is not BaseSettings:
                prefix = value.model_config.get("env_prefix", "")
                for name, info in value.model_fields.items():
                    alias = info.validation_alias
                    if isinstance(alias, AliasChoices):
                        names |= {str(choice).upper() for choice in alias.choices}
                    elif isinstance(alias, str):
                        names.add(alias.upper())
                    else:
                        names.add(f"{prefix}{name}".upper())
    return names


@pytest.mark.integration  # needs docker-compose, which `make test` installs (`make unit` does not)
def test_a_compose_implementation_accepts_the_file() -> None:
    # Debian's docker-compose 1.29 validates against the Compose Specification schema
    # without an engine (it refuses a top-level `name:`, which is why the file has none).
    tool = shutil.which("docker-compose")
    assert tool, "docker-compose is not installed: `make test` installs it (Debian package docker-compose)"
    checked = subprocess.run(
        [tool, "-f", str(COMPOSE_FILE), "config", "--quiet"], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert checked.returncode == 0, checked.stderr


def test_every_command_is_a_real_subcommand() -> None:
    parser = build_parser()
    for name, service in ours().items():
        command = service.get("command")
        assert isinstance(command, list) and command, f"{name}: no command (the image's entrypoint is `caresignal`)"
        try:
            parser.parse_args([str(word) for word in command])
        except SystemExit:
            pytest.fail(f"{name}: `caresignal {' '.join(map(str, command))}` is not a command the CLI accepts")


def test_every_caresignal_variable_is_a_setting_the_code_reads() -> None:
    known = settings_variables()
    for name, service in ours().items():
        for var, value in env(service).items():
            if var.startswith("CARESIGNAL_") or var == "KAFKA_BOOTSTRAP_SERVERS":
                assert var in known, f"{name}: {var} is not a setting the code reads"
            if var == "KAFKA_BOOTSTRAP_SERVERS":
                assert value == "kafka:9092", f"{name}: {var}={value}"


def test_the_image_runs_as_uid_10001_and_owns_every_path_a_named_volume_mounts() -> None:
    built = image()
    assert built.uid_of(built.user) == IMAGE_UID, f"the image runs as {built.user!r}, not uid {IMAGE_UID}"
    for name, service in ours().items():
        assert not service.get("user"), f"{name}: runs as {service['user']!r}, not as the image's user"
        for mount in mounts(service):
            if mount.named:
                # An empty named volume takes the owner of the directory it is mounted on;
                # a directory the image lacks is made by Docker, owned by root.
                owner = built.owner_uid(mount.target)
                assert owner is not None, f"{name}: {mount.target} (volume {mount.source}) is not made in the image"
                assert owner == IMAGE_UID, f"{name}: {mount.target} is owned by uid {owner}, not {IMAGE_UID}"
            else:
                assert (ROOT / mount.source).exists(), f"{name}: bind mount source {mount.source} does not exist"
                assert mount.read_only, f"{name}: {mount.source} is mounted writable"


def test_the_scorer_keeps_its_tables_in_a_volume_it_can_write() -> None:
    scoring = services()["scoring"]
    data_dir = env(scoring)["CARESIGNAL_SCORING_DATA_DIR"]
    volume = [m for m in mounts(scoring) if m.target == data_dir]
    assert volume and volume[0].named and not volume[0].read_only, mounts(scoring)
    assert image().owner_uid(data_dir) == IMAGE_UID


def key_files() -> dict[str, tuple[str, str]]:
    """(service, variable) -> key file path, for the services that read API keys."""
    return {
        "ingest": ("CARESIGNAL_INGEST_API_KEYS_FILE", env(services()["ingest"])["CARESIGNAL_INGEST_API_KEYS_FILE"]),
        "alerts": ("CARESIGNAL_ALERTS_API_KEYS_FILE", env(services()["alerts"])["CARESIGNAL_ALERTS_API_KEYS_FILE"]),
    }


def volume_holding(service: Service, path: str) -> Mount | None:
    for mount in mounts(service):
        if mount.named and PurePosixPath(path).is_relative_to(mount.target):
            return mount
    return None


def test_api_keys_are_made_on_first_run_where_the_services_user_can_read_them() -> None:
    assert not compose().get("secrets"), "compose secrets are mounted 0600 root-owned: uid 10001 cannot read them"
    for name, (variable, path) in key_files().items():
        service = services()[name]
        volume = volume_holding(service, path)
        assert volume, f"{name}: {path} is in no volume: nothing on first run can create it"
        assert image().owner_uid(volume.target) == IMAGE_UID
        # The one-shot service that writes this file into the same volume, as the image's user.
        makers = [
            (maker_name, maker)
            for maker_name, maker in ours().items()
            if env(maker).get(variable) == path
            and any(m.source == volume.source and not m.read_only for m in mounts(maker))
            and maker.get("command", [None])[:2] == ["apikey", "create"]
        ]
        assert len(makers) == 1, f"{name}: no (single) first-run service creates {path}"
        maker_name, maker = makers[0]
        assert maker.get("restart") == "no" and not maker.get("user")
        assert service["depends_on"][maker_name]["condition"] == "service_completed_successfully"


def run_key_service(command: list[str], environment: dict[str, str], keys_dir: Path, mount: str) -> int:
    """Runs a key service's command here, its volume being `keys_dir`."""
    with pytest.MonkeyPatch.context() as patch:
        for var, value in environment.items():
            patch.setenv(var, value.replace(mount, str(keys_dir)))
        return main([word.replace(mount, str(keys_dir)) for word in command])


def test_the_first_run_key_services_make_keys_once_and_ingest_accepts_them(tmp_path: Path) -> None:
    variable, path = key_files()["ingest"]
    makers = [s for s in ours().values() if env(s).get(variable) == path and s.get("command", [])[:1] == ["apikey"]]
    assert makers, f"no first-run service writes {path}"
    maker = makers[0]
    mount = volume_holding(maker, path)
    assert mount, f"{path} is in no volume of the service that writes it"
    command = [str(w) for w in maker["command"]]
    assert run_key_service(command, env(maker), tmp_path, mount.target) == 0
    written = {p.name: p.read_text() for p in tmp_path.iterdir()}
    key_file = Path(path.replace(mount.target, str(tmp_path)))
    clear_key = Path(command[command.index("--write-key-to") + 1].replace(mount.target, str(tmp_path)))
    for made in (key_file, clear_key):
        assert made.stat().st_mode & 0o777 == 0o600  # the image's user owns it; no one else reads a key
    # A second start (every `docker compose up`) changes nothing.
    assert run_key_service(command, env(maker), tmp_path, mount.target) == 0
    assert {p.name: p.read_text() for p in tmp_path.iterdir()} == written
    caller = ApiKeyRegistry.load(key_file).authenticate(clear_key.read_text().strip())
    assert caller is not None and caller.directory, "ingest would not accept the key the first run wrote"


def test_kafka_keeps_its_data_in_the_mounted_volume_and_answers_the_host() -> None:
    kafka = services()["kafka"]
    assert kafka["image"].startswith("apache/kafka:4.")
    kafka_env = env(kafka)
    assert kafka_env["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert kafka_env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
    # Unset, the image keeps its data in /tmp/kraft-combined-logs, lost on `docker compose down`.
    log_dirs = kafka_env.get("KAFKA_LOG_DIRS")
    assert log_dirs == KAFKA_IMAGE_DATA_DIR, f"KAFKA_LOG_DIRS={log_dirs}"
    assert any(m.named and m.target == log_dirs for m in mounts(kafka)), mounts(kafka)

    listeners = dict(item.split("://") for item in kafka_env["KAFKA_LISTENERS"].split(","))
    advertised = dict(item.split("://") for item in kafka_env["KAFKA_ADVERTISED_LISTENERS"].split(","))
    protocols = dict(item.split(":") for item in kafka_env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(","))
    assert set(listeners) <= set(protocols)
    assert advertised[kafka_env["KAFKA_INTER_BROKER_LISTENER_NAME"]] == "kafka:9092"
    # A listener for tools on the host: advertised as an address the host can reach,
    # on a port published on the host's loopback interface only.
    published = {p.rsplit(":", 1)[0]: p.rsplit(":", 1)[1] for p in kafka.get("ports", [])}
    host_listeners = [
        name
        for name, address in advertised.items()
        if address.split(":")[0] in ("127.0.0.1", "localhost")
        and published.get(f"127.0.0.1:{address.split(':')[1]}") == listeners[name].split(":")[1]
    ]
    assert host_listeners, f"no listener advertised to the host: {advertised}, ports {kafka.get('ports')}"
    assert "KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:9094" in (ROOT / "README.md").read_text()


def test_mail_goes_to_a_catcher_with_a_web_ui() -> None:
    alerts_env = env(services()["alerts"])
    host, port = alerts_env["CARESIGNAL_ALERTS_SMTP_HOST"], alerts_env["CARESIGNAL_ALERTS_SMTP_PORT"]
    assert host in services(), f"SMTP host {host!r} is not a service of this file"
    catcher = services()[host]
    assert catcher["image"].startswith("axllent/mailpit:")
    assert port == "1025"  # Mailpit's SMTP port
    assert "127.0.0.1:8025:8025" in catcher["ports"]  # its web UI, on the host's loopback only
    assert services()["alerts"]["depends_on"][host]["condition"] == "service_healthy"


def test_the_contact_file_tells_the_demo_directory_authorities() -> None:
    alerts = services()["alerts"]
    contacts_in_container = env(alerts)["CARESIGNAL_ALERTS_CONTACTS_FILE"]
    sources = [
        ROOT / m.source / PurePosixPath(contacts_in_container).relative_to(m.target)
        for m in mounts(alerts)
        if not m.named and PurePosixPath(contacts_in_container).is_relative_to(m.target)
    ]
    assert sources and sources[0].is_file(), f"{contacts_in_container} is mounted from no file of the repository"
    book = load_contacts(sources[0])
    told = {authority for authority, emails in book.emails.items() if emails} | {
        authority for authority, hooks in book.webhooks.items() if hooks
    }
    assert told, f"{sources[0]} tells nobody anything"
    # Every authority of the demo directory the README loads has a contact point.
    demo = ROOT / "deploy" / "compose"
    _, locations, _ = read_records(demo / "demo-locations.csv")
    _, placements, _ = read_records(demo / "demo-placements.csv")
    authorities = {r.host_authority for r in locations} | {r.authority for r in placements}  # type: ignore[attr-defined]
    assert authorities <= told, f"authorities of the demo directory without a contact point: {authorities - told}"


def test_healthchecks_are_valid_and_every_dependency_condition_can_be_met() -> None:
    every = services()
    for name, service in every.items():
        check = service.get("healthcheck")
        if check:
            assert check["test"][0] in ("CMD", "CMD-SHELL"), f"{name}: healthcheck {check['test']}"
            for key in ("interval", "timeout"):
                assert re.fullmatch(r"\d+(ms|s|m)", str(check[key])), f"{name}: healthcheck {key} {check[key]}"
        for other, condition in (service.get("depends_on") or {}).items():
            assert other in every, f"{name} depends on unknown service {other}"
            if condition["condition"] == "service_healthy":
                image_has_one = every[other].get("image", "").startswith(("axllent/mailpit:", "postgres:"))
                assert "healthcheck" in every[other] or image_has_one, f"{other} has no healthcheck"
            elif condition["condition"] == "service_completed_successfully":
                assert every[other].get("restart") == "no", f"{other} restarts: it never completes"
    for name, port_var in (
        ("ingest", "CARESIGNAL_INGEST_PORT"),
        ("scoring", "CARESIGNAL_SCORING_WEB_PORT"),
        ("alerts", "CARESIGNAL_ALERTS_PORT"),
    ):
        service = every[name]
        port = env(service)[port_var]
        assert f"127.0.0.1:{port}/readyz" in " ".join(service["healthcheck"]["test"]), name
        assert service["ports"] == [f"127.0.0.1:{port}:{port}"], name


def test_the_services_listen_where_compose_publishes_them() -> None:
    every = services()
    assert env(every["ingest"])["CARESIGNAL_INGEST_HOST"] == "0.0.0.0"
    assert env(every["scoring"])["CARESIGNAL_SCORING_WEB_HOST"] == "0.0.0.0"
    assert env(every["alerts"])["CARESIGNAL_ALERTS_HOST"] == "0.0.0.0"
    for name in ("ingest", "scoring", "alerts"):
        assert every[name]["depends_on"]["topics"]["condition"] == "service_completed_successfully"
    assert every["topics"]["depends_on"]["kafka"]["condition"] == "service_healthy"
    db = env(every["postgres"])
    user, password, name = db["POSTGRES_USER"], db["POSTGRES_PASSWORD"], db["POSTGRES_DB"]
    assert env(every["alerts"])["CARESIGNAL_ALERTS_DATABASE_URL"] == (
        f"postgresql+psycopg://{user}:{password}@postgres:5432/{name}"
    )
    assert every["alerts"]["depends_on"]["postgres"]["condition"] == "service_healthy"


def test_prometheus_and_grafana_are_provisioned_from_deploy_and_scrape_the_compose_services() -> None:
    every = services()
    prometheus, grafana = every["prometheus"], every["grafana"]
    assert prometheus["image"].startswith("prom/prometheus:") and grafana["image"].startswith("grafana/grafana:")
    assert prometheus["ports"] == ["127.0.0.1:9090:9090"] and grafana["ports"] == ["127.0.0.1:3000:3000"]
    binds = {m.target: m for s in (prometheus, grafana) for m in mounts(s) if not m.named}
    for mount in binds.values():
        assert (ROOT / mount.source).is_dir() and mount.read_only, mount
    # Where the images and the provisioning files look.
    config_dir = ROOT / binds["/etc/prometheus"].source  # the image's --config.file is in it
    config = yaml.safe_load((config_dir / "prometheus.yml").read_text())
    assert all(list(config_dir.glob(pattern)) for pattern in config["rule_files"]), config["rule_files"]
    scraped = {
        job["job_name"]: [t for c in job["static_configs"] for t in c["targets"]] for job in config["scrape_configs"]
    }
    ports = {
        "ingest": env(every["ingest"])["CARESIGNAL_INGEST_PORT"],
        "scoring": env(every["scoring"])["CARESIGNAL_SCORING_WEB_PORT"],
        "alerts": env(every["alerts"])["CARESIGNAL_ALERTS_PORT"],
    }
    assert scraped == {name: [f"{name}:{port}"] for name, port in ports.items()}
    provisioning = ROOT / binds["/etc/grafana/provisioning"].source
    (source,) = yaml.safe_load((provisioning / "datasources" / "prometheus.yml").read_text())["datasources"]
    assert source["url"] == "http://prometheus:9090"
    (provider,) = yaml.safe_load((provisioning / "dashboards" / "caresignal.yml").read_text())["providers"]
    dashboards = ROOT / binds[provider["options"]["path"]].source
    assert list(dashboards.glob("*.json")), "no dashboard where the provider looks"


def test_the_readme_names_the_key_files_the_first_run_writes() -> None:
    readme = (ROOT / "README.md").read_text()
    written = {
        str(s["command"][s["command"].index("--write-key-to") + 1])
        for s in ours().values()
        if "--write-key-to" in s.get("command", [])
    }
    named = set(re.findall(r"/var/lib/caresignal/keys/[\w.-]+", readme))
    assert written, "no service writes a key on first run"
    assert written <= named and named <= written | {k for _, k in key_files().values()}, (written, named)


def test_dockerfile_copies_every_package_and_uses_the_lock() -> None:
    dockerfile = DOCKERFILE.read_text()
    assert "uv sync --frozen" in dockerfile
    for package in ("schemas", "services", "deploy"):
        assert f"COPY {package} " in dockerfile
    assert 'ENTRYPOINT ["caresignal"]' in dockerfile


def test_the_image_carries_the_boards_front_end_assets_where_the_alerts_service_looks() -> None:
    """The alerts service serves the board's assets from node_modules beside the project
    (settings.board_node_modules); an image without them answers 503 on /board."""
    from services.alerts.settings import AlertsSettings
    from services.broker.settings import PROJECT_ROOT

    dockerfile = DOCKERFILE.read_text()
    assert "COPY package.json package-lock.json" in dockerfile and "npm ci" in dockerfile
    workdir = re.findall(r"^WORKDIR\s+(\S+)", dockerfile, flags=re.MULTILINE)[-1]
    copied = re.search(r"^COPY --from=\S+ \S+/node_modules (\S+)$", dockerfile, flags=re.MULTILINE)
    assert copied, "the image copies no node_modules from the assets stage"
    target = PurePosixPath(workdir) / copied.group(1)
    relative = AlertsSettings().board_node_modules.relative_to(PROJECT_ROOT)
    assert target == PurePosixPath(workdir) / relative.as_posix()
