"""``riskstrat bench target``: offers respect capacity, one action per person, best first;
a small run writes its figures, the oracle prevents the most, and the equity table adds up."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import numpy as np
import pytest

from riskstrat.bench.target import (
    RESULTS_FILE,
    RULES,
    TABLE_FILE,
    TargetBench,
    allocate,
    bench_target,
)


def test_offers_are_the_weekly_runs_within_capacity_each_person_their_best_action() -> None:
    scores = np.array(
        [
            [0.9, 0.8],  # best in both: gets its best action
            [0.1, 0.7],
            [0.6, np.nan],  # no estimate for the second action: never offered it
            [0.5, 0.5],  # a tie goes to the earlier action, if it has room
            [0.2, 0.1],
            [-0.1, -0.2],  # nothing prevented: never offered, even with places left
        ]
    )
    run = date(2025, 7, 1)
    assert allocate(scores, 2, run).tolist() == [0, 1, 0, 1, -1, -1]
    assert allocate(scores, 1, run).tolist() == [0, 1, -1, -1, -1, -1]
    # Places to spare: everyone with something prevented gets their best action.
    assert allocate(scores, 10, run).tolist() == [0, 1, 0, 0, 0, -1]
    # One place each: the fourth person's first choice (reablement, by the tie) goes to the
    # first person, so the social prescribing place goes to them as a second choice.
    assert allocate(scores[[0, 3, 5]], 1, run).tolist() == [0, 1, -1]
    chosen = allocate(np.random.default_rng(3).random((50, 2)), 7, run)
    assert (np.bincount(chosen[chosen >= 0], minlength=2) == 7).all()


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, Path]:
    out = tmp_path_factory.mktemp("target")
    bench = TargetBench(seeds=(3,), patients=3_000, capacity=4, worlds=("varying",))
    return bench_target(out, bench, tmp_path_factory.mktemp("work")), out


def test_a_small_run_writes_its_figures_and_the_oracle_prevents_the_most(
    results: tuple[dict, Path],
) -> None:
    figures, out = results
    assert json.loads((out / RESULTS_FILE).read_text())["per_seed"]["varying"]["3"] == {
        rule: pytest.approx(value) for rule, value in figures["per_seed"]["varying"][3].items()
    }
    per_100 = figures["per_seed"]["varying"][3]
    assert set(per_100) == set(RULES)
    assert all(per_100["oracle"] >= per_100[rule] for rule in RULES)
    assert per_100["oracle"] > 0
    assert "| benefit |" in (out / TABLE_FILE).read_text()
    for action in figures["benefit_model"]["varying"][3].values():
        if action["refused"] is None:
            assert action["se"] > 0 and action["varies_se"] > 0
            assert isinstance(action["varies"], bool)


def test_the_equity_table_shares_add_up(results: tuple[dict, Path]) -> None:
    for table in results[0]["equity"]["varying"].values():
        for column in ("candidates", "at_risk", *RULES):
            assert sum(row[column] for row in table.values()) == pytest.approx(1, abs=1e-3)
