"""``riskstrat bench check``: does ``evaluate --check`` tell the truth about the designs?

The plasmode check estimates, on one extract, how often each design would find an effect of
the plan's minimum size (power) and how often it claims one that is not there (false
positives). ``bench evaluate`` measures the same two things the slow way, over many
boroughs whose true effects are known. This benchmark puts them side by side: for each seed
a borough of the same size as the benchmark's is generated with its effects on, the
locality model's plan is evaluated once to find the designs' true relative effect on the
primary outcome (from ``truth/``), and then ``evaluate --check`` is run with the plan's
minimum effect set to that truth. The check's power should then match the benchmark's
share of boroughs in which the design found the real effect, and its false positives the
benchmark's under the null.

Power is compared as the mean over seeds with its standard error between seeds (each borough
has its own power); false positives are pooled over seeds and compared with Fisher's exact
test, since many shares are near zero where a normal approximation fails.
"""

from __future__ import annotations

import json
import math
import re
import shutil
import time
from datetime import date
from pathlib import Path

import pandas as pd
from scipy.stats import fisher_exact

from riskstrat.bench.evaluate import relative_truth
from riskstrat.common.errors import MissingInputError, UserError
from riskstrat.common.progress import QUIET, Progress
from riskstrat.common.spreadsheet import write_frame
from riskstrat.impact.plan import PLANS, load_plan
from riskstrat.impact.run import evaluate
from riskstrat.sources.synthetic.borough import TRUTH_DIR, generate, write
from riskstrat.sources.synthetic.config import SynthConfig

PLAN = "integrated_locality_model.toml"
"""The built-in plan with both designs the check covers."""
DESIGNS = ("did", "matched")
BENCH_COLUMNS = ["seed", "effects", "design", "outcome", "rejects_null"]
"""What the comparison reads of ``bench evaluate``'s runs CSV."""
_MINIMUM_EFFECT = re.compile(r"^minimum_effect = .*$", re.MULTILINE)


def _plan_at(effect: float, folder: Path) -> Path:
    """A copy of the built-in plan with its minimum effect set to ``effect``."""
    line = f"minimum_effect = {effect:.6f}"
    text, changed = _MINIMUM_EFFECT.subn(line, (PLANS / PLAN).read_text())
    if changed != 1:
        raise ValueError(f"{PLAN}: expected one minimum_effect line, found {changed}")
    path = folder / PLAN
    path.write_text(text)
    return path


def _one_seed(seed: int, patients: int, runs: int, work: Path) -> list[dict]:
    """The check's shares on one borough with its effects on, the minimum effect set to the
    designs' mean true relative effect on the primary outcome."""
    borough = work / f"seed-{seed}"
    write(generate(SynthConfig(patients=patients, seed=seed, truth_as_of=())), borough)
    loaded = load_plan(PLANS / PLAN)
    primary = loaded.plan.outcomes.primary
    real = evaluate(borough, loaded.path, work / f"real-{seed}")
    truths = [
        relative_truth(d, primary, loaded, borough / TRUTH_DIR)
        for d in real.designs
        if d.design in DESIGNS
    ]
    effect = -sum(truths) / len(truths)
    checked = evaluate(borough, _plan_at(effect, work), work / f"check-{seed}", check_runs=runs)
    rows = []
    for design in checked.check.designs if checked.check else []:
        for o in design.outcomes:
            rows.append(
                {
                    "seed": seed,
                    "design": design.design,
                    "outcome": o.outcome,
                    "effect": effect,
                    "power": o.power.value,
                    "effect_runs": o.power.runs,
                    "false_positives": round((o.false_positive.value or 0) * o.false_positive.runs),
                    "null_runs": o.false_positive.runs,
                    "answered": o.answered.value,
                }
            )
    for name in (f"seed-{seed}", f"real-{seed}", f"check-{seed}"):
        shutil.rmtree(work / name)
    return rows


def compare(check: pd.DataFrame, bench: pd.DataFrame, primary: str) -> list[dict]:
    """Per design: the check's power on ``primary`` against the benchmark's share of boroughs
    with effects in which the design excluded no change; per design and outcome: the pooled
    false positives against the benchmark's, with Fisher's exact p-value. ``bench`` is
    ``bench evaluate``'s runs CSV."""
    with_effects, null = (bench[bench["effects"] == kind] for kind in ("true", "null"))
    out = []
    for design in DESIGNS:
        power = check[(check["design"] == design) & (check["outcome"] == primary)]["power"]
        found = with_effects[
            (with_effects["design"] == design) & (with_effects["outcome"] == primary)
        ]["rejects_null"]
        if len(power) and len(found):
            out.append(
                {
                    "design": design,
                    "outcome": primary,
                    "figure": "power",
                    "check": float(power.mean()),
                    "check_se": float(power.std(ddof=1) / math.sqrt(len(power)))
                    if len(power) > 1
                    else math.nan,
                    "bench": float(found.mean()),
                    "bench_se": _binomial_se(found.mean(), len(found)),
                }
            )
        for outcome, rows in check[check["design"] == design].groupby("outcome"):
            same = (null["design"] == design) & (null["outcome"] == outcome)
            claimed = null[same]["rejects_null"]
            hits, runs = int(rows["false_positives"].sum()), int(rows["null_runs"].sum())
            if not runs or not len(claimed) or not rows["answered"].any():
                continue
            table = [[hits, runs - hits], [int(claimed.sum()), len(claimed) - int(claimed.sum())]]
            out.append(
                {
                    "design": design,
                    "outcome": outcome,
                    "figure": "false positives",
                    "check": hits / runs,
                    "check_se": _binomial_se(hits / runs, runs),
                    "bench": float(claimed.mean()),
                    "bench_se": _binomial_se(claimed.mean(), len(claimed)),
                    "fisher_p": float(fisher_exact(table).pvalue),
                }
            )
    return out


def _binomial_se(share: float, n: int) -> float:
    return math.sqrt(share * (1 - share) / n)


def read_bench(folder: Path) -> tuple[int, pd.DataFrame]:
    """A finished ``bench evaluate`` folder's borough size and runs."""
    figures, runs = folder / "bench_evaluate.json", folder / "bench_evaluate_runs.csv"
    for path in (figures, runs):
        if not path.is_file():
            raise MissingInputError(f"{path}: not there; run `riskstrat bench evaluate` first")
    try:
        patients = int(json.loads(figures.read_text())["patients"])
    except (ValueError, KeyError, TypeError) as exc:
        raise UserError(
            f"{figures}: not a bench evaluate figures file (no patients: {exc})"
        ) from None
    header = pd.read_csv(runs, nrows=0).columns
    lacking = [c for c in BENCH_COLUMNS if c not in header]
    if lacking:
        raise UserError(f"{runs}: not a bench evaluate runs file (no {', '.join(lacking)})")
    return patients, pd.read_csv(runs, keep_default_na=False, usecols=BENCH_COLUMNS)


def bench_check(
    out: Path,
    against: Path,
    seeds: tuple[int, ...],
    runs: int,
    work: Path,
    progress: Progress | None = None,
) -> pd.DataFrame:
    """Run the check on each seed's borough, as large as ``against``'s (a finished ``bench
    evaluate`` folder), and compare the two; write ``bench_check.json`` and the check's rows
    to ``out``."""
    say = progress or QUIET
    began = time.perf_counter()
    patients, bench = read_bench(against)
    rows: list[dict] = []
    for i, seed in enumerate(seeds):
        say.advance("seeds", i, len(seeds))
        rows += _one_seed(seed, patients, runs, work)
    say.advance("seeds", len(seeds), len(seeds))
    check = pd.DataFrame(rows)
    out.mkdir(parents=True, exist_ok=True)
    write_frame(check, out / "bench_check_runs.csv")
    primary = load_plan(PLANS / PLAN).plan.outcomes.primary
    comparison = pd.DataFrame(compare(check, bench, primary))
    figures = {
        "date": date.today().isoformat(),
        "patients": patients,
        "seeds": list(seeds),
        "runs": runs,
        "against": str(against),
        "wall_seconds": round(time.perf_counter() - began),
        "comparison": comparison.to_dict(orient="records"),
    }
    (out / "bench_check.json").write_text(json.dumps(figures, indent=2, default=float))
    return comparison
