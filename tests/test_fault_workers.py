"""Scorer workers of one app (one consumer group) under a steady load through ingest:
one of two killed -9 at random points cycle after cycle, and one killed while the group
rebalances because a third worker joins or leaves. Against the oracle (the pure replay
of the events sent), no level change is lost, none is published under a second id, and
a change published again is the same change.

The policy has no peer rules (`tests/faults.py`): a location's changes then depend on
its partition's order only, whichever worker scores it."""

import random
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from kafka import KafkaAdminClient

from services.broker.settings import KafkaSettings
from services.ingest.app import create_app
from services.ingest.auth import ApiKeyRegistry
from services.ingest.settings import IngestSettings
from tests.fault_drivers import (
    FaultScorer,
    LogFollower,
    Paced,
    fault_workers,
    first_to_log,
    group_state,
    ingest_load,
    put_directory,
    wait_for_directory,
    wait_for_group_state,
)
from tests.faults import World, audit_scored_run, make_world, scale
from tests.service_process import start_together

pytestmark = pytest.mark.integration

RATE = 40.0  # events per second, in batches of 10
REBALANCING = ("PreparingRebalance", "CompletingRebalance")
REVOKING = "Revoking previously assigned partitions"


@pytest.fixture
def workers(test_kafka_settings: KafkaSettings, tmp_path: Path) -> Iterator[list[FaultScorer]]:
    made = fault_workers(tmp_path, test_kafka_settings.topic_prefix, 3)
    try:
        yield made
    finally:
        for worker in made:
            worker.stop()


@contextmanager
def world_under_load(
    seed: int, running: list[FaultScorer], settings: KafkaSettings, api_keys: ApiKeyRegistry
) -> Iterator[tuple[World, Paced]]:
    """The world's directory through ingest, the workers started together and holding
    it, then its events flowing through ingest until the caller is done."""
    world = make_world(seed=seed, locations=scale().locations, days=scale().days, per_location_day=0.3)
    with TestClient(create_app(IngestSettings(), settings, api_keys)) as ingest:
        put_directory(ingest, world)
        start_together(running)
        wait_for_directory(running[0].url, world.locations)
        load, _ = ingest_load(ingest, world.events, rate=RATE, batch=10)
        try:
            yield world, load
            time.sleep(1.0)  # the last restart's worker scores under load too
        finally:
            load.stop()


def test_two_scorers_one_killed_repeatedly_under_load_lose_and_duplicate_no_change(
    workers: list[FaultScorer], test_kafka_settings: KafkaSettings, api_keys: ApiKeyRegistry
) -> None:
    cycles = scale().scorer_kills
    rng = random.Random(cycles)
    pair = workers[:2]
    started = time.monotonic()
    restarts: list[float] = []
    with world_under_load(15, pair, test_kafka_settings, api_keys) as (world, load):
        for cycle in range(cycles):
            time.sleep(rng.uniform(0.5, 4.0))
            assert load.running, f"the world's events ran out before every kill (restarts took {restarts} s)"
            victim = pair[cycle % 2]
            victim.kill()
            killed = time.monotonic()
            victim.start()
            restarts.append(round(time.monotonic() - killed, 1))

    audit_scored_run(
        "two scorers, kill -9 one",
        cycles,
        world,
        load.sent,
        test_kafka_settings.bootstrap_servers,
        test_kafka_settings.topics.risk_changes,
        started,
        f"restarts {min(restarts)}-{max(restarts)} s",
    )


def in_thread(action: Callable[[], None]) -> Callable[[], None]:
    """Runs `action` in a thread; the returned join re-raises what it raised."""
    failures: list[BaseException] = []

    def run() -> None:
        try:
            action()
        except BaseException as exc:  # re-raised by join: a thread's exception is otherwise lost
            failures.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()

    def join() -> None:
        thread.join(timeout=200)
        assert not thread.is_alive(), "the worker's start or stop did not return in 200 s"
        if failures:
            raise failures[0]

    return join


@dataclass(frozen=True)
class RebalanceKill:
    move: str  # the third worker's: "join" or "leave"
    before: str  # the group's state once the move had started the rebalance
    after: str  # the group's state just after the kill
    stage: str  # how far the victim had gone in the rebalance (`victim_stage`)

    @property
    def inside(self) -> bool:
        """The kill fell inside the rebalance: the group was rebalancing before it and
        still after it, and the victim had not been given its part of the new assignment."""
        return self.before in REBALANCING and self.after in REBALANCING and self.stage not in ("joined", "synced")


# What a member logs as it goes through a rebalance (aiokafka), furthest first.
STAGES = (
    ("Successfully synced group", "synced"),
    ("Joined group", "joined"),
    ("(Re-)joining group", "rejoining"),
    (REVOKING, "revoking"),
    ("because it is rebalancing", "told"),
)


def victim_stage(lines: list[str]) -> str:
    """How far a member had gone in the rebalance, from its log since it began;
    "scoring": it had not heard of it yet (its next heartbeat would have told it)."""
    for text, stage in STAGES:
        if any(text in line for line in lines):
            return stage
    return "scoring"


def test_a_scorer_killed_while_the_group_rebalances_loses_and_duplicates_no_change(
    workers: list[FaultScorer], test_kafka_settings: KafkaSettings, api_keys: ApiKeyRegistry
) -> None:
    cycles = scale().rebalance_kills
    rng = random.Random(cycles)
    first, second, third = workers
    admin = KafkaAdminClient(bootstrap_servers=test_kafka_settings.bootstrap_servers)
    started = time.monotonic()
    kills: list[RebalanceKill] = []
    try:
        with world_under_load(16, [first, second], test_kafka_settings, api_keys) as (world, load):
            for cycle in range(cycles):
                time.sleep(rng.uniform(0.5, 3.0))
                assert load.running, "the world's events ran out before every kill"
                victim, survivor = (first, second) if cycle % 2 == 0 else (second, first)
                logs = [LogFollower(victim.log_path), LogFollower(survivor.log_path)]
                # The third worker joins, then leaves cleanly, in turn: its JoinGroup (or
                # LeaveGroup) starts a rebalance, and the group waits until both others
                # have rejoined. Each hears of it at its next heartbeat (every 2 s) and
                # first revokes its partitions (the commit that writes its states back).
                # The victim dies as soon as either does: in its own revocation if it is
                # first, else before it heard; either way before it rejoined.
                joining = cycle % 2 == 0
                move = in_thread(third.start if joining else third.stop)
                before = wait_for_group_state(admin, victim.app_id, REBALANCING, timeout_s=90)
                first_to_log(logs, REVOKING, timeout_s=30)
                victim.kill()
                after = group_state(admin, victim.app_id)
                kills.append(
                    RebalanceKill("join" if joining else "leave", before, after, victim_stage(logs[0].new_lines()))
                )
                victim.start()
                move()
    finally:
        admin.close()

    audit_scored_run(
        "two scorers, kill -9 in a rebalance",
        cycles,
        world,
        load.sent,
        test_kafka_settings.bootstrap_servers,
        test_kafka_settings.topics.risk_changes,
        started,
        "a third joining/leaving; at each kill the group (before, after) and the victim: "
        + "; ".join(f"{k.move} {k.before}/{k.after} {k.stage}" for k in kills),
    )
    assert all(k.inside for k in kills), kills
