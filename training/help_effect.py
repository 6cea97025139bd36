"""The pieces of the partially linear logistic model of the ``as_feature`` strategy.

logit P(y) = f(X) + beta . a, where ``a`` holds the share of the horizon under each kind of
list-triggered help. LightGBM learns f with ``beta . a`` as its initial score; a logistic GLM
learns beta with f(X) as its offset; the two alternate (``training.fit``). Platt scaling fits
y on the out-of-sample raw score together with ``a`` and keeps only the score's slope and
intercept, so the saved model predicts the risk with help set to none.

Help goes to the people at highest risk: beta can only be told from f where rows of the same
risk were and were not helped. ``overlap_table`` measures that on deciles of a first-pass
score and ``check_overlap`` refuses to fit where it is missing.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import statsmodels.api as sm
from sklearn.linear_model import LogisticRegression

from riskstrat.models.bundle import Calibration

DECILES = 10
ROUNDS = 3  # GLM updates of beta, each followed by a booster with the new offset: the error
# in beta shrinks by the exposed share of the risk where help goes, each round
# fit_bundle's facts: the odds ratio per kind of help, the exposed share per score decile
ODDS_RATIO, OVERLAP = "help_odds_ratio_", "overlap_exposed_share_d"


def overlap_table(raw: np.ndarray, exposed: np.ndarray) -> pd.DataFrame:
    """Per decile of ``raw`` (1 = lowest): rows, exposed rows and the exposed share."""
    rank = np.argsort(np.argsort(raw, kind="stable"), kind="stable")
    decile = rank * DECILES // len(raw) + 1
    frame = pd.DataFrame({"decile": decile, "exposed": exposed.astype(int)})
    table = frame.groupby("decile")["exposed"].agg(rows="size", exposed="sum").reset_index()
    table["exposed_share"] = table["exposed"] / table["rows"]
    return table


def check_overlap(table: pd.DataFrame, min_overlap: float) -> None:
    """ValueError (one line) unless every decile holding exposed rows has at least
    ``min_overlap`` of its rows unexposed."""
    holding = table[table["exposed"] > 0]
    short = holding[1 - holding["exposed_share"] < min_overlap]
    if not short.empty:
        worst = short.sort_values("exposed_share").iloc[-1]
        raise ValueError(
            f"as_feature: decile {int(worst['decile'])} of the first-pass risk score has "
            f"{worst['exposed_share']:.1%} of its rows exposed to help and "
            f"{1 - worst['exposed_share']:.1%} unexposed (under min_overlap {min_overlap:.1%}): "
            'the effect of help cannot be told from risk there; use strategy = "unexposed"'
        )


def help_coefficients(
    labels: np.ndarray, shares: np.ndarray, offset: np.ndarray, weights: np.ndarray | None
) -> np.ndarray:
    """beta: logistic GLM of ``labels`` on ``shares`` (no constant) with ``offset``; 0 for a
    kind that no row had."""
    seen = (shares > 0).any(axis=0)
    beta = np.zeros(shares.shape[1])
    model = sm.GLM(
        labels,
        shares[:, seen],
        family=sm.families.Binomial(),
        offset=offset,
        freq_weights=weights,
    )
    beta[seen] = np.asarray(model.fit().params, dtype=float)
    return beta


def platt_with_help(
    raw: np.ndarray, shares: np.ndarray, labels: np.ndarray, weights: np.ndarray | None
) -> tuple[Calibration, np.ndarray]:
    """Platt scaling on the raw score beside the help shares: the score's slope and
    intercept (help set to none), and the help coefficients fit with them."""
    model = LogisticRegression(C=np.inf, max_iter=1000).fit(
        np.column_stack([raw, shares]), labels, sample_weight=weights
    )
    calibration = Calibration(slope=float(model.coef_[0, 0]), intercept=float(model.intercept_[0]))
    return calibration, model.coef_[0, 1:].astype(float)
