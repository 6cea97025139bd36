"""What the commands print about a finished result (training, a weekly run), shared by the
command that produced it and by ``riskstrat demo``."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from riskstrat.cli.reporter import say

if TYPE_CHECKING:
    from riskstrat.serving.weekly.run import WeeklyResult
    from riskstrat.training.pipeline import TrainResult


def say_training(result: TrainResult) -> None:
    """The headline figures, saying how the model was tested (out of time, or on held-out
    groups) as its description does."""
    metrics = result.metrics
    low, high = metrics["auroc_ci_low"], metrics["auroc_ci_high"]
    interval = "no interval" if math.isnan(low) else f"95% CI {low:.3f}-{high:.3f}"
    line = (
        f"AUROC {metrics['auroc']:.3f} ({interval}), tested {result.bundle.described.test.phrase()}"
    )
    if "oracle_auroc" in metrics:
        line += f"; oracle AUROC {metrics['oracle_auroc']:.3f} (the best any model can do)"
    say(line)
    prior = metrics.get("baseline_prior_admissions_auroc")
    say(
        f"baselines: logistic regression {metrics['baseline_logistic_auroc']:.3f}"
        + (f", prior admissions {prior:.3f}" if prior is not None else "")
        + f"; calibration slope {metrics['calibration_slope']:.2f}, in the large "
        f"{metrics['calibration_intercept']:+.3f}"
    )
    from riskstrat.features.absent import describe_absent

    for line in describe_absent(result.absent_features):
        say(f"absent from the data, default for everyone: {line}")


def say_week(result: WeeklyResult) -> None:
    """A weekly run's counts, model check, monitoring verdict and folder."""
    counts = result.manifest["counts"]
    say(
        f"scored {counts['scored']:,} people with model version "
        f"{result.manifest['model']['version']}; listed {counts['listed']:,} "
        f"(new {counts['new']:,}, stayed {counts['stayed']:,}, left {counts['left']:,}) "
        f"in {sum(result.seconds.values()):.1f} s"
    )
    second = result.manifest["avoidable_model"]
    if second["version"] is None:
        say(f"potentially avoidable admissions: none scored ({second['absent']})")
    else:
        say(f"potentially avoidable admissions: {second['name']} version {second['version']}")
    say(f"model check: {result.manifest['drift']['verdict']}")
    say(f"monitoring: {result.monitoring.message}")
    absent = result.manifest["absent"]
    if absent["kinds"]:
        from riskstrat.features.absent import describe_absent

        say(f"absent from the data: {', '.join(absent['kinds'])} events")
        for line in describe_absent({k: tuple(v) for k, v in absent["features"].items()}):
            say(f"  features at their default for everyone: {line}")
    say(f"lists in {result.folder}")
