"""`caresignal simulate`: arguments and the shell that builds the sink and runs."""

import argparse
import sys
import time
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path

from services.broker.settings import KafkaSettings
from services.simulator.variants import VARIANTS


def start_date(text: str) -> date:
    """`--start`: an ISO date, or `today` (UTC)."""
    if text == "today":
        return datetime.now(UTC).date()
    return date.fromisoformat(text)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seed", type=int, default=1, help="same seed, same world and same events (default 1)")
    parser.add_argument("--scale", choices=["region", "national"], default="region", help="default sizes (region)")
    parser.add_argument("--locations", type=int, help="number of locations (region 150, national 25,000)")
    parser.add_argument("--authorities", type=int, help="number of local authorities (region 3, national 153)")
    parser.add_argument("--days", type=int, default=365, help="length of the run in days (default 365)")
    parser.add_argument(
        "--variant",
        choices=list(VARIANTS),
        default="standard",
        help="the world's preset: how much services differ, how far failures rise (docs/simulator.md)",
    )
    parser.add_argument(
        "--start", type=start_date, default=date(2025, 1, 1), help="first day: a date or 'today' (2025-01-01)"
    )
    parser.add_argument("--to", choices=["file", "kafka", "ingest"], default="file", help="where events go (file)")
    parser.add_argument(
        "--out", type=Path, default=Path("events.ndjson"), help="--to file: NDJSON of CloudEvents ('-': stdout)"
    )
    parser.add_argument("--truth", type=Path, default=Path("truth.json"), help="the ground truth file (truth.json)")
    parser.add_argument(
        "--directory", type=Path, help="write authorities.csv, locations.csv, placements.csv and sources.csv here"
    )
    parser.add_argument(
        "--no-directory-publish", action="store_true", help="--to kafka|ingest: do not publish the directory records"
    )
    parser.add_argument("--ingest-url", default=None, help="--to ingest: base URL (default from CARESIGNAL_INGEST_*)")
    parser.add_argument(
        "--api-key-file", type=Path, help="--to ingest: TOML with [sources] mapping each source to its key"
    )
    parser.add_argument("--sources", action="store_true", help="list the sources the run uses, and exit")
    parser.add_argument(
        "--speed",
        type=float,
        help="stream at this pace: simulated seconds per wall second (e.g. 34560, a day every 2.5 s); "
        "an event goes out when wall time reaches its scaled time",
    )
    parser.add_argument(
        "--wall-start",
        type=float,
        help="--speed: the wall time (Unix seconds) at which the simulated start is reached (default: now); "
        "resuming a stream with the first run's value sends what is already due at once",
    )
    parser.add_argument(
        "--history-days",
        type=int,
        default=0,
        help="--speed: the first N days are history, sent at once and marked backfill (what an authority "
        "loads when it starts: the scorer judges each service against its past; nobody is alerted of it), "
        "then the pace counts from the end of the history (0)",
    )
    parser.add_argument(
        "--write-contacts",
        type=Path,
        help="write an alerts contact file giving each simulated authority an email address, list the "
        "local authorities (ONS code, name), and exit",
    )
    parser.add_argument("--progress", action="store_true", help="show progress even when stderr is not a terminal")


def run_simulate(args: argparse.Namespace, kafka_settings: Callable[[], KafkaSettings]) -> int:
    from services.simulator.config import SimulationConfig
    from services.simulator.generator import all_sources
    from services.simulator.pacing import Pace, PacedSink
    from services.simulator.run import build_world, simulate
    from services.simulator.sinks import EventSink, FileSink, IngestSink, KafkaSink, Progress, SinkError, read_api_keys

    try:
        config = SimulationConfig(
            seed=args.seed,
            scale=args.scale,
            locations=args.locations,
            authorities=args.authorities,
            days=args.days,
            start=args.start,
            variant=args.variant,
        )
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.write_contacts is not None:
        from services.simulator.demo_contacts import write_demo_contacts

        population, _ = build_world(config)
        try:
            for code, name in write_demo_contacts(population, args.write_contacts):
                print(f"{code} {name}")
        except OSError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        return 0
    if args.speed is not None and args.speed <= 0:
        print("error: --speed must be positive (simulated seconds per wall second)", file=sys.stderr)
        return 2
    if args.history_days and (args.speed is None or not 0 < args.history_days < config.days):
        print("error: --history-days needs --speed and must be between 1 and --days - 1", file=sys.stderr)
        return 2
    if args.speed is not None and args.to != "kafka":
        print("error: --speed streams to Kafka only (--to kafka): ingest refuses future events", file=sys.stderr)
        return 2
    if args.sources:
        population, _ = build_world(config)
        for source, types in sorted(all_sources(population).items()):
            print(f"{source} {','.join(sorted(types))}")
        return 0
    try:
        sink: EventSink
        if args.to == "kafka":
            kafka = kafka_settings()
            sink = kafka_sink = KafkaSink(kafka.bootstrap_servers, kafka.topics, security=kafka.security)
            if args.speed is not None:
                live_from = config.start_epoch + args.history_days * 86_400
                pace = Pace(live_from, args.wall_start or time.time(), args.speed)
                sink = PacedSink(kafka_sink, pace, flush=kafka_sink.flush, history=args.history_days > 0)
        elif args.to == "ingest":
            from services.ingest.settings import IngestSettings

            if args.api_key_file is None:
                print("error: --to ingest needs --api-key-file (see docs/simulator.md)", file=sys.stderr)
                return 2
            keys, directory_key = read_api_keys(args.api_key_file)
            ingest = IngestSettings()
            sink = IngestSink(args.ingest_url or f"http://{ingest.host}:{ingest.port}", keys, directory_key)
        else:
            sink = FileSink(args.out)
        progress = Progress() if (args.progress or sys.stderr.isatty()) else None
        result = simulate(
            config,
            sink,
            truth_path=args.truth,
            directory_dir=args.directory,
            publish_directory=args.to != "file" and not args.no_directory_publish,
            progress=progress,
        )
    except (SinkError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    truth = result.truth
    per_location = result.events / len(result.population.sites) * 365 / config.days
    print(
        f"{result.events:,} events ({result.duplicates:,} resent duplicates) from {len(result.population.sites):,} "
        f"locations over {config.days} days ({config.variant} world): {per_location:.0f} per location-year; "
        f"{len(truth['trajectories'])} "
        f"trajectories, {len(truth['severe_events'])} severe events planted; {result.seconds:.1f} s. "
        f"Truth: {args.truth}",
        file=sys.stderr,
    )
    return 0
