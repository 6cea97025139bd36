"""Weekly monitoring: observed against predicted admissions for listed and unlisted people,
the warning that the model would learn the list's own effect, and active help now."""

from __future__ import annotations

import json
import math
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from weekly_fixture import scored_weeks

from riskstrat.cli import main
from riskstrat.contract.engines import Engine, SparkEngine
from riskstrat.contract.tables import ContractTables
from riskstrat.features.exposure import ExposureRule
from riskstrat.models.description import OutcomeDescription
from riskstrat.models.registry import RegisteredBundle
from riskstrat.serving.weekly.monitoring import (
    MIN_FOLLOW_UP_DAYS,
    RATIO_MARGIN,
    Monitoring,
    Verdict,
    active_help,
    monitor,
)
from riskstrat.serving.weekly.report import report_html
from riskstrat.serving.weekly.store import WeekStore

AS_OF = date(2025, 1, 6)
HORIZON = 365
OUTCOME = OutcomeDescription(name="emergency_admission_365d", horizon_days=HORIZON)
HAZARDS = (1.0, 0.5)  # the hand-made case's listed and unlisted cumulative hazards
WITH_DEATH = OutcomeDescription(
    name="emergency_admission_or_death_365d", horizon_days=HORIZON, include_death=True
)


def _sources(
    patients: list[dict],
    events: list[tuple[str, str, date, date | None, str]],
    engine: Engine | None = None,
) -> ContractTables:
    frame = pd.DataFrame(
        {
            "patient_id": [p["id"] for p in patients],
            "birth_month": date(1950, 1, 1),
            "sex": "F",
            "practice_id": "Z1",
            "deprivation_decile": pd.array([5] * len(patients), dtype="Int8"),
            "ethnicity_group": "White",
            "registration_start": date(2000, 1, 1),
            "registration_end": [p.get("left") for p in patients],
            "death_date": [p.get("died") for p in patients],
        }
    )
    rows = pd.DataFrame(
        events or None,
        columns=["patient_id", "kind", "start", "end", "code"],
    ).assign(code_system="riskstrat", value=None, cost=None)
    practices = pd.DataFrame(
        {"practice_id": ["Z1"], "practice_name": ["One"], "gp_cluster": ["C"], "locality": ["N"]}
    )
    return ContractTables.from_frames(frame, rows, practices, engine)


def _store_week(root: Path, week: date, people: pd.DataFrame, outcome: str) -> None:
    folder = root / week.isoformat()
    folder.mkdir(parents=True)
    people.to_parquet(folder / "people.parquet", index=False)
    manifest = {"as_of": week.isoformat(), "model": {"outcome": outcome}}
    (folder / "manifest.json").write_text(json.dumps(manifest))


def _admission(pid: str, start: date) -> tuple[str, str, date, date | None, str]:
    return (pid, "emergency_admission", start, start + timedelta(days=3), "")


def _hand_made(tmp_path: Path, engine: Engine | None = None) -> tuple[date, Monitoring]:
    """Four listed and three unlisted people followed from a week 73 days (a fifth of the
    horizon) before the as-of date, one more no longer in the tables; L1 and L2 are listed
    this week too, L1 with help running."""
    week = AS_OF - timedelta(days=73)
    h1, h2 = HAZARDS
    people = pd.DataFrame(
        {
            "patient_id": ["L1", "L2", "L3", "L4", "U1", "U2", "U3", "U4"],
            "risk": [1 - math.exp(-h1)] * 4 + [1 - math.exp(-h2)] * 4,
            "tier": ["very high", "high", "high", "rising", "", "", "", ""],
        }
    )
    patients = [
        {"id": "L1"},
        {"id": "L2"},
        {"id": "L3", "left": week + timedelta(days=19)},  # followed 20 days
        {"id": "L4"},
        {"id": "U1", "died": week + timedelta(days=29)},  # followed 30 days
        {"id": "U2"},
        {"id": "U3"},
    ]  # U4 is no longer in the tables
    events = [
        _admission("L2", week + timedelta(days=10)),  # observed, followed 10 days
        _admission("L2", week + timedelta(days=40)),  # a second admission: not counted
        _admission("L4", week - timedelta(days=5)),  # before the week: not follow-up
        _admission("L4", AS_OF),  # on this as-of date: not yet seen
        _admission("U2", week),  # on the week's date: observed, followed 0 days
        _admission("U3", week + timedelta(days=80)),  # after the week's follow-up ends
        ("L1", "reablement_plan", week, AS_OF + timedelta(days=30), "risk_list"),  # running
    ]
    _store_week(tmp_path, week, people, OUTCOME.name)
    listed = pd.Index(["L1", "L2"], name="patient_id")
    sources = _sources(patients, events, engine)
    return week, monitor(sources, WeekStore(tmp_path), AS_OF, listed, OUTCOME, ExposureRule())


def test_observed_against_expected_on_a_hand_made_case(tmp_path: Path) -> None:
    week, result = _hand_made(tmp_path)
    h1, h2 = HAZARDS
    assert (result.active_help.listed, result.active_help.with_help) == (2, 1)
    follow = result.follow_up
    assert follow is not None
    assert (follow.week, follow.days, follow.not_found) == (week, 73, 1)
    listed_e = h1 * (73 + 10 + 20 + 73) / HORIZON
    unlisted_e = h2 * (30 + 0 + 73) / HORIZON
    assert follow.listed.people == 4 and follow.unlisted.people == 3
    assert follow.listed.observed == 1 and follow.unlisted.observed == 1
    assert follow.listed.expected == pytest.approx(listed_e, abs=1e-6)
    assert follow.unlisted.expected == pytest.approx(unlisted_e, abs=1e-6)
    assert follow.listed.person_years == round(176 / 365.25, 2)
    # Exact Poisson interval for one event: 0.0253 to 5.5716 events.
    assert follow.listed.ratio == pytest.approx(1 / listed_e, abs=1e-5)
    assert follow.listed.low == pytest.approx(0.025318 / listed_e, abs=1e-5)
    assert follow.listed.high == pytest.approx(5.571643 / listed_e, abs=1e-5)
    # One event each: the listed share of events is 1/2, Clopper-Pearson 1-sqrt(.975) to
    # sqrt(.975); the ratio is that share's odds times E(unlisted)/E(listed).
    scale = unlisted_e / listed_e
    share_low, share_high = 1 - math.sqrt(0.975), math.sqrt(0.975)
    assert follow.ratio == pytest.approx(scale, abs=1e-5)
    assert follow.low == pytest.approx(share_low / (1 - share_low) * scale, abs=1e-5)
    assert follow.high == pytest.approx(share_high / (1 - share_high) * scale, abs=1e-5)
    assert result.verdict is Verdict.TOO_LITTLE and not result.warning
    assert "Too little follow-up" in result.message and "73 days" in result.message


def test_death_counts_when_the_outcome_includes_it(tmp_path: Path) -> None:
    week = AS_OF - timedelta(days=73)
    people = pd.DataFrame({"patient_id": ["U1"], "risk": [0.5], "tier": [""]})
    _store_week(tmp_path, week, people, WITH_DEATH.name)
    sources = _sources([{"id": "U1", "died": week + timedelta(days=29)}], [])
    result = monitor(sources, WeekStore(tmp_path), AS_OF, pd.Index([]), WITH_DEATH, ExposureRule())
    assert result.follow_up is not None
    assert result.follow_up.unlisted.observed == 1
    assert result.follow_up.unlisted.expected == pytest.approx(
        -math.log(0.5) * 29 / HORIZON, abs=1e-6
    )


def _simulated(tmp_path: Path, listed_rate: float, n: int = 6000) -> Monitoring:
    """``n`` listed and ``n`` unlisted people scored a horizon ago with the same risk; the
    listed are admitted at ``listed_rate`` times the predicted hazard, the others at it.
    First admissions fall at evenly spaced quantiles of the exponential: no randomness."""
    week = AS_OF - timedelta(days=HORIZON)
    hazard = 0.3
    risk = 1 - math.exp(-hazard)
    quantiles = (np.arange(n) + 0.5) / n
    patients, events, ids, tiers = [], [], [], []
    for group, rate in (("L", listed_rate), ("U", 1.0)):
        days = -np.log1p(-quantiles) / (rate * hazard / HORIZON)
        for i, t in enumerate(days):
            pid = f"{group}{i:05d}"
            patients.append({"id": pid})
            ids.append(pid)
            tiers.append("high" if group == "L" else "")
            if t < HORIZON:
                events.append(_admission(pid, week + timedelta(days=int(t))))
    people = pd.DataFrame({"patient_id": ids, "risk": risk, "tier": tiers})
    _store_week(tmp_path, week, people, OUTCOME.name)
    store = WeekStore(tmp_path)
    return monitor(_sources(patients, events), store, AS_OF, pd.Index([]), OUTCOME, ExposureRule())


def test_warning_when_listed_people_are_admitted_at_half_the_predicted_rate(
    tmp_path: Path,
) -> None:
    result = _simulated(tmp_path, listed_rate=0.5)
    follow = result.follow_up
    assert follow is not None
    assert follow.unlisted.ratio == pytest.approx(1.0, abs=0.03)
    assert follow.listed.ratio == pytest.approx(0.5, abs=0.03)
    assert follow.high is not None and follow.high < RATIO_MARGIN
    assert result.verdict is Verdict.WARNING and result.warning
    assert "admitted less than the model predicts" in result.message
    assert "[train.intervention] strategy" in result.message
    block = result.to_manifest()
    assert block["verdict"] == "warning" and block["follow_up"]["week"] == follow.week.isoformat()
    json.dumps(block)  # plain JSON
    html = report_html(
        title="t",
        summary=[],
        charts=[],
        drift=None,
        monitoring=result,
        table=pd.DataFrame({"a": []}),
        outcome="o",
    )
    assert '<p class="warn"><strong>Warning:</strong> Listed people are admitted less' in html
    assert f"People scored in the week of {follow.week}, followed for 365 days" in html
    assert f"<td>{follow.listed.observed:,}</td>" in html


def test_no_warning_when_both_groups_are_admitted_as_predicted(tmp_path: Path) -> None:
    result = _simulated(tmp_path, listed_rate=1.0)
    follow = result.follow_up
    assert follow is not None and follow.low is not None
    assert follow.ratio == pytest.approx(1.0, abs=0.03)
    assert follow.low >= RATIO_MARGIN
    assert result.verdict is Verdict.OK and not result.warning
    assert "admitted as the model predicts" in result.message


def test_too_little_follow_up_says_how_much_there_is(tmp_path: Path) -> None:
    result = _simulated(tmp_path, listed_rate=0.5, n=40)
    assert result.verdict is Verdict.TOO_LITTLE and not result.warning
    assert "365 days of follow-up since the week of" in result.message
    assert f"the interval includes {RATIO_MARGIN:g}" in result.message


def test_no_follow_up_yet(tmp_path: Path) -> None:
    people = pd.DataFrame({"patient_id": ["L1"], "risk": [0.5], "tier": ["high"]})
    _store_week(tmp_path, AS_OF - timedelta(days=MIN_FOLLOW_UP_DAYS - 1), people, OUTCOME.name)
    _store_week(tmp_path, AS_OF - timedelta(days=HORIZON + 1), people, OUTCOME.name)
    _store_week(tmp_path, AS_OF - timedelta(days=100), people, "another_outcome_365d")
    sources = _sources([{"id": "L1"}], [])
    result = monitor(sources, WeekStore(tmp_path), AS_OF, pd.Index([]), OUTCOME, ExposureRule())
    assert result.follow_up is None
    assert result.verdict is Verdict.NO_FOLLOW_UP and not result.warning
    assert f"between {MIN_FOLLOW_UP_DAYS} and {HORIZON} days before {AS_OF}" in result.message
    assert result.to_manifest()["follow_up"] is None


def test_share_of_listed_people_with_help_running() -> None:
    before = AS_OF - timedelta(days=30)
    patients = [{"id": pid} for pid in ("L1", "L2", "L3", "L4", "L5", "U1")]
    events = [
        ("L1", "reablement_plan", before, AS_OF + timedelta(days=60), "risk_list"),
        ("L2", "social_prescribing_referral", before, None, "risk_list"),  # open: running
        ("L3", "social_prescribing_referral", before, None, "gp"),  # not the list's help
        ("L4", "reablement_plan", before, AS_OF - timedelta(days=1), "risk_list"),  # ended
        ("L5", "reablement_plan", AS_OF, AS_OF + timedelta(days=90), "risk_list"),  # from today
        ("U1", "reablement_plan", before, AS_OF + timedelta(days=60), "risk_list"),  # unlisted
    ]
    listed = pd.Index(["L1", "L2", "L3", "L4", "L5"], name="patient_id")
    found = active_help(_sources(patients, events), AS_OF, listed, HORIZON, ExposureRule())
    assert (found.listed, found.with_help, found.share) == (5, 2, 0.4)
    assert found.rule == ExposureRule().describe()
    nobody = active_help(_sources(patients, events), AS_OF, listed[:0], HORIZON, ExposureRule())
    assert (nobody.listed, nobody.with_help, nobody.share) == (0, 0, None)


FIRST, LATER = date(2026, 9, 21), date(2026, 10, 26)


@pytest.fixture(scope="module")
def weeks(
    validated: Path, champion: RegisteredBundle, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    return scored_weeks(validated, champion, tmp_path_factory.mktemp("monitored"), FIRST, LATER)


def test_the_weekly_run_writes_the_block_and_the_report_shows_it(
    weeks: Path, champion: RegisteredBundle
) -> None:
    first = json.loads((weeks / FIRST.isoformat() / "manifest.json").read_text())["monitoring"]
    assert first["verdict"] == "no follow-up" and first["follow_up"] is None
    manifest = json.loads((weeks / LATER.isoformat() / "manifest.json").read_text())
    block = manifest["monitoring"]
    people = pd.read_parquet(weeks / FIRST.isoformat() / "people.parquet")
    follow = block["follow_up"]
    assert follow["week"] == FIRST.isoformat() and follow["days"] == 35
    assert follow["listed"]["people"] + follow["unlisted"]["people"] + follow["not_found"] == len(
        people
    )
    assert follow["listed"]["people"] == int((people["tier"] != "").sum())
    assert block["active_help"]["listed"] == manifest["counts"]["listed"]
    assert 0 < block["active_help"]["with_help"] <= block["active_help"]["listed"]
    assert block["verdict"] in {"too little follow-up", "ok", "warning"}
    html = (weeks / LATER.isoformat() / "report.html").read_text()
    assert "<h2>Is the model learning the list's own effect?</h2>" in html
    assert f"People scored in the week of {FIRST}, followed for 35 days" in html
    assert block["message"].split(":")[0] in html


def test_spark_gives_the_same_block_as_duckdb(tmp_path: Path, spark_engine: SparkEngine) -> None:
    _, on_duckdb = _hand_made(tmp_path / "duckdb")
    _, on_spark = _hand_made(tmp_path / "spark", spark_engine)
    assert on_spark == on_duckdb
    assert on_spark.to_manifest() == on_duckdb.to_manifest()


def test_the_weekly_command_refuses_a_bad_exposure_table(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = tmp_path / "settings.toml"
    settings.write_text('[weekly]\nexplain_share = 0.1\n\n[exposure]\nkinds = ["home_visit"]\n')
    argv = ["weekly", "--data", str(tmp_path), "--as-of", "2026-10-26", "--out", str(tmp_path)]
    with pytest.raises(SystemExit) as stopped:
        main([*argv, "--config", str(settings), "--workdir", str(tmp_path / "work")])
    printed = capsys.readouterr().err
    assert stopped.value.code == 2 and len(printed.splitlines()) == 1
    assert printed.startswith(f"[riskstrat] error: {settings}: [exposure] kinds")
    assert "home_visit" in printed
