"""`caresignal evaluate`: arguments, scenarios, the cache of runs, and the report."""

import argparse
import shlex
import sys
import time
from pathlib import Path

from services.broker.settings import PROJECT_ROOT

DEFAULT_SEEDS = "101,102"
DEFAULT_DAYS = 365
# The full held-out run (`--full`): eight seeds, every variant, two years. Seeds 1-3 are
# the tuning seeds and are never among these.
FULL_SEEDS = "101,102,103,104,105,106,107,108"
FULL_DAYS = 730


def _seeds(text: str) -> list[int]:
    try:
        seeds = [int(part) for part in text.split(",") if part.strip()]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"--seeds takes integers separated by commas, not {text!r}") from exc
    if not seeds:
        raise argparse.ArgumentTypeError("--seeds needs at least one seed")
    return seeds


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seeds", type=_seeds, help=f"regional seeds ({DEFAULT_SEEDS}; --full: {FULL_SEEDS})")
    parser.add_argument(
        "--variants",
        default="all",
        help="world variants: 'all' (default) or names separated by commas (the simulator's presets)",
    )
    parser.add_argument("--locations", type=int, default=150, help="locations per regional scenario (150)")
    parser.add_argument("--days", type=int, help=f"days per regional scenario ({DEFAULT_DAYS}; --full: {FULL_DAYS})")
    parser.add_argument(
        "--full",
        action="store_true",
        help=f"the full held-out run: seeds {FULL_SEEDS}, every variant, {FULL_DAYS} days (unless given)",
    )
    parser.add_argument("--national", action="store_true", help="also run a national population (25,000 locations)")
    parser.add_argument(
        "--national-days", type=int, default=14, help="days of the national scenario (14: a year takes hours)"
    )
    parser.add_argument("--national-seed", type=int, default=101, help="seed of the national scenario (101)")
    parser.add_argument("--policy", type=Path, help="policy file (default: the scorer's default policy)")
    parser.add_argument("--out", type=Path, default=Path("docs/evaluation.md"), help="the report (docs/evaluation.md)")
    parser.add_argument("--img", type=Path, default=Path("docs/img"), help="folder for the plots (docs/img)")
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="processes: regional scenarios run side by side, the national one is split by partition (1)",
    )
    parser.add_argument("--warmup-days", type=float, default=90.0, help="days left out of ordinary-day figures (90)")
    parser.add_argument(
        "--cache",
        type=Path,
        default=PROJECT_ROOT / ".cache" / "evaluation",
        help="keep each run here, by scenario and policy digest, and reuse it (.cache/evaluation)",
    )
    parser.add_argument("--no-cache", action="store_true", help="replay every scenario again")
    parser.add_argument("--progress", action="store_true", help="report each scenario as it finishes, on stderr")


def _command(args: argparse.Namespace, variants: list[str]) -> str:
    """The command line that gives these results (the options that change them)."""
    parts = ["caresignal", "evaluate", "--variants", ",".join(variants), "--seeds", ",".join(map(str, args.seeds))]
    parts += ["--locations", str(args.locations), "--days", str(args.days)]
    if args.national:
        parts += ["--national", "--national-days", str(args.national_days), "--national-seed", str(args.national_seed)]
    if args.warmup_days != 90.0:
        parts += ["--warmup-days", f"{args.warmup_days:g}"]
    if args.workers > 1:
        parts += ["--workers", str(args.workers)]
    if args.policy:
        parts += ["--policy", str(args.policy)]
    return shlex.join(parts)


def _variants(text: str, known: list[str]) -> list[str]:
    if text == "all":
        return known
    chosen = [v.strip() for v in text.split(",") if v.strip()]
    unknown = [v for v in chosen if v not in known]
    if unknown or not chosen:
        raise ValueError(
            f"--variants: unknown {', '.join(unknown) or '(none given)'}; the simulator has {', '.join(known)}"
        )
    return chosen


def run_evaluate(args: argparse.Namespace) -> int:
    from services.evaluation.report import Context, generated, write_report
    from services.evaluation.results import variant_result
    from services.evaluation.scenarios import Scenario, ScenarioRun, run_scenario, run_scenarios, variant_names
    from services.evaluation.store import cache_path, code_digest, load_run, save_run
    from services.evaluation.sweep import pool, score_all
    from services.scoring.policy import DEFAULT_POLICY, PolicyError, load_policy

    started = time.monotonic()
    args.seeds = args.seeds or _seeds(FULL_SEEDS if args.full else DEFAULT_SEEDS)
    args.days = args.days or (FULL_DAYS if args.full else DEFAULT_DAYS)
    if args.locations < 1 or args.days < 1 or args.national_days < 1 or args.workers < 1:
        print("error: --locations, --days, --national-days and --workers must be at least 1", file=sys.stderr)
        return 2
    try:
        variants = _variants("all" if args.full else args.variants, variant_names())
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        policy = load_policy(args.policy or DEFAULT_POLICY)
    except PolicyError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    policy_json = policy.model_dump_json()
    code = code_digest()  # before the runs: the code they run

    def note(run: ScenarioRun) -> None:
        if args.progress:
            rate = run.events / run.replay_cpu_s if run.replay_cpu_s else 0.0
            print(
                f"{time.strftime('%H:%M:%S')} {run.scenario.name} {run.scenario.variant} seed {run.scenario.seed}: "
                f"{run.events:,} events, replay {run.replay_cpu_s:,.0f} s CPU ({rate:,.0f} events/s), "
                f"{run.wall_s:,.0f} s wall",
                file=sys.stderr,
            )

    def cached(scenario: Scenario) -> ScenarioRun | None:
        path = cache_path(args.cache, scenario, policy_json, code)
        if args.no_cache or not path.exists():
            return None
        run = load_run(path)
        note(run)
        return run

    def keep(run: ScenarioRun) -> None:
        if not args.no_cache:
            save_run(run, cache_path(args.cache, run.scenario, policy_json, code))
        note(run)

    regional = [Scenario("region", s, args.locations, args.days, variant=v) for v in variants for s in args.seeds]
    found = {s: cached(s) for s in regional}
    fresh = run_scenarios([s for s in regional if found[s] is None], policy, args.workers, keep)
    fresh_by = {r.scenario: r for r in fresh}
    runs = [found[s] or fresh_by[s] for s in regional]
    national: list[ScenarioRun] = []
    if args.national:
        scenario = Scenario("national", args.national_seed, None, args.national_days, "national")
        run = cached(scenario)
        if run is None:
            run = run_scenario(scenario, policy, workers=args.workers)
            keep(run)
        national.append(run)
    replayed = time.monotonic() - started
    scored = score_all(runs, args.warmup_days, args.workers)
    results = []
    for v in variants:
        mine = [s for r, s in zip(runs, scored, strict=True) if r.scenario.variant == v]
        results.append(variant_result(v, len(args.seeds), pool(mine)))
    if args.progress:
        took = time.monotonic() - started - replayed
        print(f"{time.strftime('%H:%M:%S')} every detector scored ({took:,.0f} s)", file=sys.stderr)
    wall = time.monotonic() - started
    reused = sum(run is not None for run in found.values())
    ctx = Context(_command(args, variants), policy.version, args.seeds, args.days, wall, args.warmup_days, reused)
    write_report(args.out, generated(results, runs, national, ctx, args.img, args.out))
    print(f"wrote {args.out} and plots in {args.img} ({time.monotonic() - started:,.0f} s)", file=sys.stderr)
    return 0
