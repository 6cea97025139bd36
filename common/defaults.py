"""Defaults that several layers share, each defined once.

The command line, the configuration objects, the benchmarks and the Makefile all fall back
to these, so changing one here changes it everywhere.
"""

from __future__ import annotations

from pathlib import Path

# The work folder: MLflow database and artifacts, BentoML store, reports, lists, evaluations.
WORKDIR = Path("work")
# The random seed when none is given: a fixed one, so every run can be repeated.
SEED = 42


class WorkFolder:
    """The work folder's layout: where the demo writes, and where ``riskstrat train``,
    ``token`` and ``serve`` write and read when no option or variable says otherwise."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.borough = root / "borough"  # the synthetic borough's tables and ground truth
        self.validated = root / "validated"  # the validated contract tables
        self.tracking_db = root / "mlflow.db"  # MLflow's tracking database
        self.artifacts = root / "mlartifacts"  # MLflow's artifact store
        self.bentoml = root / "bentoml"  # BentoML's model store
        self.report = root / "report"  # the latest training's report and model card
        self.benefit = root / "benefit.json"  # the benefit model (riskstrat benefit)
        self.benefit_card = root / "benefit_card.html"  # and its card
        # The demo's second model (potentially avoidable admissions): its report and card.
        self.avoidable_report = root / "report-avoidable"
        self.lists = root / "lists"  # the weekly runs, one folder a week
        self.evaluations = root / "evaluations"  # the built-in plans' evaluations
        self.access = root / "access.toml"  # the service's tokens
        self.audit_log = root / "audit.jsonl"  # the service's audit trail
