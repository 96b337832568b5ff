"""Sampling the running pipeline every second: queue depths from /metrics, RSS from /proc,
and the webhooks the receiver got (taken from it as they come, so it holds few)."""

import asyncio
import contextlib
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx

SAMPLE_S = 1.0


@dataclass(frozen=True)
class Urls:
    scorer: str
    alerts: str
    receiver: str


@dataclass
class Sample:
    at: float
    scorer_lag: float
    alerts_lag: float
    outbox: float
    changes: float  # level changes the scorer published so far
    webhooks: int  # webhooks received so far
    rss_mb: dict[str, float]
    cpu_s: dict[str, float]  # user + system CPU time so far, per process
    machine: tuple[int, int]  # the whole machine's busy and total CPU time so far (jiffies)
    locations: int  # distinct locations events were sent for so far


def metric(text: str, prefix: str) -> float:
    """The sum of every sample whose line starts with `prefix` (NaN: none)."""
    values = [float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(prefix)]
    return sum(values) if values else math.nan


def rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return math.nan


def cpu_s(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return math.nan
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_cpu() -> tuple[int, int]:
    """Busy and total jiffies of every core: what other work on the machine took shows here."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return sum(values) - idle, sum(values)


class Sampler:
    def __init__(self, urls: Urls, pids: Callable[[], dict[str, int]], locations: Callable[[], int]) -> None:
        self.urls = urls
        self.pids = pids
        self.locations = locations
        self.samples: list[Sample] = []
        self.webhooks: list[tuple[float, str, str, str]] = []
        self._stop = asyncio.Event()

    async def _scrape(self, client: httpx.AsyncClient, url: str) -> str:
        try:
            return (await client.get(f"{url}/metrics")).text
        except httpx.HTTPError:
            return ""

    async def sample(self, client: httpx.AsyncClient) -> Sample:
        u = self.urls
        scorer, alerts = await asyncio.gather(self._scrape(client, u.scorer), self._scrape(client, u.alerts))
        try:
            taken = (await client.post(f"{u.receiver}/_take")).json()
            self.webhooks.extend(tuple(r) for r in taken)
        except httpx.HTTPError:
            pass
        pids = {**self.pids(), "load generator": os.getpid()}
        sample = Sample(
            at=time.time(),
            scorer_lag=metric(scorer, 'caresignal_scoring_consumer_lag{topic="events"}'),
            alerts_lag=metric(alerts, 'caresignal_alerts_consumer_lag{topic="risk_changes"}'),
            outbox=metric(alerts, "caresignal_alerts_outbox_depth "),
            changes=metric(scorer, "caresignal_scoring_level_changes_total{"),
            webhooks=len(self.webhooks),
            rss_mb={name: rss_mb(pid) for name, pid in pids.items()},
            cpu_s={name: cpu_s(pid) for name, pid in pids.items()},
            machine=machine_cpu(),
            locations=self.locations(),
        )
        self.samples.append(sample)
        return sample

    async def run(self) -> None:
        async with httpx.AsyncClient(timeout=5) as client:
            while not self._stop.is_set():
                started = time.monotonic()
                await self.sample(client)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), SAMPLE_S - (time.monotonic() - started))

    async def drain(self, timeout_s: float) -> float:
        """Until every queue is empty twice in a row and no webhook arrives for 3 s; the time it took."""
        started = time.time()
        async with httpx.AsyncClient(timeout=5) as client:
            quiet = 0
            while time.time() - started < timeout_s:
                before = len(self.webhooks)
                s = await self.sample(client)
                empty = s.scorer_lag == 0 and s.alerts_lag == 0 and s.outbox == 0 and len(self.webhooks) == before
                quiet = quiet + 1 if empty else 0
                if quiet >= 3:
                    break
                await asyncio.sleep(SAMPLE_S)
        return time.time() - started

    def stop(self) -> None:
        self._stop.set()
