"""Policy conditions, checked against the event contract when the policy loads.

A condition names an event type and constraints on its data fields. Every field and every
value is checked against the contract's models: a mistyped value (`outcome: mised`)
would otherwise match nothing and silently disable its rule.
"""

import types
import typing
from collections.abc import Mapping
from enum import StrEnum
from typing import Annotated, Any, Self, Union

from pydantic import BaseModel, ConfigDict, Field, model_validator

from schemas.events import EVENT_MODELS, TYPE_PREFIX


class LocatedError(ValueError):
    """A check that knows where, below the value being validated, the problem is."""

    def __init__(self, message: str, loc: tuple[int | str, ...]) -> None:
        super().__init__(message)
        self.loc = loc


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Range(Strict):
    gte: float | None = None
    lte: float | None = None

    @model_validator(mode="after")
    def _bounded(self) -> Self:
        if self.gte is None and self.lte is None:
            raise ValueError("a range needs gte, lte or both")
        if self.gte is not None and self.lte is not None and self.gte > self.lte:
            raise ValueError("gte must not exceed lte")
        return self


# --- what each data field of the contract can be matched on ---------------------------


class FieldSpec(BaseModel):
    """How a policy can constrain one data field: `enum` (with its values), `enum_list`
    (a list of enum values: matches when any listed value is present), `bool` or
    `number`."""

    model_config = ConfigDict(frozen=True)

    kind: typing.Literal["enum", "enum_list", "bool", "number"]
    values: tuple[str, ...] = ()


def _strip(annotation: Any) -> Any:
    """The type under Annotated[...] and `| None`."""
    while True:
        origin = typing.get_origin(annotation)
        if origin is Annotated:
            annotation = typing.get_args(annotation)[0]
        elif origin in (Union, types.UnionType):
            inner = [a for a in typing.get_args(annotation) if a is not type(None)]
            if len(inner) != 1:
                return annotation
            annotation = inner[0]
        else:
            return annotation


def _spec(annotation: Any) -> FieldSpec | None:
    base = _strip(annotation)
    if isinstance(base, type) and issubclass(base, StrEnum):
        return FieldSpec(kind="enum", values=tuple(m.value for m in base))
    if base is bool:
        return FieldSpec(kind="bool")
    if base in (int, float):
        return FieldSpec(kind="number")
    if typing.get_origin(base) is list:
        item = _strip(typing.get_args(base)[0])
        if isinstance(item, type) and issubclass(item, StrEnum):
            return FieldSpec(kind="enum_list", values=tuple(m.value for m in item))
    return None  # dates, nested objects and pseudonyms: nothing a rule should match on


def _contract_fields() -> dict[str, dict[str, FieldSpec | None]]:
    fields: dict[str, dict[str, FieldSpec | None]] = {}
    for model in EVENT_MODELS:
        type_name: str = model.model_fields["type"].annotation.__args__[0]  # type: ignore[union-attr]
        data_model: type[BaseModel] = model.model_fields["data"].annotation  # type: ignore[assignment]
        short = type_name.removeprefix(TYPE_PREFIX).rsplit(".", 1)[0]
        fields[short] = {name: _spec(info.annotation) for name, info in data_model.model_fields.items()}
    return fields


# Built from the contract's classes, which exist at import; nothing is read or run.
CONTRACT_FIELDS: Mapping[str, Mapping[str, FieldSpec | None]] = _contract_fields()


def _check_value(event_type: str, name: str, spec: FieldSpec | None, value: Any) -> Any:
    """The constraint, validated; raises LocatedError naming the field and what it allows."""
    where = f"{event_type}.{name}"
    if spec is None:
        raise LocatedError(f"{where} cannot be matched on by a rule (not an enum, a flag or a number)", (name,))
    if isinstance(value, dict):
        if spec.kind != "number":
            raise LocatedError(f"{where}: a range (gte/lte) applies only to numbers", (name,))
        try:
            return Range.model_validate(value)
        except ValueError as exc:
            raise LocatedError(f"{where}: {exc}", (name,)) from None
    items = value if isinstance(value, list) else [value]
    if not items:
        raise LocatedError(f"{where}: an empty list matches nothing", (name,))
    for item in items:
        if spec.kind in ("enum", "enum_list"):
            if not isinstance(item, str) or item not in spec.values:
                raise LocatedError(f"{where}: {item!r} is not one of {list(spec.values)}", (name,))
        elif spec.kind == "bool":
            if not isinstance(item, bool):
                raise LocatedError(f"{where}: {item!r} is not true or false", (name,))
        elif isinstance(item, bool) or not isinstance(item, int | float):
            raise LocatedError(f"{where}: {item!r} is not a number (or a range with gte/lte)", (name,))
    return value


class Condition(Strict):
    """Matches events of one type whose data fields meet every constraint."""

    model_config = ConfigDict(extra="allow", frozen=True)

    type: str

    @model_validator(mode="after")
    def _fields_exist(self) -> Self:
        known = CONTRACT_FIELDS.get(self.type)
        if known is None:
            raise ValueError(f"unknown event type {self.type!r}; known: {sorted(CONTRACT_FIELDS)}")
        extra = self.model_extra or {}
        unknown = set(extra) - set(known)
        if unknown:
            raise ValueError(f"{self.type} events have no field(s) {sorted(unknown)}; fields: {sorted(known)}")
        for name, value in extra.items():
            extra[name] = _check_value(self.type, name, known[name], value)
        return self

    @property
    def constraints(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


Conditions = Annotated[list[Condition], Field(min_length=1)]
