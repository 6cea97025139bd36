"""Generate a synthetic borough: contract tables, plus the ground truth that no model sees.

One random stream drives the borough; each ground-truth date has its own stream derived from
the seed and the date, so asking for more truth dates never changes the data. The pseudonyms
have their own stream too: they depend only on the seed and the number of people, never on
what happens in the simulation.

The risk list is the generator's noisy oracle unless the caller passes ``decisions`` (a
``ListDecision`` per run date): the month loop then runs exactly those lists, and as nothing
before a month looks ahead, the borough up to a run date does not depend on the decisions of
that date or later (a deterministic prefix: decide a list, generate, decide the next).

``truth/truth.parquet`` has, per person alive and registered and truth date: ``p_admission``
(the probability of an emergency admission within the horizon, with the hazard ratios known
on that date, the list's actions of that date's run included), ``p_admission_or_death``,
``p_admission_se`` and ``p_admission_untreated`` (the same on the same drift paths, without
any list-triggered action; the locality model kept), and ``p_avoidable_admission`` with
``p_avoidable_admission_untreated`` (a potentially avoidable admission in the horizon, the
label of ``admissions = "avoidable"``).
"""

from __future__ import annotations

import calendar
import json
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from riskstrat.common.months import DAYS_PER_YEAR, day_number
from riskstrat.common.progress import QUIET, Progress
from riskstrat.contract.record import write_record
from riskstrat.contract.schema import EVENTS, PATIENTS, PRACTICES, EventKind
from riskstrat.sources.synthetic import emit
from riskstrat.sources.synthetic.causes import CODES as CAUSE_CODES
from riskstrat.sources.synthetic.causes import draw_causes
from riskstrat.sources.synthetic.conditions import CONDITIONS, DRUG_CLASSES
from riskstrat.sources.synthetic.config import SynthConfig
from riskstrat.sources.synthetic.dynamics import (
    FRAILTY_CODED_ABOVE,
    N_CONDITIONS,
    State,
    admission_log_hazard,
    advance,
    care_needs,
    death_log_hazard,
    initial_state,
    monthly_leaving_rate,
    take,
)
from riskstrat.sources.synthetic.eventlog import (
    BLOCK_PEOPLE,
    NO_DAY,
    ROW_GROUP,
    EventLog,
    KindCounts,
)
from riskstrat.sources.synthetic.interventions import ListDecision, Programme
from riskstrat.sources.synthetic.month import MonthStart
from riskstrat.sources.synthetic.population import (
    ETHNICITY_SHARES,
    People,
    birth_days,
    make_people,
    make_practices,
)
from riskstrat.sources.synthetic.truth import HazardRatios, exact_risk, month_fractions

TRUTH_DIR = "truth"
MANIFEST = "synth_manifest.json"
EFFECTS = "effects"  # truth/effects.parquet: the interventions' true effects, month by month
LIST_ACTIONS = "list_actions"  # truth/list_actions.parquet: each run's band and its effects
EVENTS_FILE = EVENTS.file_name


@dataclass(frozen=True, slots=True)
class Borough:
    practices: pa.Table
    patients: pa.Table
    events: pa.Table
    truth: pd.DataFrame  # one row per (person alive and registered, truth date)
    summary: dict
    effects: pd.DataFrame = field(default_factory=pd.DataFrame)  # truth/effects.parquet
    list_actions: pd.DataFrame = field(default_factory=pd.DataFrame)  # truth/list_actions


@dataclass(frozen=True, slots=True)
class Streams:
    """Random streams besides the borough's own, each derived from the seed and a constant,
    so that what they drive can be added, switched off or changed without moving a single
    draw of the main stream (the borough stays the same)."""

    diagnoses: np.random.Generator
    pseudonyms: np.random.Generator

    @classmethod
    def for_seed(cls, seed: int) -> Streams:
        def stream(constant: int) -> np.random.Generator:
            return np.random.default_rng(np.random.SeedSequence([seed, constant]))

        return cls(diagnoses=stream(0xD1A6), pseudonyms=stream(0x1D5))


def _years_before(rng: np.random.Generator, day: int, low: float, high: np.ndarray) -> np.ndarray:
    years = low + rng.random(len(high)) * np.maximum(high - low, 0.0)
    return (day - np.rint(years * DAYS_PER_YEAR)).astype(np.int32)


def _history(
    state: State,
    people: People,
    constants: emit.Constants,
    start_day: int,
    rng: np.random.Generator,
    log: EventLog,
) -> emit.Records:
    """Records made before the start: problem lists, care arrangements, social circumstances."""
    n = people.size
    records = emit.Records(
        diagnosis_due=np.full((n, N_CONDITIONS), -1, np.int16),
        on_drug=np.zeros((n, len(DRUG_CLASSES)), bool),
        frailty_coded=np.zeros(n, bool),
        package_start=np.full(n, -1, np.int32),
        package_hours=np.zeros(n),
    )
    person, condition = np.nonzero(state.has & (rng.random(state.has.shape) < 0.85))
    codes = np.array([log.code(c.code) for c in CONDITIONS], np.int16)
    log.add(
        EventKind.LTC_DIAGNOSIS,
        person,
        _years_before(rng, start_day, 0.3, np.minimum(15.0, state.age[person])),
        code=codes[condition],
    )
    emit.start_drugs(records, person, condition, rng)

    frail = np.flatnonzero((state.log_frailty > FRAILTY_CODED_ABOVE) & (rng.random(n) < 0.5))
    records.frailty_coded[frail] = True
    log.add(
        EventKind.LTC_DIAGNOSIS,
        frail,
        _years_before(rng, start_day, 0.1, np.full(len(frail), 3.0)),
        code="frailty",
    )
    alone = np.flatnonzero(state.lives_alone & (rng.random(n) < 0.3))
    log.add(
        EventKind.SOCIAL_CIRCUMSTANCE,
        alone,
        _years_before(rng, start_day, 0.1, np.full(len(alone), 5.0)),
        code="lives_alone",
    )
    homes = np.flatnonzero(state.care_home)
    log.add(
        EventKind.CARE_HOME_ADMISSION,
        homes,
        _years_before(rng, start_day, 0.1, np.full(len(homes), 4.0)),
        code="permanent",
        cost=emit.CARE_HOME_WEEKLY_COST,
    )
    packages = np.flatnonzero(state.package)
    records.package_start[packages] = _years_before(
        rng, start_day, 0.1, np.full(len(packages), 3.0)
    )
    needs = care_needs(state, people)[packages]
    records.package_hours[packages] = np.clip(
        np.rint(6 + 8 * (needs - constants.package_threshold)), 2, 40
    )
    return records


@dataclass
class _Register:
    """Who is alive and on the practice lists, and the dates the patients table records."""

    alive: np.ndarray
    registered: np.ndarray
    ever: np.ndarray
    start: np.ndarray
    end: np.ndarray
    death: np.ndarray

    @classmethod
    def at_start(cls, people: People, start_day: int, rng: np.random.Generator) -> _Register:
        n = people.size
        registered = people.joins == 0
        return cls(
            alive=np.ones(n, bool),
            registered=registered,
            ever=registered.copy(),
            start=_years_before(rng, start_day, 0.0, np.minimum(people.age0, 30.0)),
            end=np.full(n, NO_DAY, np.int32),
            death=np.full(n, NO_DAY, np.int32),
        )

    def join(
        self, people: People, month: int, first_day: int, days: int, rng: np.random.Generator
    ) -> None:
        joining = self.alive & (people.joins == month) & (month > 0)
        self.start[joining] = first_day + rng.integers(0, days, joining.sum())
        self.registered |= joining
        self.ever |= joining

    def present(self) -> np.ndarray:
        return np.flatnonzero(self.registered & self.alive)

    def on_day(self, day: int) -> np.ndarray:
        """Registered and alive on ``day`` as the patients table will say (a death on the
        day still counts, as in the feature cohort)."""
        return (
            self.ever
            & (self.start <= day)
            & ((self.end == NO_DAY) | (self.end >= day))
            & ((self.death == NO_DAY) | (self.death >= day))
        )

    def exit_day(self) -> np.ndarray:
        """Day of death or of leaving the list, whichever came first (``NO_DAY``: neither)."""
        death = np.where(self.death == NO_DAY, np.iinfo(np.int32).max, self.death)
        end = np.where(self.end == NO_DAY, np.iinfo(np.int32).max, self.end)
        first = np.minimum(death, end)
        return np.where(first == np.iinfo(np.int32).max, NO_DAY, first).astype(np.int32)

    def die(
        self, dies: np.ndarray, death_time: np.ndarray, first_day: int, days: int
    ) -> np.ndarray:
        """Record deaths of registered people; return their indices."""
        recorded = np.flatnonzero(dies & self.registered)
        self.death[recorded] = first_day + np.floor(death_time[recorded] * days).astype(np.int32)
        self.alive &= ~dies
        return recorded

    def leave(self, leaves: np.ndarray, last_day: int) -> None:
        leaving = self.registered & self.alive & leaves
        self.end[leaving] = last_day
        self.registered &= ~leaving


def _draw_admissions(
    state: State,
    people: People,
    alive: np.ndarray,
    calendar_month: int,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Death times (in months), this month's emergency admissions (person, time) before death
    at the hazard without interventions, and that hazard (per month)."""
    death_time = np.where(alive, rng.exponential(1.0 / np.exp(death_log_hazard(state))), 0.0)
    rate = np.exp(admission_log_hazard(state, people, calendar_month))
    counts = np.where(alive, rng.poisson(rate), 0)
    who = np.repeat(np.arange(len(alive)), counts)
    u = rng.random(len(who))
    before_death = u < death_time[who]
    return death_time, who[before_death], u[before_death], rate


@dataclass
class _Run:
    """What the month loop leaves behind, besides its events."""

    began: float
    start_day: int
    people: People
    practices: pd.DataFrame
    ids: np.ndarray
    register: _Register
    programme: Programme
    truth: pd.DataFrame  # by person number; ``_keyed`` swaps it for the pseudonym
    admissions: tuple[np.ndarray, np.ndarray]  # person and day of every emergency admission


def generate(
    config: SynthConfig,
    progress: Progress | None = None,
    decisions: Mapping[date, ListDecision] | None = None,
) -> Borough:
    """Simulate the borough month by month, in memory; see the module docstring for the
    streams.

    ``decisions`` (even empty) replaces the oracle's risk lists: lists run on exactly its
    dates (each the first of a simulated month), each scoring the decided people, who must
    be registered and alive then; it needs the list actions enabled."""
    log = EventLog()
    run = _simulate(config, progress or QUIET, decisions, log)
    patients = _patients_table(run)
    events, counts = log.to_arrow(
        run.ids, keep=run.register.ever, last_day=day_number(config.end), first_day=_first(config)
    )
    summary = _finished_summary(config, run, patients, counts, decisions)
    return Borough(
        _practices_table(run),
        patients,
        events,
        _keyed(run),
        summary,
        effects=run.programme.effects(),
        list_actions=run.programme.list_actions(run.ids),
    )


def generate_to(
    config: SynthConfig,
    out: Path,
    progress: Progress | None = None,
    decisions: Mapping[date, ListDecision] | None = None,
    block_people: int = BLOCK_PEOPLE,
) -> dict:
    """``write(generate(...), out)`` in bounded memory: each month's events go to disk
    (blocks of ``block_people`` people, under ``out``, deleted at the end), and the events
    table is written a block at a time. The files hold the same rows in the same order as
    ``write``'s; returns the summary (the manifest)."""
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".events-", dir=out) as spill:
        log = EventLog.spilling(Path(spill), block_people)
        run = _simulate(config, progress or QUIET, decisions, log)
        patients = _patients_table(run)
        (progress or QUIET)(f"writing the events ({len(log):,} made), a block of people at a time")
        counts = log.write_parquet(
            out / EVENTS_FILE,
            run.ids,
            keep=run.register.ever,
            last_day=day_number(config.end),
            first_day=_first(config),
        )
    summary = _finished_summary(config, run, patients, counts, decisions)
    truth = _truth_files(_keyed(run), run.programme.effects(), run.programme.list_actions(run.ids))
    _write_beside_events(out, _practices_table(run), patients, truth, summary)
    return summary


def _first(config: SynthConfig) -> int:
    """The first day the summary's rates count events from."""
    return day_number(config.start)


def _finished_summary(
    config: SynthConfig,
    run: _Run,
    patients: pa.Table,
    counts: KindCounts,
    decisions: Mapping[date, ListDecision] | None,
) -> dict:
    summary = _summary(config, patients, counts, run.truth, *run.admissions, run.register.end)
    summary["list_decisions"] = (
        None if decisions is None else sorted(day.isoformat() for day in decisions)
    )
    summary["seconds"] = round(time.perf_counter() - run.began, 1)
    return summary


def _keyed(run: _Run) -> pd.DataFrame:
    """The truth keyed by pseudonym instead of person number."""
    truth = run.truth.copy()
    if not truth.empty:
        truth.insert(0, "patient_id", run.ids[truth.pop("person").to_numpy()])
    return truth


def _practices_table(run: _Run) -> pa.Table:
    return pa.Table.from_pandas(run.practices, schema=PRACTICES.schema, preserve_index=False)


def _simulate(
    config: SynthConfig,
    say: Progress,
    decisions: Mapping[date, ListDecision] | None,
    log: EventLog,
) -> _Run:
    """The month loop: every event goes to ``log`` (settled at the end of each month)."""
    began = time.perf_counter()
    rng = np.random.default_rng(np.random.SeedSequence(config.seed))
    practices, share, deprivation = make_practices(rng)
    months = config.months
    n_joiners = round(config.patients * (config.yearly_leaving_rate + 0.01) * months / 12)
    people = make_people(rng, config.patients, n_joiners, months, share, deprivation)
    state, constants = initial_state(people, rng)
    n, start_day = people.size, day_number(config.start)
    records = _history(state, people, constants, start_day, rng, log)

    register = _Register.at_start(people, start_day, rng)
    streams = Streams.for_seed(config.seed)
    ids = _pseudonyms(streams.pseudonyms, n)
    programme = Programme(config, people, practices["gp_cluster"].to_numpy(), ids, decisions)
    cause_codes = np.array([log.code(code) for code in CAUSE_CODES], np.int16)
    admissions: list[tuple[np.ndarray, np.ndarray]] = []
    truth_frames: list[pd.DataFrame] = []
    truth_dates = set(config.truth_as_of)
    year, month_of_year = config.start.year, config.start.month
    for m in range(months):
        first = date(year, month_of_year, 1)
        first_day, days = day_number(first), calendar.monthrange(year, month_of_year)[1]
        register.join(people, m, first_day, days, rng)
        present = register.present()
        start = MonthStart(m, first, present, register.on_day(first_day), state, log, records)
        programme.start_month(start)
        if first in truth_dates:
            say(f"ground truth as of {first} for {len(present):,} people")
            steps = len(month_fractions(first, config.horizon_days))
            ratios = programme.known_ratios(m, steps, present)
            truth_frames.append(
                _truth_frame(config, state, people, constants, first, present, ratios)
            )

        death_time, who, u, rate = _draw_admissions(
            state, people, register.alive, month_of_year, rng
        )
        kept = programme.keep_admissions(m, who)
        who, u = who[kept], u[kept]
        month = emit.Month(m, first_day, days, present, death_time, rng, log)
        seen = register.registered[who]
        admitted = who[seen]
        causes = draw_causes(
            take(state, admitted),
            people.take(admitted),
            streams.diagnoses,
            programme.avoidable_ratio(m, admitted),
        )
        emit.emergency_care(
            month,
            state,
            people,
            emit.Admissions(
                admitted, u[seen], cause_codes[causes], programme.stay_multiplier(m, admitted)
            ),
        )
        programme.record_month(start, rate, death_time)
        programme.admitted(m, admitted)
        admissions.append((admitted, month.day(u[seen])))
        for record in (
            emit.primary_care,
            emit.planned_care,
            emit.community_and_mental_health,
            emit.coordination_and_prescribing,
        ):
            record(month, state, people)
        emit.prescriptions(month, state, records)
        emit.diagnoses(month, state, records)
        died = register.die(register.alive & (death_time < 1.0), death_time, first_day, days)
        with_package = died[records.package_start[died] >= 0]
        emit.close_packages(log, records, with_package, register.death[with_package])

        per_person = np.bincount(who, minlength=n).astype(float)
        before = state
        state, changes = advance(
            state, people, constants, per_person, rng, programme.care_home_ratio(m)
        )
        after = emit.Month(
            m, first_day, days, register.present(), np.where(register.alive, 1.0, 0.0), rng, log
        )
        emit.transitions(
            after, state, people, constants, changes, records, programme.package_ratio(m)
        )
        programme.locality.record_care_homes(
            m, first, before, state, constants, after.present, present, death_time
        )
        register.leave(
            rng.random(n) < monthly_leaving_rate(config.yearly_leaving_rate, state.age),
            first_day + days - 1,
        )
        log.settle()
        say.advance("simulating months", m + 1, months, f"{first:%Y-%m}, {len(log):,} events")
        year, month_of_year = (year + 1, 1) if month_of_year == 12 else (year, month_of_year + 1)

    still_open = np.flatnonzero(records.package_start >= 0)
    emit.close_packages(log, records, still_open, None)
    programme.finish(log, register.exit_day(), day_number(config.end), constants)
    return _Run(
        began=began,
        start_day=start_day,
        people=people,
        practices=practices,
        ids=ids,
        register=register,
        programme=programme,
        truth=pd.concat(truth_frames, ignore_index=True) if truth_frames else pd.DataFrame(),
        admissions=(
            np.concatenate([a[0] for a in admissions]),
            np.concatenate([a[1] for a in admissions]),
        ),
    )


def _truth_frame(
    config: SynthConfig,
    state: State,
    people: People,
    constants: emit.Constants,
    as_of: date,
    present: np.ndarray,
    ratios: HazardRatios | None,
) -> pd.DataFrame:
    rng = np.random.default_rng(np.random.SeedSequence([config.seed, as_of.toordinal()]))
    subset = people.take(present)
    truth = exact_risk(
        take(state, present),
        subset,
        constants,
        as_of,
        config.horizon_days,
        config.truth_paths,
        rng,
        ratios=ratios,
    )
    return pd.DataFrame(
        {
            "person": present,
            "as_of": pd.Timestamp(as_of),
            "horizon_days": config.horizon_days,
            "p_admission": truth.p_admission,
            "p_admission_or_death": truth.p_admission_or_death,
            "p_admission_se": truth.p_admission_se,
            "p_admission_untreated": truth.p_admission_untreated,
            "p_avoidable_admission": truth.p_avoidable_admission,
            "p_avoidable_admission_untreated": truth.p_avoidable_admission_untreated,
        }
    )


def _pseudonyms(rng: np.random.Generator, n: int) -> np.ndarray:
    """Random 16-hex-digit identifiers, unique, deterministic by seed."""
    while True:
        raw = rng.integers(0, 2**63, n, dtype=np.int64)
        if len(np.unique(raw)) == n:
            return np.array([f"{v:016x}" for v in raw], dtype=object)


def _patients_table(run: _Run) -> pa.Table:
    """Everyone ever registered, with birth month, place and their registration dates."""
    people, practices, ids, register = run.people, run.practices, run.ids, run.register
    idx = np.flatnonzero(register.ever)
    birth_day = birth_days(people.take(idx), run.start_day)

    def dates(days: np.ndarray) -> pa.Array:
        return pa.array(days[idx], pa.int32(), mask=days[idx] == NO_DAY).cast(pa.date32())

    columns = {
        "patient_id": pa.array(ids[idx], pa.string()),
        "birth_month": pa.array(birth_day, pa.int32()).cast(pa.date32()),
        "sex": pa.array(np.where(people.female[idx], "F", "M"), pa.string()),
        "practice_id": pa.array(
            practices["practice_id"].to_numpy()[people.practice[idx]], pa.string()
        ),
        "deprivation_decile": pa.array(people.deprivation[idx], pa.int8()),
        "ethnicity_group": pa.array(
            np.array(list(ETHNICITY_SHARES))[people.ethnicity[idx]], pa.string()
        ),
        "registration_start": dates(register.start),
        "registration_end": dates(register.end),
        "death_date": dates(register.death),
    }
    return pa.table(columns, schema=PATIENTS.schema)


def _summary(
    config: SynthConfig,
    patients: pa.Table,
    counts: KindCounts,
    truth: pd.DataFrame,
    adm_person: np.ndarray,
    adm_day: np.ndarray,
    reg_end: np.ndarray,
) -> dict:
    """Counts, yearly rates per registered person, and the oracle's AUROC per truth date."""
    from sklearn.metrics import roc_auc_score

    pats = patients.to_pandas(date_as_object=False)
    window_start, window_end = pd.Timestamp(config.start), pd.Timestamp(config.end)
    begins = pats["registration_start"].clip(lower=window_start)
    ends = (
        pats[["registration_end", "death_date"]]
        .min(axis=1)
        .fillna(window_end)
        .clip(upper=window_end)
    )
    person_years = float(((ends - begins).dt.days.clip(lower=0)).sum() / DAYS_PER_YEAR)
    summary: dict = {
        "config": _plain(asdict(config)),
        "people_registered_at_start": int(config.patients),
        "people_ever_registered": patients.num_rows,
        "events": counts.events,
        "person_years": round(person_years),
        "yearly_rate_per_person": {
            k: round(v / person_years, 4) for k, v in counts.by_kind().items()
        },
        "yearly_death_rate": round(int(pats["death_date"].notna().sum()) / person_years, 4),
        "truth": [],
    }
    for as_of, frame in truth.groupby("as_of", sort=True) if not truth.empty else ():
        summary["truth"].append(
            _truth_summary(
                frame, as_of, config.horizon_days, adm_person, adm_day, reg_end, roc_auc_score
            )
        )
    return summary


def _plain(value: object) -> object:
    """The configuration as JSON-ready values (dates as ISO text)."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value.isoformat() if isinstance(value, date) else value


def _truth_summary(
    frame: pd.DataFrame,
    as_of: pd.Timestamp,
    horizon_days: int,
    adm_person: np.ndarray,
    adm_day: np.ndarray,
    reg_end: np.ndarray,
    auroc: Callable,
) -> dict:
    first, last = day_number(as_of.date()), day_number(as_of.date()) + horizon_days
    in_horizon = (adm_day >= first) & (adm_day < last)
    first_admission = np.full(len(reg_end), np.iinfo(np.int32).max)
    np.minimum.at(first_admission, adm_person[in_horizon], adm_day[in_horizon])
    person = frame["person"].to_numpy()
    admitted = first_admission[person] < last
    left = (reg_end[person] != NO_DAY) & (reg_end[person] < last - 1)
    censored = left
    observed = ~censored
    p = frame["p_admission"].to_numpy()
    deciles = pd.qcut(p[observed], 10, labels=False, duplicates="drop")
    by_decile = pd.DataFrame({"expected": p[observed], "observed": admitted[observed]}).groupby(
        deciles
    )
    gap = (by_decile["observed"].mean() - by_decile["expected"].mean()).abs().max()
    return {
        "as_of": as_of.date().isoformat(),
        "cohort": len(frame),
        "censored_left_area": int(censored.sum()),
        "observed_prevalence": round(float(admitted[observed].mean()), 4),
        "mean_true_probability": round(float(p.mean()), 4),
        "oracle_auroc": round(float(auroc(admitted[observed], p[observed])), 4),
        "mean_monte_carlo_se": round(float(frame["p_admission_se"].mean()), 5),
        "oracle_max_decile_gap": round(float(gap), 4),
    }


def write(borough: Borough, out: Path) -> None:
    """Write the contract tables, the truth (keyed by pseudonym), a manifest and the tables'
    record (``tables.json``, which readers check) to ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    pq.write_table(borough.events, out / EVENTS_FILE, row_group_size=ROW_GROUP)
    truth = _truth_files(borough.truth, borough.effects, borough.list_actions)
    _write_beside_events(out, borough.practices, borough.patients, truth, borough.summary)


def _truth_files(
    truth: pd.DataFrame, effects: pd.DataFrame, list_actions: pd.DataFrame
) -> dict[str, pd.DataFrame]:
    """The frames of ``truth/``, by file name (without ``.parquet``)."""
    return {"truth": truth, EFFECTS: effects, LIST_ACTIONS: list_actions}


def _write_beside_events(
    out: Path,
    practices: pa.Table,
    patients: pa.Table,
    truth: dict[str, pd.DataFrame],
    summary: dict,
) -> None:
    """Everything ``write`` writes but the events, which must be there already (the record
    describes them)."""
    pq.write_table(practices, out / PRACTICES.file_name)
    pq.write_table(patients, out / PATIENTS.file_name)
    (out / TRUTH_DIR).mkdir(exist_ok=True)
    for name, frame in truth.items():
        if not frame.empty:
            pq.write_table(
                pa.Table.from_pandas(frame, preserve_index=False),
                out / TRUTH_DIR / f"{name}.parquet",
            )
    (out / MANIFEST).write_text(json.dumps(summary, indent=2))
    write_record(out)
