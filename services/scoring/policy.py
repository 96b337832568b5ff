"""The safeguarding policy as configuration: a YAML file validated at start-up.

Local areas adapt the thresholds, so nothing about them is code. A bad policy stops the
worker with the file, the line and the problem, before it touches a single event.
"""

import math
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Literal, Self

import yaml
from pydantic import Field, ValidationError, model_validator

from schemas.risk import Action, Level, LevelName
from services.scoring.policy_conditions import CONTRACT_FIELDS, Conditions, LocatedError, Strict
from services.scoring.policy_conditions import Condition as Condition  # re-exported for the evidence module
from services.scoring.policy_conditions import Range as Range
from services.scoring.policy_families import ClosedCulture, Corroboration, PeerPrior, Persistence

DEFAULT_POLICY = Path(__file__).resolve().parents[2] / "deploy" / "policy" / "default.yaml"


class PolicyError(ValueError):
    """The policy file is invalid; the message names the file, line and problem."""


_LocatedError = LocatedError


Days = Annotated[float, Field(gt=0, le=3650)]
RuleId = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{2,63}$")]


class Rule(Strict):
    id: RuleId
    description: Annotated[str, Field(min_length=3, max_length=300)]
    level: LevelName


class Trigger(Rule):
    """One event of this kind sets the level by itself, and holds it for `hold_days`."""

    when: Conditions
    hold_days: Days
    # None: the event alone sets the level. Otherwise only with another piece of
    # information from another kind of source within `within_days` of it.
    corroborate: Corroboration | None = None


def _scaled(rate: float, per_capacity: float, capacity: int | None, floor: int) -> int:
    """A count threshold for a service of this size: `rate` per `per_capacity` beds or
    people, never below `floor`. Without a capacity (no directory record yet) the floor."""
    if capacity is None or capacity <= 0:
        return floor
    return max(floor, math.ceil(rate * capacity / per_capacity - 1e-9))


class Pattern(Rule):
    """A count of a kind of event within a window: an absolute count, or with
    `per_capacity` and `enter_rate`, a count per that many beds or people supported, with
    `enter_count` as the minimum whatever the size."""

    when: Conditions
    window_days: Days
    enter_count: Annotated[int, Field(ge=2)]
    exit_count: Annotated[int, Field(ge=1)] | None = None
    per_capacity: Annotated[float, Field(gt=0)] | None = None
    enter_rate: Annotated[float, Field(gt=0)] | None = None

    @model_validator(mode="after")
    def _exit_below_enter(self) -> Self:
        if self.exit_count is not None and self.exit_count > self.enter_count:
            raise ValueError("exit_count must not exceed enter_count")
        if (self.per_capacity is None) != (self.enter_rate is None):
            raise ValueError("per_capacity and enter_rate go together")
        if self.per_capacity is not None and self.exit_count is not None:
            raise ValueError("a per-capacity pattern leaves one below its entry count: exit_count does not apply")
        return self

    def enter_threshold(self, capacity: int | None) -> int:
        if self.per_capacity is None or self.enter_rate is None:
            return self.enter_count
        return _scaled(self.enter_rate, self.per_capacity, capacity, self.enter_count)

    def exit_threshold(self, capacity: int | None) -> int:
        if self.exit_count is not None:
            return self.exit_count
        return max(1, self.enter_threshold(capacity) - 1)


class Rise(Rule):
    """A recent window against the location's own longer history (one-sided test): more
    than its history predicts, or with `direction: down` fewer (under-reporting)."""

    when: Conditions
    recent_days: Days
    baseline_days: Days
    # up: at least this many in the recent window (never a rise on one or two events);
    # down: at least this many expected in it (a fall from two to none is no sign).
    min_recent_count: Annotated[int, Field(ge=2)]
    direction: Literal["up", "down"] = "up"
    enter_p: Annotated[float, Field(gt=0, lt=0.5)]
    exit_p: Annotated[float, Field(gt=0, lt=1)]
    # Without this much history a rise cannot be told from a new service finding its feet.
    min_history_days: Days
    # poisson: the baseline's rate taken as known (with half an event of pseudo-count);
    # negative_binomial: the own rate is an estimate, as uncertain as the history is
    # short (and shrunk toward the peers' with `prior`).
    tail: Literal["poisson", "negative_binomial"] = "poisson"
    # negative_binomial: the certainty about the own rate is capped at this many events
    # (a service's rate drifts over months: a long history is no proof of its rate now).
    max_shape: Annotated[float, Field(gt=0)] | None = None
    prior: PeerPrior | None = None
    # The recent rate must also be at least this multiple of the expected one (down: at
    # most its inverse): at a large service a small change can be significant and still
    # not be a cause for concern.
    min_ratio: Annotated[float, Field(ge=1)] = 1.0

    @model_validator(mode="after")
    def _exit_looser(self) -> Self:
        if self.exit_p < self.enter_p:
            raise ValueError("exit_p must be at least enter_p (hysteresis)")
        if self.tail == "poisson" and self.max_shape is not None:
            raise ValueError("max_shape applies to the negative_binomial tail")
        if self.direction == "down" and self.tail == "poisson" and self.prior is None:
            raise ValueError("a fall is judged with the negative_binomial tail or a prior")
        return self


class Peer(Rule):
    """Events per unit of capacity against locations of the same service type."""

    when: Conditions
    window_days: Days
    per_capacity: Annotated[float, Field(gt=0)] = 10.0
    min_peers: Annotated[int, Field(ge=3)]
    # None: only an unusually low number is a concern (a high one is judged elsewhere,
    # e.g. against the service's own history).
    high_z: Annotated[float, Field(gt=0)] | None
    # None: only an unusually high number is a concern.
    low_z: Annotated[float, Field(lt=0)] | None = None
    exit_margin: Annotated[float, Field(ge=0)] = 0.5
    min_history_days: Days
    # "Unusually high" also needs this many events: a small service's one or two are not
    # a disproportionate number, however high their rate per bed.
    min_count: Annotated[int, Field(ge=0)] = 0
    # A location's rate counts among its peers', and is judged at all, only once it has
    # been observed this long: a window's count from a few weeks is no rate (None: at once).
    min_peer_history_days: Days | None = None

    @model_validator(mode="after")
    def _a_side(self) -> Self:
        if self.high_z is None and self.low_z is None:
            raise ValueError("a peer rule needs high_z, low_z or both")
        return self


class Weight(Strict):
    when: Conditions
    weight: Annotated[float, Field(gt=0, le=100)]


class Accumulation(Strict):
    id: RuleId = "accumulated_concern"
    description: str
    half_life_days: Days
    weights: Annotated[list[Weight], Field(min_length=1)]
    enter: dict[LevelName, Annotated[float, Field(gt=0)]]
    exit_ratio: Annotated[float, Field(gt=0, lt=1)]
    # Low-level concerns alone are the threshold table's Minor row: the score never sets a
    # higher level unless the policy says so here.
    max_level: LevelName = LevelName.minor
    # The score per this many beds or people supported (a service smaller than this counts
    # as this size, so that one concern at a small home is not magnified); None: absolute.
    per_capacity: Annotated[float, Field(gt=0)] | None = None

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if LevelName.none in self.enter:
            raise ValueError("enter thresholds are for minor, moderate and major")
        if self.max_level is LevelName.none:
            raise ValueError("max_level must be minor, moderate or major")
        above = sorted(name.value for name in self.enter if Level[name] > Level[self.max_level])
        if above:
            raise ValueError(f"enter has thresholds for {above}, above max_level {self.max_level.value}")
        values = [
            self.enter[name] for name in (LevelName.minor, LevelName.moderate, LevelName.major) if name in self.enter
        ]
        if values != sorted(values) or len(set(values)) != len(values):
            raise ValueError("enter thresholds must rise from minor to major")
        return self


class TriangulationStep(Strict):
    min_kinds: Annotated[int, Field(ge=2)]
    level: LevelName


class Triangulation(Strict):
    id: RuleId = "triangulated_concern"
    description: str
    window_days: Days
    # Which kind of source each event type speaks for; kinds, not systems, must differ.
    source_kinds: dict[str, str]
    concerns: Conditions
    steps: Annotated[list[TriangulationStep], Field(min_length=1)]
    # A kind of source counts once it has one concern per this many beds or people in the
    # window (at least one): a large service hears from more sources by its size alone.
    per_capacity: Annotated[float, Field(gt=0)] | None = None

    def per_kind(self, capacity: int | None) -> int:
        return 1 if self.per_capacity is None else _scaled(1.0, self.per_capacity, capacity, 1)

    @model_validator(mode="after")
    def _known_types(self) -> Self:
        unknown = set(self.source_kinds) - set(CONTRACT_FIELDS)
        if unknown:
            raise ValueError(f"source_kinds names unknown event types {sorted(unknown)}")
        return self


class Ratings(Strict):
    inadequate_id: RuleId = "rated_inadequate"
    inadequate_level: LevelName
    repeat_ri_id: RuleId = "requires_improvement_repeatedly"
    repeat_ri_count: Annotated[int, Field(ge=2)]
    repeat_ri_level: LevelName
    # None: the repeated rating sets its level for as long as it stands. Otherwise for this
    # many days after the latest of them was published (its event time): the attention
    # it calls for, not a label until the next inspection.
    repeat_ri_hold_days: Days | None = None


class Organisation(Strict):
    id: RuleId = "several_locations_of_one_provider"
    description: str
    min_locations: Annotated[int, Field(ge=2)]
    at_or_above: LevelName
    level: LevelName


class LevelSpec(Strict):
    meaning: str
    actions: Annotated[list[Action], Field(min_length=1)]


class Policy(Strict):
    # Part of every change id (`<subject>:<version>:<seq>`): no colon, no spaces.
    version: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$")]
    description: str = ""
    retention_days: Days
    out_of_order_tolerance_minutes: Annotated[float, Field(ge=0, le=7 * 24 * 60)]
    min_days_at_level: Annotated[float, Field(ge=0)]
    max_evidence_per_location: Annotated[int, Field(ge=50, le=20_000)] = 2000
    levels: dict[Literal["minor", "moderate", "major"], LevelSpec]
    triggers: list[Trigger] = []
    patterns: list[Pattern] = []
    rises: list[Rise] = []
    peers: list[Peer] = []
    accumulation: Accumulation | None = None
    triangulation: Triangulation | None = None
    ratings: Ratings | None = None
    organisation: Organisation | None = None
    persistence: list[Persistence] = []
    closed_culture: list[ClosedCulture] = []

    @model_validator(mode="after")
    def _complete(self) -> Self:
        missing = {"minor", "moderate", "major"} - set(self.levels)
        if missing:
            raise _LocatedError(f"levels must describe {sorted(missing)}", ("levels",))
        located: list[tuple[str, tuple[int | str, ...]]] = []
        for section in ("triggers", "patterns", "rises", "peers", "persistence", "closed_culture"):
            rules: list[Rule | Persistence | ClosedCulture] = getattr(self, section)
            located += [(r.id, (section, index, "id")) for index, r in enumerate(rules)]
        for section in ("accumulation", "triangulation"):
            part: Accumulation | Triangulation | None = getattr(self, section)
            if part is not None:
                located.append((part.id, (section, "id")))
        ids = [i for i, _ in located]
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        if duplicates:
            # Point at the first rule that repeats an earlier id.
            loc = next(loc for n, (i, loc) in enumerate(located) if i in ids[:n])
            raise _LocatedError(f"rule ids must be unique: {duplicates}", loc)
        self._check_persistence()
        if self.triangulation is None:
            for index, trigger in enumerate(self.triggers):
                if trigger.corroborate is not None:
                    raise _LocatedError(
                        "corroborate needs the triangulation's source_kinds (another kind of source)",
                        ("triggers", index, "corroborate"),
                    )
        return self

    def _check_persistence(self) -> None:
        for index, rule in enumerate(self.persistence):
            found = self.persisting(rule.of)
            if found is None:
                raise _LocatedError(
                    f"of: {rule.of!r} is not a pattern, rise, peer rule or the accumulation",
                    ("persistence", index, "of"),
                )
            level, look_back = found
            if Level[rule.level] <= Level[level]:
                raise _LocatedError(
                    f"level must be above the level of {rule.of!r} ({level.value})", ("persistence", index, "level")
                )
            # Every sample must see a whole window of kept evidence (a week spare for
            # late events), or what it finds would depend on what the retention dropped.
            if look_back + rule.persist_days > self.retention_days - 7:
                raise _LocatedError(
                    f"{rule.of!r}'s window ({look_back:g} days) and persist_days ({rule.persist_days:g}) "
                    f"must fit in retention_days less a week ({self.retention_days - 7:g})",
                    ("persistence", index, "persist_days"),
                )

    def persisting(self, rule_id: str) -> tuple[LevelName, float] | None:
        """The level and look-back in days of the rule a persistence rule can judge."""
        for pattern in self.patterns:
            if pattern.id == rule_id:
                return pattern.level, pattern.window_days
        for rise in self.rises:
            if rise.id == rule_id:
                # Its baseline is cut to what is kept at a sample; the recent window is not.
                return rise.level, rise.recent_days
        for peer in self.peers:
            if peer.id == rule_id:
                return peer.level, peer.window_days
        if self.accumulation is not None and self.accumulation.id == rule_id:
            # The score at a sample counts what is kept; older concerns weigh next to nothing.
            return self.accumulation.max_level, 0.0
        return None

    @property
    def retention(self) -> timedelta:
        return timedelta(days=self.retention_days)

    @property
    def tolerance(self) -> timedelta:
        return timedelta(minutes=self.out_of_order_tolerance_minutes)

    def spec(self, level: Level) -> LevelSpec | None:
        return None if level is Level.none else self.levels[level.name]  # type: ignore[index]


def _line_of(node: yaml.Node | None, loc: tuple[int | str, ...]) -> int | None:
    """The 1-based line of the YAML node at a pydantic error location: the line of the
    mapping key or sequence item it names (a block mapping's value starts a line later)."""
    line = node.start_mark.line + 1 if node is not None else None
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            match = next(((k, v) for k, v in node.value if k.value == part), None)
            if match is None:
                break
            key, node = match
            line = key.start_mark.line + 1
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            break
    return line


def _first_duplicate_key(node: yaml.Node | None) -> tuple[str, int, int] | None:
    """The first key given twice in one mapping: (key, its line, the first one's line)."""
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, int] = {}
        for key, value in node.value:
            name = str(key.value)
            line = key.start_mark.line + 1
            if name in seen:
                return name, line, seen[name]
            seen[name] = line
            found = _first_duplicate_key(value)
            if found is not None:
                return found
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            found = _first_duplicate_key(item)
            if found is not None:
                return found
    return None


def parse_policy(text: str, origin: str = "<policy>") -> Policy:
    try:
        raw = yaml.safe_load(text)
        tree = yaml.compose(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{origin}:{mark.line + 1}" if mark is not None else origin
        raise PolicyError(f"{where}: not valid YAML: {getattr(exc, 'problem', exc)}") from exc
    if not isinstance(raw, dict):
        raise PolicyError(f"{origin}:1: a policy is a mapping with version, levels and rules")
    duplicate = _first_duplicate_key(tree)
    if duplicate is not None:
        # YAML keeps the last of two equal keys: the first would silently stop applying.
        key, at, first = duplicate
        raise PolicyError(f"{origin}:{at}: duplicate key {key!r} (first given at line {first})")
    try:
        return Policy.model_validate(raw)
    except ValidationError as exc:
        lines = []
        for err in exc.errors(include_url=False):
            loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-")))
            cause = err.get("ctx", {}).get("error")
            if isinstance(cause, _LocatedError):
                loc += cause.loc
            line = _line_of(tree, loc)
            path = ".".join(str(p) for p in loc) or "(top)"
            lines.append(f"{origin}:{line or '?'}: {path}: {err['msg']}")
        raise PolicyError("\n".join(lines)) from exc


def load_policy(path: Path) -> Policy:
    try:
        text = path.read_text()
    except OSError as exc:
        raise PolicyError(f"{path}: cannot read the policy: {exc.strerror}") from exc
    return parse_policy(text, str(path))
