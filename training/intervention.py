"""Training rows when the risk list changes the outcomes it learns from.

A list that works gets its people help (a reablement plan, a social prescribing referral)
that lowers their admissions; a model retrained naively on that period learns that their
features mean lower risk (Liley et al., AISTATS 2021). The list should rank people by their
risk without list-triggered help. ``training_snapshots`` turns features, labels and exposure
(``features.exposure``) into the rows each strategy of ``[train.intervention]`` learns from
(``training.config.InterventionSettings`` says what each does and assumes); ``fit_bundle``
then fits them. The pipeline and the retraining benchmark both call it: one code path.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date

import numpy as np
import pandas as pd

from riskstrat.features.exposure import ExposureRule, exposure_shares
from riskstrat.features.spec import FeatureSpec
from riskstrat.models.description import InterventionDescription, RecordedExposureRule, Strategy
from riskstrat.training.baselines import logistic_model
from riskstrat.training.config import InterventionSettings
from riskstrat.training.fit import Snapshots
from riskstrat.training.help_effect import ODDS_RATIO, OVERLAP

CENSORING_MODEL_ROWS = 200_000  # the censoring model learns at most this many rows (time)
CENSORING_SEED = 0


@dataclass(frozen=True, slots=True)
class InterventionFacts:
    """What a strategy did to the training rows."""

    strategy: Strategy
    rule: ExposureRule | None  # None: exposure could not be told (a feature table)
    rows_exposed: int  # rows that list-triggered help touched in their horizon
    rows_removed: int  # of those, left out (unexposed: all; censor: running or censored)
    rows_censored: int  # censor: rows censored where help began
    max_weight: float  # censor: the largest weight given (1 otherwise)

    def metrics(self) -> dict[str, float]:
        return {
            "rows_exposed": float(self.rows_exposed),
            "rows_removed_exposed": float(self.rows_removed),
            "rows_censored": float(self.rows_censored),
            "censoring_max_weight": self.max_weight,
        }

    def description(self, fit_facts: dict[str, float]) -> InterventionDescription:
        """The record saved with the model; ``fit_facts`` adds as_feature's odds ratios and
        overlap (from ``fit_bundle``)."""
        rule = self.rule
        return InterventionDescription(
            strategy=self.strategy,
            exposure=None
            if rule is None
            else RecordedExposureRule(
                kinds=rule.kinds, codes=rule.codes, open_days=rule.open_days, text=rule.describe()
            ),
            rows_exposed=self.rows_exposed,
            rows_removed=self.rows_removed,
            rows_censored=self.rows_censored,
            odds_ratios={
                k.removeprefix(ODDS_RATIO): v
                for k, v in fit_facts.items()
                if k.startswith(ODDS_RATIO)
            },
            overlap_exposed_share=tuple(
                v for k, v in sorted(fit_facts.items()) if k.startswith(OVERLAP)
            ),
        )


def rule_of(description: InterventionDescription) -> ExposureRule:
    """The exposure rule a model was trained with; the default rule when none was recorded."""
    recorded = description.exposure
    if recorded is None:
        return ExposureRule()
    return ExposureRule(kinds=recorded.kinds, codes=recorded.codes, open_days=recorded.open_days)


def unaffected(index: pd.Index, exposure: pd.DataFrame) -> np.ndarray:
    """Per row of ``index`` (patient, as-of date): whether no list-triggered help touched it
    (no help day in its horizon and none running on the as-of date)."""
    touched = exposure.index[(exposure["help_days"] > 0) | exposure["running"].astype(bool)]
    return ~index.isin(touched)


def censoring_weights(
    features: pd.DataFrame,
    censored: np.ndarray,
    specs: tuple[FeatureSpec, ...],
    max_weight: float,
    sampled: np.ndarray | None = None,
) -> np.ndarray:
    """1 / (1 - P(censored | features)) per row, at most ``max_weight``: a logistic regression
    of ``censored`` on the features (on at most ``CENSORING_MODEL_ROWS`` rows), weighted by
    the rows' sampling weights ``sampled`` (``training.rows``) when given."""
    if not censored.any():
        return np.ones(len(censored))
    learn = np.arange(len(censored))
    if len(learn) > CENSORING_MODEL_ROWS:
        rng = np.random.default_rng(CENSORING_SEED)
        learn = np.sort(rng.choice(learn, CENSORING_MODEL_ROWS, replace=False))
    columns = [s.name for s in specs]
    fit_weights = {} if sampled is None else {"logisticregression__sample_weight": sampled[learn]}
    model = logistic_model(specs).fit(features[columns].iloc[learn], censored[learn], **fit_weights)
    p = model.predict_proba(features[columns])[:, 1]
    return np.minimum(1.0 / np.clip(1.0 - p, 1e-12, None), max_weight)


def training_snapshots(
    settings: InterventionSettings,
    features: pd.DataFrame,
    labels: pd.DataFrame,
    exposure: pd.DataFrame,
    *,
    as_of_dates: Iterable[date],
    horizon_days: int,
    rule: ExposureRule,
    specs: tuple[FeatureSpec, ...],
    sampled: pd.Series | None = None,
) -> tuple[Snapshots, InterventionFacts]:
    """The rows of ``as_of_dates`` with an observed label, as ``settings.strategy`` learns
    them, and what it did.

    ``labels`` is ``build_labels(..., with_date=True)`` (``label``, ``first_event``);
    ``exposure`` is ``features.exposure.exposure`` for these dates, ``horizon_days`` and
    ``rule``; ``specs`` name the features (the censoring model uses them). ``sampled`` holds
    the sampling weight of each row of ``features`` (``training.rows``; None: all 1), which
    the strategy's own weights multiply.
    """
    keep = features.index.get_level_values("as_of").isin(list(as_of_dates))
    keep &= labels["label"].reindex(features.index).notna().to_numpy()
    x = features[keep]
    y = labels["label"].reindex(x.index).astype(float)
    base = None if sampled is None else sampled.reindex(x.index).to_numpy(dtype=float)
    touched = ~unaffected(x.index, exposure)
    strategy = settings.strategy
    removed = censored = np.zeros(len(x), dtype=bool)
    weights = help_shares = None
    if strategy == "unexposed":
        removed = touched
    elif strategy == "as_feature":
        shares = exposure_shares(exposure, x.index, rule, horizon_days)
        shares.columns = [c.removeprefix("days_") for c in shares.columns]
        seen = shares.loc[:, (shares > 0).any(axis=0)]
        help_shares = seen if seen.shape[1] else None  # no help yet: as naive
    elif strategy == "censor":
        at = exposure.reindex(x.index)
        running = at["running"].fillna(False).astype(bool).to_numpy()
        starts = pd.to_datetime(at["first_help"]).to_numpy()
        first_event = pd.to_datetime(labels["first_event"].reindex(x.index)).to_numpy()
        event_first = ~np.isnat(first_event) & (first_event < starts)
        censored = touched & ~running & ~event_first
        removed = running | censored
        at_risk = None if base is None else base[~running]
        w = censoring_weights(x[~running], censored[~running], specs, settings.max_weight, at_risk)
        weights = pd.Series(w, index=x.index[~running])[~censored[~running]]
    kept = ~removed
    max_weight = float(weights.max()) if weights is not None and len(weights) else 1.0
    if base is not None and not (base == 1).all():
        sample = pd.Series(base[kept], index=x.index[kept])
        weights = sample if weights is None else weights * sample
    data = Snapshots(
        x[kept],
        y[kept],
        weights,
        None if help_shares is None else help_shares[kept],
    )
    facts = InterventionFacts(
        strategy=strategy,
        rule=rule,
        rows_exposed=int(touched.sum()),
        rows_removed=int(removed.sum()),
        rows_censored=int(censored.sum()),
        max_weight=max_weight,
    )
    return data, facts


def table_facts(settings: InterventionSettings) -> tuple[InterventionFacts, str | None]:
    """A feature table says nothing of help: the model learns as ``naive`` whatever the
    setting, and the second value says so when another strategy was set."""
    facts = InterventionFacts("naive", None, 0, 0, 0, 1.0)
    if settings.strategy == "naive":
        return facts, None
    return facts, (
        f"[train.intervention] strategy {settings.strategy!r} needs to know which rows "
        "list-triggered help touched, which a feature table cannot tell: the model learns "
        "from every row as observed (naive), and its card says so"
    )
