"""The benefit learner on small synthetic boroughs whose list-triggered help has a known
effect: its units are the people the help was offered to, its estimates rank the truth's
admissions prevented and its average effect's interval covers the truth (or zero where the
help does nothing), it refuses where help never varied, and the saved model predicts the
same after loading."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from riskstrat.cli import main
from riskstrat.common.defaults import WorkFolder
from riskstrat.common.errors import UserError
from riskstrat.contract.tables import ContractTables
from riskstrat.contract.validation import validate_dir
from riskstrat.features.exposure import ExposureRule
from riskstrat.models.benefit import (
    ActionEffect,
    BenefitModel,
    FeatureMismatchError,
    benefit_column,
    expected_prevented,
)
from riskstrat.sources.synthetic.borough import Borough, generate, write
from riskstrat.sources.synthetic.config import (
    Interventions,
    ListActions,
    LocalityModel,
    SynthConfig,
)
from riskstrat.training.benefit import (
    NONE,
    BenefitData,
    BenefitSettings,
    benefit_data,
    benefit_model,
    estimate_action,
    fit_benefit,
)

EXTRACT = date(2026, 10, 31)
KINDS = ExposureRule().kinds
TRUTH_NAME = dict(zip(KINDS, ("reablement_plan", "social_prescribing"), strict=True))
# Effects that vary strongly with the characteristics the help reaches (none without them),
# more people listed (cut-off 0.5) and more of them helped, so that a 10,000-person borough
# holds enough helped and unhelped people to learn who benefits.
LISTS = ListActions(
    cutoff=0.5,
    capacity_share=0.6,
    reablement_hr=1.0,
    reablement_hr_frail=0.4,
    reablement_hr_recent_discharge=0.6,
    reablement_hr_lives_alone=0.7,
    social_prescribing_hr=1.0,
    social_prescribing_hr_lonely=0.4,
    social_prescribing_hr_mental_health=0.6,
)
SETTINGS = BenefitSettings()


def _config(patients: int, lists: ListActions) -> SynthConfig:
    return SynthConfig(
        patients=patients,
        seed=8,
        start=date(2022, 1, 1),
        truth_as_of=(),
        interventions=Interventions(
            locality_model=LocalityModel(enabled=False), list_actions=lists
        ),
    )


def _learn(config: SynthConfig, folder: Path) -> tuple[Borough, BenefitData]:
    borough = generate(config)
    write(borough, folder / "raw")
    validate_dir(folder / "raw", folder / "contract", EXTRACT)
    with ContractTables.from_dir(folder / "contract") as sources:
        return borough, benefit_data(sources, SETTINGS, ExposureRule(), until=EXTRACT)


def _truth(borough: Borough) -> pd.DataFrame:
    truth = borough.list_actions.assign(as_of=borough.list_actions["run"].dt.date)
    return truth.set_index(["patient_id", "as_of"])


@pytest.fixture(scope="module")
def varying(tmp_path_factory: pytest.TempPathFactory) -> tuple[Borough, BenefitData]:
    return _learn(_config(10_000, LISTS), tmp_path_factory.mktemp("varying"))


@pytest.fixture(scope="module")
def no_effect(tmp_path_factory: pytest.TempPathFactory) -> tuple[Borough, BenefitData]:
    return _learn(_config(6_000, LISTS.no_effect()), tmp_path_factory.mktemp("no-effect"))


@pytest.fixture(scope="module")
def estimates(varying: tuple[Borough, BenefitData]) -> dict[str, tuple[ActionEffect, pd.DataFrame]]:
    """Each action's estimate and its kept units' checks."""
    return {kind: estimate_action(varying[1], kind, SETTINGS) for kind in KINDS}


@pytest.fixture(scope="module")
def model(
    varying: tuple[Borough, BenefitData], estimates: dict[str, tuple[ActionEffect, pd.DataFrame]]
) -> BenefitModel:
    """The model ``fit_benefit`` makes of those estimates."""
    return benefit_model(varying[1], SETTINGS, (estimates[kind][0] for kind in KINDS))


def test_units_are_the_listed_without_help_running_and_their_help_is_the_truths(
    varying: tuple[Borough, BenefitData],
) -> None:
    borough, data = varying
    truth = _truth(borough).reindex(data.units.index)
    assert truth["score"].notna().all()  # everyone was scored in a run's band
    assert (truth["listed"] == data.units["listed"]).all()
    assert 0.1 < data.units["listed"].mean() < 0.9  # the unlisted teach the baseline only
    given = truth["action"].map({"none": NONE, **{v: k for k, v in TRUTH_NAME.items()}})
    assert (data.units["treatment"] == given).all()
    runs = pd.to_datetime(pd.Series(data.units.index.get_level_values("as_of")))
    assert (runs + pd.Timedelta(days=SETTINGS.horizon_days) <= pd.Timestamp(EXTRACT)).all()
    # Help runs six months, runs come every three: nobody is a unit on the run after help.
    helped = data.units[data.units["treatment"] != NONE].reset_index()
    next_run = helped.assign(as_of=[d + pd.DateOffset(months=3) for d in helped["as_of"]])
    next_keys = pd.MultiIndex.from_arrays(
        [next_run["patient_id"], next_run["as_of"].dt.date], names=["patient_id", "as_of"]
    )
    assert not next_keys.isin(data.units.index).any()
    assert data.features.index.equals(data.units.index)


@pytest.mark.parametrize("kind", KINDS)
def test_estimated_benefit_ranks_the_truth_and_covers_its_average(
    varying: tuple[Borough, BenefitData],
    estimates: dict[str, tuple[ActionEffect, pd.DataFrame]],
    model: BenefitModel,
    kind: str,
) -> None:
    """Reablement's ranking is the stronger: frailty, a recent discharge and living alone
    show in the features; loneliness shows only where it is coded."""
    borough, data = varying
    effect = model.action(kind)
    assert effect.estimated and effect.trimmed < 0.05 * effect.units
    listed = data.units["listed"].to_numpy()
    truth = _truth(borough).reindex(data.units.index[listed])[f"prevented_{TRUTH_NAME[kind]}"]
    estimated = expected_prevented(model, data.features[listed])[benefit_column(kind)]
    rho = stats.spearmanr(estimated, truth).statistic
    assert rho > (0.5 if kind == "reablement_plan" else 0.2)
    checks = estimates[kind][1]
    low, high = effect.interval()
    assert low < -truth.reindex(checks.index).mean() < high
    assert high < 0  # the help works, and the interval says so


@pytest.mark.parametrize("kind", KINDS)
def test_without_an_effect_the_interval_covers_zero(
    no_effect: tuple[Borough, BenefitData], kind: str
) -> None:
    effect, _ = estimate_action(no_effect[1], kind, SETTINGS)
    low, high = effect.interval()
    assert low < 0 < high


def test_refuses_where_help_never_varied(varying: tuple[Borough, BenefitData]) -> None:
    _, data = varying
    nobody = BenefitData(data.units.assign(treatment=NONE), data.features)
    model = fit_benefit(nobody, SETTINGS, KINDS)
    for effect in model.actions:
        assert not effect.estimated and effect.interval() is None
        assert effect.refused == f"nobody was offered {effect.kind} by the list: help never varied"
    out = expected_prevented(model, data.features)
    assert list(out.columns) == [benefit_column(k) for k in KINDS]
    assert out.isna().all().all()  # no estimate, not "no benefit"
    everybody = BenefitData(data.units.assign(treatment=KINDS[0]), data.features)
    assert (
        "nobody to compare with" in fit_benefit(everybody, SETTINGS, KINDS[:1]).actions[0].refused
    )


def test_refuses_where_help_followed_the_score(varying: tuple[Borough, BenefitData]) -> None:
    """Help given to exactly the higher scores: no overlap, no estimate."""
    _, data = varying
    score = data.units["score"]
    by_score = np.where(score > score[data.units["listed"]].median(), KINDS[0], NONE)
    effect, _ = estimate_action(
        BenefitData(data.units.assign(treatment=by_score), data.features), KINDS[0], SETTINGS
    )
    assert not effect.estimated
    assert effect.refused.startswith(f"propensity of {KINDS[0]} outside [0.02, 0.98] for ")


def test_the_saved_model_predicts_the_same(
    model: BenefitModel, varying: tuple[Borough, BenefitData], tmp_path: Path
) -> None:
    features = varying[1].features.iloc[:200]
    model.save(tmp_path / "benefit.json")
    loaded = BenefitModel.load(tmp_path / "benefit.json")
    assert loaded.actions == model.actions and loaded.runs == model.runs
    pd.testing.assert_frame_equal(
        expected_prevented(loaded, features), expected_prevented(model, features)
    )
    with pytest.raises(FeatureMismatchError, match="missing feature columns: age"):
        expected_prevented(loaded, features.drop(columns="age"))

    for text, said in (("{}", "format None, expected 1"), ("[1]", "format None"), ("{", "")):
        (tmp_path / "bad.json").write_text(text)
        with pytest.raises(UserError, match=r"bad\.json: not a benefit model \(") as refused:
            BenefitModel.load(tmp_path / "bad.json")
        assert said in str(refused.value) and str(refused.value).count("bad.json") == 1


def _planted(relative: tuple[float, float], n: int = 6_000) -> BenefitData:
    """Listed people on two runs, helped at random (40%): expected admissions ``0.15 *
    exp(a)`` without help, times ``1 + relative[m]`` with it, ``m`` a modifier (30% have it)
    and ``z`` noise."""
    rng = np.random.default_rng(3)
    index = pd.MultiIndex.from_arrays(
        [np.repeat([f"p{i:05d}" for i in range(n)], 2), np.tile([date(2024, 1, 1), EXTRACT], n)],
        names=["patient_id", "as_of"],
    )
    a, m, z = rng.normal(0, 0.7, 2 * n), rng.random(2 * n) < 0.3, rng.normal(size=2 * n)
    helped = rng.random(2 * n) < 0.4
    expected = 0.15 * np.exp(a) * np.where(helped, 1 + np.where(m, *relative[::-1]), 1.0)
    units = pd.DataFrame(
        {
            "score": rng.random(2 * n),
            "listed": True,
            "treatment": np.where(helped, KINDS[0], NONE),
            "outcome": rng.poisson(expected).astype(float),
        },
        index=index,
    )
    return BenefitData(units, pd.DataFrame({"a": a, "m": m.astype(float), "z": z}, index=index))


def test_differences_between_people_are_used_only_where_held_out_people_bear_them_out(
    tmp_path: Path,
) -> None:
    """Help that prevents 90% of admissions with the modifier and 10% without: the relative
    effect is a model and ranks the modifier first at the same expected admissions. Help
    that prevents 40% for everyone: the final stage can only fit noise, so the relative
    effect is one number and the ranking is the expected admissions'."""
    rows = pd.DataFrame({"a": [0.0, 0.0, 1.0], "m": [1.0, 0.0, 0.0], "z": 0.0})
    varying, _ = estimate_action(_planted((-0.1, -0.9)), KINDS[0], SETTINGS)
    assert varying.varies and varying.relative is None
    assert varying.varies_slope - 1.96 * varying.varies_se > 0
    model = BenefitModel(("a", "m", "z"), 90, (EXTRACT,), (varying,))
    with_m, without_m, _ = expected_prevented(model, rows)[benefit_column(KINDS[0])]
    assert with_m > 2 * without_m > 0  # shrunk towards the mean by the shallow final stage
    model.save(tmp_path / "varying.json")
    saved = json.loads((tmp_path / "varying.json").read_text())
    for key in ("relative", "varies_slope", "varies_se"):  # a model saved before the check
        del saved["actions"][0][key]
    (tmp_path / "before.json").write_text(json.dumps(saved))
    pd.testing.assert_frame_equal(
        expected_prevented(BenefitModel.load(tmp_path / "before.json"), rows),
        expected_prevented(model, rows),
    )
    assert "varies by person (held-out slope" in varying.describe()

    uniform, _ = estimate_action(_planted((-0.4, -0.4)), KINDS[0], SETTINGS)
    assert not uniform.varies and uniform.model is None
    assert uniform.varies_slope - 1.96 * uniform.varies_se <= 0
    assert -0.55 < uniform.relative < -0.3
    model = BenefitModel(("a", "m", "z"), 90, (EXTRACT,), (uniform,))
    model.save(tmp_path / "benefit.json")
    for fitted in (model, BenefitModel.load(tmp_path / "benefit.json")):
        prevented = expected_prevented(fitted, rows)[benefit_column(KINDS[0])].to_numpy()
        baseline = fitted.boosters[KINDS[0]][0].predict(rows.to_numpy("float64"))
        np.testing.assert_allclose(prevented, -uniform.relative * baseline)
    assert "no variation by person found (held-out slope" in uniform.describe()
    with pytest.raises(ValueError, match="one relative effect"):
        replace(uniform, relative=None)


def test_settings_refuse_a_window_too_short_to_count(tmp_path: Path) -> None:
    path = tmp_path / "settings.toml"
    path.write_text("[benefit]\nhorizon_days = 3\n")
    with pytest.raises(UserError, match=r"\[benefit\] horizon_days"):
        BenefitSettings.from_toml(path)
    assert replace(SETTINGS, folds=3).folds == 3


def test_the_command_saves_the_model_the_weekly_run_reads_and_says_each_actions_effect(
    validated: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    main(["benefit", "--data", str(validated), "--workdir", str(tmp_path)])
    printed = capsys.readouterr().out
    folder = WorkFolder(tmp_path)
    saved = BenefitModel.load(folder.benefit)
    assert not list(tmp_path.glob(".*partial"))  # written whole, no partial file left
    assert saved.kinds == ExposureRule().kinds
    for action in saved.actions:
        assert action.describe() in printed
    card = folder.benefit_card.read_text()
    assert "Where it must not be used" in card and f"{len(saved.runs)} list runs" in card
    for action in saved.actions:
        low, high = action.interval()
        assert f"{action.ate:+.4f} ({low:+.4f} to {high:+.4f})" in card


def test_an_output_that_cannot_be_written_is_refused_before_the_fit(
    validated: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    with pytest.raises(SystemExit) as stopped:
        main(["benefit", "--data", str(validated), "--out", str(blocker / "benefit.json")])
    assert stopped.value.code == 2
    error = capsys.readouterr().err
    assert "a_file: cannot make the folder" in error and "Traceback" not in error
    assert "benefit model from" not in error  # nothing was fitted
