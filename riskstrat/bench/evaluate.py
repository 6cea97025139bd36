"""``riskstrat bench-evaluate``: does each design find the effect the generator put in?

For each seed a mid-size borough is generated twice, once with the interventions' effects
and once with every effect set to none (the roll-out, the lists and the events stay). The
built-in plans are evaluated on both, and each estimate is compared with the generator's
truth, computed from the hazards with and without the intervention along the same simulated
paths (``truth/``). Reported per design and outcome: bias (mean estimate minus truth, also as
a share of the truth), coverage of the truth by the 95% interval, and the false-positive
rate (intervals excluding no effect when there is none), with the seconds each took.
"""

from __future__ import annotations

import json
import shutil
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, replace
from datetime import date
from multiprocessing import get_context
from pathlib import Path

import numpy as np
import pandas as pd

from riskstrat.common.progress import QUIET, Progress
from riskstrat.common.spreadsheet import write_frame
from riskstrat.impact.plan import BUILT_IN_PLANS, PLANS, LoadedPlan, load_plan
from riskstrat.impact.results import ANSWERED, DesignResult, EvaluationResults, OutcomeResult
from riskstrat.impact.run import evaluate
from riskstrat.sources.synthetic.borough import TRUTH_DIR, generate, write
from riskstrat.sources.synthetic.config import SynthConfig

TARGETS = {"coverage": (0.90, 0.98), "relative_bias": 0.10, "false_positive_rate": 0.08}


@dataclass(frozen=True, slots=True)
class Truth:
    """The true effect in the units a design reports (a rate difference per person-year, a
    rate ratio, or a difference per person who took up the action), and no effect's value."""

    value: float
    null: float


def design_truth(
    design: DesignResult, outcome: OutcomeResult, loaded: LoadedPlan, truth_dir: Path
) -> Truth:
    """The generator's true effect matching one design's estimate, over the same months."""
    plan = loaded.plan
    first, end = pd.Timestamp(design.first_month), pd.Timestamp(design.end_month)
    if design.design == "rd":
        actions = pd.read_parquet(truth_dir / "list_actions.parquet")
        run = actions[(actions["run"] == pd.Timestamp(plan.rd.run)) & (actions["action"] != "none")]
        near = run[(run["score"] - plan.rd.cutoff).abs() <= (outcome.bandwidth or np.inf)]
        taken = near if len(near) else run
        difference = (taken["expected_treated"] - taken["expected_untreated"]).sum()
        return Truth(float(12 * difference / taken["person_months"].sum()), 0.0)
    effects = pd.read_parquet(truth_dir / "effects.parquet")
    rows = effects[
        (effects["intervention"] == plan.plan.intervention)
        & (effects["outcome"] == outcome.outcome)
        & (effects["month"] >= first)
        & (effects["month"] < end)
    ]
    if design.design == "did":
        difference = (rows["expected_treated"] - rows["expected_untreated"]).sum()
        return Truth(float(12 * difference / rows["person_months"].sum()), 0.0)
    treated = [pd.Timestamp(plan.units.start[u]) for u in plan.matched.treated_units]
    rows = rows[rows["cohort"].isin(treated)]
    return Truth(float(rows["expected_treated"].sum() / rows["expected_untreated"].sum()), 1.0)


def _rows(
    results: EvaluationResults, loaded: LoadedPlan, truth_dir: Path, seed: int, effects: str
) -> list[dict]:
    rows = []
    for design in results.designs:
        for outcome in design.outcomes:
            if not np.isfinite(outcome.effect.estimate):
                continue
            truth = design_truth(design, outcome, loaded, truth_dir)
            target = truth.value if effects == "true" else truth.null
            rows.append(
                {
                    "seed": seed,
                    "effects": effects,
                    "design": design.design,
                    "outcome": outcome.outcome,
                    "estimate": outcome.effect.estimate,
                    "ci_low": outcome.effect.ci_low,
                    "ci_high": outcome.effect.ci_high,
                    "truth": target,
                    "covered": outcome.effect.ci_low <= target <= outcome.effect.ci_high,
                    "rejects_null": outcome.effect.excludes(truth.null),
                    "verdict": outcome.verdict,
                    "seconds": design.seconds,
                }
            )
    return rows


def summarise(rows: pd.DataFrame) -> pd.DataFrame:
    """Bias, coverage and false positives per design and outcome."""
    out = []
    for (design, outcome), group in rows.groupby(["design", "outcome"], sort=False):
        true, null = group[group["effects"] == "true"], group[group["effects"] == "null"]
        mean_truth = true["truth"].mean()
        error = true["estimate"] - true["truth"]
        bias = error.mean()
        reference = mean_truth - (1.0 if design == "matched" else 0.0)
        out.append(
            {
                "design": design,
                "outcome": outcome,
                "seeds": int(true["seed"].nunique()),
                "mean_truth": mean_truth,
                "mean_estimate": true["estimate"].mean(),
                "bias": bias,
                "bias_se": error.std(ddof=1) / np.sqrt(len(error)) if len(error) > 1 else np.nan,
                "relative_bias": abs(bias / reference) if reference else np.nan,
                "answered_share": (true["verdict"] == ANSWERED).mean(),
                "coverage": true["covered"].mean(),
                "false_positive_rate": null["rejects_null"].mean() if len(null) else np.nan,
                "null_coverage": null["covered"].mean() if len(null) else np.nan,
                "seconds": group["seconds"].median(),
            }
        )
    return pd.DataFrame(out)


def _one_seed(seed: int, patients: int, work: Path) -> tuple[list[dict], list[dict]]:
    """Both boroughs of one seed (effects on, every effect none), each plan evaluated on
    each, compared with the truth; the boroughs are removed afterwards."""
    plans = [load_plan(PLANS / name) for name in BUILT_IN_PLANS]
    rows: list[dict] = []
    timings: list[dict] = []
    for effects in ("true", "null"):
        config = SynthConfig(patients=patients, seed=seed, truth_as_of=())
        if effects == "null":
            config = replace(config, interventions=config.interventions.null_effects())
        began = time.perf_counter()
        borough_dir = work / f"seed-{seed}-{effects}"
        write(generate(config), borough_dir)
        generated = time.perf_counter() - began
        for loaded in plans:
            began = time.perf_counter()
            out = work / f"eval-{seed}-{effects}-{loaded.path.stem}"
            results = evaluate(borough_dir, loaded.path, out)
            timings.append(
                {
                    "seed": seed,
                    "effects": effects,
                    "plan": loaded.path.stem,
                    "generate_seconds": generated,
                    "evaluate_seconds": time.perf_counter() - began,
                }
            )
            rows += _rows(results, loaded, borough_dir / TRUTH_DIR, seed, effects)
            shutil.rmtree(out)
        shutil.rmtree(borough_dir)
    return rows, timings


def bench_evaluate(
    out: Path,
    seeds: tuple[int, ...],
    patients: int,
    work: Path,
    jobs: int = 1,
    progress: Progress | None = None,
) -> pd.DataFrame:
    """Generate, evaluate and compare with the truth for every seed (``jobs`` seeds at a
    time, each in its own process); write the figures."""
    say = progress or QUIET
    rows: list[dict] = []
    timings: list[dict] = []
    began = time.perf_counter()
    with ProcessPoolExecutor(max_workers=jobs, mp_context=get_context("spawn")) as pool:
        futures = [pool.submit(_one_seed, seed, patients, work) for seed in seeds]
        for done, future in enumerate(as_completed(futures)):
            seed_rows, seed_timings = future.result()
            rows += seed_rows
            timings += seed_timings
            say.advance("seeds", done + 1, len(seeds))
    frame = pd.DataFrame(rows).sort_values(["seed", "effects", "design", "outcome"])
    summary = summarise(frame)
    out.mkdir(parents=True, exist_ok=True)
    write_frame(frame, out / "bench_evaluate_runs.csv")
    figures = {
        "date": date.today().isoformat(),
        "patients": patients,
        "seeds": list(seeds),
        "jobs": jobs,
        "wall_seconds": round(time.perf_counter() - began),
        "targets": TARGETS,
        "summary": summary.to_dict(orient="records"),
        "median_seconds": pd.DataFrame(timings)
        .groupby("plan")[["generate_seconds", "evaluate_seconds"]]
        .median()
        .round(1)
        .to_dict(orient="index"),
    }
    (out / "bench_evaluate.json").write_text(json.dumps(figures, indent=2, default=float))
    return summary
