"""A contact file for the demo: every simulated authority is told by email.

The alert service reads who to tell from a YAML file (`services/alerts/contacts.py`);
the demo's authorities are invented, so it makes one giving each an address in the
reserved `.invalid` domain. The local mail sink of `make run` receives them all.
"""

from pathlib import Path
from typing import Any

import yaml

from schemas.directory import AuthorityKind
from services.simulator.population import Population

DEMO_MAIL_DOMAIN = "caresignal-demo.invalid"


def demo_contacts(population: Population) -> dict[str, Any]:
    """One email contact per authority (NHS commissioners too: they place people), from
    the first level up."""
    return {
        "authorities": {
            a.ons_code: {"emails": [{"address": f"safeguarding.{a.ons_code.lower()}@{DEMO_MAIL_DOMAIN}"}]}
            for a in sorted(population.authorities, key=lambda a: a.ons_code)
        }
    }


def write_demo_contacts(population: Population, path: Path) -> list[tuple[str, str]]:
    """Writes the file; returns the local authorities as (ONS code, name), for a demo key."""
    path.parent.mkdir(parents=True, exist_ok=True)
    header = "# Made by `caresignal simulate --write-contacts` for the demo: one address per authority.\n"
    path.write_text(header + yaml.safe_dump(demo_contacts(population), sort_keys=False))
    return [
        (a.ons_code, a.name)
        for a in sorted(population.authorities, key=lambda a: a.ons_code)
        if a.kind == AuthorityKind.local_authority
    ]
