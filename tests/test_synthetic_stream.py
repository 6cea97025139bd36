"""The generator in bounded memory: ``generate_to`` streams events to disk by month and
writes them a block of people at a time, and its files are the in-memory path's, byte for byte;
the state's arithmetic is done in blocks of people with the same answer."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from riskstrat.contract.schema import EventKind
from riskstrat.sources.synthetic.borough import MANIFEST, TRUTH_DIR, generate, generate_to, write
from riskstrat.sources.synthetic.conditions import CONDITIONS
from riskstrat.sources.synthetic.config import SynthConfig
from riskstrat.sources.synthetic.dynamics import weighted
from riskstrat.sources.synthetic.eventlog import EventLog

# 30 months: the locality model's caseload and a risk list run, in a few tenths of a second
TINY = SynthConfig(
    patients=400,
    seed=3,
    start=date(2022, 7, 1),
    end=date(2024, 12, 31),
    truth_as_of=(date(2024, 1, 1),),
)


def _manifest(folder: Path) -> dict:
    manifest = json.loads((folder / MANIFEST).read_text())
    manifest.pop("seconds")
    return manifest


def test_streamed_borough_is_the_in_memory_borough_file_for_file(tmp_path: Path) -> None:
    in_memory, streamed = tmp_path / "memory", tmp_path / "streamed"
    write(generate(TINY), in_memory)
    summary = generate_to(TINY, streamed, block_people=128)  # four blocks of people

    # tables.json holds each contract table's SHA-256: the same bytes, row groups included
    assert (streamed / "tables.json").read_text() == (in_memory / "tables.json").read_text()
    for name in ("truth", "effects", "list_actions"):
        expected = pq.read_table(in_memory / TRUTH_DIR / f"{name}.parquet")
        assert pq.read_table(streamed / TRUTH_DIR / f"{name}.parquet").equals(expected)
    assert _manifest(streamed) == _manifest(in_memory)
    assert summary["events"] == pq.ParquetFile(streamed / "events.parquet").metadata.num_rows
    assert sorted(p.name for p in streamed.iterdir() if p.name.startswith(".")) == []


def test_a_spilling_log_recalls_only_the_kinds_the_simulation_asks_for(tmp_path: Path) -> None:
    log = EventLog.spilling(tmp_path, block_people=2)
    person = np.array([0, 3, 5], np.int32)
    log.add(EventKind.EMERGENCY_ADMISSION, person, np.array([10, 20, 30]))
    log.add(EventKind.GP_CONTACT, person, np.array([10, 20, 30]))
    log.settle()
    log.add(EventKind.EMERGENCY_ADMISSION, person[:1], np.array([40]))

    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "block-00000.bin",
        "block-00001.bin",
        "block-00002.bin",
    ]
    assert log.persons(EventKind.EMERGENCY_ADMISSION, 15, 41).tolist() == [3, 5, 0]
    assert len(log) == 7
    with pytest.raises(ValueError, match="gp_contact is not kept for recall"):
        log.persons(EventKind.GP_CONTACT, 0, 100)


def test_chunked_condition_weights_are_the_whole_product_exactly() -> None:
    has = np.random.default_rng(4).random((1_000, len(CONDITIONS))) < 0.3
    weights = np.linspace(-0.7, 1.3, len(CONDITIONS))
    assert np.array_equal(weighted(has, weights, rows=64), has @ weights)
