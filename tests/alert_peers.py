"""What the alert tests share: the authorities, their real receivers, and a configured
`caresignal alerts` process."""

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from services.broker.settings import KafkaSettings
from services.ingest.auth import hash_key
from tests.receivers import SmtpSink, WebhookReceiver
from tests.service_process import AlertsProcess

HOST = "E10000030"
PLACER_A = "E06000036"
PLACER_B = "E08000025"
THIRD = "E09000033"  # has contact points, never a placement
AUTHORITIES = (HOST, PLACER_A, PLACER_B, THIRD)
LOCATION = "1-100000001"
PROVIDER = "1-000111222"
OPERATOR_KEY = "cs_test_operator"


def key_for(authority: str) -> str:
    return f"cs_test_{authority.lower()}"


@dataclass
class Peers:
    hooks: dict[str, WebhookReceiver]
    secrets: dict[str, str]
    smtp: SmtpSink


def contacts_yaml(peers: Peers, min_levels: dict[str, str] | None = None) -> str:
    doc: dict[str, Any] = {"authorities": {}}
    for authority, hook in peers.hooks.items():
        doc["authorities"][authority] = {
            "webhooks": [
                {
                    "id": f"hook-{authority.lower()}",
                    "url": hook.url,
                    "secret": peers.secrets[authority],
                    "min_level": (min_levels or {}).get(authority, "minor"),
                }
            ],
            "emails": [{"address": f"safeguarding@{authority.lower()}.example", "min_level": "minor"}],
        }
    return json.dumps(doc)  # JSON is YAML


def write_keys(path: Path) -> None:
    lines = [f'[[key]]\nname = "ops"\nsha256 = "{hash_key(OPERATOR_KEY)}"\noperator = true\n']
    for authority in AUTHORITIES:
        lines.append(
            f'[[key]]\nname = "{authority.lower()}"\nsha256 = "{hash_key(key_for(authority))}"\n'
            f'authority = "{authority}"\n'
        )
    path.write_text("\n".join(lines))


def make_alerts(
    tmp_path: Path, kafka: KafkaSettings, peers: Peers, database_url: str = "", **settings: str
) -> AlertsProcess:
    process = AlertsProcess(
        topic_prefix=kafka.topic_prefix,
        workdir=tmp_path,
        database_url=database_url,
        smtp_port=peers.smtp.port,
        settings={f"CARESIGNAL_ALERTS_{k.upper()}": v for k, v in settings.items()},
    )
    process.contacts_file.write_text(contacts_yaml(peers))
    write_keys(process.keys_file)
    return process
