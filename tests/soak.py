"""`make soak`: the fault tests' long forms, then their summary table.

    python -m tests.soak            # the long forms (20 kill cycles each, minutes-long outages)
    python -m tests.soak --short    # the forms `make test` runs, with the table

Runs pytest on tests/test_fault_*.py with CARESIGNAL_FAULT_SOAK=1 (see tests/faults.py)
and prints each fault's tally: cycles, events sent, level changes, expected deliveries,
lost, duplicated, seconds.
"""

import argparse
import os
import sys
import time

import pytest

from tests import faults

FAULT_TESTS = [
    "tests/test_fault_scorer.py",
    "tests/test_fault_workers.py",
    "tests/test_fault_alerts.py",
    "tests/test_fault_broker.py",
    "tests/test_fault_receivers.py",
    "tests/test_fault_scoping.py",
    # Workers joining and leaving under load (in `make test` too; marked `rebalance`).
    "tests/test_scoring_workers.py",
]


class SummaryTable:
    """A pytest plugin: the tallies the fault tests recorded, after the run."""

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        terminalreporter.section(f"fault tallies ({faults.scale().name} forms)")
        terminalreporter.write_line(faults.table(faults.TALLIES))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--short", action="store_true", help="the short forms, as in make test")
    args, pytest_args = parser.parse_known_args(argv)  # the rest goes to pytest (e.g. -k broker)
    if not args.short:
        os.environ[faults.SOAK_ENV] = "1"
    started = time.monotonic()
    code = pytest.main(["-ra", "-p", "no:cacheprovider", *FAULT_TESTS, *pytest_args], plugins=[SummaryTable()])
    print(f"soak: {time.monotonic() - started:.0f} s, pytest exit {int(code)}")
    return int(code)


if __name__ == "__main__":
    sys.exit(main())
