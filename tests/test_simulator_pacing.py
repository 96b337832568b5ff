"""The demo's pacing of a simulated stream, and its contact file. Pure logic: fake clock."""

import argparse
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest

from services.alerts.contacts import load_contacts
from services.broker.settings import KafkaSettings
from services.simulator.cli import add_arguments, run_simulate
from services.simulator.config import SimulationConfig
from services.simulator.demo_contacts import write_demo_contacts
from services.simulator.pacing import Pace, PacedSink, event_epoch
from services.simulator.population import Population
from services.simulator.run import build_world

DAY = 86_400.0


class Recorder:
    def __init__(self, clock: "FakeClock") -> None:
        self.clock = clock
        self.sent: list[tuple[float, str]] = []
        self.history: list[tuple[float, str]] = []
        self.closed = False

    def send(self, event: dict[str, Any]) -> None:
        self.sent.append((self.clock.now, event["id"]))

    def send_history(self, event: dict[str, Any]) -> None:
        self.history.append((self.clock.now, event["id"]))

    def directory(self, population: Population) -> None:
        return None

    def close(self) -> None:
        self.closed = True


class FakeClock:
    def __init__(self, now: float) -> None:
        self.now = now

    def time(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds > 0
        self.now += seconds


def event(event_id: str, time: str) -> dict[str, Any]:
    return {"id": event_id, "time": time}


def test_events_go_out_when_wall_time_reaches_their_scaled_time() -> None:
    start = event_epoch(event("x", "2026-03-01T00:00:00Z"))
    clock = FakeClock(1_000.0)
    inner = Recorder(clock)
    flushes: list[float] = []
    # A simulated day every 2.5 wall seconds.
    sink = PacedSink(
        inner,
        Pace(start, 1_000.0, DAY / 2.5),
        flush=lambda: flushes.append(clock.now),
        clock=clock.time,
        sleep=clock.sleep,
    )
    sink.send(event("a", "2026-03-01T00:00:00Z"))
    sink.send(event("b", "2026-03-02T00:00:00Z"))
    sink.send(event("c", "2026-03-03T12:00:00Z"))
    # Reported late: arrives after c, goes out at once, does not move the clock back.
    sink.send(event("d", "2026-03-02T06:00:00Z"))
    sink.close()
    assert inner.sent == [(1_000.0, "a"), (1_002.5, "b"), (1_006.25, "c"), (1_006.25, "d")]
    assert flushes == [1_000.0, 1_002.5], "what is due is flushed before each wait"
    assert sink.waited_s == pytest.approx(6.25)
    assert inner.closed


def test_a_resumed_stream_sends_what_is_already_due_at_once() -> None:
    start = event_epoch(event("x", "2026-03-01T00:00:00Z"))
    clock = FakeClock(1_000.0 + 10.0)  # the first run began 10 s ago: 4 simulated days are due
    inner = Recorder(clock)
    sink = PacedSink(inner, Pace(start, 1_000.0, DAY / 2.5), clock=clock.time, sleep=clock.sleep)
    sink.send(event("a", "2026-03-02T00:00:00Z"))
    sink.send(event("b", "2026-03-04T00:00:00Z"))
    sink.send(event("c", "2026-03-06T00:00:00Z"))
    assert inner.sent == [(1_010.0, "a"), (1_010.0, "b"), (1_012.5, "c")]


def test_history_goes_out_at_once_as_history_then_the_pace_counts_from_its_end() -> None:
    live_from = event_epoch(event("x", "2026-03-10T00:00:00Z"))
    clock = FakeClock(1_000.0)
    inner = Recorder(clock)
    sink = PacedSink(inner, Pace(live_from, 1_000.0, DAY / 2.5), clock=clock.time, sleep=clock.sleep, history=True)
    sink.send(event("a", "2026-03-01T00:00:00Z"))
    sink.send(event("b", "2026-03-09T23:00:00Z"))
    sink.send(event("c", "2026-03-10T00:00:00Z"))
    # An old incident reported once the stream is live is news, not history.
    sink.send(event("d", "2026-03-05T00:00:00Z"))
    sink.send(event("e", "2026-03-11T00:00:00Z"))
    assert inner.history == [(1_000.0, "a"), (1_000.0, "b")]
    assert inner.sent == [(1_000.0, "c"), (1_000.0, "d"), (1_002.5, "e")]
    assert sink.history == 2


def test_without_history_nothing_is_marked_history() -> None:
    start = event_epoch(event("x", "2026-03-01T00:00:00Z"))
    clock = FakeClock(1_000.0)
    inner = Recorder(clock)
    sink = PacedSink(inner, Pace(start, 1_000.0, DAY / 2.5), clock=clock.time, sleep=clock.sleep)
    sink.send(event("a", "2026-02-28T00:00:00Z"))
    assert inner.history == [] and inner.sent == [(1_000.0, "a")]


def test_pace_refuses_a_speed_that_is_not_positive() -> None:
    with pytest.raises(ValueError, match="speed must be positive"):
        Pace(0.0, 0.0, 0)


def test_event_time_runs_ahead_of_wall_time() -> None:
    pace = Pace(sim_start=0.0, wall_start=0.0, speed=DAY / 2.5)
    assert pace.simulated_now(60.0) == 24 * DAY  # a minute of the demo: 24 simulated days


def test_the_demo_contact_file_tells_every_simulated_authority_and_validates(tmp_path: Path) -> None:
    population, _ = build_world(SimulationConfig(seed=1, start=date(2026, 1, 1)))
    path = tmp_path / "demo" / "contacts.yaml"
    local = write_demo_contacts(population, path)
    contacts = load_contacts(path)
    codes = {a.ons_code for a in population.authorities}
    assert contacts.authorities() == codes
    assert set(contacts.emails) == codes and all(len(e) == 1 for e in contacts.emails.values())
    assert {code for code, _ in local} == {a.ons_code for a in population.authorities if a.kind == "local_authority"}
    assert local and all(name for _, name in local)


def _simulate_args(*argv: str) -> "argparse.Namespace":
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(list(argv))


def _no_kafka() -> KafkaSettings:
    raise AssertionError("refused before any Kafka client is made")


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["--speed", "0", "--to", "kafka"], "--speed must be positive"),
        (["--speed", "34560"], "--speed streams to Kafka only"),
        (["--speed", "34560", "--to", "ingest"], "--speed streams to Kafka only"),
        (["--to", "kafka", "--history-days", "30"], "--history-days needs --speed"),
        (["--speed", "34560", "--to", "kafka", "--history-days", "365"], "--history-days needs --speed"),
        (["--speed", "34560", "--to", "kafka", "--history-days", "-1"], "--history-days needs --speed"),
    ],
)
def test_pacing_is_refused_where_it_cannot_work(
    argv: list[str], says: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    args = _simulate_args(*argv, "--out", str(tmp_path / "e.ndjson"), "--truth", str(tmp_path / "t.json"))
    assert run_simulate(args, _no_kafka) == 2
    assert says in capsys.readouterr().err
    assert not (tmp_path / "e.ndjson").exists()


def test_start_today_is_todays_date_in_utc() -> None:
    assert _simulate_args("--start", "today").start == datetime.now(UTC).date()
    assert _simulate_args("--start", "2026-03-01").start == date(2026, 3, 1)


def test_write_contacts_lists_the_local_authorities_and_exits(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    args = _simulate_args("--write-contacts", str(tmp_path / "contacts.yaml"), "--truth", str(tmp_path / "t.json"))
    assert run_simulate(args, _no_kafka) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3 and all(line.split()[0].startswith("E") for line in lines), lines
    assert load_contacts(tmp_path / "contacts.yaml").authorities() >= {line.split()[0] for line in lines}
    assert not (tmp_path / "t.json").exists(), "no run: nothing simulated"
