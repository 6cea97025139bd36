"""The repeated-deployment benchmark: its lists, its schedule, its summary, one small run."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest

from riskstrat.bench.retrain import (
    FROZEN,
    NO_EFFECT,
    RetrainBench,
    _decide,
    bench_retrain,
    summarise,
)


def test_the_list_is_the_champions_top_share_with_its_band() -> None:
    risk = pd.Series(np.linspace(0.01, 0.99, 200), index=[f"p{i:03d}" for i in range(200)])
    decision = _decide(RetrainBench(list_share=0.05, band_multiple=3.0), risk.sample(frac=1.0))
    assert decision.listed.sum() == 10
    assert set(decision.patient_id[decision.listed]) == {f"p{i:03d}" for i in range(190, 200)}
    assert len(decision.patient_id) == 30
    assert decision.score.min() == pytest.approx(risk.iloc[170])


def test_each_round_trains_out_of_time_on_the_years_before_its_list() -> None:
    bench = RetrainBench(first_list=date(2024, 1, 1), rounds=4)
    assert bench.list_dates[-1] == date(2028, 1, 1)
    config = bench.train_config(date(2026, 1, 1), "censor")
    assert config.test_as_of == date(2025, 1, 1)
    assert config.train_as_of == (date(2023, 1, 1), date(2023, 7, 1), date(2024, 1, 1))
    assert config.intervention.strategy == "censor"
    synth = bench.synth_config()
    assert synth.truth_as_of == bench.list_dates
    assert synth.end == date(2028, 12, 31)  # a year of follow-up after the last list


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"rounds": 0}, "rounds"),
        ({"strategies": ("naive", "magic")}, "magic"),
        ({"capacity_share": 1.5}, "capacity_share"),
        ({"reablement_hr": 0.0}, "reablement_hr"),
    ],
)
def test_bad_settings_are_refused_by_name(settings: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        RetrainBench(**settings)


def _rounds(strategy: str, aurocs: list[float]) -> list[dict]:
    return [
        {
            "strategy": strategy,
            "round": r,
            "promoted": True,
            "champion_auroc_untreated": a,
            "champion_slope_untreated": 1.0,
            "top_risk_listed_share": 0.5,
            "admissions_prevented": 10.0,
        }
        for r, a in enumerate(aurocs)
    ]


def test_summary_measures_drift_from_round_0_and_the_shortfall_against_no_effect() -> None:
    rounds = pd.DataFrame(
        _rounds("naive", [0.830, 0.826, 0.821])
        + _rounds("censor", [0.830, 0.833, 0.829])
        + _rounds("unexposed", [0.830, 0.838, 0.836])
        + _rounds(NO_EFFECT, [0.830, 0.832, 0.831])
    )
    summary = summarise(rounds).set_index("strategy")
    assert summary.loc["naive", "largest_drop"] == pytest.approx(0.009)
    assert not summary.loc["naive", "within_target"]
    assert summary.loc["naive", "largest_shortfall_vs_no_effect"] == pytest.approx(0.010)
    assert summary.loc["censor", "within_target"]
    assert summary.loc["censor", "largest_shortfall_vs_no_effect"] == pytest.approx(0.002)
    assert summary.loc["censor", "admissions_prevented"] == pytest.approx(30.0)
    assert summary.loc["unexposed", "largest_drop"] == 0.0  # rising is not drift to refuse
    assert summary.loc["unexposed", "within_target"]


@pytest.mark.slow
def test_a_small_run_lists_with_each_champion_and_the_reference_prevents_nothing(
    tmp_path,
) -> None:
    bench = RetrainBench(patients=1_500, rounds=1, strategies=("censor",), bootstrap=20)
    summary = bench_retrain(tmp_path / "out", bench, tmp_path / "work")
    rounds = pd.read_csv(tmp_path / "out" / "bench_retrain_rounds.csv")
    assert set(summary["strategy"]) == {"censor", FROZEN, NO_EFFECT}
    assert sorted(rounds.groupby("strategy")["round"].apply(list).tolist()) == [[0, 1]] * 3
    # each round lists the same share of the people scored on its date
    assert (rounds["listed"] == (bench.list_share * rounds["scored"]).round()).all()
    assert (rounds["helped"] > 0).all() and (rounds["helped"] <= rounds["listed"]).all()
    later = rounds[rounds["round"] == 1].set_index("strategy")
    assert later.loc[NO_EFFECT, "admissions_prevented"] == pytest.approx(0.0, abs=1e-9)
    assert later.loc["censor", "admissions_prevented"] > 0
    assert rounds["top_risk_listed_share"].between(0, 1).all()
    assert rounds["champion_auroc_untreated"].between(0.6, 1.0).all()
