"""Measure the fit settings (``refit``, ``calibration_snapshots``, ``refit_scale_rounds``).

On synthetic boroughs: out-of-time AUROC, calibration slope and calibration in the large at
the test as-of date for every combination of the settings. And the feature-table case (a
table of two as-of dates without a time column, split as ``training.table`` does): riskstrat's
test AUROC beside a plain LightGBM with the same tree settings and rounds fit on every
training row. ``benchmark_fit`` prints the figures and writes them as JSON.
"""

from __future__ import annotations

import dataclasses
import json
import tempfile
from datetime import date
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from riskstrat.contract.tables import ContractTables
from riskstrat.contract.validation import validate_dir
from riskstrat.features.engine import build_features, feature_specs
from riskstrat.features.labels import build_labels
from riskstrat.sources.synthetic.borough import generate, write
from riskstrat.sources.synthetic.config import SynthConfig
from riskstrat.training.config import TrainConfig
from riskstrat.training.evaluate import calibration_in_the_large, calibration_slope
from riskstrat.training.fit import Snapshots, fit_bundle
from riskstrat.training.table import load_table

EXTRACT_DATE = date(2026, 10, 31)
TABLE_AS_OF = (date(2023, 1, 1), date(2024, 1, 1))
VARIANTS = (
    ("none", "all", False),  # the fit before refitting and latest-snapshot calibration
    ("none", "latest", False),
    *(
        (r, c, s)
        for r in ("validation", "crossfit")
        for c in ("all", "latest")
        for s in (False, True)
    ),
)


def _variant(config: TrainConfig, refit: str, snapshots: str, scale: bool) -> TrainConfig:
    return dataclasses.replace(
        config, refit=refit, calibration_snapshots=snapshots, refit_scale_rounds=scale
    )


def _name(refit: str, snapshots: str, scale: bool) -> str:
    return f"refit={refit} calibration={snapshots}" + (" scaled" if scale else "")


def _labelled(features: pd.DataFrame, labels: pd.DataFrame, as_of: tuple[date, ...]) -> Snapshots:
    keep = features.index.get_level_values("as_of").isin(as_of) & labels["label"].notna().to_numpy()
    return Snapshots(features[keep], labels.loc[keep, "label"].astype(float))


def _borough(seed: int, patients: int, work: Path, config: TrainConfig) -> tuple:
    """Features and labels of a generated, validated borough at the training and test dates."""
    write(generate(SynthConfig(patients=patients, seed=seed, truth_as_of=())), work / "raw")
    validate_dir(work / "raw", work / "contract", EXTRACT_DATE)
    sources = ContractTables.from_dir(work / "contract")
    dates = tuple(sorted({*config.train_as_of, config.test_as_of, *TABLE_AS_OF}))
    return build_features(sources, dates), build_labels(sources, dates, config.outcome)


def out_of_time(features: pd.DataFrame, labels: pd.DataFrame, config: TrainConfig) -> dict:
    """Each variant's out-of-time figures at the test as-of date."""
    train = _labelled(features, labels, config.train_as_of)
    test = _labelled(features, labels, (config.test_as_of,))
    y = test.labels.to_numpy()
    figures = {}
    for variant in VARIANTS:
        bundle, facts = fit_bundle(train, feature_specs(), _variant(config, *variant))
        risk = bundle.predict(test.features)
        figures[_name(*variant)] = {
            "auroc": float(roc_auc_score(y, risk)),
            "calibration_slope": calibration_slope(y, risk),
            "calibration_in_the_large": calibration_in_the_large(y, risk),
            "rounds_final": facts["rounds_final"],
        }
    return figures


def feature_table(
    features: pd.DataFrame, labels: pd.DataFrame, config: TrainConfig, work: Path
) -> dict:
    """riskstrat against a plain LightGBM on all training rows, on an undated feature table."""
    rows = _labelled(features, labels, TABLE_AS_OF)
    table = rows.features.reset_index().drop(columns="as_of").assign(y=rows.labels.to_numpy())
    path = work / "table.parquet"
    table.to_parquet(path)
    data = load_table(path, "y", "patient_id", None, config)
    y = data.test.labels.to_numpy()
    names = [s.name for s in data.specs]
    figures = {}
    for variant in VARIANTS:
        bundle, facts = fit_bundle(data.train, data.specs, _variant(config, *variant))
        plain = lgb.train(
            config.lightgbm.booster_params(config.seed),
            lgb.Dataset(data.train.features[names], data.train.labels),
            num_boost_round=int(facts["rounds_final"]),
        )
        ours = float(roc_auc_score(y, bundle.predict(data.test.features)))
        theirs = float(roc_auc_score(y, plain.predict(data.test.features[names])))
        figures[_name(*variant)] = {
            "auroc": ours,
            "plain_lightgbm_auroc": theirs,
            "gap": theirs - ours,
            "rounds_final": facts["rounds_final"],
        }
    return figures


def _mean(per_seed: dict[int, dict], key: str) -> dict[str, float]:
    first = next(iter(per_seed.values()))
    return {
        variant: float(np.mean([per_seed[s][variant][key] for s in per_seed])) for variant in first
    }


def benchmark_fit(out: Path, seeds: tuple[int, ...] = (1, 2, 3), patients: int = 50_000) -> dict:
    """Measure every variant on one borough per seed; print and write ``out`` (JSON)."""
    config = TrainConfig()
    results: dict = {"patients": patients, "out_of_time": {}, "feature_table": {}}
    for seed in seeds:
        with tempfile.TemporaryDirectory(prefix="riskstrat-fit-benchmark-") as folder:
            work = Path(folder)
            features, labels = _borough(seed, patients, work, config)
            results["out_of_time"][seed] = out_of_time(features, labels, config)
            results["feature_table"][seed] = feature_table(features, labels, config, work)
        print(f"seed {seed} done", flush=True)
    results["mean"] = {
        "out_of_time": {
            k: _mean(results["out_of_time"], k)
            for k in ("auroc", "calibration_slope", "calibration_in_the_large")
        },
        "feature_table_gap": _mean(results["feature_table"], "gap"),
    }
    out.write_text(json.dumps(results, indent=2))
    for variant in results["mean"]["feature_table_gap"]:
        oot = {
            k: results["mean"]["out_of_time"][k][variant] for k in results["mean"]["out_of_time"]
        }
        print(
            f"{variant:44s} AUROC {oot['auroc']:.4f} slope {oot['calibration_slope']:.3f} "
            f"in the large {oot['calibration_in_the_large']:+.3f} | table gap "
            f"{results['mean']['feature_table_gap'][variant]:+.4f}"
        )
    return results
