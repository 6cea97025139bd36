"""Every downstream command on a borough with one event kind removed (and with every optional
kind removed at once): it works and reports the kind as absent, or stops with one line naming
the kind, as ``contract.needs.REQUIRED_KINDS`` says.

A kind that only feeds feature columns changes their values (each takes its default) and
nothing else, so the cheap commands (features, weekly, referrals) run for every kind, while
train and promote run where the kind is required, and each built-in plan is evaluated where
the kind is one its outcomes are counted from or its discontinuity reads (list runs,
list-triggered help). The case with every optional kind gone runs everything: it leaves every
feature family, the help the list triggered and the outcomes other than admissions without
their events at once.
"""

from __future__ import annotations

import json
import shutil
from datetime import date
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from riskstrat.cli import main
from riskstrat.cli.options import TRACKING_ENV
from riskstrat.common.errors import UserError
from riskstrat.contract.needs import (
    OPTIONAL_KINDS,
    REQUIRED_KINDS,
    AbsentKindError,
    absent_kinds,
    require_for,
)
from riskstrat.contract.record import write_record
from riskstrat.contract.schema import EVENTS, PATIENTS, PRACTICES, EventKind
from riskstrat.contract.validation import validate_dir
from riskstrat.features.absent import absent_features, feature_kinds
from riskstrat.features.outcomes import OUTCOME_KINDS
from riskstrat.impact.plan import PLANS, Plan, load_plan
from riskstrat.models.registry import RegisteredBundle
from riskstrat.serving.weekly.referrals import (
    DRIVER_COLUMNS,
    EXCLUSION_COLUMNS,
    ReferralCriteria,
    absent_inputs,
)
from riskstrat.sources.synthetic.borough import generate, write
from riskstrat.sources.synthetic.config import SynthConfig

BOROUGH = SynthConfig(patients=1_500, seed=11, truth_as_of=(date(2025, 1, 1),))
EXTRACT_DATE = "2026-10-31"
WEEK = "2026-10-26"
ALL_OPTIONAL = "all_optional"
# A quick training run: one training date, no crossfit, no bootstrap intervals.
FAST_TRAIN = '[train]\nbootstrap = 0\nrefit = "validation"\ntrain_as_of = [2024-01-01]\n'
PLANS_RUN = ("integrated_locality_model.toml", "risk_list_actions.toml")

CASES = [k.value for k in EventKind] + [ALL_OPTIONAL]
FEATURE_KINDS = frozenset().union(*feature_kinds().values())
TRAINING_KINDS = {k.value for c in ("train", "promote") for k in REQUIRED_KINDS[c]}


def plan_kinds(plan: Plan) -> set[str]:
    """The kinds that change what evaluating ``plan`` does beyond feature values: those its
    outcomes are counted from, its discontinuity's list runs and help, and its lotteries."""
    outcomes = [*plan.outcomes.all, *([plan.rd.outcome] if plan.rd else [])]
    kinds = {k.value for name in outcomes for k in OUTCOME_KINDS[name]}
    if plan.rd:
        kinds |= {EventKind.RISK_LIST_SCORE.value, *plan.exposure.kinds}
    if plan.lottery:
        kinds |= {EventKind.RISK_LIST_LOTTERY.value, *plan.exposure.kinds}
    return kinds


def removed(case: str) -> frozenset[str]:
    if case == ALL_OPTIONAL:
        return frozenset(k.value for k in OPTIONAL_KINDS)
    return frozenset({case})


def runs(kinds: set[str], case: str) -> bool:
    return case == ALL_OPTIONAL or case in kinds


def required(command: str, case: str) -> set[str]:
    return {k.value for k in REQUIRED_KINDS[command]} & removed(case)


def cli(capsys: pytest.CaptureFixture[str], *argv: object) -> tuple[int, str, str]:
    """Exit code, standard output and standard error of ``riskstrat argv`` in-process."""
    try:
        main([str(a) for a in argv])
        code = 0
    except SystemExit as stopped:
        code = int(stopped.code or 0)
    printed = capsys.readouterr()
    return code, printed.out, printed.err


def stopped_naming(result: tuple[int, str, str], kinds: set[str]) -> None:
    """The command stopped with exit 2 and one error line naming each missing kind."""
    code, _, err = result
    lines = [line for line in err.splitlines() if "error:" in line]
    assert code == 2, err
    assert len(lines) == 1 and "Traceback" not in err, err
    assert all(k in lines[0] for k in kinds), lines[0]


def worked(result: tuple[int, str, str], *codes: int) -> str:
    code, out, err = result
    assert code in (0, *codes), err
    assert "Traceback" not in err
    return out


@pytest.fixture(scope="module")
def borough(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The small borough, validated."""
    raw = tmp_path_factory.mktemp("absent-raw")
    write(generate(BOROUGH), raw)
    out = tmp_path_factory.mktemp("absent-validated")
    assert validate_dir(raw, out, date.fromisoformat(EXTRACT_DATE)).reconciles
    return out


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("absent-config") / "train.toml"
    path.write_text(FAST_TRAIN)
    return path


def without(borough: Path, kinds: frozenset[str], out: Path) -> Path:
    """A copy of ``borough`` without the events of ``kinds``, recorded like validate's."""
    out.mkdir(parents=True)
    for table in (PATIENTS, PRACTICES):
        shutil.copy(borough / table.file_name, out / table.file_name)
    events = pq.read_table(borough / EVENTS.file_name)
    keep = pc.invert(pc.is_in(events["kind"], value_set=pa.array(sorted(kinds))))
    pq.write_table(events.filter(keep), out / EVENTS.file_name)
    write_record(out)
    return out


def test_required_kinds_cover_the_commands_and_the_rest_are_optional() -> None:
    commands = {"features", "train", "promote", "weekly", "referrals", "evaluate"}
    assert set(REQUIRED_KINDS) == commands
    needed = {k for kinds in REQUIRED_KINDS.values() for k in kinds}
    assert needed == {EventKind.EMERGENCY_ADMISSION}
    assert set(OPTIONAL_KINDS) == set(EventKind) - needed


def test_a_required_kind_stops_with_one_line_naming_folder_and_kind() -> None:
    present = {k.value for k in EventKind} - {"emergency_admission"}
    require_for("weekly", present, "data/x")  # weekly requires nothing
    with pytest.raises(AbsentKindError) as stopped:
        require_for("train", present, "data/x")
    message = str(stopped.value)
    assert isinstance(stopped.value, UserError) and "\n" not in message
    assert message.startswith("data/x: ") and "emergency_admission" in message


def test_an_absent_kind_names_its_features_and_those_derived_from_them() -> None:
    assert absent_kinds({k.value for k in EventKind} - {"social_circumstance"}) == (
        "social_circumstance",
    )
    absent = absent_features(["social_circumstance"])
    assert absent["lives_alone_coded"] == ("social_circumstance",)
    assert absent["frailty_index"] == ("social_circumstance",)  # a deficit it counts
    assert "emergency_admissions_365d" not in absent
    assert absent_features(["social_circumstance"], ["age", "ltc_count"]) == {}


def test_referral_rules_name_the_inputs_the_week_could_not_record() -> None:
    week = {
        "lives_alone_coded": ("social_circumstance",),
        "care_home_resident": ("care_home_admission",),
    }
    said = absent_inputs(ReferralCriteria(), week)
    assert len(said) == 2
    assert said[0].startswith("driver isolation cannot apply") and "social_circumstance" in said[0]
    assert said[1].startswith("exclusion exclude_care_home") and "care_home_admission" in said[1]
    chosen = ReferralCriteria(drivers=("low_mood",), exclude_care_home=False)
    assert absent_inputs(chosen, week) == []


@pytest.mark.slow
@pytest.mark.parametrize("case", CASES)
def test_every_command_works_or_names_the_missing_kind(
    case: str,
    borough: Path,
    champion: RegisteredBundle,
    tracking_uri: str,
    config: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Training and promotion go to a registry and model store of their own; the weekly run
    scores with the session's champion (trained on the larger test borough)."""
    gone = removed(case)
    data = without(borough, gone, tmp_path / "data")
    read_by_features = sorted(gone & FEATURE_KINDS)

    out = worked(
        cli(
            capsys,
            "features",
            "--data",
            data,
            "--as-of",
            "2025-01-01",
            "--out",
            tmp_path / "features.parquet",
        )
    )
    assert all(k in out for k in read_by_features), out
    assert ("absent from the data" in out) == bool(read_by_features)

    work = tmp_path / "work"
    monkeypatch.delenv(TRACKING_ENV, raising=False)
    monkeypatch.setenv("BENTOML_HOME", str(work / "bentoml"))
    if runs(TRAINING_KINDS, case):
        result = cli(capsys, "train", "--data", data, "--workdir", work, "--config", config)
        if required("train", case):
            stopped_naming(result, required("train", case))
        else:
            out = worked(result)
            assert all(k in out for k in read_by_features), out
            card = (work / "report" / "model_card.html").read_text()
            assert all(k in card for k in read_by_features)
        result = cli(capsys, "promote", "--data", data, "--workdir", work)
        if required("promote", case):
            stopped_naming(result, required("promote", case))
        else:
            worked(result, 1)  # 1: the gate refused the challenger, a decision

    monkeypatch.setenv(TRACKING_ENV, tracking_uri)
    lists = tmp_path / "lists"
    out = worked(
        cli(capsys, "weekly", "--data", data, "--as-of", WEEK, "--out", lists, "--workdir", work)
    )
    manifest = json.loads((lists / WEEK / "manifest.json").read_text())
    assert set(manifest["absent"]["kinds"]) == gone
    assert all(k in out for k in gone), out

    out = worked(cli(capsys, "referrals", "--lists", lists, "--out", tmp_path / "ref.csv"))
    columns = [c for cs in (*DRIVER_COLUMNS.values(), *EXCLUSION_COLUMNS.values()) for c in cs]
    blind = {k for c in columns for k in feature_kinds()[c]} & gone
    assert ("absent input" in out) == bool(blind), out
    assert all(k in out for k in blind), out

    for name in PLANS_RUN:
        plan = load_plan(PLANS / name).plan
        if not runs(plan_kinds(plan), case):
            continue
        evaluation = tmp_path / f"evaluation-{name}"
        result = cli(
            capsys, "evaluate", "--data", data, "--plan", PLANS / name, "--out", evaluation
        )
        primary = {k.value for k in OUTCOME_KINDS[plan.outcomes.primary]} & gone
        if primary and (plan.did or plan.matched):
            stopped_naming(result, primary)
            continue
        out = worked(result)
        saved = json.loads((evaluation / "results.json").read_text())
        for design in saved["designs"]:
            for outcome in design["outcomes"]:
                lacking = {k.value for k in OUTCOME_KINDS[outcome["outcome"]]} & gone
                assert ("not measured" in outcome["verdict"]) == bool(lacking), outcome
        if plan.rd:
            rd = next(d for d in saved["designs"] if d["design"] == "rd")
            needed = {EventKind.RISK_LIST_SCORE.value, *OUTCOME_KINDS[plan.rd.outcome]}
            blind = needed & gone or set(plan.exposure.kinds) <= gone
            assert ("the data hold no" in rd["verdict"]) == bool(blind), rd["verdict"]
        if plan.lottery:
            lottery = next(d for d in saved["designs"] if d["design"] == "lottery")
            unrecorded = EventKind.RISK_LIST_LOTTERY.value in gone
            assert ("no risk_list_lottery events" in lottery["verdict"]) == unrecorded
        assert (evaluation / "report.html").exists()
