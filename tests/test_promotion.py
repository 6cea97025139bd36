"""The promotion gate refuses a worse or miscalibrated challenger and accepts a better one."""

from __future__ import annotations

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest

from riskstrat.features.spec import FeatureSpec
from riskstrat.models.bundle import Calibration, ModelBundle
from riskstrat.training.fit import platt
from riskstrat.training.promote import gate

SPECS = tuple(
    FeatureSpec(name=n, description=n, template="{value}", concept=n, default=0.0)
    for n in ("strong", "weak", "noise")
)


@pytest.fixture(scope="module")
def data() -> tuple[pd.DataFrame, np.ndarray, pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(8)

    def draw(n: int) -> tuple[pd.DataFrame, np.ndarray]:
        x = pd.DataFrame(rng.normal(size=(n, 3)), columns=["strong", "weak", "noise"])
        logit = -2.5 + 1.5 * x["strong"] + 0.3 * x["weak"]
        return x, (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)

    return (*draw(20_000), *draw(20_000))


def _bundle(x: pd.DataFrame, y: np.ndarray, columns: list[str]) -> ModelBundle:
    """A model that sees only ``columns`` (others zeroed), Platt-calibrated on held-out rows."""
    seen = x.copy()
    seen[[c for c in seen.columns if c not in columns]] = 0.0
    half = len(seen) // 2
    booster = lgb.train(
        {
            "objective": "binary",
            "verbosity": -1,
            "seed": 1,
            "num_threads": 1,
            "deterministic": True,
            "force_row_wise": True,
            "min_data_in_leaf": 200,
        },
        lgb.Dataset(seen[:half], y[:half]),
        num_boost_round=60,
    )
    raw = ModelBundle(booster, Calibration(1.0, 0.0), SPECS).raw_score(seen[half:])
    return ModelBundle(booster, platt(raw, y[half:]), SPECS)


def test_first_model_needs_only_good_calibration(data: tuple) -> None:
    x, y, test_x, test_y = data
    failed, figures = gate(_bundle(x, y, ["strong", "weak"]), None, test_x, test_y, 50)
    assert failed == ()
    assert 0.9 <= figures["challenger_calibration_slope"] <= 1.1


def test_a_significantly_worse_challenger_is_refused(data: tuple) -> None:
    x, y, test_x, test_y = data
    good, weak = _bundle(x, y, ["strong", "weak"]), _bundle(x, y, ["weak"])
    failed, figures = gate(weak, good, test_x, test_y, 50)
    assert any(f.startswith("AUROC is significantly worse") for f in failed)
    assert figures["auroc_difference_ci_high"] < 0


def test_a_miscalibrated_challenger_is_refused(data: tuple) -> None:
    x, y, test_x, test_y = data
    good = _bundle(x, y, ["strong", "weak"])
    overconfident = ModelBundle(
        good.booster, Calibration(good.calibration.slope * 2, good.calibration.intercept), SPECS
    )
    failed, _ = gate(overconfident, good, test_x, test_y, 50)
    assert len(failed) == 1 and failed[0].startswith("calibration slope 0.5")


def test_a_better_challenger_is_accepted(data: tuple) -> None:
    x, y, test_x, test_y = data
    failed, figures = gate(
        _bundle(x, y, ["strong", "weak"]), _bundle(x, y, ["weak"]), test_x, test_y, 50
    )
    assert failed == ()
    assert figures["auroc_difference_ci_low"] > 0


def test_without_resamples_the_gate_cannot_compare_and_says_why(data: tuple) -> None:
    x, y, test_x, test_y = data
    better, worse = _bundle(x, y, ["strong", "weak"]), _bundle(x, y, ["weak"])
    failed, figures = gate(better, worse, test_x, test_y, resamples=0)
    assert failed == (
        f"cannot tell whether AUROC is worse than the champion's "
        f"({figures['auroc_difference']:+.4f}) without an interval: no bootstrap resamples "
        "were asked for (bootstrap = 0)",
    )
    assert "auroc_difference_ci_low" not in figures


def test_with_too_few_events_to_resample_the_gate_says_why(data: tuple) -> None:
    """Two events in 40 rows: some resamples hold neither, and the gate refuses in words."""
    x, y, test_x, test_y = data
    better, worse = _bundle(x, y, ["strong", "weak"]), _bundle(x, y, ["weak"])
    rows = np.concatenate([np.flatnonzero(test_y == 1)[:2], np.flatnonzero(test_y == 0)[:38]])
    failed, _ = gate(better, worse, test_x.iloc[rows], test_y[rows], resamples=50)
    assert any("resamples had one outcome only" in reason for reason in failed)


def test_the_gate_is_the_same_for_the_same_seed(data: tuple) -> None:
    x, y, test_x, test_y = data
    better, worse = _bundle(x, y, ["strong", "weak"]), _bundle(x, y, ["weak"])
    first = gate(better, worse, test_x, test_y, 20, seed=3)
    assert first == gate(better, worse, test_x, test_y, 20, seed=3)
