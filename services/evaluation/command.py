"""`caresignal evaluate`: arguments, scenarios, the cache of runs, and the report."""

import argparse
import shlex
import sys
import time
from pathlib import Path

from services.broker.settings import PROJECT_ROOT

DEFAULT_SEEDS = "101,102,103,104,105"


def _seeds(text: str) -> list[int]:
    try:
        seeds = [int(part) for part in text.split(",") if part.strip()]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"--seeds takes integers separated by commas, not {text!r}") from exc
    if not seeds:
        raise argparse.ArgumentTypeError("--seeds needs at least one seed")
    return seeds


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seeds", type=_seeds, default=_seeds(DEFAULT_SEEDS), help=f"regional seeds ({DEFAULT_SEEDS})")
    parser.add_argument("--locations", type=int, default=150, help="locations per regional scenario (150)")
    parser.add_argument("--days", type=int, default=365, help="days per regional scenario (365)")
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


def _command(args: argparse.Namespace) -> str:
    """The command line that gives these results (the options that change them)."""
    parts = ["caresignal", "evaluate", "--seeds", ",".join(map(str, args.seeds))]
    parts += ["--locations", str(args.locations), "--days", str(args.days)]
    if args.national:
        parts += ["--national", "--national-days", str(args.national_days), "--national-seed", str(args.national_seed)]
    if args.workers > 1:
        parts += ["--workers", str(args.workers)]
    if args.policy:
        parts += ["--policy", str(args.policy)]
    return shlex.join(parts)


def run_evaluate(args: argparse.Namespace) -> int:
    from services.evaluation.report import generated, write_report
    from services.evaluation.scenarios import Scenario, ScenarioRun, baseline_changes, run_scenario, run_scenarios
    from services.evaluation.store import cache_path, code_digest, load_run, save_run
    from services.scoring.policy import DEFAULT_POLICY, PolicyError, load_policy

    if args.locations < 1 or args.days < 1 or args.national_days < 1 or args.workers < 1:
        print("error: --locations, --days, --national-days and --workers must be at least 1", file=sys.stderr)
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
                f"{time.strftime('%H:%M:%S')} {run.scenario.name} seed {run.scenario.seed}: {run.events:,} events, "
                f"replay {run.replay_cpu_s:,.0f} s CPU ({rate:,.0f} events/s), {run.wall_s:,.0f} s wall",
                file=sys.stderr,
            )

    def cached(scenario: Scenario) -> ScenarioRun | None:
        path = cache_path(args.cache, scenario, policy_json, code)
        if args.no_cache or not path.exists():
            return None
        run = load_run(path)
        run.baseline = baseline_changes(scenario)
        note(run)
        return run

    def keep(run: ScenarioRun) -> None:
        if not args.no_cache:
            save_run(run, cache_path(args.cache, run.scenario, policy_json, code))
        note(run)

    regional = [Scenario("region", seed, args.locations, args.days) for seed in args.seeds]
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
    text = generated(runs, national, _command(args), policy.version, args.img, args.out, args.warmup_days)
    write_report(args.out, text)
    print(f"wrote {args.out} and plots in {args.img}", file=sys.stderr)
    return 0
