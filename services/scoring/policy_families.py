"""The policy's configuration of the families that judge a service against itself and
escalate what persists (issue 17): a rate prior from a service's peers, the persistence
of a Minor pattern, closed-culture signals, and the corroboration a single flag needs.

Kept apart from `policy.py` (the older families) so that each stays readable; `Policy`
composes both.
"""

from typing import Annotated, Literal, Self

from pydantic import Field, model_validator

from schemas.risk import LevelName
from services.scoring.policy_conditions import Conditions, Strict

Days = Annotated[float, Field(gt=0, le=3650)]
RuleId = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{2,63}$")]


class PeerPrior(Strict):
    """What a service's peers of the same type say its rate should be, for its size: the
    starting point its own history is weighed against (shrinkage). A young service is
    judged mostly against its peers, an established one mostly against itself."""

    # Rates per this many beds or people supported; None: per location whatever its size
    # (staff reports, visits by the commissioner).
    per_capacity: Annotated[float, Field(gt=0)] | None = 10.0
    # The peers' rate is their events in this window (or in the time they have been
    # observed, if shorter), per day.
    window_days: Days = 365.0
    # A peer counts once it has been observed this long: a service seen for a week has no
    # rate to compare with.
    min_history_days: Days = 90.0
    min_peers: Annotated[int, Field(ge=3)] = 5
    # The prior weighs as many events as the spread between the peers allows
    # (mean² / variance of their rates), and never more than this: services of one type
    # and size differ, so the peers' mean is never as good as a service's own history.
    max_shape: Annotated[float, Field(gt=0)] = 10.0


class Corroboration(Strict):
    """A single flag sets its level only with another piece of information from another
    kind of source within `within_days` of it (before or after)."""

    within_days: Days
    # What corroborates; events of the flag's own kind of source (the triangulation's
    # source kinds) never do.
    by: Conditions


class Persistence(Strict):
    """A rule at a lower level (a pattern, a rise, a peer rule, the accumulation) that has
    held for `persist_days` and is not fading escalates to `level`; it stays escalated
    while that rule holds, and falls with it."""

    id: RuleId
    description: Annotated[str, Field(min_length=3, max_length=300)]
    level: LevelName
    # The rule whose persistence is judged.
    of: RuleId
    persist_days: Days
    # The rule's condition (at its looser, leaving, threshold) is checked at points this
    # far apart, fixed in time (multiples of it since the epoch), and at the step itself.
    sample_days: Annotated[float, Field(gt=0, le=90)] = 7.0
    # not_falling: its measure now is at least what it was at the start of the period
    # ("persists or grows"); any: it held throughout, whatever its trend.
    trend: Literal["not_falling", "any"] = "not_falling"

    @model_validator(mode="after")
    def _samples(self) -> Self:
        if self.sample_days * 2 > self.persist_days:
            raise ValueError("persist_days must be at least two sample_days")
        return self


class Series(Strict):
    """A kind of event counted in a window and judged against the service's own rate
    (shrunk toward its peers')."""

    when: Conditions
    prior: PeerPrior | None = None


class ClosedCulture(Strict):
    """Staff and police raising concerns more than the service's own history predicts,
    while its own reports (notifications, safeguarding referrals) fall below what its
    history and size predict: a closed culture hides harm from those it must tell."""

    id: RuleId
    description: Annotated[str, Field(min_length=3, max_length=300)]
    level: LevelName
    window_days: Days
    # The own history the window is judged against: the time before the window (at most
    # this long, and only as much as has been observed).
    baseline_days: Days
    voices: Series
    reports: Series
    min_voices: Annotated[int, Field(ge=1)]
    # One-sided tail probabilities (negative binomial: the own rate is estimated, not
    # known): voices this many or more, and reports this few or fewer.
    voices_p: Annotated[float, Field(gt=0, lt=0.5)]
    reports_p: Annotated[float, Field(gt=0, lt=0.5)]
    # Reports at most this share of what was expected.
    max_reports_ratio: Annotated[float, Field(gt=0, lt=1)]
    exit_p: Annotated[float, Field(gt=0, lt=1)]
    min_history_days: Days
    # The certainty about the service's own rate is capped at this many events: a
    # service's rates drift over months, so a long history is not proof of its rate now.
    max_shape: Annotated[float, Field(gt=0)] | None = None

    @model_validator(mode="after")
    def _exit_looser(self) -> Self:
        if self.exit_p < max(self.voices_p, self.reports_p):
            raise ValueError("exit_p must be at least voices_p and reports_p (hysteresis)")
        return self
