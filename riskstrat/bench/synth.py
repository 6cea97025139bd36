"""``riskstrat bench synth``: time the generator at full size and save the figures."""

from __future__ import annotations

import json
import resource
import time
from pathlib import Path

from riskstrat.common.progress import QUIET, Progress
from riskstrat.sources.synthetic.borough import generate, write
from riskstrat.sources.synthetic.config import SynthConfig

RESULTS_FILE = "bench_synth.json"


def bench_synth(out: Path, patients: int, seed: int, progress: Progress = QUIET) -> dict:
    """Generate and write a borough of ``patients`` into ``out``; the timings, peak memory
    and the borough's headline rates, also written to ``out/bench_synth.json``."""
    began = time.perf_counter()
    borough = generate(SynthConfig(patients=patients, seed=seed), progress=progress)
    generated = time.perf_counter() - began
    write(borough, out)
    figures = {
        "patients": patients,
        "events": borough.summary["events"],
        "generate_seconds": round(generated, 1),
        "generate_and_write_seconds": round(time.perf_counter() - began, 1),
        "peak_memory_gib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2),
        "truth": borough.summary["truth"],
        "yearly_rate_per_person": borough.summary["yearly_rate_per_person"],
        "yearly_death_rate": borough.summary["yearly_death_rate"],
    }
    (out / RESULTS_FILE).write_text(json.dumps(figures, indent=2))
    return figures
