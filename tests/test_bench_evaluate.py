"""The design benchmark's summary: shares with their standard errors, and the pre-trend
test's rejection rate counted over every borough (no effect reaches a pre-period)."""

import json
import math

import pandas as pd
import pytest

from riskstrat.bench.evaluate import bench_evaluate, seed_file, summarise


def _rows() -> pd.DataFrame:
    rows = []
    for seed in range(1, 5):
        for effects in ("true", "null"):
            rows.append(
                {
                    "seed": seed,
                    "effects": effects,
                    "design": "did",
                    "outcome": "emergency_admissions",
                    "estimate": -0.2 if effects == "true" else 0.0,
                    "ci_low": -0.3,
                    "ci_high": -0.1 if effects == "true" else 0.1,
                    "truth": -0.25 if effects == "true" else 0.0,
                    "covered": effects == "null" or seed != 1,
                    "rejects_null": effects == "true" or seed == 2,
                    "pre_trend_p": 0.01 if (seed, effects) == (3, "null") else 0.5,
                    "verdict": "answered",
                    "seconds": 1.0,
                }
            )
    return pd.DataFrame(rows)


def test_shares_come_with_their_binomial_standard_errors() -> None:
    row = summarise(_rows()).iloc[0]
    assert row["coverage"] == 0.75
    assert row["coverage_se"] == pytest.approx(math.sqrt(0.75 * 0.25 / 4))
    assert row["false_positive_rate"] == 0.25
    assert row["false_positive_rate_se"] == pytest.approx(math.sqrt(0.25 * 0.75 / 4))


def test_pre_trend_rejections_count_every_borough_that_has_the_test() -> None:
    rows = _rows()
    rows.loc[0, "pre_trend_p"] = float("nan")  # e.g. no pre-period: no test, not a pass
    row = summarise(rows).iloc[0]
    assert row["pretrend_tests"] == 7
    assert row["pretrend_rejection_rate"] == pytest.approx(1 / 7)
    assert row["pretrend_rejection_rate_se"] == pytest.approx(math.sqrt((1 / 7) * (6 / 7) / 7))


def test_a_seed_already_saved_is_read_back_not_run_again(tmp_path) -> None:
    rows = _rows()
    out = tmp_path / "bench"
    for seed in (1, 2, 3, 4):
        path = seed_file(out, seed, 1000)
        path.parent.mkdir(parents=True, exist_ok=True)
        timings = [
            {
                "seed": seed,
                "effects": "true",
                "plan": "p",
                "generate_seconds": 1.0,
                "evaluate_seconds": 2.0,
            }
        ]
        records = rows[rows["seed"] == seed].to_dict(orient="records")
        path.write_text(json.dumps({"rows": records, "timings": timings}))
    # No borough can be generated under a work folder that is a file: any seed run would fail.
    blocker = tmp_path / "work"
    blocker.write_text("")
    summary = bench_evaluate(out, (1, 2, 3, 4), 1000, blocker)
    assert summary.iloc[0]["coverage"] == 0.75
    figures = json.loads((out / "bench_evaluate.json").read_text())
    assert figures["resumed_seeds"] == 4


def test_the_bias_with_no_effect_is_reported_apart_from_the_bias_with_effects() -> None:
    rows = _rows()
    null = rows["effects"] == "null"
    rows.loc[null, "estimate"] = [0.01, 0.03, 0.02, 0.02]
    row = summarise(rows).iloc[0]
    assert row["bias"] == pytest.approx(0.05)
    assert row["null_bias"] == pytest.approx(0.02)
    assert row["null_bias_se"] == pytest.approx(pd.Series([0.01, 0.03, 0.02, 0.02]).sem())
