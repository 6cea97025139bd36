"""The scale benchmark, step by step: ``validate``, features on each engine, ``train`` and one
``weekly`` run at each size (in copies of one raw borough), and England projected from them.

Each step is the public command (or, for features, ``scale.measure``) in a fresh process,
every step recorded the same way (``scale_process.run_measured``): its time is the wall
clock of the whole process, imports and engine start included, and its memory that of its
own processes, not inherited from the benchmark's (the whole tree at once, sampled from
``/proc``, and the exact peak of the largest single process). The steps of a size feed one
another: ``validate`` turns the raw copies into the validated tables that features,
``train`` and ``weekly`` read, and ``weekly`` scores with the model ``train`` made (promoted
first, unmeasured). A step that is not selected but is needed by one that is runs first,
unmeasured. A failed step (a 5-million-person ``train`` may not fit) is recorded with the
end of its error and the steps that need it are skipped. Every figure goes to
``<work>/scale.json`` as soon as it is measured, in place of an earlier run's figure for the
same step and size (so a run split by ``--step`` ends in one file).
"""

from __future__ import annotations

import json
import os
import platform
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, date, datetime
from pathlib import Path

import duckdb
import pyarrow.parquet as pq

from riskstrat.bench.scale import CORES, PARTS, Limits, built, features_command, write_copies
from riskstrat.bench.scale_process import Finished, run_measured
from riskstrat.common.errors import UserError
from riskstrat.contract.schema import TABLES

STEPS = ("validate", "features-duckdb", "features-spark", "train", "weekly")
RESULTS_FILE = "scale.json"
ENGLAND_PEOPLE = 57_000_000  # registered with a GP practice in England, rounded
CLUSTER_CORES = 256  # the projection's cluster: e.g. 32 workers of 8 cores
PARALLEL_EFFICIENCY = 0.7  # share of the per-core rate kept when the work is spread out
ASSUMPTIONS = (
    f"England: {ENGLAND_PEOPLE:,} registered people, each with as many events as a person "
    "of the synthetic borough (events per person taken from the largest size measured).",
    "Each step's rate is its events per second per core at the largest size it completed "
    f"on this machine ({CORES} cores: DuckDB threads, Spark local[{CORES}], LightGBM "
    "threads), and stays the same at any size (the rates measured at 1.06 and 5 million "
    "people show whether it does).",
    f"On a cluster of {CLUSTER_CORES} cores, spread with {PARALLEL_EFFICIENCY:.0%} "
    "efficiency: wall minutes = 60 x core hours / (cores x efficiency). Steps that run on one "
    "machine today (validate, train, weekly) are assumed to spread as features on Spark "
    "do; that is a projection of the work, not of today's code.",
    "Memory per worker is taken to be the peak measured here at the largest size, which "
    "holds when the step's memory is bounded (flat in people); where it grows with people "
    "the step must be split by population (for example by integrated care board).",
)


@dataclass(frozen=True, slots=True)
class ScaleRun:
    """What to measure: sizes in borough copies, steps, and the dates the steps use."""

    sizes: tuple[int, ...]
    steps: tuple[str, ...]
    extract_date: date
    as_of: date  # the features' as-of date
    week: date  # the weekly run's date
    train_engine: str = "duckdb"

    def __post_init__(self) -> None:
        unknown = [s for s in self.steps if s not in STEPS]
        if unknown:
            raise UserError(f"unknown step(s): {', '.join(unknown)} (choose from {STEPS})")
        if not self.sizes or min(self.sizes) < 1:
            raise UserError(f"sizes must be one or more copies, got {self.sizes}")
        # in pipeline order, so that what a step needs is measured before it
        object.__setattr__(self, "steps", tuple(s for s in STEPS if s in self.steps))


@dataclass(frozen=True, slots=True)
class StepFigures:
    """One step at one size: a row of the scale table."""

    step: str
    copies: int
    people: int
    events: int
    cores: int
    seconds: float | None
    peak_tree_gib: float | None
    peak_process_gib: float | None
    events_per_second_per_core: int | None
    error: str | None = None
    measured: str | None = None  # when (UTC): a run split by ``--step`` spans hours
    query_seconds: float | None = None  # features: the engine's feature query alone
    note: str | None = None  # what makes the figure not what it seems (repeated people)


@dataclass
class _Size:
    """One size's folders, and what has been made there."""

    work: Path
    copies: int
    people: int = 0
    events: int = 0
    failed: set[str] = field(default_factory=set)

    @property
    def raw(self) -> Path:
        return self.work / f"raw-{self.copies}"

    @property
    def validated(self) -> Path:
        return self.work / f"validated-{self.copies}"

    @property
    def workdir(self) -> Path:
        return self.work / f"workdir-{self.copies}"

    def log(self, step: str) -> Path:
        return self.work / "logs" / f"{step}-{self.copies}.log"


def contract_folder(parts: Path, target: Path, copies: int, limits: Limits) -> Path:
    """The first ``copies`` parts of each table as one contract folder (one file a table,
    as ``validate`` reads), written by a memory-capped DuckDB; kept once whole."""
    if (target / ".whole").exists():
        return target
    target.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect()
    con.execute(f"SET memory_limit = '{limits.memory}'")
    con.execute(f"SET temp_directory = '{limits.spill_dir}'")
    for table in TABLES:
        files = [str(parts / table.name / f"part-{k:04d}.parquet") for k in range(copies)]
        con.execute(
            f"COPY (SELECT * FROM read_parquet({files!r})) TO '{target / table.file_name}' "
            "(FORMAT parquet, ROW_GROUP_SIZE 1000000)"
        )
    con.close()
    (target / ".whole").touch()
    return target


def _marker(size: _Size, step: str) -> Path:
    """The file that shows ``step`` completed at ``size``."""
    if step == "validate":
        return size.validated / "tables.json"
    return size.workdir / f".{step}-done"


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "riskstrat.cli", *args]


class ScaleBench:
    """Runs the steps of a ``ScaleRun`` on copies of ``boroughs`` (raw tables; copy ``k`` of
    borough ``k`` modulo their number) under ``work``."""

    def __init__(
        self,
        boroughs: Path | Sequence[Path],
        work: Path,
        run: ScaleRun,
        limits: Limits,
        say: Callable[[str], None],
    ) -> None:
        self.boroughs = (boroughs,) if isinstance(boroughs, Path) else tuple(boroughs)
        self.work, self.run, self.limits, self.say = work, run, limits, say
        self.figures = _earlier(work / RESULTS_FILE)

    def measure_all(self) -> dict:
        """Every selected step at every size, smallest first; returns the JSON written."""
        self.work.mkdir(parents=True, exist_ok=True)
        self.limits.spill_dir.mkdir(parents=True, exist_ok=True)
        write_copies(self.boroughs, self.work, max(self.run.sizes), self.limits)
        for copies in sorted(self.run.sizes):
            size = _Size(self.work, copies)
            contract_folder(self.work / PARTS, size.raw, copies, self.limits)
            size.people = pq.ParquetFile(size.raw / "patients.parquet").metadata.num_rows
            size.events = pq.ParquetFile(size.raw / "events.parquet").metadata.num_rows
            for step in self.run.steps:
                self._step(size, step, measured=True)
        return self.save()

    # ---- the steps -------------------------------------------------------------------

    def _step(self, size: _Size, step: str, *, measured: bool) -> bool:
        """Run ``step`` at ``size`` (first what it needs); record it if ``measured``."""
        needs = {"validate": (), "train": ("validate",), "weekly": ("validate", "promote")}
        for need in needs.get(step, ("validate",)):
            if not self._ready(size, need):
                return self._skipped(size, step, need) if measured else False
        prepare = "" if measured else " (preparing, not measured)"
        self.say(f"{step}: {size.copies} copies ({size.people:,} people){prepare}")
        if step == "train" and measured and self._repeated(size):
            self.say(f"  note: {self._repeated(size)}")
        finished = run_measured(self._command(size, step), size.log(step))
        ok = finished.returncode == 0
        if not ok:
            size.failed.add(step)
        elif step in ("train", "promote"):
            _marker(size, step).touch()
        if measured:
            self._record(size, step, finished if ok else None, None if ok else finished.stderr)
        return ok

    def _repeated(self, size: _Size) -> str | None:
        """Why ``train`` at ``size`` is not a fit on as many different people, if it is not."""
        if size.copies <= len(self.boroughs):
            return None
        return (
            f"{size.copies} copies of {len(self.boroughs)} borough(s) repeat people, whom "
            "training's patient split puts in different parts: early stopping sees its own "
            "training people and runs to max_rounds (give as many boroughs as copies)"
        )

    def _ready(self, size: _Size, step: str) -> bool:
        """Whether ``step``'s output exists at ``size``, making it (unmeasured) if not."""
        if step in size.failed:
            return False
        if _marker(size, step).exists():
            return True
        if step == "promote" and not self._ready(size, "train"):
            return False
        return self._step(size, step, measured=False)

    def _command(self, size: _Size, step: str) -> list[str]:
        run = self.run
        if step == "validate":
            return _cli(
                "validate",
                *("--data", str(size.raw), "--out", str(size.validated)),
                *("--extract-date", run.extract_date.isoformat()),
            )
        if step == "train":
            return _cli(
                "train",
                *("--data", str(size.validated), "--workdir", str(size.workdir)),
                *("--engine", run.train_engine),
            )
        if step == "promote":
            return _cli("promote", "--data", str(size.validated), "--workdir", str(size.workdir))
        if step == "weekly":
            return _cli(
                "weekly",
                *("--data", str(size.validated), "--workdir", str(size.workdir)),
                *("--as-of", run.week.isoformat(), "--out", str(size.workdir / "lists")),
            )
        if step.startswith("features-"):
            engine = step.removeprefix("features-")
            out = self._features_out(size, step)
            return features_command(engine, self._tables(size), run.as_of, self.limits, out)  # type: ignore[arg-type]
        raise ValueError(f"no command for step {step!r}")

    def _features_out(self, size: _Size, step: str) -> Path:
        return self.work / "features" / f"{step.removeprefix('features-')}-{size.copies}.parquet"

    def _tables(self, size: _Size) -> Path:
        """The validated tables at ``size`` as the feature benchmark reads them: a folder
        of parts per table (here one, a link)."""
        tables = self.work / f"validated-tables-{size.copies}"
        for table in TABLES:
            (tables / table.name).mkdir(parents=True, exist_ok=True)
            link = tables / table.name / "part-0000.parquet"
            if not link.exists():
                link.symlink_to((size.validated / table.file_name).resolve())
        return tables

    # ---- the figures -----------------------------------------------------------------

    def _skipped(self, size: _Size, step: str, need: str) -> bool:
        self._record(size, step, None, f"skipped: {need} did not complete at this size")
        return False

    def _record(self, size: _Size, step: str, done: Finished | None, error: str | None) -> None:
        self._add(
            StepFigures(
                step=step,
                copies=size.copies,
                people=size.people,
                events=size.events,
                cores=CORES,
                seconds=round(done.seconds, 1) if done else None,
                peak_tree_gib=round(done.peak_tree / 2**30, 2) if done else None,
                peak_process_gib=round(done.peak_process / 2**30, 2) if done else None,
                events_per_second_per_core=(
                    round(size.events / done.seconds / CORES) if done else None
                ),
                error=error,
                query_seconds=self._query_seconds(size, step) if done else None,
                note=self._repeated(size) if step == "train" else None,
            )
        )

    def _query_seconds(self, size: _Size, step: str) -> float | None:
        """A feature step's query time as its process measured it (the engines compared)."""
        if not step.startswith("features-"):
            return None
        return json.loads(built(self._features_out(size, step)).read_text())["seconds"]

    def _add(self, figures: StepFigures) -> None:
        """Record ``figures``, in place of an earlier run's of the same step and size."""
        figures = replace(figures, measured=_now())
        same = (figures.step, figures.copies)
        self.figures = [f for f in self.figures if (f.step, f.copies) != same] + [figures]
        self.say(f"  {asdict(figures)}")
        self.save()

    def save(self) -> dict:
        body = {
            "measured": _now(),
            "machine": machine(),
            "run": {
                **asdict(self.run),
                **{k: getattr(self.run, k).isoformat() for k in ("extract_date", "as_of", "week")},
                "memory_limit": self.limits.memory,
                "boroughs": [str(b) for b in self.boroughs],
            },
            "steps": [asdict(f) for f in self.figures],
            "england": england(self.figures),
        }
        (self.work / RESULTS_FILE).write_text(json.dumps(body, indent=2) + "\n")
        return body


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _earlier(results: Path) -> list[StepFigures]:
    """The figures an earlier run left in ``results`` (a run split by ``--step`` adds to
    them; measure into another folder to start afresh)."""
    if not results.exists():
        return []
    return [StepFigures(**row) for row in json.loads(results.read_text())["steps"]]


def machine() -> dict:
    """The machine the figures were taken on."""
    pages = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    return {
        "cores": os.cpu_count(),
        "memory_gib": round(pages / 2**30, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def england(figures: list[StepFigures]) -> dict:
    """Core hours and minutes on the cluster for England per step, from its largest completed
    size."""
    largest: dict[str, StepFigures] = {}
    for f in figures:
        if f.seconds and (f.step not in largest or f.people > largest[f.step].people):
            largest[f.step] = f
    steps = {}
    for step, f in sorted(largest.items(), key=lambda item: STEPS.index(item[0])):
        events = f.events / f.people * ENGLAND_PEOPLE
        core_hours = events / f.events_per_second_per_core / 3600
        steps[step] = {
            "from_people": f.people,
            "events": round(events),
            "events_per_second_per_core": f.events_per_second_per_core,
            "core_hours": round(core_hours, 1),
            "cluster_minutes": round(60 * core_hours / (CLUSTER_CORES * PARALLEL_EFFICIENCY), 1),
            "peak_gib_per_worker": f.peak_tree_gib,
        }
    return {
        "people": ENGLAND_PEOPLE,
        "cluster_cores": CLUSTER_CORES,
        "parallel_efficiency": PARALLEL_EFFICIENCY,
        "assumptions": list(ASSUMPTIONS),
        "steps": steps,
    }
