"""The report's plots, drawn from the tables a design leaves in ``DesignResult.tables``.

Each plot is a PNG under the evaluation's ``plots/`` folder with the rows it was drawn from
as CSV beside it. Which table keys and columns a plot reads is defined here (the row models
below, and the key functions) and described in ``impact.report``'s docstring:

- ``event_study:<outcome>`` -> an event-study plot (estimate and 95% interval by month
  relative to go-live, a zero line, go-live marked);
- ``balance`` -> a "love plot" (absolute standardised mean differences before and after
  matching, with the 0.1 target);
- ``rd_bins:<outcome>`` (and ``rd_fit:<outcome>`` when there) -> binned means each side of
  the list's cut-off with the local linear fits.

Figures are drawn on matplotlib's ``Figure`` with the Agg canvas directly (never pyplot, so
no global backend or figure state), imported only when drawing.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from riskstrat.common.spreadsheet import write_rows
from riskstrat.impact.results import PLOTS_DIR, DesignResult, EvaluationResults

if TYPE_CHECKING:
    from matplotlib.axes import Axes

BALANCE = "balance"
EVENT_STUDY = "event_study"
RD_BINS = "rd_bins"
RD_FIT = "rd_fit"
SMD_TARGET = 0.1  # the usual target for a balanced covariate (|SMD| below it)
NHS_BLUE, GREY, DARK = "#005eb8", "#768692", "#212b32"
SIZE, DPI = (6.4, 4.2), 110


def event_study_key(outcome: str) -> str:
    return f"{EVENT_STUDY}:{outcome}"


def rd_bins_key(outcome: str) -> str:
    return f"{RD_BINS}:{outcome}"


def rd_fit_key(outcome: str) -> str:
    return f"{RD_FIT}:{outcome}"


class _Row(BaseModel):
    # Designs may keep further columns in their tables; a plot reads only its own.
    model_config = ConfigDict(frozen=True, extra="ignore")


class EventStudyRow(_Row):
    """One month relative to go-live (0 = the first month on the programme)."""

    relative_period: int
    estimate: float
    ci_low: float
    ci_high: float


class BalanceRow(_Row):
    """One baseline feature: standardised mean differences before and after matching."""

    feature: str
    smd_before: float
    smd_after: float
    variance_ratio: float | None = None


class RdBinRow(_Row):
    """A bin of the running variable on one side of the cut-off: its mean score and outcome."""

    side: Literal["below", "above"]
    score: float
    mean: float
    n: int


class RdFitRow(_Row):
    """A point on one side's local linear fit; each side's fit reaches the cut-off, where
    the two sides meet (the jump between them is the estimate)."""

    side: Literal["below", "above"]
    score: float
    fitted: float


Row = TypeVar("Row", bound=_Row)


class PlotTableError(ValueError):
    """A table a plot reads is not as documented; names the design, table, row and field."""


@dataclass(frozen=True)
class Plot:
    """A written plot: its design and outcome (None for a design-wide plot), the PNG and CSV
    paths relative to the evaluation folder, and a caption."""

    design: str
    outcome: str | None
    image: str
    data: str
    caption: str


def rows(design: DesignResult, key: str, model: type[Row]) -> list[Row]:
    """The rows of ``design.tables[key]`` as ``model``; a ``PlotTableError`` naming the
    design, the table, the row and the field otherwise."""
    parsed = []
    for i, raw in enumerate(design.tables[key]):
        try:
            parsed.append(model.model_validate(raw))
        except ValidationError as exc:
            problem = exc.errors()[0]
            field = ".".join(str(p) for p in problem["loc"]) or "row"
            raise PlotTableError(
                f"design {design.design}: tables[{key!r}] row {i}: {field}: {problem['msg']}"
            ) from None
    if not parsed:
        raise PlotTableError(f"design {design.design}: tables[{key!r}] has no rows")
    return parsed


def file_stem(design: str, kind: str, outcome: str | None = None) -> str:
    """A plot's file name without suffix: letters, digits, '_' and '-' only."""
    name = "_".join(p for p in (design, kind, outcome) if p)
    return re.sub(r"[^A-Za-z0-9_-]+", "-", name)


def write_plots(results: EvaluationResults, folder: Path) -> list[Plot]:
    """Every plot the designs' tables allow, written into ``folder/plots``; in the order of
    the designs, then of each design's outcomes (a design-wide plot first)."""
    target = folder / PLOTS_DIR
    target.mkdir(parents=True, exist_ok=True)
    written = []
    for design in results.designs:
        if BALANCE in design.tables:
            written.append(_balance(design, target))
        for outcome in design.outcomes:
            name = outcome.outcome
            if event_study_key(name) in design.tables:
                written.append(_event_study(design, name, outcome.label, target))
            if rd_bins_key(name) in design.tables:
                written.append(_discontinuity(design, name, outcome.label, target))
    return written


def _write(
    design: DesignResult,
    kind: str,
    outcome: str | None,
    caption: str,
    table: Sequence[_Row],
    draw: Callable[[Axes], None],
    target: Path,
) -> Plot:
    stem = file_stem(design.design, kind, outcome)
    _save_csv(target / f"{stem}.csv", [r.model_dump() for r in table])
    _save_png(target / f"{stem}.png", draw)
    return Plot(
        design.design, outcome, f"{PLOTS_DIR}/{stem}.png", f"{PLOTS_DIR}/{stem}.csv", caption
    )


def _save_csv(path: Path, records: list[dict[str, Any]]) -> None:
    columns = list(dict.fromkeys(name for record in records for name in record))
    with path.open("w", newline="", encoding="utf-8") as handle:
        write_rows(handle, columns, ([record.get(c) for c in columns] for record in records))


def _save_png(path: Path, draw: Callable[[Axes], None]) -> None:
    from matplotlib.figure import Figure

    figure = Figure(figsize=SIZE, dpi=DPI)
    axes = figure.subplots()
    draw(axes)
    axes.spines[["top", "right"]].set_visible(False)
    figure.tight_layout()
    figure.savefig(path, format="png", metadata={"Software": None})


def _event_study(design: DesignResult, outcome: str, label: str, target: Path) -> Plot:
    table = sorted(
        rows(design, event_study_key(outcome), EventStudyRow), key=lambda r: r.relative_period
    )

    def draw(ax: Axes) -> None:
        x = [r.relative_period for r in table]
        y = [r.estimate for r in table]
        below = [r.estimate - r.ci_low for r in table]
        above = [r.ci_high - r.estimate for r in table]
        ax.axhline(0, color=GREY, linewidth=1)
        ax.axvline(-0.5, color=DARK, linestyle="--", linewidth=1, label="go-live")
        ax.errorbar(
            x,
            y,
            yerr=[below, above],
            fmt="o",
            color=NHS_BLUE,
            ecolor=NHS_BLUE,
            markersize=4,
            capsize=2,
            label="estimate, 95% CI",
        )
        ax.set(
            xlabel="months relative to go-live (0 = first month on)",
            ylabel="effect on the rate",
            title=f"Event study: {label}",
        )
        ax.legend(frameon=False)

    caption = f"{label}: effect by month relative to go-live, with 95% intervals"
    return _write(design, EVENT_STUDY, outcome, caption, table, draw, target)


def _balance(design: DesignResult, target: Path) -> Plot:
    table = rows(design, BALANCE, BalanceRow)
    ordered = sorted(table, key=lambda r: abs(r.smd_before))

    def draw(ax: Axes) -> None:
        y = range(len(ordered))
        ax.scatter(
            [abs(r.smd_before) for r in ordered],
            y,
            marker="o",
            facecolors="none",
            edgecolors=GREY,
            label="before matching",
        )
        ax.scatter(
            [abs(r.smd_after) for r in ordered],
            y,
            marker="o",
            color=NHS_BLUE,
            label="after matching",
        )
        ax.axvline(
            SMD_TARGET, color=DARK, linestyle="--", linewidth=1, label=f"{SMD_TARGET} target"
        )
        ax.set_yticks(list(y), [r.feature for r in ordered], fontsize=8)
        ax.set(xlabel="absolute standardised mean difference", title="Balance of baseline features")
        ax.legend(frameon=False, loc="lower right")

    caption = "Balance: absolute standardised mean differences before and after matching"
    return _write(design, BALANCE, None, caption, table, draw, target)


def _discontinuity(design: DesignResult, outcome: str, label: str, target: Path) -> Plot:
    bins = rows(design, rd_bins_key(outcome), RdBinRow)
    fit = (
        rows(design, rd_fit_key(outcome), RdFitRow) if rd_fit_key(outcome) in design.tables else []
    )

    def draw(ax: Axes) -> None:
        for side, colour in (("below", GREY), ("above", NHS_BLUE)):
            chosen = [b for b in bins if b.side == side]
            ax.scatter(
                [b.score for b in chosen],
                [b.mean for b in chosen],
                s=14,
                color=colour,
                label=f"{side} the cut-off (binned means)",
            )
            line = sorted((f for f in fit if f.side == side), key=lambda f: f.score)
            if line:
                ax.plot([f.score for f in line], [f.fitted for f in line], color=colour)
        if fit and any(f.side == "above" for f in fit):
            cutoff = min(f.score for f in fit if f.side == "above")
            ax.axvline(cutoff, color=DARK, linestyle="--", linewidth=1, label="cut-off")
        ax.set(
            xlabel="risk score at the list run",
            ylabel="mean in the bin",
            title=f"At the cut-off: {label}",
        )
        ax.legend(frameon=False, fontsize=8)

    caption = f"{label}: binned means each side of the list's cut-off, with the local linear fits"
    return _write(design, "cutoff", outcome, caption, bins + fit, draw, target)
