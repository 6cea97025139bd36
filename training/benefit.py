"""Estimated benefit: what each action of list-triggered help would prevent, per person.

From past list runs in the data (``risk_list_score`` events: who was scored and listed on
which run date) and the help the list triggered (``features.exposure``, the one definition:
a reablement plan or social prescribing referral coded ``risk_list``), a cross-fitted doubly
robust learner (the DR-learner, Kennedy 2023) per action:

- units: (person, list run) for people listed on the run without list-triggered help
  already running that day, whose whole outcome window is in the data and who did not leave
  the area inside it (the labels' censoring). Only listed people are ever offered help, so
  only they have a chance of either arm: the estimate is for them (the people scored but
  not listed teach only the baseline below);
- treatment: the action started by the list in the run's month; a unit given the other
  action is left out of this action's comparison (it is neither this help nor none);
- outcome: the count of potentially avoidable emergency admissions in ``horizon_days`` from
  the run date (``features.labels.count_admissions``); 90 days by default, the synthetic
  truth's three-month follow-up and the gap between quarterly runs, so that the next run's
  offers do not fall inside the window;
- nuisances, cross-fitted in ``folds`` folds by person: the propensity (LightGBM binary) and
  the outcome under each arm (LightGBM Poisson), on the model's features as of the run date
  plus the run's score (allocation may depend on it);
- AIPW pseudo-outcomes ``mu1 - mu0 + T (Y - mu1) / e - (1 - T) (Y - mu0) / (1 - e)``, whose
  mean is the average effect (its standard error clustered by person, as people recur over
  runs), and a final stage on the model's features: the per-person effect as the
  admissions expected without help times a relative effect, a shallow regression fitted
  to the pseudo-outcomes (``final_stage``), saved in ``models.benefit``;
- the held-out check of that relative effect (``variation_check``): fitted on all folds but
  one, does it rank the held-out fold's pseudo-outcomes better than a constant would? Only
  then is it kept; otherwise the relative effect is one number (the pseudo-outcomes' least
  squares ratio to the baseline) and the ranking is the baseline's. The noisy
  pseudo-outcomes of a few thousand people can teach a final stage differences between
  people that held-out people do not bear out, or reverse: ranking scarce help on them
  would be worse than ranking on the baseline.

Overlap: units whose out-of-fold propensity is outside ``[trim, 1 - trim]`` are left out;
the action is refused (a one-line reason, no estimate) when nobody or everybody was helped,
fewer than ``min_treated`` were, or more than ``max_trimmed_share`` of the units fall
outside the bounds (help that did not vary given the features).

Why our own and not EconML's ``DRLearner``: EconML is not in the lock, and would bring a
large dependency tree for what is a few dozen lines around LightGBM; owning them lets the
folds be by person, the refusals be ours, and the fitted artefact be LightGBM text that
serving loads without EconML or pickle.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pandas as pd
import pyarrow as pa
from pydantic import Field

from riskstrat.common.defaults import SEED
from riskstrat.common.months import month_start
from riskstrat.common.settings import Integer, load_table, settings_model
from riskstrat.contract.schema import EventKind
from riskstrat.contract.tables import ContractTables, unbound
from riskstrat.features.engine import KEY, build_features, feature_specs
from riskstrat.features.exposure import ExposureRule, exposure, help_started
from riskstrat.features.labels import LEFT_AREA, Outcome, build_labels, count_admissions
from riskstrat.models.benefit import Z95, ActionEffect, BenefitModel

TABLE = "benefit"
NONE = "none"  # the treatment of a unit no help started for
MIXED = "mixed"  # more than one kind started: in neither action's comparison
SCORE = "list_score"  # the run's score, a nuisance input (not a model feature)
MIN_BASELINE = 1e-3  # expected admissions below which the relative effect's weight is floored


@settings_model
class BenefitSettings:
    """How the benefit learner works (``[benefit]``)."""

    horizon_days: Integer = Field(90, ge=7, le=365)
    folds: Integer = Field(5, ge=2, le=10)
    trim: float = Field(0.02, gt=0, lt=0.5)
    max_trimmed_share: float = Field(0.5, gt=0, le=1)
    min_treated: Integer = Field(30, ge=1)
    nuisance_rounds: Integer = Field(150, ge=1)
    final_rounds: Integer = Field(20, ge=1)
    seed: Integer = SEED
    threads: Integer = Field(1, ge=1)  # small data: a second thread only adds overhead

    @classmethod
    def from_toml(cls, path: Path) -> BenefitSettings:
        """Read ``[benefit]``; a missing table gives the defaults."""
        return load_table(path, TABLE, cls)

    @property
    def outcome(self) -> Outcome:
        return Outcome(horizon_days=self.horizon_days, admissions="avoidable")


@dataclass(frozen=True, slots=True)
class BenefitData:
    """Everyone a list run scored in its band without help running, whose outcome window is
    complete, indexed by (patient, run date): ``score``, ``listed``, ``treatment`` (an event
    kind or ``none``) and ``outcome`` (avoidable admissions in the horizon), and their model
    features as of the run date (same index and order). The listed ones are the units
    compared; everyone without help teaches the baseline (``final_stage``)."""

    units: pd.DataFrame
    features: pd.DataFrame


def list_runs(sources: ContractTables) -> pd.DataFrame:
    """Every list run's scored people: patient_id, as_of (the run date), score, listed."""
    events = unbound("events")
    scored = events.filter(events.kind == EventKind.RISK_LIST_SCORE.value)
    frame = sources.run(
        scored.select("patient_id", as_of=scored.start, score=scored.value, code=scored.code),
        keep=False,
    )
    frame["as_of"] = pd.to_datetime(frame["as_of"]).dt.date
    frame["listed"] = frame["code"] == "listed"
    frame = frame.sort_values([*KEY, "listed"]).drop_duplicates(KEY, keep="last")
    return frame[[*KEY, "score", "listed"]].reset_index(drop=True)


def _treatments(sources: ContractTables, runs: Iterable[date], rule: ExposureRule) -> pd.Series:
    """The kind of help the list started in each run's month, per (patient, run date); a
    person with more than one kind started is marked ``MIXED``."""
    frames = []
    for run in runs:
        started = help_started(sources, run, month_start(run, 1), rule)
        kinds = started.groupby("patient_id")["kind"].agg(
            lambda k: k.iloc[0] if k.nunique() == 1 else MIXED
        )
        frames.append(kinds.to_frame("treatment").assign(as_of=run).reset_index())
    if not frames:
        return pd.Series(dtype="str", name="treatment")
    frame = pd.concat(frames, ignore_index=True)
    return frame.set_index(KEY)["treatment"]


def benefit_data(
    sources: ContractTables,
    settings: BenefitSettings,
    rule: ExposureRule,
    *,
    until: date,
) -> BenefitData:
    """The people scored on every list run whose outcome window ends on or before ``until``
    (the end of the data, or of a training period), with their treatment, outcome and
    features."""
    scored = list_runs(sources)
    horizon = settings.horizon_days
    ends = pd.to_datetime(scored["as_of"]) + pd.Timedelta(days=horizon)
    units = scored[ends <= pd.Timestamp(until)].set_index(KEY)
    runs = sorted(set(units.index.get_level_values("as_of")))
    if not runs:
        return BenefitData(units.assign(treatment=NONE, outcome=0.0), pd.DataFrame())
    running = exposure(sources, runs, horizon, rule)
    already = running.index[running["running"].to_numpy(bool)]
    units = units[~units.index.isin(already)]
    labels = build_labels(sources, runs, settings.outcome)
    followed = labels.index[labels["status"] != LEFT_AREA]
    units = units[units.index.isin(followed)].sort_index()
    counts = count_admissions(sources, runs, settings.outcome)
    units["outcome"] = counts.reindex(units.index).fillna(0.0).to_numpy()
    units["treatment"] = _treatments(sources, runs, rule).reindex(units.index).fillna(NONE)
    keys = pa.table(
        {
            "patient_id": pa.array(units.index.get_level_values("patient_id"), pa.string()),
            "as_of": pa.array(units.index.get_level_values("as_of"), pa.date32()),
        }
    )
    features = build_features(sources, runs, rows=keys)
    units = units.reindex(features.index)
    return BenefitData(units[["score", "listed", "treatment", "outcome"]], features)


# ---- the learner ---------------------------------------------------------------------------


def _params(objective: str, settings: BenefitSettings, *, final: bool = False) -> dict:
    """Small, deterministic LightGBM settings; the final model of the noisy pseudo-outcome
    is shallower and more regularised than the nuisances."""
    return {
        "objective": objective,
        "learning_rate": 0.05,
        "num_leaves": 4 if final else 15,
        "max_depth": 2 if final else 4,
        "min_child_samples": 200 if final else 40,
        "lambda_l2": 50.0 if final else 1.0,
        "feature_fraction": 0.8,
        "bagging_fraction": 0.8 if final else 1.0,
        "bagging_freq": 1 if final else 0,
        "deterministic": True,
        "force_row_wise": True,
        "num_threads": settings.threads,
        "seed": settings.seed,
        "verbosity": -1,
    }


def _fit(x: np.ndarray, y: np.ndarray, objective: str, settings: BenefitSettings) -> lgb.Booster:
    return lgb.train(
        _params(objective, settings),
        lgb.Dataset(x, y, free_raw_data=False),
        num_boost_round=settings.nuisance_rounds,
    )


def person_folds(patients: pd.Index, folds: int, seed: int) -> np.ndarray:
    """Each row's fold, every row of a person in the same one."""
    codes, unique = pd.factorize(patients, sort=True)
    order = np.random.default_rng(seed).permutation(len(unique))
    return (order % folds)[codes]


@dataclass(frozen=True, slots=True)
class Nuisances:
    """Out-of-fold propensity and outcome predictions under each arm, per unit."""

    propensity: np.ndarray
    untreated: np.ndarray
    treated: np.ndarray


def cross_fit(
    x: np.ndarray, t: np.ndarray, y: np.ndarray, fold: np.ndarray, settings: BenefitSettings
) -> Nuisances:
    """Each fold's nuisances learnt on the other folds."""
    e, mu0, mu1 = np.zeros(len(y)), np.zeros(len(y)), np.zeros(len(y))
    for k in range(settings.folds):
        test, train = fold == k, fold != k
        if not test.any():
            continue
        e[test] = _fit(x[train], t[train].astype(float), "binary", settings).predict(x[test])
        for arm, mu in ((False, mu0), (True, mu1)):
            rows = train & (t == arm)
            mu[test] = _fit(x[rows], y[rows], "poisson", settings).predict(x[test])
    return Nuisances(e, mu0, mu1)


def pseudo_outcomes(t: np.ndarray, y: np.ndarray, n: Nuisances) -> np.ndarray:
    """AIPW scores: their mean is the average effect (treated minus untreated)."""
    e = n.propensity
    return n.treated - n.untreated + t * (y - n.treated) / e - (1 - t) * (y - n.untreated) / (1 - e)


def clustered_ols(
    x: np.ndarray, y: np.ndarray, clusters: pd.Index
) -> tuple[np.ndarray, np.ndarray]:
    """Least squares coefficients and their covariance, robust to clustering (sandwich)."""
    bread = np.linalg.pinv(x.T @ x)
    beta = bread @ x.T @ y
    scores = pd.DataFrame(x * (y - x @ beta)[:, None]).groupby(np.asarray(clusters)).sum()
    g = len(scores)
    meat = scores.to_numpy().T @ scores.to_numpy() * g / max(g - 1, 1)
    return beta, bread @ meat @ bread


def clustered_se(scores: np.ndarray, clusters: pd.Index) -> float:
    """Standard error of the mean of ``scores``, clustered (people recur over runs)."""
    _, cov = clustered_ols(np.ones((len(scores), 1)), scores, clusters)
    return float(np.sqrt(cov[0, 0]))


def _refusal(kind: str, t: np.ndarray, settings: BenefitSettings) -> str | None:
    treated = int(t.sum())
    if treated == 0:
        return f"nobody was offered {kind} by the list: help never varied"
    if treated == len(t):
        return f"everybody listed was offered {kind}: nobody to compare with"
    if treated < settings.min_treated:
        return f"only {treated} offered {kind} by the list (at least {settings.min_treated})"
    return None


def estimate_action(
    data: BenefitData, kind: str, settings: BenefitSettings
) -> tuple[ActionEffect, pd.DataFrame]:
    """One action against no help: its ``ActionEffect`` and the kept units' out-of-fold
    propensity and pseudo-outcome (for checks); a refusal has no units kept."""
    compared = (data.units["listed"] & data.units["treatment"].isin([kind, NONE])).to_numpy()
    units, features = data.units[compared], data.features[compared]
    t = (units["treatment"] == kind).to_numpy()
    empty = pd.DataFrame(columns=["propensity", "pseudo_outcome"])
    refused = _refusal(kind, t, settings)
    if refused is not None:
        return ActionEffect(kind, len(t), int(t.sum()), refused=refused), empty
    x = features.assign(**{SCORE: units["score"].to_numpy()}).to_numpy("float64")
    y = units["outcome"].to_numpy("float64")
    patients = units.index.get_level_values("patient_id")
    fold = person_folds(patients, settings.folds, settings.seed)
    nuisances = cross_fit(x, t, y, fold, settings)
    e = nuisances.propensity
    kept = (e >= settings.trim) & (e <= 1 - settings.trim)
    trimmed = int((~kept).sum())
    if trimmed > settings.max_trimmed_share * len(t):
        share = trimmed / len(t)
        reason = (
            f"propensity of {kind} outside [{settings.trim:g}, {1 - settings.trim:g}] for "
            f"{share:.0%} of units: help hardly varied given the features"
        )
        return ActionEffect(kind, len(t), int(t.sum()), trimmed, refused=reason), empty
    phi = pseudo_outcomes(t[kept], y[kept], _take(nuisances, kept))
    untreated = (data.units["treatment"] == NONE).to_numpy()
    baseline = _fit(
        data.features[untreated].to_numpy("float64"),
        data.units.loc[untreated, "outcome"].to_numpy("float64"),
        "poisson",
        settings,
    )
    x_kept = features.to_numpy("float64")[kept]
    base = np.maximum(baseline.predict(x_kept), MIN_BASELINE)
    slope, slope_se = variation_check(base, x_kept, phi, fold[kept], patients[kept], settings)
    varies = slope - Z95 * slope_se > 0
    effect = ActionEffect(
        kind,
        units=len(t),
        treated=int(t.sum()),
        trimmed=trimmed,
        ate=float(phi.mean()),
        se=clustered_se(phi, patients[kept]),
        baseline=baseline.model_to_string(),
        model=final_stage(base, x_kept, phi, settings).model_to_string() if varies else None,
        relative=None if varies else constant_relative(base, phi),
        varies_slope=slope,
        varies_se=slope_se,
    )
    checks = pd.DataFrame({"propensity": e[kept], "pseudo_outcome": phi}, index=units.index[kept])
    return effect, checks


def final_stage(
    base: np.ndarray, x: np.ndarray, phi: np.ndarray, settings: BenefitSettings
) -> lgb.Booster:
    """The relative effect, so that the per-person effect is ``baseline(x) * relative(x)``:
    a shallow regression of ``phi / base`` weighted by ``base ** 2`` (least squares of
    ``phi - base * relative``). ``base`` is the avoidable admissions expected without help
    (floored at ``MIN_BASELINE``), learnt from everyone scored without help (listed or not:
    many more people than the units). Help that scales a hazard prevents in proportion to
    the admissions it can reach, so the noisy pseudo-outcomes need only say how that
    proportion varies."""
    return lgb.train(
        _params("regression", settings, final=True),
        lgb.Dataset(x, phi / base, weight=base**2),
        num_boost_round=settings.final_rounds,
    )


def constant_relative(base: np.ndarray, phi: np.ndarray) -> float:
    """One relative effect for everyone: the least squares ratio of ``phi`` to ``base``."""
    return float((phi * base).sum() / (base**2).sum())


def variation_check(
    base: np.ndarray,
    x: np.ndarray,
    phi: np.ndarray,
    fold: np.ndarray,
    patients: pd.Index,
    settings: BenefitSettings,
) -> tuple[float, float]:
    """Does the final stage's relative effect vary between people as held-out people bear
    out? Each fold's relative effect ``r`` comes from a final stage fitted on the other
    folds; the pseudo-outcomes are then regressed on ``base`` and ``base * (r - mean r)``
    (the best linear predictor test of Chernozhukov et al., on the relative scale). Returns
    the second slope and its standard error, clustered by person: about 1 where the
    differences are real and well sized, 0 where they are noise, below 0 where backwards."""
    r = np.zeros(len(phi))
    for k in np.unique(fold):
        held, rest = fold == k, fold != k
        r[held] = final_stage(base[rest], x[rest], phi[rest], settings).predict(x[held])
    design = np.column_stack([base, base * (r - r.mean())])
    beta, cov = clustered_ols(design, phi, patients)
    return float(beta[1]), float(np.sqrt(cov[1, 1]))


def _take(n: Nuisances, rows: np.ndarray) -> Nuisances:
    return Nuisances(n.propensity[rows], n.untreated[rows], n.treated[rows])


def benefit_model(
    data: BenefitData, settings: BenefitSettings, actions: Iterable[ActionEffect]
) -> BenefitModel:
    """The saved form of the actions' estimates, for the model's features and the runs
    ``data`` holds."""
    return BenefitModel(
        features=tuple(s.name for s in feature_specs()),
        horizon_days=settings.horizon_days,
        runs=tuple(sorted(set(data.units.index.get_level_values("as_of")))),
        actions=tuple(actions),
    )


def fit_benefit(data: BenefitData, settings: BenefitSettings, kinds: Iterable[str]) -> BenefitModel:
    """Every action's estimate (or refusal) from the units of past list runs."""
    return benefit_model(data, settings, (estimate_action(data, k, settings)[0] for k in kinds))


def train_benefit(
    sources: ContractTables,
    settings: BenefitSettings,
    rule: ExposureRule,
    *,
    until: date,
) -> BenefitModel:
    """The benefit model from every list run whose outcome window ends by ``until``."""
    data = benefit_data(sources, settings, rule, until=until)
    return fit_benefit(data, settings, rule.kinds)
