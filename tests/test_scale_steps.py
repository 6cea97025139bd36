"""The scale benchmark's steps: every step at a size in its own measured process, one JSON
with them all, and England projected from their per-core rates."""

from __future__ import annotations

import json
import sys
from datetime import date
from pathlib import Path

import pytest

from riskstrat.bench.scale import Limits
from riskstrat.bench.scale_process import run_measured
from riskstrat.bench.scale_steps import (
    CLUSTER_CORES,
    ENGLAND_PEOPLE,
    PARALLEL_EFFICIENCY,
    RESULTS_FILE,
    ScaleBench,
    ScaleRun,
    StepFigures,
    england,
)
from riskstrat.common.errors import UserError
from riskstrat.sources.synthetic.borough import generate_to
from riskstrat.sources.synthetic.config import SynthConfig


def _figures(step: str, people: int, events: int, seconds: float | None) -> StepFigures:
    rate = round(events / seconds / 2) if seconds else None
    return StepFigures(step, 1, people, events, 2, seconds, 1.0, 1.0, rate)


def test_england_is_projected_from_each_steps_largest_completed_size() -> None:
    figures = [
        _figures("validate", 1_000, 80_000, 2.0),
        _figures("validate", 4_000, 320_000, 10.0),  # 16,000 events a second per core
        _figures("train", 1_000, 80_000, 4.0),  # 10,000
        _figures("train", 4_000, 320_000, None),  # did not fit: not a rate
    ]
    projected = england(figures)["steps"]
    assert list(projected) == ["validate", "train"]
    assert projected["validate"]["from_people"] == 4_000
    assert projected["train"]["from_people"] == 1_000
    events = 80 * ENGLAND_PEOPLE
    assert projected["validate"]["core_hours"] == round(events / 16_000 / 3600, 1)
    assert projected["train"]["cluster_minutes"] == round(
        events / 10_000 / 60 / (CLUSTER_CORES * PARALLEL_EFFICIENCY), 1
    )


def test_a_measured_command_reports_its_peak_and_failure(tmp_path: Path) -> None:
    grow = "import sys; b = bytearray(200 * 2**20); b[::4096] = b'x' * len(b[::4096]); sys.exit(3)"
    done = run_measured(["python3", "-c", grow], tmp_path / "log")
    assert done.returncode == 3
    assert done.peak_process >= 200 * 2**20 and done.peak_tree >= done.peak_process


def _touch(mib: int) -> bytearray:
    """``mib`` MiB made resident."""
    block = bytearray(mib * 2**20)
    block[::4096] = b"x" * len(block[::4096])
    return block


def test_a_step_reports_its_own_peak_not_the_measuring_process(tmp_path: Path) -> None:
    """A child of a large process starts with that process's high-water mark (Linux keeps
    ``ru_maxrss`` across fork and exec): a small step measured by a benchmark that has held
    a lot, and after a step that used a lot, must still report little."""
    held = _touch(400)  # the benchmark copying tables in its own process
    big = f"b = bytearray({300 * 2**20}); b[::4096] = b'x' * len(b[::4096])"
    large = run_measured([sys.executable, "-c", big], tmp_path / "large.log")
    small = run_measured([sys.executable, "-c", "pass"], tmp_path / "small.log")
    del held
    assert large.peak_process >= 300 * 2**20
    assert small.peak_process < 100 * 2**20 and small.peak_tree < 100 * 2**20


def test_a_steps_processes_are_all_measured_even_when_left_behind(tmp_path: Path) -> None:
    """A grandchild its parent never waits for (as Spark's JVM) is still the step's."""
    grandchild = (
        f"import time; b = bytearray({250 * 2**20}); b[::4096] = b'x' * len(b[::4096]); "
        "time.sleep(0.5)"
    )
    orphan = f"import subprocess, sys; subprocess.Popen([sys.executable, '-c', {grandchild!r}])"
    done = run_measured([sys.executable, "-c", orphan], tmp_path / "log")
    assert done.returncode == 0
    assert done.peak_process >= 250 * 2**20 and done.peak_tree >= 250 * 2**20


def test_an_unknown_step_is_a_user_error() -> None:
    with pytest.raises(UserError, match="unknown step"):
        ScaleRun((1,), ("validate", "score"), date(2026, 10, 31), date(2025, 1, 1), date.today())


@pytest.mark.slow
def test_one_command_measures_every_step_into_one_json(tmp_path: Path) -> None:
    """The steps on the engine's side (train and weekly, each a whole command with a model
    fitted and registered, would double ``make test``'s share of this file; the Spark feature
    step is the one ``bench features --scale`` has measured all along)."""
    borough = tmp_path / "borough"
    generate_to(SynthConfig(patients=600, seed=2), borough)
    steps = ("validate", "features-duckdb")
    said: list[str] = []
    limits = Limits("1GB", tmp_path / "spill")
    for step in steps:  # split by --step, as a long run is: one JSON all the same
        run = ScaleRun((1,), (step,), date(2026, 10, 31), date(2025, 1, 1), date(2026, 10, 26))
        ScaleBench(borough, tmp_path / "scale", run, limits, said.append).measure_all()
    body = json.loads((tmp_path / "scale" / RESULTS_FILE).read_text())
    measured = {row["step"]: row for row in body["steps"]}
    assert list(measured) == list(steps)
    for step, row in measured.items():
        assert row["error"] is None, f"{step}: {row['error']}"
        assert row["seconds"] > 0 and row["peak_tree_gib"] >= row["peak_process_gib"] > 0
        assert row["events"] > 0 and row["people"] > 0 and row["measured"]
    assert list(body["england"]["steps"]) == list(steps)
    assert 0 < measured["features-duckdb"]["query_seconds"] < measured["features-duckdb"]["seconds"]
