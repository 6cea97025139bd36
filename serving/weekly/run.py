"""The weekly run: everyone registered is scored, tiered, compared with last week, explained,
flagged and given a suggested pathway; each locality and GP cluster gets its files. The
monitoring (``serving.weekly.monitoring``) checks whether the list's help shows in the
admissions that followed an earlier week.

Outputs go to ``<out>/<as-of>/`` (docs/weekly.md): ``people.parquet`` (everyone scored),
``reasons.parquet`` (explained people), per locality and per cluster a CSV, an Excel workbook
and an HTML report, ``left.csv``, and ``manifest.json``. They are written to a staging folder
and renamed into place, so a failed run leaves the last good week untouched, and they hold no
clock time, so the same week run again on the same inputs gives identical bytes. Stage
timings go to ``<out>/runs.jsonl``, one line per run.

The champion of any emergency admission ranks, tiers and explains. When a champion of
potentially avoidable admissions is given too, it scores everyone from the same features and
its risk (``avoidable_risk``) stands beside the first in the files; without one the column is
absent and the manifest's ``avoidable_model`` says why.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import date, datetime
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from riskstrat.common.errors import UserError
from riskstrat.common.progress import QUIET, Progress
from riskstrat.common.spreadsheet import write_frame
from riskstrat.contract.engines import Engine
from riskstrat.contract.needs import absent_kinds, present_kinds
from riskstrat.contract.schema import EVENTS
from riskstrat.contract.tables import ContractTables, fingerprint, unbound
from riskstrat.features.absent import absent_features
from riskstrat.features.bands import age_band
from riskstrat.features.catalogue import FAMILIES, LIST_CONTEXT
from riskstrat.features.engine import build_features, cohort_context
from riskstrat.features.exposure import ExposureRule, running_kinds
from riskstrat.models.benefit import BenefitModel
from riskstrat.models.bundle import ModelBundle
from riskstrat.models.registry import RegisteredBundle, registered_name
from riskstrat.models.tiers import LISTED_TIERS, top_mask
from riskstrat.serving.weekly.config import WeeklyConfig
from riskstrat.serving.weekly.drift import drift_check
from riskstrat.serving.weekly.flags import COLUMNS as FLAG_COLUMNS
from riskstrat.serving.weekly.monitoring import Monitoring, monitor
from riskstrat.serving.weekly.offers import (
    Offers,
    allocate,
    check_people,
    check_teams,
    draw_events,
    words,
)
from riskstrat.serving.weekly.outputs import readable, scope_stems, write_workbook
from riskstrat.serving.weekly.overrides import NO_OVERRIDES, Overrides
from riskstrat.serving.weekly.pathways import Rules, load_rules
from riskstrat.serving.weekly.referrals import COLUMNS as REFERRAL_COLUMNS
from riskstrat.serving.weekly.referrals import frequent_gp
from riskstrat.serving.weekly.report import report_html
from riskstrat.serving.weekly.scoring import (
    AVOIDABLE_RISK,
    RISK,
    LocalScorer,
    Scorer,
    reason_columns,
)
from riskstrat.serving.weekly.store import (
    BOROUGH_REPORT,
    LEFT_FILE,
    LOTTERY_EVENTS_FILE,
    LOTTERY_FILE,
    MANIFEST_FILE,
    PEOPLE_FILE,
    REASONS_FILE,
    WeekStore,
    file_digests,
)
from riskstrat.serving.weekly.tiers import left_the_list, listed_mask, week_status

WEEKLY_RUN = "weekly run"
STEPS = 4
PREVIOUS_COLUMNS = ["risk", "tier", "practice_id", "gp_cluster", "locality"]


@dataclass(slots=True)
class Stopwatch:
    """Seconds per stage, in order."""

    seconds: dict[str, float] = field(default_factory=dict)
    _began: float = field(default_factory=time.perf_counter)

    def lap(self, stage: str) -> None:
        now = time.perf_counter()
        self.seconds[stage] = round(now - self._began, 2)
        self._began = now


@dataclass(frozen=True, slots=True)
class WeeklyResult:
    folder: Path
    manifest: dict
    seconds: dict[str, float]
    monitoring: Monitoring

    @property
    def listed(self) -> int:
        return self.manifest["counts"]["listed"]

    @property
    def scored(self) -> int:
        return self.manifest["counts"]["scored"]


def build_people(
    scorer: Scorer,
    context: pd.DataFrame,
    bundle: ModelBundle,
    previous: pd.DataFrame,
    config: WeeklyConfig,
    rules: Rules,
    avoidable: ModelBundle | None = None,
    benefit: BenefitModel | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Everyone scored, one row each, ranked; the long table of reasons; and each person's
    ``person_rows`` (in ``context`` order), which the drift check reads. ``avoidable``, the
    model of potentially avoidable admissions, adds its risk (``AVOIDABLE_RISK``);
    ``benefit`` each listed person's expected admissions prevented per kind of help
    (``benefit_<kind>``; empty for the unlisted, whom the help was never offered to and the
    estimate says nothing of)."""
    about = bundle.described
    rows = scorer.rows()
    if len(rows) != len(context) or not rows.index.isin(context.index).all():
        raise ValueError(
            f"scoring returned {len(rows):,} people for a cohort of {len(context):,}: "
            "the features and the cohort disagree"
        )
    rows = rows.reindex(context.index)
    second = {}
    if avoidable is not None:
        second[AVOIDABLE_RISK] = scorer.risk(avoidable).reindex(rows.index).to_numpy("float64")
    risk = rows[RISK].to_numpy(dtype="float64")
    previous_risk = previous["risk"].reindex(rows.index).to_numpy(dtype="float64")
    change = risk - previous_risk
    people = context.drop(columns="birth_month").assign(
        age=np.floor(rows["age"]).astype("int64"),
        age_band=age_band(rows["age"]),
        risk=risk,
        **second,
        percentile=about.percentile(risk),
        previous_risk=previous_risk,
        change=change,
        tier=pd.Series(about.tiers.assign(risk, change), index=rows.index, dtype="str"),
    )
    people["week_status"] = week_status(people["tier"], previous)
    listed = listed_mask(people["tier"]).to_numpy()
    if benefit is not None:
        estimated = scorer.benefit(benefit).reindex(rows.index)
        estimated.loc[~listed, :] = np.nan
        people = people.join(estimated)
    top = top_mask(risk, round(config.explain_share * len(people)))
    explained = rows.index[listed | top]
    reasons = scorer.reasons(explained)
    people = people.join(reason_columns(reasons, explained))
    for k in (1, 2, 3):
        people[f"reason_{k}"] = people[f"reason_{k}"].fillna("").astype("str")
    context_columns = [c for c in REFERRAL_COLUMNS if c not in people.columns]
    people = people.join(rows[[*context_columns, *FLAG_COLUMNS]])
    people = people.join(frequent_gp(people, config))
    people = people.join(rules.apply(people))
    people = people.sort_values("risk", ascending=False, kind="stable")
    people.insert(0, "rank", np.arange(1, len(people) + 1, dtype="int64"))
    return people, reasons, rows


def _top_reasons(listed: pd.DataFrame, count: int = 10) -> list[tuple[str, float]]:
    concepts = listed["reason_concepts"].explode().dropna()
    counts = concepts.value_counts().sort_index().sort_values(ascending=False, kind="stable")
    return [(name, float(n)) for name, n in counts.head(count).items()]


def _report(
    scope: str,
    listed: pd.DataFrame,
    left: pd.DataFrame,
    manifest: dict,
    table: pd.DataFrame,
    monitoring: Monitoring,
) -> str:
    """The HTML report of a scope; ``table`` is ``readable(listed)``, already made."""
    by_tier = listed["tier"].value_counts()
    by_pathway = listed["pathway"].value_counts().sort_index()
    on_list = int(listed_mask(listed["tier"]).sum())
    return report_html(
        title=f"Emergency admission risk list: {scope}, week of {manifest['as_of']}",
        summary=[
            ("Week (as of)", manifest["as_of"]),
            ("Compared with", manifest["previous_week"] or "no earlier week"),
            ("Model", f"{manifest['model']['name']} version {manifest['model']['version']}"),
            ("Potentially avoidable admissions model", _avoidable_words(manifest)),
            ("People listed", f"{on_list:,}"),
            *_offers_summary(listed, manifest["offers"]),
        ],
        charts=[
            ("People per tier", [(t, float(by_tier.get(t, 0))) for t in LISTED_TIERS]),
            (
                "Change since last week",
                [
                    ("new on the list", float((listed["week_status"] == "new").sum())),
                    ("stayed on the list", float((listed["week_status"] == "stayed").sum())),
                    ("left the list", float(len(left))),
                ],
            ),
            ("Most common reasons on the list", _top_reasons(listed)),
            ("Suggested pathways", [(p, float(n)) for p, n in by_pathway.items()]),
        ],
        drift=manifest["drift"],
        monitoring=monitoring,
        table=table,
        outcome=manifest["model"]["outcome_description"],
    )


def _offers_summary(listed: pd.DataFrame, block: dict) -> list[tuple[str, str]]:
    """The report's lines about offers: how many of each action, and what ranked them."""
    if not block["active"]:
        return []
    made = listed["offer"].value_counts()
    said = ", ".join(f"{words(a)} {int(made.get(a, 0)):,}" for a in block["capacity"])
    lottery = "on" if block["lottery"]["on"] else "off"
    return [
        ("Offers proposed", said),
        ("Offers ranked by", block["ranking"]["words"]),
        ("Lottery at the capacity boundary", lottery),
    ]


def _avoidable_words(manifest: dict) -> str:
    second = manifest["avoidable_model"]
    if second["version"] is None:
        return f"none: {second['absent']}"
    return f"{second['name']} version {second['version']}"


def avoidable_entry(model: RegisteredBundle | None) -> dict:
    """The manifest's ``avoidable_model``: which champion gave ``avoidable_risk``, or why the
    week has no such column."""
    name = registered_name("avoidable")
    if model is None:
        return {
            "name": name,
            "version": None,
            "absent": f"no champion of {name} was given, so the week has no {AVOIDABLE_RISK}",
        }
    about = model.bundle.described
    return {
        "name": model.name,
        "version": model.version,
        "outcome": about.outcome.name,
        "outcome_description": about.outcome.sentence(),
        "trained_on_data": about.data_fingerprint,
        "column": AVOIDABLE_RISK,
    }


def _left_table(left: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "Pseudonymised ID": left.index,
            "Practice": left["practice_id"].to_numpy(),
            "GP cluster": left["gp_cluster"].to_numpy(),
            "Locality": left["locality"].to_numpy(),
            "Tier last week": left["tier"].to_numpy(),
            "Risk last week (%)": (100 * left["risk"]).round(1).to_numpy(),
            "Risk now (%)": (100 * left["risk_now"]).round(1).to_numpy(),
            "Why they left": left["reason_left"].to_numpy(),
        }
    ).sort_values(["Locality", "GP cluster", "Pseudonymised ID"], kind="stable")


def _write_scope(
    staging: Path,
    name: str,
    title: str,
    listed: pd.DataFrame,
    left: pd.DataFrame,
    manifest: dict,
    sheets_by: str | None,
    stamp: datetime,
    monitoring: Monitoring,
) -> None:
    """CSV, workbook (one sheet per ``sheets_by`` value, else one) and report (``title``)
    for a scope, as ``<name>.csv``, ``.xlsx`` and ``.html``."""
    table = readable(listed)
    write_frame(table, staging / f"{name}.csv")
    if sheets_by is None:
        sheets = {listed["gp_cluster"].iloc[0] if len(listed) else name: table}
    else:
        sheets = {
            str(key): readable(group)
            for key, group in listed.groupby(sheets_by, sort=True, observed=True)
        } or {name: table}
    write_workbook(sheets, staging / f"{name}.xlsx", stamp)
    (staging / f"{name}.html").write_text(_report(title, listed, left, manifest, table, monitoring))


WeekInputs = Callable[
    [Path, date, ModelBundle, WeeklyConfig, Progress], tuple[pd.DataFrame, Scorer]
]
"""Builds a week's cohort context (pandas, indexed by patient) and the scorer of its people."""


def local_inputs(
    data_dir: Path,
    as_of: date,
    bundle: ModelBundle,
    config: WeeklyConfig,
    say: Progress,
    engine: Engine | None = None,
) -> tuple[pd.DataFrame, Scorer]:
    """Features built on ``engine`` (DuckDB by default), collected and scored in pandas."""
    sources = ContractTables.from_dir(data_dir, engine)
    features = build_features(sources, [as_of], families=(*FAMILIES, LIST_CONTEXT), progress=say)
    context = cohort_context(sources, [as_of]).droplevel("as_of")
    return context, LocalScorer(features.droplevel("as_of"), bundle, config)


def inputs_for(engine: Engine | None) -> WeekInputs:
    """Spark's features are scored on its executors; any other engine's in this process."""
    if engine is not None and engine.name == "spark":
        from riskstrat.serving.weekly.spark_scoring import spark_inputs

        return partial(spark_inputs, engine=engine)
    return partial(local_inputs, engine=engine)


def weekly_run(
    data_dir: Path,
    as_of: date,
    model: RegisteredBundle,
    out_dir: Path,
    config: WeeklyConfig | None = None,
    rules: Rules | None = None,
    progress: Progress | None = None,
    engine: Engine | None = None,
    inputs: WeekInputs | None = None,
    exposure_rule: ExposureRule | None = None,
    overrides: Overrides = NO_OVERRIDES,
    avoidable: RegisteredBundle | None = None,
    benefit: SavedBenefit | None = None,
) -> WeeklyResult:
    """Score, compare, explain, monitor, propose offers and write the week; see the module
    docstring. Features are built on ``engine`` (DuckDB by default) and scored where they are
    (``inputs_for``); the monitoring (``serving.weekly.monitoring``) asks the same engine,
    with ``exposure_rule`` (``[exposure]``) saying what list-triggered help is, which also
    says who has help running and so is not proposed again (``serving.weekly.offers``, with
    the team's ``overrides``). ``avoidable``, a champion of potentially avoidable admissions,
    adds its risk; ``benefit``, a saved benefit model, each listed person's expected
    admissions prevented, which then ranks the offers."""
    if avoidable is not None and avoidable.bundle.described.outcome.admissions != "avoidable":
        raise UserError(
            f"{avoidable.name} version {avoidable.version} predicts "
            f"{avoidable.bundle.described.outcome.name}, not potentially avoidable admissions"
        )
    config = config or WeeklyConfig()
    exposure_rule = exposure_rule or ExposureRule()
    _check_actions(config, exposure_rule)
    _check_against_data(data_dir, config, overrides, engine)
    rules = rules or load_rules()
    say = progress or QUIET
    watch = Stopwatch()
    say.advance(WEEKLY_RUN, 0, STEPS, "features")
    week_inputs = inputs or inputs_for(engine)
    context, scorer = week_inputs(data_dir, as_of, model.bundle, config, say)
    if context.empty:
        raise UserError(f"{data_dir}: nobody is registered and alive on {as_of}")
    watch.lap("features")
    say(f"features for {len(context):,} people")
    say.advance(WEEKLY_RUN, 1, STEPS, "scoring and explanations")
    store = WeekStore(out_dir)
    previous_week, previous = store.previous(as_of, PREVIOUS_COLUMNS)
    people, reasons, rows = build_people(
        scorer,
        context,
        model.bundle,
        previous,
        config,
        rules,
        avoidable.bundle if avoidable else None,
        benefit.model if benefit else None,
    )
    left = left_the_list(people, previous)
    about = model.bundle.described
    drift = drift_check(about.drift_reference, rows, people["risk"].reindex(rows.index))
    watch.lap("scoring and explanations")
    listed = people[listed_mask(people["tier"])]
    say(f"{len(listed):,} people listed, {len(reasons):,} reasons kept, drift: {drift['verdict']}")
    say.advance(WEEKLY_RUN, 2, STEPS, "monitoring")
    with ContractTables.from_dir(data_dir, engine) as sources:
        absent = absent_kinds(present_kinds(sources))
        monitoring = monitor(
            sources,
            store,
            as_of,
            listed.index,
            about.outcome,
            exposure_rule,
        )
        running = (
            running_kinds(sources, as_of, exposure_rule)
            if config.offers.active
            else pd.Series(dtype="object")
        )
    watch.lap("monitoring")
    say(f"monitoring: {monitoring.message}")
    offers = allocate(people, config.offers, running, as_of, overrides, rules.fits(people))
    people = people.join(offers.columns)
    shown = people[listed_mask(people["tier"]).to_numpy() | offers.offered.to_numpy()]
    say(_offers_said(offers))
    manifest = {
        "as_of": as_of.isoformat(),
        "model": {
            "name": model.name,
            "version": model.version,
            "outcome": about.outcome.name,
            "outcome_description": about.outcome.sentence(),
            "trained_on_data": about.data_fingerprint,
            "tiers": about.tiers.model_dump(mode="json"),
        },
        "avoidable_model": avoidable_entry(avoidable),
        "benefit_model": benefit_entry(benefit),
        "data_fingerprint": fingerprint(data_dir),
        "previous_week": previous_week.isoformat() if previous_week else None,
        "settings": asdict(config),
        "pathway_rules_sha256": rules.digest,
        "counts": _counts(people, listed, reasons, left),
        "mean_risk": round(float(people["risk"].mean()), 6),
        "drift": drift,
        "monitoring": monitoring.to_manifest(),
        "absent": {"kinds": list(absent), "features": absent_features(absent)},
        "offers": offers.manifest,
    }
    say.advance(WEEKLY_RUN, 3, STEPS, "writing the files")
    folder, manifest = _write_week(
        store, as_of, people, reasons, shown, left, manifest, monitoring, offers
    )
    watch.lap("outputs")
    say.advance(WEEKLY_RUN, STEPS, STEPS, "written")
    store.log_run(as_of, watch.seconds)
    return WeeklyResult(folder, manifest, watch.seconds, monitoring)


@dataclass(frozen=True, slots=True)
class SavedBenefit:
    """A benefit model, the file it was read from and that file's SHA-256 when it was read
    (what the manifest names: the file may change during a long run)."""

    model: BenefitModel
    path: Path
    sha256: str

    @classmethod
    def load(cls, path: Path) -> SavedBenefit:
        model, digest = BenefitModel.read(path)
        return cls(model, path, digest)


def benefit_entry(benefit: SavedBenefit | None) -> dict:
    """The manifest's ``benefit_model``: the file, its SHA-256, the list runs it learnt from
    and each action's average effect or refusal; or that none was given."""
    if benefit is None:
        return {"file": None, "absent": "no benefit model was given (riskstrat benefit)"}
    model = benefit.model
    return {
        "file": benefit.path.name,
        "sha256": benefit.sha256,
        "horizon_days": model.horizon_days,
        "runs": [d.isoformat() for d in model.runs],
        "actions": [a.describe() for a in model.actions],
    }


def _check_actions(config: WeeklyConfig, rule: ExposureRule) -> None:
    """Places for help the exposure rule does not count could be offered again and again:
    who has it running would not be known."""
    for action in config.offers.capacity:
        if action not in rule.kinds:
            raise UserError(
                f"[weekly.offers.capacity.{action}]: {action} is not help the [exposure] rule "
                f"counts (kinds: {', '.join(rule.kinds)}), so who has it running is unknown"
            )


def _check_against_data(
    data_dir: Path, config: WeeklyConfig, overrides: Overrides, engine: Engine | None
) -> None:
    """The teams given places and the people the team's overrides name, looked up in the
    data before any features are built: a mistyped team or identifier is refused in seconds,
    not after a run's scoring. (Whether they are in the week, registered and alive, is
    checked again on the week's people.)"""
    if not (config.offers.active or overrides.rows):
        return
    with ContractTables.from_dir(data_dir, engine) as sources:
        if config.offers.active:
            practices = unbound("practices")
            teams = practices.select(team=practices[config.offers.team]).distinct()
            check_teams(sources.run(teams, keep=False)["team"], config.offers, "the practices")
        if overrides.rows:
            ids = unbound("patients").select("patient_id")
            named = ids.filter(ids.patient_id.isin([r.patient_id for r in overrides.rows]))
            found = sources.run(named, keep=False)["patient_id"]
            check_people(set(found), overrides, "the patients")


def _offers_said(offers: Offers) -> str:
    """One line for the command line: offers made per action, and what ranked them."""
    block = offers.manifest
    if not block["active"]:
        return "offers: no places set ([weekly.offers] capacity)"
    made = ", ".join(f"{words(a)} {n:,}" for a, n in block["offered"].items())
    return f"offers: {made}, ranked by {block['ranking']['words']}"


def _counts(
    people: pd.DataFrame, listed: pd.DataFrame, reasons: pd.DataFrame, left: pd.DataFrame
) -> dict:
    def tally(column: str) -> dict[str, int]:
        return {str(k): int(v) for k, v in listed[column].value_counts().sort_index().items()}

    return {
        "scored": len(people),
        "listed": len(listed),
        "explained": int(reasons["patient_id"].nunique()),
        "by_tier": tally("tier"),
        "new": int((listed["week_status"] == "new").sum()),
        "stayed": int((listed["week_status"] == "stayed").sum()),
        "left": len(left),
        "by_locality": tally("locality"),
        "by_cluster": tally("gp_cluster"),
        "by_pathway": tally("pathway"),
    }


def _write_week(
    store: WeekStore,
    as_of: date,
    people: pd.DataFrame,
    reasons: pd.DataFrame,
    listed: pd.DataFrame,
    left: pd.DataFrame,
    manifest: dict,
    monitoring: Monitoring,
    offers: Offers,
) -> tuple[Path, dict]:
    """Write every file of the week through the store (staging, then one rename); ``listed``
    is who the teams' files show (the list and anyone offered help).

    Returns the folder and the manifest as written (with every file's digest)."""
    with store.writing(as_of) as staging:
        if offers.manifest["lottery"]["on"]:
            write_frame(offers.draws, staging / LOTTERY_FILE)
            events = draw_events(offers.draws)
            table = pa.Table.from_pandas(events, schema=EVENTS.schema, preserve_index=False)
            pq.write_table(table, staging / LOTTERY_EVENTS_FILE)
        stamp = datetime(as_of.year, as_of.month, as_of.day)
        people.drop(columns="reason_concepts").reset_index().to_parquet(
            staging / PEOPLE_FILE, index=False
        )
        reasons.to_parquet(staging / REASONS_FILE, index=False)
        write_frame(_left_table(left), staging / LEFT_FILE)
        (staging / BOROUGH_REPORT).write_text(
            _report("the borough", listed, left, manifest, readable(listed), monitoring)
        )
        lists: dict[str, dict[str, str]] = {}
        for scope, column, sheets_by in (
            ("locality", "locality", "gp_cluster"),
            ("cluster", "gp_cluster", None),
        ):
            stems = scope_stems(scope, listed[column].dropna().unique())
            for name, group in listed.groupby(column, sort=True):
                gone = left[left[column] == name]
                stem = stems[name]
                title = f"{scope} {name}"
                _write_scope(
                    staging, stem, title, group, gone, manifest, sheets_by, stamp, monitoring
                )
                lists[stem] = {"scope": scope, "name": str(name)}
        manifest = manifest | {"lists": lists, "files": file_digests(staging)}
        (staging / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return store.folder(as_of), manifest
