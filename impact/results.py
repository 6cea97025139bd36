"""What an evaluation found: the typed record behind results.json, the report and the API.

One file layout for a finished evaluation, defined here and nowhere else::

    <out>/results.json   this record
    <out>/report.html    the report rendered from it
    <out>/plots/*.png    its plots

Every estimate says how sure it is (a 95% interval), what it was checked against (pre-trends,
balance, density) and whether the data can answer the question at all (``verdict``): a
design that cannot answer says why in words instead of giving a misleading number.
"""

from __future__ import annotations

import json
import math
import re
from datetime import date, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from riskstrat.common.errors import MissingInputError, UserError

RESULTS_FILE = "results.json"
REPORT_FILE = "report.html"
PLOTS_DIR = "plots"
FORMAT = 1
ANSWERED = "answered"

Design = Literal["did", "matched", "rd", "lottery"]


class _Frozen(BaseModel):
    # JSON has no NaN or infinity: a number that is not finite is written as null, so that
    # any strict JSON reader reads results.json (``Interval`` says how it is read back).
    model_config = ConfigDict(frozen=True, extra="forbid", ser_json_inf_nan="null")


class Interval(_Frozen):
    """An estimate with its 95% confidence interval and two-sided p-value.

    An end with no bound (a randomisation test that no effect size rejects) is infinite,
    and no estimate at all is NaN; both are written as null and read back so: a null
    estimate is NaN throughout, a null ``ci_low`` unbounded below, a null ``ci_high``
    unbounded above."""

    estimate: float
    ci_low: float
    ci_high: float
    p_value: float | None = None

    @model_validator(mode="before")
    @classmethod
    def _from_nulls(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        if data.get("estimate") is None:
            return {**data, "estimate": math.nan, "ci_low": math.nan, "ci_high": math.nan}
        low, high = data.get("ci_low"), data.get("ci_high")
        return {
            **data,
            "ci_low": -math.inf if low is None else low,
            "ci_high": math.inf if high is None else high,
        }

    def excludes(self, value: float) -> bool:
        return not self.ci_low <= value <= self.ci_high


class Check(_Frozen):
    """A design check (pre-trend, balance, density, first stage) and whether it passed."""

    name: str
    passed: bool
    value: float | None = None
    detail: str


class OutcomeResult(_Frozen):
    """One outcome under one design.

    ``bandwidth`` is the regression discontinuity's, in units of the score.
    ``effect`` is in the design's own measure (``measure`` says which: a rate difference per
    person-year, a rate ratio, or a difference at the cut-off); ``relative`` is the same
    effect as a proportional change (-0.14: 14% lower), the form a board paper quotes.
    ``among_takers`` is a lottery's effect among those its draw made take help up (the
    instrumental-variable estimate), in the same measure as ``effect``.
    """

    outcome: str
    label: str
    measure: str
    effect: Interval
    relative: Interval | None = None
    among_takers: Interval | None = None
    comparison_rate: float | None = None
    treated_rate: float | None = None
    minimum_detectable: float | None = None
    bandwidth: float | None = None
    n_people: int
    n_units: int | None = None
    verdict: str = ANSWERED
    summary: str

    @property
    def answered(self) -> bool:
        return self.verdict == ANSWERED


class SubgroupEffect(_Frozen):
    """One outcome's effect among the eligible people at one level of an effect modifier,
    in the design's measure (``effect``) and as a proportional change (``relative``); both
    null when that level cannot answer (``verdict`` says why)."""

    outcome: str
    level: str
    n_people: int
    effect: Interval | None = None
    relative: Interval | None = None
    verdict: str = ANSWERED


class Interaction(_Frozen):
    """Is the effect different at ``level`` than at ``reference``? ``difference`` is the
    proportional change at ``level`` minus that at ``reference`` (-0.13: 13 percentage points
    more of a fall), with its 95% interval and the p-value of no difference; null, with the
    reason in ``verdict``, when either level cannot answer."""

    outcome: str
    level: str
    reference: str
    difference: Interval | None = None
    verdict: str = ANSWERED


class SubgroupResult(_Frozen):
    """A design's effects per level of one of the plan's subgroups (``by``, as the plan
    names it), with the interaction tests, and how their intervals were made."""

    by: str
    levels: list[str]
    method: str
    effects: list[SubgroupEffect]
    interactions: list[Interaction]


class DesignResult(_Frozen):
    """One design's findings: how it was done, its checks, its tables and its outcomes.

    ``first_month`` .. before ``end_month`` are the calendar months its outcomes cover (the
    panel, or the follow-up)."""

    design: Design
    title: str
    method: str
    population: str
    first_month: date
    end_month: date
    verdict: str
    checks: list[Check] = Field(default_factory=list)
    tables: dict[str, list[dict[str, Any]]] = Field(default_factory=dict)
    outcomes: list[OutcomeResult]
    seconds: float
    subgroups: list[SubgroupResult] = Field(default_factory=list)
    subgroups_not_run: str | None = None  # why the plan's subgroups were not estimated

    @property
    def answered(self) -> bool:
        return self.verdict == ANSWERED


def file_name(path: str) -> str:
    """The last part of ``path`` (either slash): what a reader of the report or the API is
    shown of a server path, which they have no use for and should not learn."""
    return re.split(r"[\\/]", path)[-1]


class PlanRecord(_Frozen):
    """The analysis plan as it was when the evaluation ran: its text and SHA-256; ``file``
    is where it was read (a server path, kept for the record; readers see ``file_name``)."""

    file: str
    sha256: str
    title: str
    intervention: str
    written: str
    text: str

    @property
    def file_name(self) -> str:
        return file_name(self.file)


class Share(_Frozen):
    """A share of plasmode runs with its Monte Carlo standard error, out of ``runs`` counted
    (``value`` is None when no run could be counted)."""

    value: float | None
    se: float | None
    runs: int


class PlasmodeOutcome(_Frozen):
    """What the plasmode check found of one design on one outcome.

    ``effect`` is the injected relative change (-0.1: a 10% reduction) whose truth is known
    by construction; ``power`` the share of runs at that effect that the design answered
    with an interval excluding no change on the right side; ``coverage`` the share of those
    runs' intervals holding the injected change; ``bias`` the mean estimate minus it (with
    its standard error); ``false_positive`` the share of null runs (no injected effect)
    answered with an interval excluding no change; ``answered`` the share of all runs the
    design answered at all. ``placebo_found`` of ``placebo_runs`` are the placebo designs on
    the real labels that "found" an effect. ``verdict`` is the plain sentence."""

    outcome: str
    label: str
    effect: float
    power: Share
    coverage: Share
    bias: float | None
    bias_se: float | None
    false_positive: Share
    answered: Share
    placebo_runs: int
    placebo_found: int
    verdict: str


class PlasmodeDesign(_Frozen):
    """The plasmode check of one design: how its null was made (``null``), what its placebo
    is (``placebo``), and its outcomes; ``verdict`` says why it could not be checked when
    ``outcomes`` is empty."""

    design: Design
    title: str
    null: str
    placebo: str
    verdict: str
    outcomes: list[PlasmodeOutcome]
    seconds: float

    @property
    def answered(self) -> bool:
        return self.verdict == ANSWERED

    def outcome(self, name: str) -> PlasmodeOutcome | None:
        return next((o for o in self.outcomes if o.outcome == name), None)


class PlasmodeCheck(_Frozen):
    """``evaluate --check``: every design re-run ``runs`` times at the plan's minimum effect
    and ``runs`` times under the null, on the user's own data (see ``impact.plasmode``)."""

    runs: int
    minimum_effect: float
    seed: int
    designs: list[PlasmodeDesign]
    seconds: float

    def design(self, design: Design) -> PlasmodeDesign | None:
        return next((d for d in self.designs if d.design == design), None)


class EvaluationResults(_Frozen):
    """A finished evaluation; ``check`` is the plasmode check when one was asked for."""

    format: int = FORMAT
    name: str
    created: datetime
    data: str
    plan: PlanRecord
    designs: list[DesignResult]
    seconds: float
    check: PlasmodeCheck | None = None

    def design(self, design: Design) -> DesignResult:
        return next(d for d in self.designs if d.design == design)

    def save(self, folder: Path) -> Path:
        """Write ``results.json`` into ``folder`` (the run's staging folder: the whole
        evaluation folder is swapped in at once, see ``impact.run``)."""
        path = folder / RESULTS_FILE
        path.write_text(self.model_dump_json(indent=2))
        return path

    @classmethod
    def load(cls, folder: Path) -> EvaluationResults:
        """Read a finished evaluation; a clear error names the file when it is not one."""
        path = folder / RESULTS_FILE
        try:
            raw = json.loads(path.read_text())
        except FileNotFoundError:
            raise MissingInputError(f"{path}: no finished evaluation here") from None
        except (OSError, ValueError) as error:
            raise UserError(f"{path}: not readable as JSON ({error})") from None
        if raw.get("format") != FORMAT:
            raise UserError(f"{path}: results format {raw.get('format')!r}, expected {FORMAT}")
        return cls.model_validate(raw)
