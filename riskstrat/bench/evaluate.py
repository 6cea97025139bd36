"""``riskstrat bench-evaluate``: does each design find the effect the generator put in?

For each seed a mid-size borough is generated twice, once with the interventions' effects
and once with every effect set to none (the roll-out, the lists and the events stay). The
built-in plans are evaluated on both, and each estimate is compared with the generator's
truth, computed from the hazards with and without the intervention along the same simulated
paths (``truth/``). Reported per design and outcome: bias (mean estimate minus truth, also as
a share of the truth), coverage of the truth by the 95% interval, and the false-positive
rate (intervals excluding no effect when there is none), with the seconds each took. For
the difference-in-differences also the pre-trend test's rejection rate: no design's effect
reaches a month before go-live, so every borough, with effects or without, is a true null
for it. Every share comes with its binomial standard error.

Each seed's rows are written to ``seeds/seed-N-PATIENTS.json`` in the output folder as soon
as it finishes, and a seed already there is not run again: a long run interrupted resumes
where it stopped, and adding seeds re-uses the ones done (remove the folder after changing a
design, or the old seeds are counted with the new).
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

from riskstrat.common.months import month_start
from riskstrat.common.progress import QUIET, Progress
from riskstrat.common.spreadsheet import write_frame
from riskstrat.impact.plan import BUILT_IN_PLANS, PLANS, LoadedPlan, load_plan
from riskstrat.impact.power import ALPHA
from riskstrat.impact.results import (
    ANSWERED,
    DesignResult,
    EvaluationResults,
    Interval,
    OutcomeResult,
)
from riskstrat.impact.run import evaluate
from riskstrat.sources.synthetic.borough import MANIFEST, TRUTH_DIR, generate, write
from riskstrat.sources.synthetic.config import SynthConfig
from riskstrat.sources.synthetic.list_actions import ACTION_KINDS
from riskstrat.sources.synthetic.locality_model import LOCALITY_MODEL

TARGETS = {
    "coverage": (0.90, 0.98),
    "relative_bias": 0.10,
    "false_positive_rate": 0.08,
    "pretrend_rejection_rate": 0.08,
}
SEEDS_DIR = "seeds"
PRE_TREND = "pre-trend: "


@dataclass(frozen=True, slots=True)
class Truth:
    """The true effect in the units a design reports (a rate difference per person-year, a
    rate ratio, or a difference per person who took up the action), and no effect's value."""

    value: float
    null: float


def design_truth(
    design: DesignResult, outcome: OutcomeResult, loaded: LoadedPlan, truth_dir: Path
) -> Truth | None:
    """The generator's true effect matching one design's estimate, over the same months;
    None where the truth does not say (a lottery's outcomes other than admissions)."""
    plan = loaded.plan
    if design.design == "lottery":
        if outcome.outcome not in LOTTERY_OUTCOMES:
            return None
        return _lottery_truth(design, loaded, truth_dir)
    if design.design == "rd":
        actions = pd.read_parquet(truth_dir / "list_actions.parquet")
        run = actions[(actions["run"] == pd.Timestamp(plan.rd.run)) & (actions["action"] != "none")]
        near = run[(run["score"] - plan.rd.cutoff).abs() <= (outcome.bandwidth or np.inf)]
        taken = near if len(near) else run
        difference = (taken["expected_treated"] - taken["expected_untreated"]).sum()
        return Truth(float(12 * difference / taken["person_months"].sum()), 0.0)
    rows = _design_rows(design, outcome.outcome, loaded, truth_dir)
    if design.design == "did":
        difference = (rows["expected_treated"] - rows["expected_untreated"]).sum()
        return Truth(float(12 * difference / rows["person_months"].sum()), 0.0)
    return Truth(float(rows["expected_treated"].sum() / rows["expected_untreated"].sum()), 1.0)


LOTTERY_OUTCOMES = ("emergency_admissions", "avoidable_admissions")
"""The outcomes the prevented admissions are the truth of (every one is avoidable)."""


def _lottery_truth(design: DesignResult, loaded: LoadedPlan, truth_dir: Path) -> Truth:
    """The offer's true effect on admissions per person over the follow-up: minus the
    admissions the help drawn for would prevent, averaged over everyone in the draws of the
    runs the design covers, times the share of those drawn who take it up (every prevented
    admission is an avoidable one, so emergency and avoidable admissions share it)."""
    actions = pd.read_parquet(truth_dir / "list_actions.parquet")
    follow_up = loaded.plan.lottery.follow_up_months
    ends = actions["run"].map(lambda run: pd.Timestamp(month_start(run.date(), follow_up)))
    drawn = actions[
        (actions["drawn_for"] != "none")
        & (actions["run"] >= pd.Timestamp(design.first_month))
        & (ends <= pd.Timestamp(design.end_month))
    ]
    prevented = np.select(
        [drawn["drawn_for"] == action for action in ACTION_KINDS],
        [drawn[f"prevented_{action}"] for action in ACTION_KINDS],
    )
    config = json.loads((truth_dir.parent / MANIFEST).read_text())["config"]
    uptake = config["interventions"]["list_actions"]["uptake"]
    return Truth(float(-uptake * prevented.mean()), 0.0)


def relative_truth(
    design: DesignResult, outcome: str, loaded: LoadedPlan, truth_dir: Path
) -> float:
    """The generator's true relative change in ``outcome`` over a design's months and
    cohorts (-0.24: 24% fewer), whatever measure the design reports in."""
    rows = _design_rows(design, outcome, loaded, truth_dir)
    return float(rows["expected_treated"].sum() / rows["expected_untreated"].sum() - 1)


def _pre_trend_p(design: DesignResult, outcome: OutcomeResult) -> float:
    """The p-value of the design's pre-trend test for ``outcome``; NaN when it has none."""
    for check in design.checks:
        if check.name == PRE_TREND + outcome.label and check.value is not None:
            return float(check.value)
    return np.nan


FRAILTY = "has_frailty"
"""The subgroup the generator's locality model splits its admission hazard ratio by."""
ADMISSION_HAZARD_OUTCOMES = (
    "emergency_admissions",
    "avoidable_admissions",
    "care_home_resident_admissions",
)
"""The outcomes the locality model moves by exactly its admission hazard ratio."""


def subgroup_truth(
    design: DesignResult, outcome: str, level: str, loaded: LoadedPlan, truth_dir: Path
) -> Truth | None:
    """The true relative change at one level of ``has_frailty`` (1: frailty coded before
    the baseline, exactly the generator's split), or None where the truth does not split.

    The truth files hold each cohort's total effect, not split by frailty; the generator
    multiplies the admission hazard of the managed by ``admission_hr_frail`` or
    ``admission_hr_not_frail`` (``synth_manifest.json``). The total effect is a little
    larger than that direct effect (a prevented admission lowers later hazards): each
    level's direct change ``hr - 1`` is scaled by the design's total over direct effect over
    the same months and cohorts (``effects.parquet``: expected_* against path_*), taken to be
    the same at both levels (about 1.05 on the built-in borough)."""
    if (
        outcome not in ADMISSION_HAZARD_OUTCOMES
        or level not in ("0", "1")
        or loaded.plan.plan.intervention != LOCALITY_MODEL
    ):
        return None
    config = json.loads((truth_dir.parent / MANIFEST).read_text())["config"]
    model = config["interventions"]["locality_model"]
    hazard_ratio = model["admission_hr_frail" if level == "1" else "admission_hr_not_frail"]
    rows = _design_rows(design, outcome, loaded, truth_dir)
    direct = 1 - rows["path_treated"].sum() / rows["path_untreated"].sum()
    total = 1 - rows["expected_treated"].sum() / rows["expected_untreated"].sum()
    scale = total / direct if direct > 0 else 1.0
    return Truth(float((hazard_ratio - 1) * scale), 0.0)


def _design_rows(
    design: DesignResult, outcome: str, loaded: LoadedPlan, truth_dir: Path
) -> pd.DataFrame:
    """The truth's rows a design's estimate covers: its months, and the matched comparison's
    treated cohorts."""
    plan = loaded.plan
    effects = pd.read_parquet(truth_dir / "effects.parquet")
    rows = effects[
        (effects["intervention"] == plan.plan.intervention)
        & (effects["outcome"] == outcome)
        & (effects["month"] >= pd.Timestamp(design.first_month))
        & (effects["month"] < pd.Timestamp(design.end_month))
    ]
    if design.design == "matched":
        treated = [pd.Timestamp(plan.units.start[u]) for u in plan.matched.treated_units]
        rows = rows[rows["cohort"].isin(treated)]
    return rows


def subgroup_rows(
    results: EvaluationResults, loaded: LoadedPlan, truth_dir: Path, seed: int, effects: str
) -> list[dict]:
    """Each design's frail and non-frail relative changes, and their difference, against the
    truth: rows in ``_rows``' columns, the design named ``<design>/has_frailty`` and the
    outcome ``<outcome> <level>`` (``1-0`` for the difference), all on the relative scale."""
    rows = []
    for design in results.designs:
        for subgroup in (s for s in design.subgroups if s.by == FRAILTY):
            truths = {}
            for effect in subgroup.effects:
                truth = subgroup_truth(design, effect.outcome, effect.level, loaded, truth_dir)
                truths[effect.outcome, effect.level] = truth
                if truth is not None and effect.relative is not None:
                    rows.append(
                        _compared(
                            design,
                            f"{effect.outcome} {effect.level}",
                            effect.relative,
                            truth,
                            effect.verdict,
                            seed,
                            effects,
                        )
                    )
            for test in subgroup.interactions:
                one = truths.get((test.outcome, test.level))
                other = truths.get((test.outcome, test.reference))
                if one is None or other is None or test.difference is None:
                    continue
                truth = Truth(one.value - other.value, 0.0)
                name = f"{test.outcome} {test.level}-{test.reference}"
                rows.append(
                    _compared(design, name, test.difference, truth, test.verdict, seed, effects)
                )
    return rows


def _compared(
    design: DesignResult,
    outcome: str,
    value: Interval,
    truth: Truth,
    verdict: str,
    seed: int,
    effects: str,
) -> dict:
    target = truth.value if effects == "true" else truth.null
    return {
        "seed": seed,
        "effects": effects,
        "design": f"{design.design}/{FRAILTY}",
        "outcome": outcome,
        "estimate": value.estimate,
        "ci_low": value.ci_low,
        "ci_high": value.ci_high,
        "truth": target,
        "covered": value.ci_low <= target <= value.ci_high,
        "rejects_null": value.excludes(truth.null),
        "pre_trend_p": np.nan,  # a subgroup's pre-trends are its design's
        "verdict": verdict,
        "seconds": design.seconds,
    }


def _rows(
    results: EvaluationResults, loaded: LoadedPlan, truth_dir: Path, seed: int, effects: str
) -> list[dict]:
    rows = []
    for design in results.designs:
        for outcome in design.outcomes:
            if not np.isfinite(outcome.effect.estimate):
                continue
            truth = design_truth(design, outcome, loaded, truth_dir)
            if truth is None:
                continue
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
                    "pre_trend_p": _pre_trend_p(design, outcome),
                    "verdict": outcome.verdict,
                    "seconds": design.seconds,
                }
            )
    return rows


def _share(flags: pd.Series) -> tuple[float, float]:
    """The share of True among ``flags`` (NaN ignored) and its binomial standard error."""
    values = flags.dropna().astype(bool)
    if values.empty:
        return np.nan, np.nan
    share = float(values.mean())
    return share, float(np.sqrt(share * (1 - share) / len(values)))


def _se(values: pd.Series) -> float:
    """The standard error of the mean of ``values``; NaN for fewer than two."""
    return float(values.std(ddof=1) / np.sqrt(len(values))) if len(values) > 1 else np.nan


def summarise(rows: pd.DataFrame) -> pd.DataFrame:
    """Bias, coverage, false positives and pre-trend rejections per design and outcome, each
    share with its standard error. ``null_bias`` is the mean estimate's distance from no
    effect in the boroughs without effects: a bias there is confounding, not a mistaken
    truth or an effect the design cannot see."""
    out = []
    for (design, outcome), group in rows.groupby(["design", "outcome"], sort=False):
        true, null = group[group["effects"] == "true"], group[group["effects"] == "null"]
        mean_truth = true["truth"].mean()
        error = true["estimate"] - true["truth"]
        bias = error.mean()
        reference = mean_truth - (1.0 if design == "matched" else 0.0)
        null_error = null["estimate"] - null["truth"]
        coverage, coverage_se = _share(true["covered"])
        false_positive, false_positive_se = _share(null["rejects_null"])
        pre_trend = group["pre_trend_p"] if "pre_trend_p" in group else pd.Series(dtype=float)
        rejection, rejection_se = _share(pre_trend.dropna() < ALPHA)
        out.append(
            {
                "design": design,
                "outcome": outcome,
                "seeds": int(true["seed"].nunique()),
                "mean_truth": mean_truth,
                "mean_estimate": true["estimate"].mean(),
                "bias": bias,
                "bias_se": _se(error),
                "relative_bias": abs(bias / reference) if reference else np.nan,
                "relative_bias_se": _se(error) / abs(reference) if reference else np.nan,
                "answered_share": (true["verdict"] == ANSWERED).mean(),
                "coverage": coverage,
                "coverage_se": coverage_se,
                "false_positive_rate": false_positive,
                "false_positive_rate_se": false_positive_se,
                "null_coverage": null["covered"].mean() if len(null) else np.nan,
                "null_bias": null_error.mean() if len(null) else np.nan,
                "null_bias_se": _se(null_error),
                "pretrend_tests": int(pre_trend.notna().sum()),
                "pretrend_rejection_rate": rejection,
                "pretrend_rejection_rate_se": rejection_se,
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
            rows += subgroup_rows(results, loaded, borough_dir / TRUTH_DIR, seed, effects)
            shutil.rmtree(out)
        shutil.rmtree(borough_dir)
    return rows, timings


def seed_file(out: Path, seed: int, patients: int) -> Path:
    """Where one seed's rows and timings are saved in the output folder ``out``."""
    return out / SEEDS_DIR / f"seed-{seed}-{patients}.json"


def _run_seed(seed: int, patients: int, work: Path, out: Path) -> tuple[list[dict], list[dict]]:
    """One seed's rows and timings, saved to its file in ``out`` (written whole or not at
    all, so an interrupted seed runs again)."""
    rows, timings = _one_seed(seed, patients, work)
    path = seed_file(out, seed, patients)
    partial = path.with_suffix(".partial")
    partial.write_text(json.dumps({"rows": rows, "timings": timings}, default=_plain))
    partial.replace(path)
    return rows, timings


def _plain(value: object) -> object:
    """JSON for numpy scalars and dates in a seed's rows."""
    if isinstance(value, np.generic):
        return value.item()
    return str(value)


def bench_evaluate(
    out: Path,
    seeds: tuple[int, ...],
    patients: int,
    work: Path,
    jobs: int = 1,
    progress: Progress | None = None,
) -> pd.DataFrame:
    """Generate, evaluate and compare with the truth for every seed (``jobs`` seeds at a
    time, each in its own process), re-using the seeds already saved in ``out``; write the
    figures."""
    say = progress or QUIET
    rows: list[dict] = []
    timings: list[dict] = []
    began = time.perf_counter()
    (out / SEEDS_DIR).mkdir(parents=True, exist_ok=True)
    todo = []
    for seed in seeds:
        path = seed_file(out, seed, patients)
        if path.exists():
            saved = json.loads(path.read_text())
            rows += saved["rows"]
            timings += saved["timings"]
        else:
            todo.append(seed)
    done = len(seeds) - len(todo)
    with ProcessPoolExecutor(max_workers=jobs, mp_context=get_context("spawn")) as pool:
        futures = [pool.submit(_run_seed, seed, patients, work, out) for seed in todo]
        for future in as_completed(futures):
            seed_rows, seed_timings = future.result()
            rows += seed_rows
            timings += seed_timings
            done += 1
            say.advance("seeds", done, len(seeds))
    frame = pd.DataFrame(rows).sort_values(["seed", "effects", "design", "outcome"])
    summary = summarise(frame)
    write_frame(frame, out / "bench_evaluate_runs.csv")
    figures = {
        "date": date.today().isoformat(),
        "patients": patients,
        "seeds": list(seeds),
        "resumed_seeds": len(seeds) - len(todo),
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
