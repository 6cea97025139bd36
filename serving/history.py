"""Score people from their event histories with the very feature code training uses.

A caller (an EPR, the coordination centre's software) sends each person's events in the
contract's format and an as-of date; the histories become one-person-per-row contract tables
and go through ``features.engine.build_features``, so there is no second implementation of
any feature to drift from training's (no train/serve skew).
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Literal

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, model_validator

from riskstrat.contract.schema import ETHNICITY_GROUPS, EventKind
from riskstrat.contract.tables import ContractTables
from riskstrat.features.engine import build_features

MAX_PEOPLE = 100
MAX_EVENTS = 5_000
REQUEST_PRACTICE = "request"
# Strict, as the description types them: a boolean or a string is not a number.
Value = Annotated[float, Field(strict=True, allow_inf_nan=False, ge=0, le=1e6)]
Cost = Annotated[float, Field(strict=True, allow_inf_nan=False, ge=0, le=1e7)]
EthnicityGroup = Literal[ETHNICITY_GROUPS]


class EventIn(BaseModel):
    """One event, as in the contract's events table."""

    model_config = ConfigDict(extra="forbid")
    kind: EventKind
    start: date
    end: date | None = Field(default=None, description="on or after start (else 400)")
    code_system: str | None = Field(default=None, max_length=32)
    code: str | None = Field(default=None, max_length=64)
    value: Value | None = None
    cost: Cost | None = None

    @model_validator(mode="after")
    def _end_not_before_start(self) -> EventIn:
        # JSON Schema cannot compare two fields: the description says it in words.
        if self.end is not None and self.end < self.start:
            raise ValueError(f"end {self.end} is before start {self.start}")
        return self


class PersonHistory(BaseModel):
    """A person's characteristics and events; only events before the as-of date count."""

    model_config = ConfigDict(extra="forbid")
    id: str = Field(min_length=1, max_length=64, description="caller's pseudonymised id, echoed")
    birth_month: date = Field(description="first day of the month of birth")
    sex: str = Field(pattern="^[FM]$")
    deprivation_decile: int | None = Field(default=None, ge=1, le=10)
    ethnicity_group: EthnicityGroup | None = None
    events: list[EventIn] = Field(default_factory=list, max_length=MAX_EVENTS)


def history_sources(people: list[PersonHistory]) -> ContractTables:
    """The histories as contract tables: everyone registered from birth at one practice."""
    patients = pd.DataFrame(
        {
            "patient_id": [p.id for p in people],
            "birth_month": [p.birth_month for p in people],
            "sex": [p.sex for p in people],
            "practice_id": REQUEST_PRACTICE,
            "deprivation_decile": pd.array([p.deprivation_decile for p in people], dtype="Int8"),
            "ethnicity_group": [p.ethnicity_group for p in people],
            "registration_start": [p.birth_month for p in people],
            "registration_end": None,
            "death_date": None,
        }
    )
    events = pd.DataFrame(
        [
            {"patient_id": p.id, **e.model_dump(), "kind": e.kind.value}
            for p in people
            for e in p.events
        ],
        columns=["patient_id", "kind", "start", "end", "code_system", "code", "value", "cost"],
    )
    practices = pd.DataFrame(
        {
            "practice_id": [REQUEST_PRACTICE],
            "practice_name": [None],
            "gp_cluster": ["request"],
            "locality": ["request"],
        }
    )
    return ContractTables.from_frames(patients, events, practices)


def history_features(people: list[PersonHistory], as_of: date) -> pd.DataFrame:
    """Features as of ``as_of``, one row per person in request order, indexed by id."""
    ids = [p.id for p in people]
    if len(set(ids)) != len(ids):
        raise ValueError("people: each id must appear once")
    unborn = [p.id for p in people if p.birth_month > as_of]
    if unborn:
        raise ValueError(f"people: born after the as-of date: {unborn[:5]}")
    features = build_features(history_sources(people), [as_of]).droplevel("as_of")
    return features.loc[ids]
