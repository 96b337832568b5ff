"""`caresignal`: the operator's entry point. Settings are built here and passed down."""

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from schemas.events import SHORT_NAMES
from services.broker.settings import KafkaSettings


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is less than 1")
    return value


def _kafka_settings() -> KafkaSettings:
    from pydantic import ValidationError

    try:
        return KafkaSettings()
    except ValidationError as exc:
        # Each problem with the variable it is about; never the value (it may be a password).
        problems = [
            ": ".join([*(str(part) for part in e["loc"]), e["msg"].removeprefix("Value error, ")])
            for e in exc.errors(include_input=False)
        ]
        raise SystemExit("error: " + "; ".join(problems)) from None


def cmd_kafka(args: argparse.Namespace) -> int:
    from services.broker.local import BrokerError, LocalBroker, broker_answers

    kafka = _kafka_settings()
    if kafka.external:
        from services.broker.connection_check import connection_problem

        problem = connection_problem(kafka.bootstrap_servers, kafka.security)
        answering = problem is None and broker_answers(kafka.bootstrap_servers, security=kafka.security)
        print(
            f"KAFKA_BOOTSTRAP_SERVERS is set: using {kafka.bootstrap_servers} as {kafka.security.describe()} "
            f"({'answering' if answering else 'NOT answering'}); nothing started or stopped here"
        )
        if problem is not None:
            print(f"error: {problem}", file=sys.stderr)
        return 0 if answering or args.action == "stop" else 1
    broker = LocalBroker(kafka.kafka_home, kafka.kafka_port, kafka.kafka_controller_port, kafka.kafka_heap)
    try:
        if args.action == "start":
            status = broker.start()
            print(f"kafka running on {broker.bootstrap_servers} (pid {status.pid}); log: {broker.log_file}")
        elif args.action == "stop":
            print("kafka stopped" if broker.stop() else "kafka was not running (no broker started from here)")
        else:
            status = broker.status()
            if not status.running:
                print("kafka not running")
                return 3
            print(
                f"kafka running (pid {status.pid}) on {broker.bootstrap_servers}; "
                f"{'answering' if status.answering else 'NOT answering'}"
            )
            return 0 if status.answering else 1
    except BrokerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


def cmd_topics(args: argparse.Namespace) -> int:
    from kafka.errors import KafkaError

    from services.broker.topics import create_topics

    kafka = _kafka_settings()
    try:
        result = create_topics(kafka.bootstrap_servers, kafka.topics, kafka.topic_replication, security=kafka.security)
    except KafkaError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for name in result.created:
        print(f"created {name}")
    for name in result.existing:
        print(f"exists  {name}")
    return 0


def cmd_ingest(args: argparse.Namespace) -> int:
    from services.apikeys import ApiKeyFileError
    from services.ingest.app import serve
    from services.ingest.settings import IngestSettings

    try:
        serve(IngestSettings(), _kafka_settings())
    except ApiKeyFileError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


def cmd_apikey(args: argparse.Namespace) -> int:
    from services.alerts.auth import AlertKeyEntry, append_alert_key
    from services.alerts.settings import AlertsSettings
    from services.apikeys import ApiKeyFileError, hash_key, new_key
    from services.ingest.auth import ApiKeyEntry, append_key
    from services.ingest.settings import IngestSettings

    alerts = args.service == "alerts"
    path: Path = args.file or (AlertsSettings().api_keys_file if alerts else IngestSettings().api_keys_file)
    if args.write_key_to and args.write_key_to.exists():
        print(f"{args.write_key_to} exists; keeping the key in it")
        return 0
    key = new_key()
    try:
        if alerts:
            alert_entry = AlertKeyEntry(
                name=args.name, sha256=hash_key(key), authority=args.authority, operator=args.operator
            )
            append_alert_key(path, alert_entry)
        else:
            if not args.source:
                raise ValueError("an ingest key needs --source")
            types = sorted(SHORT_NAMES) if args.all_types else [t for t in (args.types or "").split(",") if t]
            entry = ApiKeyEntry(
                name=args.name,
                sha256=hash_key(key),
                source=args.source,
                source_name=args.source_name,
                event_types=types,
                directory=args.directory,
                backfill=args.backfill,
            )
            append_key(path, entry)
    except (ApiKeyFileError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.write_key_to:
        args.write_key_to.parent.mkdir(parents=True, exist_ok=True)
        args.write_key_to.write_text(key + "\n")
        args.write_key_to.chmod(0o600)
        print(f"key {args.name!r} added to {path}; the key itself is in {args.write_key_to}")
    else:
        print(f"key {args.name!r} added to {path} (only its SHA-256 is stored). The key, shown once:\n{key}")
    return 0


def cmd_alerts(args: argparse.Namespace) -> int:
    from services.alerts.app import serve
    from services.alerts.contacts import ContactsError, load_contacts
    from services.alerts.settings import AlertsSettings
    from services.apikeys import ApiKeyFileError

    settings = AlertsSettings()
    try:
        # Refuse to start on a broken contact file; later broken edits keep the last good one.
        load_contacts(settings.contacts_file)
        serve(settings, _kafka_settings())
    except (ApiKeyFileError, ContactsError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


def cmd_directory(args: argparse.Namespace) -> int:
    from services.ingest.directory_import import DirectoryImportError, publish, read_records

    try:
        kind, records, problems = read_records(args.file, args.kind)
    except (DirectoryImportError, OSError, UnicodeDecodeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if problems:
        for problem in problems:
            print(f"{args.file}: {problem}", file=sys.stderr)
        print(f"error: {len(problems)} problem(s); nothing was imported", file=sys.stderr)
        return 2
    kafka = _kafka_settings()
    count = publish(records, kind, kafka.bootstrap_servers, kafka.topics, security=kafka.security)
    print(f"imported {count} {kind}")
    return 0


def cmd_simulate(args: argparse.Namespace) -> int:
    from services.simulator.cli import run_simulate

    return run_simulate(args, _kafka_settings)


def cmd_evaluate(args: argparse.Namespace) -> int:
    from services.evaluation.command import run_evaluate

    return run_evaluate(args)


def cmd_schemas(args: argparse.Namespace) -> int:
    from schemas.jsonschema import drift, write

    if args.check:
        stale = drift()
        for name in stale:
            print(f"out of date: schemas/json/{name}", file=sys.stderr)
        return 1 if stale else 0
    for name in write():
        print(f"wrote schemas/json/{name}")
    return 0


def cmd_scorer(args: argparse.Namespace) -> int:
    from services.scoring.policy import PolicyError, load_policy
    from services.scoring.replay import ReplayError, history_end_offsets, reset_derived_state
    from services.scoring.settings import ScoringSettings
    from services.scoring.worker import run

    settings = ScoringSettings()
    kafka = _kafka_settings()
    try:
        policy = load_policy(settings.policy_file)
    except PolicyError as exc:
        print(f"error: the policy is invalid, the scorer did not start:\n{exc}", file=sys.stderr)
        return 2
    from services.broker.connection_check import KafkaConnectionFailed, require_connection

    try:
        # aiokafka would log a refused login and go on retrying: stop here and say why.
        require_connection(kafka.bootstrap_servers, kafka.security)
    except KafkaConnectionFailed as exc:
        print(f"error: {exc}; the scorer did not start", file=sys.stderr)
        return 1
    if args.replay:
        from services.evaluation.replay import Replay
        from services.scoring.rebuild import Rebuild, RebuildError

        try:
            for item in reset_derived_state(settings, kafka):
                print(f"replay: removed {item}")
            history = history_end_offsets(kafka)
            print(f"replay: scoring the event topic's history ({sum(history.values()):,} records)", flush=True)
            rebuild = Rebuild(settings, kafka, policy, lambda locations: Replay(locations, policy, signal_hours=None))
            print(f"replay: {rebuild.run(history, processes=args.replay_processes).summary()}", flush=True)
        except (ReplayError, RebuildError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
    sys.argv = [sys.argv[0], "worker"]  # faust's Worker reads its own command line
    run(settings, kafka, policy)
    return 0


def cmd_policy(args: argparse.Namespace) -> int:
    from services.scoring.policy import PolicyError, load_policy

    if args.action == "check":
        try:
            policy = load_policy(args.target)
        except PolicyError as exc:
            print(str(exc), file=sys.stderr)
            return 2
        rules = len(policy.triggers) + len(policy.patterns) + len(policy.rises) + len(policy.peers)
        print(f"{args.target}: valid, version {policy.version}, {rules} rules")
        return 0
    return explain(str(args.target), args.url)


def cmd_policy_compare(args: argparse.Namespace) -> int:
    from services.evaluation.compare_command import run_compare

    return run_compare(args, _kafka_settings)


def explain(location_id: str, url: str | None) -> int:
    import httpx

    from services.scoring.settings import ScoringSettings

    settings = ScoringSettings()
    base = url or f"http://{settings.web_host}:{settings.web_port}"
    try:
        response = httpx.get(f"{base}/v1/locations/{location_id}/risk", timeout=10, follow_redirects=True)
    except httpx.HTTPError as exc:
        print(f"error: cannot reach the scorer at {base}: {exc}", file=sys.stderr)
        return 1
    if response.status_code == 404:
        print(f"{location_id}: no events scored")
        return 3
    if response.status_code == 503:
        retry = response.headers.get("Retry-After", "a few")
        print(f"error: the scorer cannot answer yet ({response.text}); retry in {retry} s", file=sys.stderr)
        return 1
    response.raise_for_status()
    from services.scoring.explain import explain_lines

    print("\n".join(explain_lines(response.json())))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="caresignal", description="CareSignal operator commands")
    sub = parser.add_subparsers(dest="command", required=True)

    kafka = sub.add_parser("kafka", help="the local single-node Kafka broker")
    kafka.add_argument("action", choices=["start", "stop", "status"])
    kafka.set_defaults(func=cmd_kafka)

    topics = sub.add_parser("topics", help="provision Kafka topics")
    topics.add_argument("action", choices=["create"])
    topics.set_defaults(func=cmd_topics)

    ingest = sub.add_parser("ingest", help="run the ingest HTTP service")
    ingest.set_defaults(func=cmd_ingest)

    apikey = sub.add_parser("apikey", help="manage API keys (ingest and alerts)")
    apikey_sub = apikey.add_subparsers(dest="action", required=True)
    create = apikey_sub.add_parser("create", help="create a key bound to a source and event types")
    create.add_argument("--name", required=True)
    create.add_argument(
        "--for", dest="service", choices=["ingest", "alerts"], default="ingest", help="which service (default ingest)"
    )
    create.add_argument("--source", help="ingest: the CloudEvents source this key may send as")
    create.add_argument(
        "--source-name", help="ingest: what people call the source (shown on the risk board and in alert emails)"
    )
    create.add_argument("--types", help=f"comma-separated event types: {', '.join(sorted(SHORT_NAMES))}")
    create.add_argument("--all-types", action="store_true")
    create.add_argument("--directory", action="store_true", help="may write locations, placements, authorities")
    create.add_argument(
        "--backfill", action="store_true", help="ingest: may send events older than the age limit (loading history)"
    )
    create.add_argument("--authority", help="alerts: the ONS code of the authority whose alerts this key reads")
    create.add_argument("--operator", action="store_true", help="alerts: an operator key (sees every alert)")
    create.add_argument(
        "--file",
        type=Path,
        help="key file (default: CARESIGNAL_INGEST_API_KEYS_FILE or CARESIGNAL_ALERTS_API_KEYS_FILE)",
    )
    create.add_argument(
        "--write-key-to", type=Path, help="write the clear key to this file instead of printing it; no-op if it exists"
    )
    create.set_defaults(func=cmd_apikey)

    directory = sub.add_parser("directory", help="directory reference data")
    directory_sub = directory.add_subparsers(dest="action", required=True)
    imp = directory_sub.add_parser("import", help="bulk-load locations, placements or authorities from CSV")
    imp.add_argument("file", type=Path)
    imp.add_argument("--kind", choices=["locations", "placements", "authorities"])
    imp.set_defaults(func=cmd_directory)
    from services.ingest.import_cli import add_importers

    add_importers(directory_sub, _kafka_settings)

    scorer = sub.add_parser("scorer", help="run the scoring worker (Faust)")
    scorer.add_argument("--replay", action="store_true", help="forget derived state and rebuild from the first event")
    scorer.add_argument(
        "--replay-processes",
        type=_positive_int,
        default=1,
        help="processes sharing the replay's partitions (each sees its own partitions' peer sums only); default 1",
    )
    scorer.set_defaults(func=cmd_scorer)

    alerts = sub.add_parser("alerts", help="run the alert service (API, consumer, delivery, reminders)")
    alerts.set_defaults(func=cmd_alerts)

    policy = sub.add_parser("policy", help="the safeguarding policy")
    policy_sub = policy.add_subparsers(dest="action", required=True)
    check = policy_sub.add_parser("check", help="validate a policy file")
    check.add_argument("target", type=Path, metavar="FILE")
    check.set_defaults(func=cmd_policy)
    explain_cmd = policy_sub.add_parser("explain", help="a location's current level with its reasons")
    explain_cmd.add_argument("target", metavar="LOCATION_ID")
    explain_cmd.add_argument("--url", help="the scorer's web address (default from CARESIGNAL_SCORING_WEB_*)")
    explain_cmd.set_defaults(func=cmd_policy)
    compare = policy_sub.add_parser("compare", help="replay history under two policies: where would levels differ?")
    from services.evaluation.compare_command import add_arguments as add_compare_arguments

    add_compare_arguments(compare)
    compare.set_defaults(func=cmd_policy_compare)

    simulate = sub.add_parser("simulate", help="a synthetic population, its events and the ground truth")
    from services.simulator.cli import add_arguments as add_simulate_arguments

    add_simulate_arguments(simulate)
    simulate.set_defaults(func=cmd_simulate)

    evaluate = sub.add_parser("evaluate", help="detection quality: the policy and a baseline against simulated truth")
    from services.evaluation.command import add_arguments as add_evaluate_arguments

    add_evaluate_arguments(evaluate)
    evaluate.set_defaults(func=cmd_evaluate)

    schemas = sub.add_parser("schemas", help="JSON Schema files for non-Python producers")
    schemas.add_argument("action", choices=["export"])
    schemas.add_argument("--check", action="store_true", help="fail if schemas/json is out of date")
    schemas.set_defaults(func=cmd_schemas)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code: int = args.func(args)
    except Exception as exc:
        # Imported here: most commands never touch Kafka and should not pay for its client.
        from services.broker.connection_check import KafkaConnectionFailed

        if isinstance(exc, KafkaConnectionFailed):  # e.g. an importer given a wrong password
            print(f"error: {exc}", file=sys.stderr)
            return 1
        raise
    return code


if __name__ == "__main__":
    sys.exit(main())
