"""Finished evaluations as the service reads them: read-only, by plain folder name.

``<RISKSTRAT_EVALUATIONS_DIR>/<name>/`` is one finished evaluation (``impact.results``'s
layout: ``results.json``, ``report.html``, ``plots/*.png``). A name is a plain folder name
(``NAME_PATTERN``: letters, digits, '-' and '_'; no dots, slashes or absolute paths), so a
request can never name anything outside the folder; staging folders (dot-prefixed) are
never listed. Anything that resolves outside the folder (a symbolic link pointing away) is
treated as absent. The API (``/v1/evaluation``, ``/v1/evaluations``) and the pages
(``/ui/evaluations``) both read through ``EvaluationStore``.

The API answers an evaluation as ``PublicEvaluation``: the results as its description types
them (a number or null; an unbounded interval end is null) and without the server's paths
(the data folder is left out, the plan is named by its file name only), the same for every
role.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator

from riskstrat.impact.results import (
    FORMAT,
    PLOTS_DIR,
    REPORT_FILE,
    RESULTS_FILE,
    DesignResult,
    EvaluationResults,
    Interval,
    OutcomeResult,
    PlanRecord,
    PlasmodeCheck,
    file_name,
)
from riskstrat.serving.settings import ServiceSettings, SettingsError

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,99}$"
PLOT_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,199}\.(png|csv)$"  # a plot or its data
NAME_RULE = "a plain folder name: letters, digits, '-' and '_' only (no dots, slashes or paths)"


class NoEvaluationsError(LookupError):
    """No evaluations folder is configured (``RISKSTRAT_EVALUATIONS_DIR`` is not set)."""


class BadNameError(ValueError):
    """A name that is not a plain folder name; says which field."""


def check_name(name: str, field: str = "name") -> str:
    """``name`` if it is a plain folder name, else a ``BadNameError`` naming ``field``."""
    if not re.fullmatch(NAME_PATTERN, name):
        raise BadNameError(f"{field}: {name[:100]!r} is not {NAME_RULE}")
    return name


def evaluation_store() -> EvaluationStore:
    """The store for ``RISKSTRAT_EVALUATIONS_DIR`` (read on each call)."""
    try:
        return EvaluationStore(ServiceSettings.current().require("evaluations_dir"))
    except SettingsError as exc:
        raise NoEvaluationsError(f"no evaluations configured ({exc})") from None


@dataclass(frozen=True, slots=True)
class EvaluationStore:
    """The finished evaluations under ``root``."""

    root: Path

    def names(self) -> list[str]:
        """The finished evaluations' names, sorted."""
        if not self.root.is_dir():
            return []
        return sorted(
            entry.name
            for entry in self.root.iterdir()
            if re.fullmatch(NAME_PATTERN, entry.name) and self._inside(entry / RESULTS_FILE)
        )

    def load(self, name: str) -> EvaluationResults:
        """The evaluation ``name`` (``BadNameError``, or ``FileNotFoundError`` if there is
        none; ``ValueError`` if its results cannot be read)."""
        return EvaluationResults.load(self._folder(name))

    def report(self, name: str) -> Path:
        """The path of evaluation ``name``'s report.html (``FileNotFoundError`` if none)."""
        return self._file(self._folder(name) / REPORT_FILE)

    def plot(self, name: str, file: str) -> Path:
        """The path of one of evaluation ``name``'s plots or their data (``FileNotFoundError``
        if none)."""
        if not re.fullmatch(PLOT_PATTERN, file):
            raise FileNotFoundError(f"no plot {file[:100]!r}")
        return self._file(self._folder(name) / PLOTS_DIR / file)

    def _folder(self, name: str) -> Path:
        folder = self.root / check_name(name)
        if not self._inside(folder / RESULTS_FILE):
            raise FileNotFoundError(f"no evaluation named {name!r}")
        return folder

    def _file(self, path: Path) -> Path:
        if not self._inside(path):
            raise FileNotFoundError(f"no file {path.relative_to(self.root)}")
        return path

    def _inside(self, path: Path) -> bool:
        """Whether ``path`` is a file that resolves inside the root (no link leads out)."""
        try:
            resolved = path.resolve(strict=True)
        except (OSError, RuntimeError):
            return False
        return resolved.is_file() and resolved.is_relative_to(self.root.resolve())


# How results.json written before numbers that are not finite became null wrote them: read
# back as text in the untyped tables.
NON_FINITE_TEXT = frozenset({"NaN", "Infinity", "-Infinity"})


def finite(value: object, *, untyped: bool = False) -> object:
    """``value`` (JSON-like) with every float that is not finite as None (JSON has no NaN
    or infinity, and the API's description types such numbers as null); with ``untyped``
    (a design's tables, whose cells have no type) also such a number written as text."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if untyped and isinstance(value, str) and value in NON_FINITE_TEXT:
        return None
    if isinstance(value, dict):
        return {k: finite(v, untyped=untyped) for k, v in value.items()}
    if isinstance(value, list):
        return [finite(v, untyped=untyped) for v in value]
    return value


class PublicInterval(Interval):
    """An estimate and its 95% interval; an unbounded end is null."""

    estimate: float | None
    ci_low: float | None = Field(description="null: unbounded below")
    ci_high: float | None = Field(description="null: unbounded above")


class PublicOutcome(OutcomeResult):
    effect: PublicInterval
    relative: PublicInterval | None = None


class PublicDesign(DesignResult):
    outcomes: list[PublicOutcome]


class PublicPlan(PlanRecord):
    file: str = Field(description="the analysis plan's file name (not where it lies)")

    @field_validator("file", mode="before")
    @classmethod
    def _name_only(cls, value: object) -> object:
        return file_name(value) if isinstance(value, str) else value


class PublicEvaluation(BaseModel):
    """A finished evaluation as the API gives it to any role: ``EvaluationResults`` without
    the server's data folder, its plan named by file name, numbers that are not finite as
    null."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    format: int = FORMAT
    name: str
    created: datetime
    plan: PublicPlan
    designs: list[PublicDesign]
    seconds: float
    check: PlasmodeCheck | None = None

    @classmethod
    def of(cls, results: EvaluationResults) -> PublicEvaluation:
        data = finite(results.model_dump(exclude=set(HIDDEN)))
        for design in data["designs"]:
            design["tables"] = finite(design["tables"], untyped=True)
        return cls.model_validate(data)


HIDDEN = ("data",)  # fields of ``EvaluationResults`` the API leaves out: a server path
