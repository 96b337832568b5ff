"""The `caresignal directory import-*` commands for the regulator's and authorities' files:
arguments, and the thin shell around the pure mapping modules (read, report, publish)."""

import argparse
import sys
from collections.abc import Callable, Sequence
from datetime import timedelta
from functools import partial
from pathlib import Path

from services.broker.settings import KafkaSettings
from services.ingest.authority_names import ONS_LIST, AuthorityListError, AuthorityNames, load_authority_names
from services.ingest.directory_import import DirectoryImportError, RowProblem, publish
from services.ingest.spreadsheet import SpreadsheetError

KafkaFactory = Callable[[], KafkaSettings]
READ_ERRORS = (DirectoryImportError, SpreadsheetError, AuthorityListError, OSError, UnicodeDecodeError)


def _fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 2


def _problems(path: Path, problems: Sequence[RowProblem]) -> bool:
    for problem in problems:
        print(f"{path}: {problem}", file=sys.stderr)
    if problems:
        print(f"error: {len(problems)} problem(s); nothing was imported", file=sys.stderr)
    return bool(problems)


def _authorities(args: argparse.Namespace) -> AuthorityNames:
    custom: Path | None = args.authority_codes
    # A release file passed in is ONS's own spelling: the project's aliases still apply.
    names = load_authority_names(custom or ONS_LIST)
    if custom is not None:
        _report_codes(custom, names)
    return names


def _report_codes(path: Path, names: AuthorityNames) -> None:
    """What an ONS file gave, and which of England's authorities it lacks: never a silent drop."""
    skipped = "".join(f", {n} row(s) {why} left out" for why, n in sorted(names.skipped.items()))
    print(f"{path}: {len(names.names)} authorities from columns {', '.join(names.columns)}{skipped}", file=sys.stderr)
    shipped = load_authority_names()
    missing = names.missing_from(shipped)
    if missing:
        shown = ", ".join(f"{name} ({code})" for code, name in sorted(missing.items())[:5])
        more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        print(
            f"warning: {path} lacks {len(missing)} of the {len(shipped.names)} authorities of {ONS_LIST.name} "
            f"({shown}{more}): names of those will not map",
            file=sys.stderr,
        )


def cmd_import_cqc(args: argparse.Namespace, kafka: KafkaFactory) -> int:
    from services.ingest.cqc_directory import read_directory

    if args.default_capacity is not None and args.default_capacity < 1:
        return _fail("--default-capacity must be 1 or more")
    try:
        result = read_directory(args.file, _authorities(args), args.default_capacity or 1, keep_names=not args.no_names)
    except READ_ERRORS as exc:
        return _fail(str(exc))
    for unmapped in result.unmapped:
        print(f"{args.file}: {unmapped}", file=sys.stderr)
    if _problems(args.file, result.problems):
        return 2
    if args.strict and result.unmapped:
        return _fail(f"{len(result.unmapped)} local authority name(s) not mapped (--strict); nothing was imported")
    if result.default_capacity_used and args.default_capacity is None:
        print(
            f"warning: {result.default_capacity_used} location(s) have no beds in the file (care at home, or a "
            f"care home listed without beds): capacity 1 each; pass --default-capacity N, or PUT real numbers "
            f"(see docs/importers.md)",
            file=sys.stderr,
        )
    print(f"{args.file}: {result.summary()}")
    if result.unmapped and not result.locations:
        # Not a success: most likely the code list does not fit the file (see the lines above).
        return _fail(f"no location's local authority mapped ({len(result.unmapped)} unmapped); nothing was imported")
    if args.dry_run:
        print("dry run: nothing published")
        return 0
    settings = kafka()
    count = publish(
        list(result.locations), "locations", settings.bootstrap_servers, settings.topics, security=settings.security
    )
    print(f"imported {count} locations")
    return 0


def cmd_import_cqc_ratings(args: argparse.Namespace, kafka: KafkaFactory) -> int:
    from services.ingest.cqc_ratings import rating_records, read_ratings, send_records
    from services.ingest.settings import IngestSettings

    try:
        result = read_ratings(args.file)
    except READ_ERRORS as exc:
        return _fail(str(exc))
    if _problems(args.file, result.problems):
        return 2
    settings = kafka()
    max_age = timedelta(days=IngestSettings().max_event_age_days)
    records = rating_records(result.events, settings.topics, max_age)
    backfill = sum(1 for r in records if len(r.headers) > 1)
    print(f"{args.file}: {result.summary(backfill)}")
    if args.dry_run:
        print("dry run: nothing published")
        return 0
    print(f"imported {send_records(records, settings.bootstrap_servers, security=settings.security)} cqc_rating events")
    return 0


def cmd_import_placements(args: argparse.Namespace, kafka: KafkaFactory) -> int:
    from services.ingest.placements_extract import read_extract

    try:
        authorities = _authorities(args)
        authority = None
        if args.authority is not None:
            authority = authorities.code_for(args.authority)
            if authority is None:
                return _fail(f"--authority {args.authority!r} is not an authority in the ONS code list")
        result = read_extract(args.file, authorities, authority)
    except READ_ERRORS as exc:
        return _fail(str(exc))
    if _problems(args.file, result.problems):
        return 2
    active = sum(1 for p in result.placements if p.status == "active")
    print(f"{args.file}: {len(result.placements)} placements ({active} active)")
    if args.dry_run:
        print("dry run: nothing published")
        return 0
    settings = kafka()
    count = publish(
        list(result.placements), "placements", settings.bootstrap_servers, settings.topics, security=settings.security
    )
    print(f"imported {count} placements")
    return 0


def cmd_import_authorities(args: argparse.Namespace, kafka: KafkaFactory) -> int:
    from pydantic import ValidationError

    from schemas.directory import Authority

    try:
        names = _authorities(args).names
        records = [Authority(ons_code=code, name=name) for code, name in sorted(names.items())]
    except (*READ_ERRORS, ValidationError) as exc:
        return _fail(str(exc))
    print(f"{args.authority_codes or ONS_LIST}: {len(records)} authorities")
    if args.dry_run:
        print("dry run: nothing published")
        return 0
    settings = kafka()
    count = publish(
        list(records), "authorities", settings.bootstrap_servers, settings.topics, security=settings.security
    )
    print(f"imported {count} authorities")
    return 0


def add_importers(directory_sub: "argparse._SubParsersAction[argparse.ArgumentParser]", kafka: KafkaFactory) -> None:
    codes_help = (
        f"the ONS code list to map authority names with (default {ONS_LIST.name}); an ONS release CSV works: "
        f"names and codes, or a district lookup, whose upper-tier columns are used"
    )

    cqc = directory_sub.add_parser(
        "import-cqc", help="locations from CQC's care directory (HSCA_Active_Locations, .ods, .xlsx or CSV)"
    )
    cqc.add_argument("file", type=Path)
    cqc.add_argument(
        "--default-capacity",
        type=int,
        help="capacity of locations without beds (home care, supported living...); default 1, with a warning",
    )
    cqc.add_argument("--strict", action="store_true", help="fail if any local authority name does not map")
    cqc.add_argument(
        "--no-names", action="store_true", help="do not keep location or provider names (public register data)"
    )
    cqc.add_argument("--authority-codes", type=Path, help=codes_help)
    cqc.add_argument("--dry-run", action="store_true", help="read, map and report; publish nothing")
    cqc.set_defaults(func=partial(cmd_import_cqc, kafka=kafka))

    ratings = directory_sub.add_parser(
        "import-cqc-ratings", help="cqc_rating events from CQC's latest ratings file (.ods, .xlsx or CSV)"
    )
    ratings.add_argument("file", type=Path)
    ratings.add_argument("--dry-run", action="store_true", help="read, map and report; publish nothing")
    ratings.set_defaults(func=partial(cmd_import_cqc_ratings, kafka=kafka))

    placements = directory_sub.add_parser(
        "import-placements", help="placements from an authority's aggregated extract (CSV or .ods)"
    )
    placements.add_argument("file", type=Path)
    placements.add_argument(
        "--authority", help="the placing authority (ONS code or name), when the extract has no authority column"
    )
    placements.add_argument("--authority-codes", type=Path, help=codes_help)
    placements.add_argument("--dry-run", action="store_true", help="read, map and report; publish nothing")
    placements.set_defaults(func=partial(cmd_import_placements, kafka=kafka))

    authorities = directory_sub.add_parser(
        "import-authorities", help="every authority of the ONS code list, with its ONS name (alerts name them)"
    )
    authorities.add_argument("--authority-codes", type=Path, help=codes_help)
    authorities.add_argument("--dry-run", action="store_true", help="read and report; publish nothing")
    authorities.set_defaults(func=partial(cmd_import_authorities, kafka=kafka))
