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
import re
from datetime import date, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from riskstrat.common.errors import MissingInputError, UserError

RESULTS_FILE = "results.json"
REPORT_FILE = "report.html"
PLOTS_DIR = "plots"
FORMAT = 1
ANSWERED = "answered"

Design = Literal["did", "matched", "rd"]


class _Frozen(BaseModel):
    # An interval can be unbounded (a randomisation test that no effect size rejects):
    # infinities are written as the strings "Infinity" and "-Infinity", and read back.
    model_config = ConfigDict(frozen=True, extra="forbid", ser_json_inf_nan="strings")


class Interval(_Frozen):
    """An estimate with its 95% confidence interval and two-sided p-value."""

    estimate: float
    ci_low: float
    ci_high: float
    p_value: float | None = None

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
    """

    outcome: str
    label: str
    measure: str
    effect: Interval
    relative: Interval | None = None
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


class EvaluationResults(_Frozen):
    """A finished evaluation."""

    format: int = FORMAT
    name: str
    created: datetime
    data: str
    plan: PlanRecord
    designs: list[DesignResult]
    seconds: float

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
