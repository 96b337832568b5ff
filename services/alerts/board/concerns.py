"""The provider concerns process (the policy's six steps), as rules on what may be recorded. Pure.

1. decision to start a provider concerns process; 2. initial meeting; 3. findings meeting
and a service improvement plan; 4. update meetings (as many as needed); 5. quality
assurance of the improvements; 6. formal closure, with the provider and the regulator
told in writing. Each step is recorded once, in that order, with the day it happened
and the lead role; recording the formal closure closes the process with its outcome.
"""

from dataclasses import dataclass
from datetime import date
from enum import StrEnum


class Step(StrEnum):
    decision = "decision"
    initial_meeting = "initial_meeting"
    findings_meeting = "findings_meeting"
    update_meeting = "update_meeting"
    quality_assurance = "quality_assurance"
    formal_closure = "formal_closure"


STEP_LABELS: dict[Step, str] = {
    Step.decision: "Decision to start a provider concerns process",
    Step.initial_meeting: "Initial meeting",
    Step.findings_meeting: "Findings meeting and service improvement plan",
    Step.update_meeting: "Update meeting",
    Step.quality_assurance: "Quality assurance of the improvements",
    Step.formal_closure: "Formal closure (provider and regulator told in writing)",
}

ORDER = list(Step)
REPEATABLE = {Step.update_meeting}
# Update meetings are held "as needed": quality assurance may follow the findings meeting directly.
OPTIONAL = {Step.update_meeting}


class Lead(StrEnum):
    safeguarding = "safeguarding"
    commissioning = "commissioning"
    contracts = "contracts"
    care_reviews = "care_reviews"
    police = "police"


LEAD_LABELS: dict[Lead, str] = {
    Lead.safeguarding: "Safeguarding",
    Lead.commissioning: "Commissioning",
    Lead.contracts: "Contracts",
    Lead.care_reviews: "Care reviews",
    Lead.police: "Police",
}


class Outcome(StrEnum):
    improved = "improved"
    not_substantiated = "not_substantiated"
    contract_ended = "contract_ended"
    service_closed = "service_closed"


OUTCOME_LABELS: dict[Outcome, str] = {
    Outcome.improved: "Improvements made and sustained",
    Outcome.not_substantiated: "Concerns not substantiated",
    Outcome.contract_ended: "Contract ended by the authority",
    Outcome.service_closed: "Service closed or deregistered",
}


class StepRefused(ValueError):
    """A step that cannot be recorded now; `field` names the form field at fault."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


@dataclass(frozen=True)
class RecordedStep:
    step: Step
    held_on: date


def next_steps(recorded: list[RecordedStep], closed: bool) -> list[Step]:
    """The steps that may be recorded next, in order: never one before a step already recorded."""
    if closed:
        return []
    last = max((ORDER.index(r.step) for r in recorded), default=-1)
    options: list[Step] = []
    for index, step in enumerate(ORDER):
        if index < last or (index == last and step not in REPEATABLE):
            continue
        options.append(step)
        if step not in OPTIONAL:
            break
    return options


def check_step(
    recorded: list[RecordedStep], closed: bool, step: Step, held_on: date, today: date, outcome: Outcome | None
) -> None:
    """Raises StepRefused unless `step` may be recorded now, on `held_on`."""
    if closed:
        raise StepRefused("step", "this process is closed: nothing more can be recorded")
    allowed = next_steps(recorded, closed)
    if step not in allowed:
        expected = " or ".join(STEP_LABELS[s].lower() for s in allowed)
        raise StepRefused("step", f"the next step is the {expected}")
    if held_on > today:
        raise StepRefused("held_on", "the date must be today or in the past")
    latest = max((r.held_on for r in recorded), default=None)
    if latest is not None and held_on < latest:
        raise StepRefused("held_on", f"the date must be on or after the previous step ({latest.isoformat()})")
    if step is Step.formal_closure and outcome is None:
        raise StepRefused("outcome", "select the outcome of the process to close it")
    if step is not Step.formal_closure and outcome is not None:
        raise StepRefused("outcome", "an outcome is recorded only with the formal closure")
