"""``riskstrat bench synth``: time the generator at full size and save the figures."""

from __future__ import annotations

import json
import resource
import time
from pathlib import Path

from riskstrat.common.progress import QUIET, Progress
from riskstrat.sources.synthetic.borough import generate_to
from riskstrat.sources.synthetic.config import SynthConfig

RESULTS_FILE = "bench_synth.json"


def bench_synth(out: Path, patients: int, seed: int, progress: Progress = QUIET) -> dict:
    """Generate and write a borough of ``patients`` into ``out`` as ``riskstrat synth`` does
    (events streamed to disk month by month); the time, peak memory and the borough's
    headline rates, also written to ``out/bench_synth.json``."""
    began = time.perf_counter()
    summary = generate_to(SynthConfig(patients=patients, seed=seed), out, progress=progress)
    figures = {
        "patients": patients,
        "events": summary["events"],
        "generate_and_write_seconds": round(time.perf_counter() - began, 1),
        "peak_memory_gib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2),
        "truth": summary["truth"],
        "yearly_rate_per_person": summary["yearly_rate_per_person"],
        "yearly_death_rate": summary["yearly_death_rate"],
    }
    (out / RESULTS_FILE).write_text(json.dumps(figures, indent=2))
    return figures
