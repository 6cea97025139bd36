"""``riskstrat bench-retrain``: does retraining keep ranking people by their untreated risk?

Repeated deployment on a synthetic borough whose list-triggered help has a known effect.
Round 0 trains before any list exists. Then, once a year: the current champion scores
everyone, the top ``list_share`` are listed, the generator's list actions act on them (help
for a share of the listed, lowering their admission hazard), and a year later each strategy
retrains on the data so far, faces the promotion gate, and the winner lists next.

Each strategy lives in its own world: its lists change its borough. The generator is a
deterministic prefix (a borough with lists up to a date is the same before that date
whatever comes after), so a round re-simulates the borough with the lists decided so far
and reads the data up to the round's date. Measured per round and strategy, on the list
date, for the champion that makes the list and for the strategy's challenger:

- AUROC and calibration slope against the untreated truth (``p_admission_untreated``: the
  risk without list-triggered help, which the list should rank by) and against the
  admissions observed in the next 12 months;
- the share of the truly highest-risk people (by untreated truth, as many as are listed)
  who are on the list;
- admissions prevented by that list's help (the generator's truth over the follow-up).

Two references run beside the strategies: ``frozen`` (the round-0 model kept for ever: how
a stale model ages) and ``no_effect`` (naive refits in a borough where the list's help
changes nothing: how a refit does when there is no effect to learn). A strategy's AUROC
minus ``no_effect``'s on the same list date is the list's own damage, free of the changes in
the population from one date to the next.
"""

from __future__ import annotations

import json
import shutil
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, replace
from datetime import date, timedelta
from multiprocessing import get_context
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from riskstrat.common.defaults import SEED
from riskstrat.common.months import add_months
from riskstrat.common.progress import QUIET, Progress
from riskstrat.common.spreadsheet import write_frame
from riskstrat.contract.tables import ContractTables
from riskstrat.features.engine import build_features, feature_specs
from riskstrat.features.exposure import ExposureRule
from riskstrat.features.labels import Outcome, build_labels
from riskstrat.models.bundle import ModelBundle
from riskstrat.sources.synthetic.borough import TRUTH_DIR, generate, write
from riskstrat.sources.synthetic.config import (
    Interventions,
    ListActions,
    LocalityModel,
    SynthConfig,
)
from riskstrat.sources.synthetic.interventions import ListDecision
from riskstrat.training.config import STRATEGIES, InterventionSettings, LightGBMParams, TrainConfig
from riskstrat.training.evaluate import calibration_slope, truth_auroc, truth_calibration_slope
from riskstrat.training.fit import fit_bundle
from riskstrat.training.pipeline import training_data
from riskstrat.training.promote import TestSet, judge, unaffected_rows

FROZEN = "frozen"  # the round-0 model kept for ever
NO_EFFECT = "no_effect"  # naive refits in a borough where the list's help changes nothing
RESULTS_FILE = "bench_retrain.json"
ROUNDS_FILE = "bench_retrain_rounds.csv"
TARGET_AUROC_DRIFT = 0.005


@dataclass(frozen=True, slots=True)
class RetrainBench:
    """The benchmark's world: borough size and seed, rounds after round 0, and the list.

    The list actions are stronger than the default borough's (help for most of the listed,
    for a year), as a list that works well would be: the stronger the help, the more a
    naive refit learns of it. The locality model is off: it is not triggered by the list."""

    patients: int = 30_000
    seed: int = SEED
    rounds: int = 4
    start: date = date(2020, 1, 1)
    first_list: date = date(2024, 1, 1)
    list_share: float = 0.05
    band_multiple: float = 3.0
    capacity_share: float = 0.8
    reablement_hr: float = 0.5
    social_prescribing_hr: float = 0.7
    strategies: tuple[str, ...] = STRATEGIES
    bootstrap: int = 200

    def __post_init__(self) -> None:
        if self.rounds < 1:
            raise ValueError(f"rounds must be at least 1, got {self.rounds}")
        if not 0.0 < self.list_share < 0.5:
            raise ValueError(f"list_share must be in (0, 0.5), got {self.list_share}")
        unknown = sorted(set(self.strategies) - set(STRATEGIES))
        if unknown:
            raise ValueError(f"unknown strategies {unknown} (known: {', '.join(STRATEGIES)})")
        self.synth_config()  # the list's settings are checked where they are used

    def list_date(self, round_: int) -> date:
        """The date round ``round_``'s champion makes its list (round 0: the first list)."""
        return add_months(self.first_list, 12 * round_)

    @property
    def list_dates(self) -> tuple[date, ...]:
        return tuple(self.list_date(r) for r in range(self.rounds + 1))

    def synth_config(self) -> SynthConfig:
        last = self.list_dates[-1]
        return SynthConfig(
            patients=self.patients,
            seed=self.seed,
            start=self.start,
            end=add_months(last, 12 * 1) - timedelta(days=1),  # a year after the last list
            truth_as_of=self.list_dates,
            interventions=Interventions(
                locality_model=LocalityModel(enabled=False),
                list_actions=ListActions(
                    first_run=self.first_list,
                    every_months=12,
                    capacity_share=self.capacity_share,
                    action_months=12,
                    follow_up_months=12,
                    reablement_hr=self.reablement_hr,
                    social_prescribing_hr=self.social_prescribing_hr,
                ),
            ),
        )

    def train_config(self, now: date, strategy: str) -> TrainConfig:
        """Train as the weekly team would on ``now``: test out of time on the latest date
        whose year of follow-up is complete, learn from the three half-years before."""
        test = add_months(now, 12 * -1)
        return TrainConfig(
            train_as_of=tuple(add_months(test, m) for m in (-24, -18, -12)),
            test_as_of=test,
            seed=self.seed,
            bootstrap=0,
            lightgbm=LightGBMParams(threads=1),  # worlds run in parallel: no contention
            intervention=InterventionSettings(strategy=strategy),
        )


def _simulate(
    bench: RetrainBench, decisions: dict[date, ListDecision], folder: Path, effects: bool = True
) -> Path:
    """The borough with the lists decided so far (their help without any effect when not
    ``effects``), written to ``folder``."""
    config = bench.synth_config()
    if not effects:
        config = replace(config, interventions=config.interventions.null_effects())
    if folder.exists():
        shutil.rmtree(folder)
    write(generate(config, decisions=decisions), folder)
    return folder


def _decide(bench: RetrainBench, risk: pd.Series) -> ListDecision:
    """The champion's list: the top ``list_share`` of everyone scored; the band around it
    is kept with its scores, as the weekly run's risk-list events keep it."""
    order = risk.sort_values(ascending=False, kind="stable")
    listed = round(bench.list_share * len(order))
    band = order.iloc[: round(bench.band_multiple * listed)]
    flags = np.zeros(len(band), bool)
    flags[:listed] = True
    return ListDecision(
        patient_id=band.index.to_numpy(dtype=object),
        score=band.to_numpy(dtype=float),
        listed=flags,
    )


def _scores(bundle: ModelBundle, features: pd.DataFrame, on: date) -> pd.Series:
    rows = features.xs(on, level="as_of")
    return pd.Series(bundle.predict(rows), index=rows.index)


def _fit(
    bench: RetrainBench, sources: ContractTables, now: date, strategy: str, rule: ExposureRule
) -> tuple[ModelBundle, TestSet, pd.DataFrame]:
    """The strategy's challenger trained on ``now``, the test rows no help touched for the
    gate, and the features (everyone's on ``now`` among them)."""
    config = bench.train_config(now, strategy)
    data = training_data(sources, config, rule, (*config.train_as_of, config.test_as_of, now))
    bundle, _ = fit_bundle(data.train, feature_specs(), config)
    features = build_features(sources, (config.test_as_of, now))
    at_test = features.index.get_level_values("as_of") == config.test_as_of
    test = unaffected_rows(features[at_test], data.labels["label"], data.helped, rule)
    return bundle, test, features


def _measure(
    bundle: ModelBundle,
    features: pd.DataFrame,
    now: date,
    truth: pd.DataFrame,
    observed: pd.Series,
) -> dict[str, float]:
    """The model's figures on ``now`` against the untreated truth and what happened."""
    risk = _scores(bundle, features, now)
    at = truth[truth["as_of"] == pd.Timestamp(now)].set_index("patient_id")
    p = at["p_admission_untreated"].reindex(risk.index)
    known = p.notna().to_numpy()
    seen = observed.reindex(risk.index)
    followed = seen.notna().to_numpy()
    y = seen[followed].to_numpy()
    return {
        "auroc_untreated": truth_auroc(p[known].to_numpy(), risk[known].to_numpy()),
        "slope_untreated": truth_calibration_slope(p[known].to_numpy(), risk[known].to_numpy()),
        "auroc_observed": float(roc_auc_score(y, risk[followed])),
        "slope_observed": calibration_slope(y, risk[followed].to_numpy()),
    }


def _list_figures(
    bench: RetrainBench, decision: ListDecision, truth: pd.DataFrame, now: date, actions: Path
) -> dict[str, float]:
    """Share of the truly highest-risk listed, and admissions the list's help prevented."""
    at = truth[truth["as_of"] == pd.Timestamp(now)]
    listed = set(decision.patient_id[decision.listed])
    top = at.nlargest(len(listed), "p_admission_untreated")["patient_id"]
    runs = pd.read_parquet(actions)
    run = runs[runs["run"] == pd.Timestamp(now)]
    return {
        "listed": float(len(listed)),
        "helped": float((run["action"] != "none").sum()),
        "top_risk_listed_share": float(top.isin(listed).mean()),
        "admissions_prevented": float((run["expected_untreated"] - run["expected_treated"]).sum()),
    }


@dataclass(frozen=True, slots=True)
class _State:
    """A world between rounds: its lists so far, its borough with them, and its champion
    (none before round 0)."""

    decisions: dict[date, ListDecision]
    folder: Path
    champion: ModelBundle | None


def _round(
    bench: RetrainBench, strategy: str, round_: int, state: _State, work: Path
) -> tuple[dict, _State]:
    """One round: retrain with ``strategy`` (none for ``frozen`` after round 0), gate,
    list with the champion, let the list act (re-simulate), and measure."""
    rule, now, began = ExposureRule(), bench.list_date(round_), time.perf_counter()
    sources = ContractTables.from_dir(state.folder)
    champion, challenger = state.champion, state.champion
    failed: tuple[str, ...] = ()
    figures: dict[str, float] = {}
    if strategy == FROZEN and champion is not None:
        features = build_features(sources, [now])
    else:
        learn = "naive" if strategy == NO_EFFECT else strategy
        try:
            challenger, test, features = _fit(bench, sources, now, learn, rule)
        except ValueError as refusal:  # a strategy that cannot learn from this data says so
            if champion is None:
                raise
            challenger, features = None, build_features(sources, [now])
            failed = (f"training refused: {refusal}",)
        else:
            failed, figures = judge(challenger, champion, test, bench.bootstrap, bench.seed)
    sources.close()
    promoted = champion is None or not failed
    if promoted:
        champion = challenger
    truth = pd.read_parquet(state.folder / TRUTH_DIR / "truth.parquet")
    decision = _decide(bench, _scores(champion, features, now))
    decisions = state.decisions | {now: decision}
    folder = _simulate(
        bench, decisions, work / f"{strategy}-{round_ + 1}", effects=strategy != NO_EFFECT
    )
    after = ContractTables.from_dir(folder)
    observed = build_labels(after, [now], Outcome())["label"].xs(now, level="as_of")
    after.close()
    row = {
        "strategy": strategy,
        "round": round_,
        "list_date": now.isoformat(),
        "promoted": bool(promoted),
        "gate": "; ".join(failed) or "passed",
        "scored": float(len(features.xs(now, level="as_of"))),
        **{
            f"champion_{k}": v
            for k, v in _measure(champion, features, now, truth, observed).items()
        },
        **{
            f"challenger_{k}": v
            for k, v in (
                {} if challenger is None else _measure(challenger, features, now, truth, observed)
            ).items()
        },
        **_list_figures(bench, decision, truth, now, folder / TRUTH_DIR / "list_actions.parquet"),
        **{f"gate_{k}": v for k, v in figures.items()},
        "seconds": round(time.perf_counter() - began, 1),
    }
    return row, _State(decisions, folder, champion)


def _world(bench: RetrainBench, strategy: str, start: _State, work: Path) -> list[dict]:
    """One strategy's rounds after round 0, in its own borough."""
    rows, state = [], start
    for round_ in range(1, bench.rounds + 1):
        row, state = _round(bench, strategy, round_, state, work)
        rows.append(row)
    return rows


def _no_effect_world(bench: RetrainBench, before: _State, work: Path) -> list[dict]:
    """Every round (round 0 too: its borough differs from the first list on) in the borough
    where help changes nothing."""
    row, state = _round(bench, NO_EFFECT, 0, before, work)
    return [row, *_world(bench, NO_EFFECT, state, work)]


def summarise(rounds: pd.DataFrame) -> pd.DataFrame:
    """Per strategy: the champion's largest AUROC drop against the untreated truth below
    round 0's, whether it never drops more than the target, the largest shortfall against
    ``no_effect`` on the same date, and the admissions prevented."""
    reference = rounds[rounds["strategy"] == NO_EFFECT].set_index("round")
    out = []
    for strategy, group in rounds.groupby("strategy", sort=False):
        group = group.sort_values("round")
        first = group["champion_auroc_untreated"].iloc[0]
        later = group[group["round"] > 0]
        drift = later["champion_auroc_untreated"] - first
        gap = later.set_index("round")["champion_auroc_untreated"] - reference[
            "champion_auroc_untreated"
        ].reindex(later["round"])
        out.append(
            {
                "strategy": strategy,
                "auroc_untreated_round0": first,
                "auroc_untreated_last": group["champion_auroc_untreated"].iloc[-1],
                "largest_drop": max(0.0, float(-drift.min())) if len(drift) else 0.0,
                "within_target": bool((drift >= -TARGET_AUROC_DRIFT).all()),
                "largest_shortfall_vs_no_effect": max(0.0, float(-gap.min())) if len(gap) else 0.0,
                "slope_untreated_last": group["champion_slope_untreated"].iloc[-1],
                "top_risk_listed_share_mean": later["top_risk_listed_share"].mean(),
                "admissions_prevented": group["admissions_prevented"].sum(),
                "promotions": int(later["promoted"].sum()),
            }
        )
    return pd.DataFrame(out)


def bench_retrain(
    out: Path, bench: RetrainBench, work: Path, jobs: int = 1, progress: Progress | None = None
) -> pd.DataFrame:
    """Run every strategy's world and the two references, write the rounds (CSV) and the summary
    (JSON) to ``out``, and return the summary."""
    say = progress or QUIET
    began = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)  # an unwritable folder fails now, not after hours
    say(f"simulating the borough before any list ({bench.patients:,} people)")
    before = _State({}, _simulate(bench, {}, work / "before-lists"), None)
    say("round 0: training before any list, and its list")
    first, start = _round(bench, "naive", 0, before, work)
    worlds = (*bench.strategies, FROZEN)
    rows: list[dict] = [first | {"strategy": s} for s in worlds]
    tasks = {s: (_world, bench, s, start, work) for s in worlds}
    tasks[NO_EFFECT] = (_no_effect_world, bench, before, work)
    if jobs <= 1:
        for done, (name, (task, *args)) in enumerate(tasks.items(), 1):
            rows += task(*args)
            say.advance("strategies", done, len(tasks), name)
    else:
        with ProcessPoolExecutor(jobs, mp_context=get_context("spawn")) as pool:
            futures = {pool.submit(task, *args): name for name, (task, *args) in tasks.items()}
            for done, future in enumerate(as_completed(futures), 1):
                rows += future.result()
                say.advance("strategies", done, len(tasks), futures[future])
    rounds = pd.DataFrame(rows).sort_values(["strategy", "round"], kind="stable")
    summary = summarise(rounds)
    write_frame(rounds, out / ROUNDS_FILE)
    (out / RESULTS_FILE).write_text(
        json.dumps(
            {
                "bench": {
                    k: str(v) if isinstance(v, date) else v for k, v in asdict(bench).items()
                },
                "target_auroc_drift": TARGET_AUROC_DRIFT,
                "seconds": round(time.perf_counter() - began, 1),
                "summary": summary.to_dict(orient="records"),
                "rounds": rounds.to_dict(orient="records"),
            },
            indent=2,
            default=float,
        )
    )
    return summary
