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
