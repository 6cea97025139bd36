"""The evaluation report's tables and plots: each plot is a PNG with its data as CSV beside it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from riskstrat.common.spreadsheet import write_frame
from riskstrat.features.bands import age_band
from riskstrat.training.calibration import smoothed_calibration


def calibration_table(labels: np.ndarray, risk: np.ndarray, bins: int = 10) -> pd.DataFrame:
    """Observed against mean predicted risk by risk decile."""
    group = pd.qcut(risk, bins, labels=False, duplicates="drop")
    frame = pd.DataFrame({"group": group, "predicted": risk, "observed": labels})
    table = frame.groupby("group").agg(
        people=("observed", "size"), predicted=("predicted", "mean"), observed=("observed", "mean")
    )
    return table.reset_index()


def smoothed_calibration_table(labels: np.ndarray, risk: np.ndarray) -> pd.DataFrame:
    grid, observed = smoothed_calibration(labels, risk)
    return pd.DataFrame({"predicted": grid, "smoothed_observed": observed})


def decision_curve(
    labels: np.ndarray, risk: np.ndarray, thresholds: np.ndarray | None = None
) -> pd.DataFrame:
    """Net benefit of acting on the model, on everyone, and on no one, by threshold."""
    thresholds = np.round(np.arange(0.01, 0.51, 0.01), 2) if thresholds is None else thresholds
    n, prevalence = len(labels), labels.mean()
    rows = []
    for t in thresholds:
        act = risk >= t
        tp = np.sum(act & (labels == 1)) / n
        fp = np.sum(act & (labels == 0)) / n
        odds = t / (1 - t)
        rows.append(
            {
                "threshold": t,
                "net_benefit_model": tp - fp * odds,
                "net_benefit_all": prevalence - (1 - prevalence) * odds,
                "net_benefit_none": 0.0,
            }
        )
    return pd.DataFrame(rows)


def subgroup_groups(
    features: pd.DataFrame, context: pd.DataFrame, specs_vocab: dict[str, tuple[str, ...]]
) -> pd.DataFrame:
    """Each person's age band, sex, deprivation quintile, ethnicity, locality and care home,
    for those of these the features (or the cohort context) hold."""

    def label(column: str) -> pd.Series:
        vocabulary = specs_vocab[column]
        codes = features[column].astype(int)
        return codes.map(lambda c: vocabulary[c] if 0 <= c < len(vocabulary) else "unknown")

    def quintile(deciles: pd.Series) -> pd.Series:
        return np.ceil(deciles / 2).map(lambda q: "unknown" if np.isnan(q) else f"Q{int(q)}")

    makers = {
        "age band": (
            "age",
            lambda: age_band(features["age"]),
        ),
        "sex": ("sex", lambda: label("sex")),
        "deprivation quintile": (
            "deprivation_decile",
            lambda: quintile(features["deprivation_decile"]),
        ),
        "ethnicity group": ("ethnicity_group", lambda: label("ethnicity_group")),
        "care home": (
            "care_home_resident",
            lambda: pd.Series(
                np.where(features["care_home_resident"] > 0, "yes", "no"), index=features.index
            ),
        ),
    }
    coded = {"sex", "ethnicity_group"}  # meaningful only with their vocabulary
    groups = {
        name: make()
        for name, (column, make) in makers.items()
        if column in features.columns and (column not in coded or column in specs_vocab)
    }
    if "locality" in context.columns:
        groups["locality"] = context["locality"].reindex(features.index).fillna("unknown")
    return pd.DataFrame(groups, index=features.index)


def subgroup_table(
    groups: pd.DataFrame, labels: np.ndarray, risk: np.ndarray, list_threshold: float
) -> pd.DataFrame:
    """Per subgroup: size, events, observed and expected risk, AUROC, error rates when listed."""
    listed = risk >= list_threshold
    rows = []
    for variable in groups.columns:
        for value, index in groups.groupby(variable).indices.items():
            y, p, flagged = labels[index], risk[index], listed[index]
            negatives, positives = (y == 0).sum(), (y == 1).sum()
            rows.append(
                {
                    "variable": variable,
                    "group": value,
                    "people": len(index),
                    "events": int(positives),
                    "observed": float(y.mean()),
                    "expected": float(p.mean()),
                    "observed_over_expected": float(y.mean() / p.mean())
                    if p.mean() > 0
                    else np.nan,
                    "auroc": float(roc_auc_score(y, p)) if 0 < positives < len(y) else np.nan,
                    "false_positive_rate": float((flagged & (y == 0)).sum() / negatives)
                    if negatives
                    else np.nan,
                    "false_negative_rate": float((~flagged & (y == 1)).sum() / positives)
                    if positives
                    else np.nan,
                }
            )
    return pd.DataFrame(rows)


def _plot(path: Path, draw) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(6, 4.5), dpi=110)
    draw(axes)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)


def write_plots(folder: Path, tables: dict[str, pd.DataFrame], tested: str) -> list[Path]:
    """Each table as CSV, and the plots as PNG beside their data; ``tested`` says how the
    test set was chosen ("out of time (as of ...)", "on 20% of groups held out ...")."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, table in tables.items():
        path = folder / f"{name}.csv"
        write_frame(table, path)
        written.append(path)

    def calibration(ax) -> None:
        deciles, smooth = tables["calibration_deciles"], tables["calibration_smoothed"]
        top = max(deciles["observed"].max(), smooth["predicted"].max()) * 1.05
        ax.plot([0, top], [0, top], color="grey", linestyle=":", label="perfect")
        ax.plot(smooth["predicted"], smooth["smoothed_observed"], label="smoothed (loess)")
        ax.scatter(deciles["predicted"], deciles["observed"], color="black", s=14, label="deciles")
        ax.set(
            xlabel="predicted risk", ylabel="observed rate", title=f"Calibration, tested {tested}"
        )
        ax.legend()

    def decision(ax) -> None:
        curve = tables["decision_curve"]
        ax.plot(curve["threshold"], curve["net_benefit_model"], label="model")
        ax.plot(curve["threshold"], curve["net_benefit_all"], label="everyone", linestyle="--")
        ax.axhline(0, color="grey", linestyle=":", label="no one")
        low = min(0.0, curve["net_benefit_model"].min()) - 0.005
        ax.set(
            ylim=(low, curve["net_benefit_model"].max() * 1.1 + 0.005),
            xlabel="risk threshold",
            ylabel="net benefit",
            title="Decision curve",
        )
        ax.legend()

    def drift(ax) -> None:
        table = tables["drift"]
        ax.plot(table["as_of"].astype(str), table["auroc"], marker="o", label="model")
        if "oracle_auroc" in table:
            ax.plot(table["as_of"].astype(str), table["oracle_auroc"], marker="o", label="oracle")
        ax.set(xlabel="as-of date", ylabel="AUROC", title="Discrimination over time")
        ax.legend()

    for name, draw in (
        ("calibration", calibration),
        ("decision_curve", decision),
        ("drift", drift),
    ):
        if name in tables or name == "calibration":
            path = folder / f"{name}.png"
            _plot(path, draw)
            written.append(path)
    return written
