"""`caresignal policy compare OLD.yaml NEW.yaml`: the retained history replayed under two
policies, and where their levels would differ. Arguments and the shell."""

import argparse
import json
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from services.broker.settings import KafkaSettings


def _aware(text: str) -> datetime:
    try:
        at = datetime.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"--until takes an ISO date or time, not {text!r}") from exc
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("old", type=Path, metavar="OLD.yaml", help="the policy in use")
    parser.add_argument("new", type=Path, metavar="NEW.yaml", help="the policy considered")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--events", type=Path, metavar="FILE", help="an NDJSON file of CloudEvents (`caresignal simulate --to file`)"
    )
    source.add_argument(
        "--from-kafka",
        action="store_true",
        help="the event and locations topics, from the beginning to their current end",
    )
    parser.add_argument(
        "--directory",
        type=Path,
        help="--events: the directory's locations.csv or its folder (default: locations.csv next to FILE)",
    )
    parser.add_argument(
        "--until",
        type=_aware,
        help="let the clock run on to this time after the last event (default: the last event's time)",
    )
    parser.add_argument("--json", action="store_true", help="machine output on stdout instead of the table")
    parser.add_argument("--out", type=Path, help="also write the comparison as markdown to this file")
    parser.add_argument("--limit", type=int, default=50, help="rows of the table on stdout (default 50; 0 for all)")


def run_compare(args: argparse.Namespace, kafka_settings: Callable[[], KafkaSettings]) -> int:
    from services.evaluation.compare_report import Context, Side, as_json, markdown, text
    from services.evaluation.history import HistoryError, from_file, from_kafka
    from services.evaluation.what_if import what_if
    from services.scoring.policy import PolicyError, load_policy

    if args.limit < 0:
        print("error: --limit must be 0 (all rows) or more", file=sys.stderr)
        return 2
    if args.directory is not None and args.events is None:
        print("error: --directory goes with --events (Kafka has the locations topic)", file=sys.stderr)
        return 2
    try:
        old = load_policy(args.old)
        new = load_policy(args.new)
    except PolicyError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        history = from_kafka(kafka_settings()) if args.from_kafka else from_file(args.events, args.directory)
        result = what_if(history.locations, history.events, old, new, until=args.until)
    except HistoryError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    ctx = Context(
        old=Side(str(args.old), old.version),
        new=Side(str(args.new), new.version),
        source=history.source,
        events=result.events,
        skipped=dict(history.skipped),
    )
    if args.json:
        print(json.dumps(as_json(ctx, result.comparison), indent=1))
    else:
        sys.stdout.write(text(ctx, result.comparison, limit=args.limit or None))
    if args.out is not None:
        try:
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(markdown(ctx, result.comparison))
        except OSError as exc:
            print(f"error: cannot write {args.out}: {exc.strerror}", file=sys.stderr)
            return 1
    return 0
