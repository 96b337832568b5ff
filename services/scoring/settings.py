"""Scoring worker settings: every one overridable by a `CARESIGNAL_SCORING_` variable."""

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.broker.settings import PROJECT_ROOT
from services.scoring.policy import DEFAULT_POLICY


class ScoringSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CARESIGNAL_SCORING_", extra="ignore")

    # The Faust app id is also the consumer group and the prefix of its changelog topics.
    app_id: str = "caresignal-scoring"
    policy_file: Path = DEFAULT_POLICY
    web_host: str = "127.0.0.1"
    web_port: int = 6066
    data_dir: Path = PROJECT_ROOT / ".cache" / "scoring"
    # rocksdb:// in normal runs; memory:// only for unit tests.
    store: str = "rocksdb://"
    # Wall-clock seconds between time signals to every partition of the event topic, so
    # that levels fall with time on partitions no event reaches; 0 sends none.
    clock_interval_s: float = Field(default=60.0, ge=0)
    # Decoded location states kept in memory beside the state table, the most recently
    # scored kept: a busy location is seldom decoded again; memory grows ~10 KB per entry
    # on the simulator's mix (measured by bench/pipeline.py) until the bound.
    state_cache_size: int = Field(default=5_000, ge=0)
    # How long the broker waits for a silent worker before giving its partitions to
    # another: after a crash (kill -9, OOM), a restarted worker waits this long before it
    # scores again. No less than 6 s, the broker's minimum (`heartbeat_interval_s`).
    session_timeout_s: float = Field(default=60.0, ge=6)
    # Other workers keeping a copy of each partition's tables, so that one taking the
    # partition over (a worker left or crashed) scores at once instead of first reading
    # the changelog; each copy costs that worker the disk and the changelog reads.
    standby_replicas: int = Field(default=1, ge=0)
    log_level: Literal["debug", "info", "warn", "error"] = "info"
