"""Effect modifiers (impact/subgroups.py): each level's effect, and an interaction test that
separates a planted difference between levels and does not invent one."""

from __future__ import annotations

import html
import re
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from evaluation_fixture import evaluation
from panels import unit_panel

from riskstrat.bench.evaluate import subgroup_truth
from riskstrat.impact.cohort import Cohort, subgroup_levels
from riskstrat.impact.plan import BUILT_IN_PLANS, PLANS, Plan, Subgroup, load_plan
from riskstrat.impact.report import report_html
from riskstrat.impact.results import (
    ANSWERED,
    Interaction,
    Interval,
    SubgroupEffect,
    SubgroupResult,
)
from riskstrat.impact.subgroups import did_subgroups, matched_subgroups
from riskstrat.sources.synthetic.borough import TRUTH_DIR
from riskstrat.sources.synthetic.config import Interventions

# Eight units: two go live at period 3, two at 5, one at 6, three never (1,680 schedules).
SCHEDULE = (3, 3, 5, 5, 6, -1, -1, -1)
PERIODS = 14
PEOPLE = 160  # per unit, half of them frail
FRAIL, NOT_FRAIL = 0.6, 0.9  # the planted rate ratios


def _plan(tmp_path: Path, inference: str = "randomisation") -> Plan:
    text = (PLANS / BUILT_IN_PLANS[0]).read_text()
    text = text.replace('inference = "randomisation"', f'inference = "{inference}"')
    if "[subgroups]" not in text:
        text = text.replace("[did]", '[subgroups]\nby = ["has_frailty"]\n\n[did]', 1)
    path = tmp_path / "plan.toml"
    path.write_text(text)
    return load_plan(path).plan


def _cohort(n_units: int, frail_share: float = 0.5) -> Cohort:
    person = [f"u{u}-p{i}" for u in range(n_units) for i in range(PEOPLE)]
    frail = np.tile(np.arange(PEOPLE) < frail_share * PEOPLE, n_units).astype(float)
    features = pd.DataFrame({"has_frailty": frail}, index=pd.Index(person, name="patient_id"))
    unit = pd.Series(np.repeat([f"unit{u}" for u in range(n_units)], PEOPLE), features.index)
    return Cohort(
        baseline=date(2023, 7, 1),
        features=features,
        unit=unit,
        go_live=pd.Series(pd.NaT, features.index),
        subgroups={"has_frailty": subgroup_levels(Subgroup("has_frailty"), features)},
    )


def _panel(cohort: Cohort, seed: int, frail_ratio: float, other_ratio: float) -> pd.DataFrame:
    """Poisson person-months around 0.3 a month (frail people twice that), each unit with its
    own level and month-to-month shocks shared by its frail and non-frail people; treated
    months multiplied by the level's ratio."""
    rng = np.random.default_rng(seed)
    n_units = len(SCHEDULE)
    shock = rng.lognormal(0.0, 0.05, (n_units, PERIODS))
    frames = []
    for u, g in enumerate(SCHEDULE):
        mine = cohort.people[cohort.unit.to_numpy() == f"unit{u}"]
        frail = cohort.features.loc[mine, "has_frailty"].to_numpy() == 1
        period = np.tile(np.arange(PERIODS), len(mine))
        who = np.repeat(np.arange(len(mine)), PERIODS)
        rate = 0.3 * (1 + 0.1 * u) * np.where(frail[who], 2.0, 1.0) * shock[u, period]
        if g >= 0:
            ratio = np.where(frail[who], frail_ratio, other_ratio)
            rate = rate * np.where(period >= g, ratio, 1.0)
        frames.append(unit_panel(u, g, mine[who], period, rng.poisson(rate)))
    return pd.concat(frames, ignore_index=True)


def _did(
    tmp_path: Path, frail_ratio: float, other_ratio: float, inference: str = "randomisation"
) -> SubgroupResult:
    cohort = _cohort(len(SCHEDULE))
    panel = _panel(cohort, 3, frail_ratio, other_ratio)
    plan = _plan(tmp_path, inference)
    (result,) = did_subgroups(plan, cohort, "emergency_admissions", panel)
    return result


@pytest.mark.parametrize("inference", ["randomisation", "person_cluster"])
def test_the_did_separates_a_planted_difference_between_levels(
    tmp_path: Path, inference: str
) -> None:
    result = _did(tmp_path, FRAIL, NOT_FRAIL, inference)
    assert (result.by, result.levels) == ("has_frailty", ["0", "1"])
    effects = {e.level: e for e in result.effects}
    for level, ratio in (("0", NOT_FRAIL), ("1", FRAIL)):
        assert effects[level].verdict == ANSWERED
        assert effects[level].relative.ci_low <= ratio - 1 <= effects[level].relative.ci_high
        assert effects[level].n_people == len(SCHEDULE) * PEOPLE // 2
    (test,) = result.interactions
    assert (test.level, test.reference, test.verdict) == ("1", "0", ANSWERED)
    difference = test.difference
    assert difference.ci_low <= FRAIL - NOT_FRAIL <= difference.ci_high
    assert difference.ci_high < 0 and difference.p_value < 0.05


def test_the_did_finds_no_difference_where_none_was_planted(tmp_path: Path) -> None:
    (test,) = _did(tmp_path, FRAIL, FRAIL).interactions
    assert test.difference.ci_low <= 0 <= test.difference.ci_high
    assert test.difference.p_value > 0.05


def _people(seed: int, n: int = 3000) -> tuple[Cohort, pd.DataFrame]:
    """Matched-comparison input: treatment more likely with age and frailty, both of which
    raise the admission rate; treated frail people's rate x FRAIL, the others' x NOT_FRAIL."""
    rng = np.random.default_rng(seed)
    age = rng.uniform(65, 95, n)
    frail = rng.binomial(1, 0.5, n).astype(float)
    rate = np.exp(0.3 + 0.03 * (age - 80) + 0.5 * frail)
    treated = rng.random(n) < 1 / (1 + np.exp(-(-1.0 + 0.04 * (age - 80) + 0.4 * frail)))
    ratio = np.where(treated, np.where(frail == 1, FRAIL, NOT_FRAIL), 1.0)
    person = pd.Index([f"p{i}" for i in range(n)], name="patient_id")
    people = pd.DataFrame(
        {
            "person": person,
            "unit": np.where(treated, "pilot", "north"),
            "treated": treated,
            "age": age,
            "has_frailty": frail,
            "emergency_admissions": rng.poisson(rate * ratio),
            "pre_emergency_admissions": rng.poisson(rate),
            "exposure": 1.0,
        }
    )
    features = people.set_index("person")[["age", "has_frailty"]].rename_axis("patient_id")
    cohort = Cohort(
        baseline=date(2023, 7, 1),
        features=features,
        unit=people.set_index("person")["unit"].rename_axis("patient_id"),
        go_live=pd.Series(pd.NaT, person),
        subgroups={"has_frailty": subgroup_levels(Subgroup("has_frailty"), features)},
    )
    return cohort, people


def test_the_matched_comparison_separates_a_planted_difference(tmp_path: Path) -> None:
    cohort, people = _people(5)
    (result,) = matched_subgroups(
        _plan(tmp_path), cohort, people, ["age", "has_frailty"], ["emergency_admissions"]
    )
    effects = {e.level: e for e in result.effects}
    for level, ratio in (("0", NOT_FRAIL), ("1", FRAIL)):
        assert effects[level].effect.ci_low <= ratio <= effects[level].effect.ci_high
    (test,) = result.interactions
    assert test.difference.ci_low <= FRAIL - NOT_FRAIL <= test.difference.ci_high
    assert test.difference.ci_high < 0


@pytest.mark.parametrize(
    ("frail_share", "message"),
    [
        (0.0, r"every eligible person is at one level \(0\)"),
        (0.25, r"level 1 \(80\) has fewer than 100 eligible people"),
    ],
)
def test_a_level_too_small_or_alone_is_refused_naming_it(frail_share: float, message: str) -> None:
    with pytest.raises(ValueError, match=r"\[subgroups\] by: has_frailty.*" + message):
        _cohort(2, frail_share)


def test_a_feature_with_too_many_levels_needs_bands() -> None:
    features = pd.DataFrame({"age": np.arange(65, 165, dtype=float)})
    with pytest.raises(ValueError, match=r"\[subgroups\] by: age has 100 levels .* band it"):
        subgroup_levels(Subgroup("age"), features)
    many = pd.concat([features] * 10, ignore_index=True)
    banded = subgroup_levels(Subgroup("age_band"), many)
    assert list(banded.cat.categories) == ["65-74", "75-84", "85+"]
    assert banded.value_counts().to_dict() == {"65-74": 100, "75-84": 100, "85+": 800}
    over = subgroup_levels(Subgroup("age >= 85"), many)
    assert over.value_counts().to_dict() == {"no": 200, "yes": 800}


def test_the_report_shows_each_level_and_the_difference_or_the_reason(tmp_path: Path) -> None:
    answered = Interval(estimate=-0.25, ci_low=-0.31, ci_high=-0.19, p_value=0.001)
    subgroup = SubgroupResult(
        by="has_frailty",
        levels=["0", "1"],
        method="paired re-assignments",
        effects=[
            SubgroupEffect(outcome="deaths", level="0", n_people=1200, verdict="too few deaths"),
            SubgroupEffect(outcome="deaths", level="1", n_people=3400, relative=answered),
        ],
        interactions=[
            Interaction(
                outcome="deaths",
                level="1",
                reference="0",
                difference=Interval(estimate=-0.136, ci_low=-0.2, ci_high=-0.07, p_value=0.0004),
                verdict="too few deaths",
            )
        ],
    )
    results = evaluation()
    did = results.design("did").model_copy(update={"subgroups": [subgroup]})
    rd = results.design("rd").model_copy(update={"subgroups_not_run": "not per subgroup here"})
    results = results.model_copy(update={"designs": [did, rd]})
    text = " ".join(html.unescape(re.sub(r"<[^>]+>", " ", report_html(results, []))).split())
    assert "Subgroups by has_frailty" in text
    assert (
        "Deaths (safety) Cannot answer: too few deaths 1,200 people 25.0% lower (95% CI "
        "19.0% to 31.0% lower) 3,400 people Cannot answer: too few deaths" in text
    )
    assert "13.6 points" not in text  # an interaction with a level that cannot answer
    assert "Subgroups not per subgroup here." in text
    answered_test = subgroup.interactions[0].model_copy(update={"verdict": ANSWERED})
    shown = subgroup.model_copy(update={"interactions": [answered_test]})
    did = did.model_copy(update={"subgroups": [shown]})
    page = report_html(results.model_copy(update={"designs": [did]}), [])
    assert "\u221213.6 points (95% CI \u221220.0 to \u22127.0)" in html.unescape(page)
    unanswered = did.model_copy(update={"verdict": "only 2 clusters of roll-out"})
    page = report_html(results.model_copy(update={"designs": [unanswered]}), [])
    assert "13.6 points" not in html.unescape(page)


def test_the_benchmarks_frailty_truth_is_the_generators_hazard_ratio_split(
    small_borough_dir: Path,
) -> None:
    loaded = load_plan(PLANS / BUILT_IN_PLANS[0])
    design = (
        evaluation()
        .design("did")
        .model_copy(update={"first_month": date(2023, 7, 1), "end_month": date(2026, 10, 1)})
    )
    truth = small_borough_dir / TRUTH_DIR
    frail, other = (
        subgroup_truth(design, "emergency_admissions", level, loaded, truth).value
        for level in ("1", "0")
    )
    model = Interventions().locality_model
    # Each level's direct change (hazard ratio - 1), both scaled alike by the feedback.
    assert frail / other == pytest.approx(
        (model.admission_hr_frail - 1) / (model.admission_hr_not_frail - 1)
    )
    assert model.admission_hr_frail - 1 > frail > 1.2 * (model.admission_hr_frail - 1)
    assert subgroup_truth(design, "deaths", "1", loaded, truth) is None
    assert subgroup_truth(design, "emergency_admissions", "85+", loaded, truth) is None


def test_a_refused_subgroup_names_the_plan_file() -> None:
    features = pd.DataFrame({"age": np.full(300, 70.0)})
    with pytest.raises(ValueError, match=r"^plan\.toml: \[subgroups\] by: age >= 85: every "):
        subgroup_levels(Subgroup("age >= 85"), features, "plan.toml")
