"""`caresignal ingest` as a process of its own for a test, with its own key file."""

from dataclasses import dataclass
from pathlib import Path

from tests.service_process import ServiceProcess


@dataclass
class IngestProcess(ServiceProcess):
    command: str = "ingest"

    @property
    def keys_file(self) -> Path:
        return self.workdir / "ingest-keys.toml"

    def env(self) -> dict[str, str]:
        return {
            **super().env(),
            "CARESIGNAL_INGEST_PORT": str(self.port),
            "CARESIGNAL_INGEST_API_KEYS_FILE": str(self.keys_file),
        }
