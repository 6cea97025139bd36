"""``riskstrat bench target``: whom to offer scarce help, by which rule?

Repeated list runs on synthetic boroughs (one per seed), with effects that vary from person
to person and with effects that do not (``ListActions.uniform()``: the same average). Each
borough's data before ``test_from`` trains, through the normal training code, an
any-admission risk model and an avoidable-admission risk model (``training_data`` and
``fit_bundle``, as ``riskstrat train`` does) and the benefit learner
(``training.benefit``, on the list runs whose outcome window ends by then). Then, at every
list run from ``test_from`` whose truth follow-up is complete, each rule offers ``capacity``
places per action among the candidates (people listed on the run without list-triggered
help running: the people help is offered to) through the weekly run's own allocation
(``serving.weekly.offers.allocate``, one team, the rule's scores as its ranking key), one
action per person:

- ``any_risk`` and ``avoidable_risk``: highest predicted risk first (the first ``capacity``
  get reablement, the next social prescribing, as both actions rank the same);
- ``benefit``: highest estimated admissions prevented first, each person in line for the
  action that prevents the most for them (an action the learner refused is never offered);
- ``oracle``: the truth's ``prevented_<action>``, the best any rule could do;
- ``feature_oracle``: a LightGBM regression of the truth's ``prevented_<action>`` on the
  features, learnt from the candidates of the runs before ``test_from``: the best a rule
  that sees only the features could learn with perfect labels, so the gap between it and
  ``oracle`` is what the features cannot see, and the gap to ``benefit`` what learning
  from past help loses;
- ``random``: a seeded lottery.

What a rule's offers prevent is the truth's ``prevented_<action>`` summed over them (the
expected avoidable admissions the action prevents over the truth's follow-up had the
person been offered it, so nothing needs simulating forward), per 100 offers, with 95%
intervals across seeds (t distribution); paired differences and the share of the oracle
are per seed first. Who is offered is tabulated by deprivation decile, ethnicity, age band
and sex against the candidates and against who is at risk (the candidates' expected
emergency admissions without the list's help, from the truth).
"""

from __future__ import annotations

import itertools
import json
from dataclasses import asdict, dataclass, field
from datetime import date
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pandas as pd
from scipy import stats

from riskstrat.common.months import add_months
from riskstrat.common.progress import QUIET, Progress
from riskstrat.contract.tables import ContractTables
from riskstrat.contract.validation import validate_dir
from riskstrat.features.engine import KEY, build_features, feature_specs
from riskstrat.features.exposure import ExposureRule, exposure
from riskstrat.features.labels import Outcome
from riskstrat.models.benefit import benefit_column, expected_prevented
from riskstrat.models.tiers import HIGH
from riskstrat.serving.weekly.config import OfferSettings
from riskstrat.serving.weekly.offers import allocate as allocate_offers
from riskstrat.sources.synthetic.borough import generate, write
from riskstrat.sources.synthetic.config import Interventions, ListActions, SynthConfig
from riskstrat.sources.synthetic.list_actions import ACTION_KINDS
from riskstrat.training.benefit import BenefitSettings, train_benefit
from riskstrat.training.config import LightGBMParams, TrainConfig
from riskstrat.training.fit import fit_bundle
from riskstrat.training.pipeline import training_data

RESULTS_FILE = "bench_target.json"
TABLE_FILE = "bench_target.md"
RULES = ("any_risk", "avoidable_risk", "benefit", "feature_oracle", "oracle", "random")
WORLDS = ("varying", "uniform")
# The generator's own action names in the truth, by the contract's event kind.
TRUTH_ACTION = {kind: name for name, kind in ACTION_KINDS.items()}
GROUPS = ("deprivation_decile", "ethnicity_group", "age_band", "sex")
AGE_BANDS = (18, 45, 65, 75, 85)
TARGET_SHARE_OF_ORACLE = 0.8  # the done-when
# The weekly allocation's frame for one team holding the benchmark's places: every candidate
# is listed, nobody has help running.
TEAM_COLUMN, TEAM = "locality", "borough"
NOBODY_RUNNING = pd.Series(dtype=object)


@dataclass(frozen=True, slots=True)
class TargetBench:
    """The benchmark's settings: boroughs, capacity and the training/test split in time."""

    seeds: tuple[int, ...] = (1, 2, 3, 4, 5)
    patients: int = 20_000
    capacity: int = 25  # offers per list run per action
    test_from: date = date(2025, 7, 1)
    extract: date = date(2026, 10, 31)
    worlds: tuple[str, ...] = WORLDS

    def synth_config(self, seed: int, world: str) -> SynthConfig:
        lists = ListActions()
        return SynthConfig(
            patients=self.patients,
            seed=seed,
            truth_as_of=(),
            interventions=Interventions(
                list_actions=lists if world == "varying" else lists.uniform()
            ),
        )

    def train_config(self, seed: int, outcome: Outcome) -> TrainConfig:
        """Three half-years of snapshots whose year of outcomes ends by ``test_from``."""
        test = self.test_from
        return TrainConfig(
            train_as_of=tuple(add_months(test, m) for m in (-24, -18, -12)),
            test_as_of=test,
            outcome=outcome,
            seed=seed,
            bootstrap=0,
            lightgbm=LightGBMParams(threads=1),
        )


# ---- one borough ---------------------------------------------------------------------------


@dataclass
class Scored:
    """One seed's world after training: candidates at the test runs with every rule's
    scores, the truth and their groups."""

    candidates: pd.DataFrame
    benefit: dict[str, dict] = field(default_factory=dict)


def _risk_model(sources: ContractTables, config: TrainConfig, rule: ExposureRule):
    data = training_data(sources, config, rule, (*config.train_as_of, config.test_as_of))
    bundle, _ = fit_bundle(data.train, feature_specs(), config)
    return bundle


def _test_runs(truth: pd.DataFrame, bench: TargetBench, follow_up_months: int) -> list[date]:
    """List runs from ``test_from`` whose truth follow-up ends inside the data."""
    runs = sorted({d.date() for d in truth["run"]})
    return [
        r for r in runs if r >= bench.test_from and add_months(r, follow_up_months) <= bench.extract
    ]


def _train_runs(truth: pd.DataFrame, bench: TargetBench, follow_up_months: int) -> list[date]:
    """List runs whose truth follow-up ends by ``test_from``: what ``feature_oracle`` learns
    from."""
    runs = sorted({d.date() for d in truth["run"]})
    return [r for r in runs if add_months(r, follow_up_months) <= bench.test_from]


def _candidates(
    sources: ContractTables, truth: pd.DataFrame, runs: list[date], rule: ExposureRule, days: int
) -> pd.DataFrame:
    """The truth's rows of the people listed on ``runs`` without help running, keyed like
    the features."""
    chosen = truth[truth["listed"] & truth["run"].dt.date.isin(runs)].copy()
    chosen["as_of"] = chosen["run"].dt.date
    chosen = chosen.set_index(KEY)
    running = exposure(sources, runs, days, rule)
    busy = running.index[running["running"].to_numpy(bool)]
    return chosen[~chosen.index.isin(busy)]


def _feature_oracle(features: pd.DataFrame, prevented: pd.Series, seed: int) -> lgb.LGBMRegressor:
    """The truth's admissions prevented learnt from the features (perfect labels)."""
    model = lgb.LGBMRegressor(
        n_estimators=300,
        learning_rate=0.05,
        num_leaves=15,
        min_child_samples=50,
        subsample=0.8,
        subsample_freq=1,
        random_state=seed,
        n_jobs=1,
        verbose=-1,
    )
    return model.fit(features, prevented)


def _age_band(birth: pd.Series, on: pd.Series) -> pd.Series:
    years = (pd.to_datetime(on) - pd.to_datetime(birth)).dt.days / 365.25
    edges = [*AGE_BANDS, np.inf]
    labels = [f"{a}-{b - 1}" for a, b in itertools.pairwise(AGE_BANDS)]
    labels.append(f"{AGE_BANDS[-1]}+")
    return pd.cut(years, edges, right=False, labels=labels).astype(str)


def build_borough(bench: TargetBench, seed: int, world: str, work: Path) -> Scored:
    """Generate, validate, train the three models before ``test_from`` and score the test
    runs' candidates."""
    config = bench.synth_config(seed, world)
    borough = generate(config)
    write(borough, work / "raw")
    validate_dir(work / "raw", work / "contract", bench.extract)
    rule = ExposureRule()
    with ContractTables.from_dir(work / "contract") as sources:
        models = {
            "any_risk": _risk_model(sources, bench.train_config(seed, Outcome()), rule),
            "avoidable_risk": _risk_model(
                sources, bench.train_config(seed, Outcome(admissions="avoidable")), rule
            ),
        }
        settings = BenefitSettings(seed=seed)
        benefit = train_benefit(sources, settings, rule, until=bench.test_from)
        lists = config.interventions.list_actions
        runs = _test_runs(borough.list_actions, bench, lists.follow_up_months)
        days = settings.horizon_days
        truth = _candidates(sources, borough.list_actions, runs, rule, days)
        features = build_features(sources, runs).reindex(truth.index)
        before = _train_runs(borough.list_actions, bench, lists.follow_up_months)
        learnt = _candidates(sources, borough.list_actions, before, rule, days)
        learn_from = build_features(sources, before).reindex(learnt.index)
        patients = pd.read_parquet(work / "contract" / "patients.parquet").set_index("patient_id")
    frame = pd.DataFrame(index=truth.index)
    for name, bundle in models.items():
        frame[name] = bundle.predict(features)
    estimated = expected_prevented(benefit, features)
    for kind, truth_name in TRUTH_ACTION.items():
        frame[benefit_column(kind)] = estimated[benefit_column(kind)].to_numpy()
        frame[f"prevented_{kind}"] = truth[f"prevented_{truth_name}"].to_numpy()
        oracle = _feature_oracle(learn_from, learnt[f"prevented_{truth_name}"], seed)
        frame[f"feature_oracle_{kind}"] = oracle.predict(features)
    frame["expected_untreated"] = truth["expected_untreated"].to_numpy()
    who = patients.reindex(truth.index.get_level_values("patient_id"))
    frame["deprivation_decile"] = who["deprivation_decile"].astype("Int64").astype(str).to_numpy()
    frame["ethnicity_group"] = who["ethnicity_group"].astype(str).to_numpy()
    frame["sex"] = who["sex"].astype(str).to_numpy()
    on = pd.Series(truth.index.get_level_values("as_of"))
    frame["age_band"] = _age_band(who["birth_month"].reset_index(drop=True), on).to_numpy()
    facts = {
        a.kind: {
            "ate": a.ate,
            "se": a.se,
            "units": a.units,
            "treated": a.treated,
            "refused": a.refused,
            "varies": a.varies if a.estimated else None,
            "varies_slope": a.varies_slope,
            "varies_se": a.varies_se,
            "spearman_at_test_runs": float(
                stats.spearmanr(
                    frame[benefit_column(a.kind)], frame[f"prevented_{a.kind}"]
                ).statistic
            )
            if a.estimated
            else None,
        }
        for a in benefit.actions
    }
    return Scored(frame, facts)


# ---- the rules -----------------------------------------------------------------------------


def allocate(scores: np.ndarray, capacity: int, run: date) -> np.ndarray:
    """Offer ``capacity`` places per action (``scores``' columns, in ``TRUTH_ACTION``'s
    order) among the rows (people) as the weekly run does (``serving.weekly.offers``), one
    team, the scores as the ranking key per action: each person in line for their best
    action with a score above zero, each line offered best first, places left to second
    choices. Returns each row's action index, -1 for none. NaN (an action the learner
    refused) is never offered."""
    kinds = list(TRUTH_ACTION)
    index = pd.Index([f"p{i}" for i in range(len(scores))], name="patient_id")
    people = pd.DataFrame(
        {
            TEAM_COLUMN: TEAM,
            "tier": HIGH,
            "risk": 0.0,
            "pathway": "",
            **{
                benefit_column(k): np.nan_to_num(scores[:, i], nan=-np.inf)
                for i, k in enumerate(kinds)
            },
        },
        index=index,
    )
    settings = OfferSettings(team=TEAM_COLUMN, capacity={k: {TEAM: capacity} for k in kinds})
    offer = allocate_offers(people, settings, NOBODY_RUNNING, run).columns["offer"].to_numpy()
    return np.array([kinds.index(o) if o else -1 for o in offer])


def rule_scores(candidates: pd.DataFrame, rule: str, seed: int) -> np.ndarray:
    """(person, action) scores of ``rule`` at one run."""
    kinds = list(TRUTH_ACTION)
    n = len(candidates)
    if rule in ("any_risk", "avoidable_risk"):
        return np.repeat(candidates[rule].to_numpy()[:, None], len(kinds), axis=1)
    if rule == "benefit":
        return candidates[[benefit_column(k) for k in kinds]].to_numpy()
    if rule == "oracle":
        return candidates[[f"prevented_{k}" for k in kinds]].to_numpy()
    if rule == "feature_oracle":
        return candidates[[f"feature_oracle_{k}" for k in kinds]].to_numpy()
    if rule == "random":
        draw = np.random.default_rng(seed).random(n)
        return np.repeat(draw[:, None], len(kinds), axis=1)
    raise ValueError(f"unknown rule {rule!r}")


def offers(borough: Scored, capacity: int, seed: int) -> pd.DataFrame:
    """Every rule's offers at every test run: the candidates' rows with ``rule``, ``action``
    and ``prevented`` (the truth's, for the action offered)."""
    kinds = list(TRUTH_ACTION)
    rows = []
    for k, (run, people) in enumerate(borough.candidates.groupby(level="as_of", sort=True)):
        for rule in RULES:
            chosen = allocate(rule_scores(people, rule, seed * 1000 + k), capacity, run)
            got = chosen >= 0
            truth = people[[f"prevented_{kind}" for kind in kinds]].to_numpy()
            offered = people[got].copy()
            offered["rule"] = rule
            offered["action"] = np.asarray(kinds)[chosen[got]]
            offered["prevented"] = truth[got, chosen[got]]
            offered["run"] = run
            rows.append(offered)
    return pd.concat(rows)


# ---- summaries -----------------------------------------------------------------------------


def interval(values: list[float]) -> dict[str, float]:
    """Mean and 95% t interval across seeds."""
    x = np.asarray(values, float)
    mean = float(x.mean())
    if len(x) < 2:
        return {"mean": mean, "low": float("nan"), "high": float("nan"), "n": len(x)}
    half = float(stats.t.ppf(0.975, len(x) - 1) * x.std(ddof=1) / np.sqrt(len(x)))
    return {"mean": mean, "low": mean - half, "high": mean + half, "n": len(x)}


def per_100(offered: pd.DataFrame) -> dict[str, float]:
    """Admissions prevented per 100 offers, per rule, for one borough."""
    by_rule = offered.groupby("rule")["prevented"].agg(["sum", "size"])
    return {rule: float(100 * row["sum"] / row["size"]) for rule, row in by_rule.iterrows()}


def summarise(per_seed: dict[int, dict[str, float]]) -> dict:
    """Per rule, across seeds: prevented per 100 offers, share of the oracle, and the
    benefit rule against the any-admission risk rule (paired by seed)."""
    seeds = sorted(per_seed)
    summary: dict = {"rules": {}, "share_of_oracle": {}, "benefit_minus": {}}
    for rule in RULES:
        summary["rules"][rule] = interval([per_seed[s][rule] for s in seeds])
        summary["share_of_oracle"][rule] = interval(
            [per_seed[s][rule] / per_seed[s]["oracle"] for s in seeds]
        )
    for other in ("any_risk", "avoidable_risk", "random"):
        summary["benefit_minus"][other] = interval(
            [per_seed[s]["benefit"] - per_seed[s][other] for s in seeds]
        )
    return summary


def _natural(value: str) -> tuple:
    """Numbers in numeric order (deprivation deciles 1 to 10), then the rest by name."""
    return (0, int(value), "") if value.isdigit() else (1, 0, value)


def equity(offered: pd.DataFrame, candidates: pd.DataFrame) -> dict:
    """Per group variable: the share of each rule's offers in each group beside the
    candidates' share and the share of their expected admissions (who is at risk)."""
    tables = {}
    for group in GROUPS:
        table = pd.DataFrame(
            {
                "candidates": candidates[group].value_counts(normalize=True),
                "at_risk": candidates.groupby(group)["expected_untreated"].sum()
                / candidates["expected_untreated"].sum(),
            }
        )
        for rule in RULES:
            chosen = offered[offered["rule"] == rule]
            table[rule] = chosen[group].value_counts(normalize=True)
        order = sorted(table.index, key=_natural)
        tables[group] = table.reindex(order).fillna(0.0).round(4).to_dict(orient="index")
    return tables


def targets(summary: dict) -> dict:
    """The issue's done-when, each with whether it is met."""
    varying, uniform = summary.get("varying"), summary.get("uniform")
    out = {}
    if varying:
        share = varying["share_of_oracle"]["benefit"]
        diff = varying["benefit_minus"]["any_risk"]
        out["varying_benefit_at_least_80pct_of_oracle"] = {
            "share": share,
            "met": share["mean"] >= TARGET_SHARE_OF_ORACLE,
            "met_beyond_interval": share["low"] >= TARGET_SHARE_OF_ORACLE,
        }
        out["varying_benefit_beats_any_risk_beyond_intervals"] = {
            "difference": diff,
            "met": diff["low"] > 0,
        }
    if uniform:
        diff = uniform["benefit_minus"]["any_risk"]
        out["uniform_benefit_no_worse_than_any_risk"] = {
            "difference": diff,
            "met": diff["high"] >= 0,
        }
    return out


def _cell(i: dict) -> str:
    return f"{i['mean']:.2f} ({i['low']:.2f} to {i['high']:.2f})"


def _share_cell(i: dict) -> str:
    return f"{i['mean']:.0%} ({i['low']:.0%} to {i['high']:.0%})"


def markdown(results: dict) -> str:
    """The results as Markdown tables: prevented per 100 offers, the targets, the equity."""
    lines = [
        f"Admissions prevented per 100 offers ({results['bench']['capacity']} offers per list run "
        f"per action, {len(results['bench']['seeds'])} seeds of "
        f"{results['bench']['patients']:,} people; mean and 95% interval across seeds)",
        "",
        "| rule | "
        + " | ".join(f"{w}: per 100 | {w}: share of oracle" for w in results["worlds"])
        + " |",
        "|---|" + "---|---|" * len(results["worlds"]),
    ]
    for rule in RULES:
        cells = []
        for world in results["worlds"]:
            s = results["summary"][world]
            cells += [_cell(s["rules"][rule]), _share_cell(s["share_of_oracle"][rule])]
        lines.append(f"| {rule} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "| world | benefit minus any_risk | benefit minus avoidable_risk |",
        "|---|---|---|",
    ]
    for world in results["worlds"]:
        b = results["summary"][world]["benefit_minus"]
        lines.append(f"| {world} | {_cell(b['any_risk'])} | {_cell(b['avoidable_risk'])} |")
    lines += ["", "| target | met |", "|---|---|"]
    for name, target in results["targets"].items():
        lines.append(f"| {name.replace('_', ' ')} | {'yes' if target['met'] else 'no'} |")
    for world in results["worlds"]:
        for group, table in results["equity"][world].items():
            columns = ["candidates", "at_risk", *RULES]
            lines += [
                "",
                f"Offers by {group.replace('_', ' ')} ({world}): share of each rule's offers "
                "beside the candidates and their expected admissions",
                "",
                f"| {group} | " + " | ".join(columns) + " |",
                "|---|" + "---|" * len(columns),
            ]
            for value, row in table.items():
                lines.append(f"| {value} | " + " | ".join(f"{row[c]:.1%}" for c in columns) + " |")
    return "\n".join(lines) + "\n"


def bench_target(
    out: Path, bench: TargetBench, work: Path, progress: Progress | None = None
) -> dict:
    """Run every seed in every world; write ``bench_target.json`` and ``bench_target.md``
    to ``out`` and return the results."""
    say = progress or QUIET
    per_seed: dict[str, dict[int, dict[str, float]]] = {w: {} for w in bench.worlds}
    every_offer: dict[str, list[pd.DataFrame]] = {w: [] for w in bench.worlds}
    every_candidate: dict[str, list[pd.DataFrame]] = {w: [] for w in bench.worlds}
    learnt: dict[str, dict] = {w: {} for w in bench.worlds}
    steps = len(bench.seeds) * len(bench.worlds)
    step = 0
    for seed in bench.seeds:
        for world in bench.worlds:
            say.advance("target", step, steps, f"seed {seed}, effects {world}")
            borough = build_borough(bench, seed, world, work / f"{world}-{seed}")
            offered = offers(borough, bench.capacity, seed)
            per_seed[world][seed] = per_100(offered)
            every_offer[world].append(offered)
            every_candidate[world].append(borough.candidates)
            learnt[world][seed] = borough.benefit
            step += 1
    say.advance("target", steps, steps, "done")
    summary = {w: summarise(per_seed[w]) for w in bench.worlds}
    results = {
        "bench": json.loads(json.dumps(asdict(bench), default=str)),
        "worlds": list(bench.worlds),
        "per_seed": per_seed,
        "summary": summary,
        "targets": targets(summary),
        "benefit_model": learnt,
        "equity": {
            w: equity(pd.concat(every_offer[w]), pd.concat(every_candidate[w]))
            for w in bench.worlds
        },
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / RESULTS_FILE).write_text(json.dumps(results, indent=2, default=str))
    (out / TABLE_FILE).write_text(markdown(results))
    return results
