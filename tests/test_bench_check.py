"""``riskstrat bench check``'s comparison (riskstrat/bench/check.py): power from the
benchmark's boroughs with effects, false positives from its boroughs without, an outcome the
check could never answer left out rather than counted as never claiming an effect, and a
missing benchmark refused in one line."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from scipy.stats import fisher_exact

from riskstrat.bench.check import compare
from riskstrat.cli import main


def _checked(seed: int, outcome: str, power: float, hits: int, answered: float) -> dict:
    return {
        "seed": seed,
        "design": "did",
        "outcome": outcome,
        "effect": 0.24,
        "power": power,
        "effect_runs": 40,
        "false_positives": hits,
        "null_runs": 40,
        "answered": answered,
    }


def _bench(effects: str, outcome: str, claims: list[bool]) -> list[dict]:
    return [
        {"seed": i, "effects": effects, "design": "did", "outcome": outcome, "rejects_null": c}
        for i, c in enumerate(claims, start=1)
    ]


def test_power_and_false_positives_come_from_the_right_boroughs() -> None:
    check = pd.DataFrame(
        [
            _checked(1, "emergency_admissions", 0.5, 2, 1.0),
            _checked(2, "emergency_admissions", 0.3, 1, 0.9),
            _checked(1, "deaths", 0.0, 0, 0.0),
            _checked(2, "deaths", 0.0, 0, 0.0),
        ]
    )
    bench = pd.DataFrame(
        _bench("true", "emergency_admissions", [True, True, True, False])
        + _bench("null", "emergency_admissions", [False, False, False, True])
        + _bench("true", "deaths", [False] * 4)
        + _bench("null", "deaths", [True, False, False, False])
    )
    rows = {(r["outcome"], r["figure"]): r for r in compare(check, bench, "emergency_admissions")}
    assert set(rows) == {
        ("emergency_admissions", "power"),
        ("emergency_admissions", "false positives"),
    }
    power = rows["emergency_admissions", "power"]
    assert power["check"] == pytest.approx(0.4)
    assert power["check_se"] == pytest.approx(pd.Series([0.5, 0.3]).std() / 2**0.5)
    assert power["bench"] == pytest.approx(0.75)
    false = rows["emergency_admissions", "false positives"]
    assert false["check"] == pytest.approx(3 / 80) and false["bench"] == pytest.approx(0.25)
    assert false["fisher_p"] == pytest.approx(fisher_exact([[3, 77], [1, 3]]).pvalue)


def test_a_missing_benchmark_is_refused_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["bench", "check", "--against", str(tmp_path / "none"), "--out", str(tmp_path / "o")]
    with pytest.raises(SystemExit) as stopped:
        main(argv)
    assert stopped.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "bench_evaluate.json: not there; run `riskstrat bench evaluate` first" in err


def test_a_benchmark_folder_of_the_wrong_files_is_refused_naming_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "bench_evaluate.json").write_text('{"patients": 30000}')
    (tmp_path / "bench_evaluate_runs.csv").write_text("seed,design\n1,did\n")
    argv = ["bench", "check", "--against", str(tmp_path), "--out", str(tmp_path / "o")]
    with pytest.raises(SystemExit) as stopped:
        main(argv)
    assert stopped.value.code == 2
    err = capsys.readouterr().err.strip()
    assert "bench_evaluate_runs.csv: not a bench evaluate runs file (no effects, outcome" in err
    assert len(err.splitlines()) == 1
