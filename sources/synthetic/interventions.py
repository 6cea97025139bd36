"""Interventions with known effects: the integrated locality model and list-triggered actions.

``Programme`` runs beside the month loop. It decides the caseload at the baseline from the
event log exactly as the features see it (age from the birth month, frailty coded before the
baseline, emergency admissions in the 365 days before), starts case management cluster by
cluster, runs the risk list, and thins emergency admissions by each person's hazard ratio.
Its randomness comes from its own streams, so switching it off leaves the borough as it was,
and with every effect set to none the borough is the same with the intervention events added.

The locality model's truth is its total effect on each cohort (``effects``: both arms
simulated from the go-live). Along the path that happened the generator also records, each
month from the realised state, the expected value of each outcome with and without the
intervention (hazard x exposure, the closed-form expected length of stay, transition
probabilities): the direct effect only, kept for comparison. Never re-estimated.

The risk list is the generator's own noisy oracle, run on a schedule, unless the caller
decides the lists (``ListDecision`` per run date): then the lists run on exactly those dates,
the decided people are the band, and the same capacity draws pick who gets an action. The
oracle's truth on an as-of date (``known_ratios``) also says what the hazard ratios would be
without the list's actions, for ``p_admission_untreated``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime

import numpy as np
import pandas as pd
from scipy.special import ndtr

from riskstrat.common.months import DAYS_PER_YEAR, EPOCH, day_number, from_day_number, month_start
from riskstrat.contract.schema import EventKind
from riskstrat.sources.synthetic import effects, emit
from riskstrat.sources.synthetic.causes import avoidable_share
from riskstrat.sources.synthetic.config import SynthConfig
from riskstrat.sources.synthetic.dynamics import (
    CARE_HOME_MONTHLY_CHANCE,
    Constants,
    State,
    admission_log_hazard,
    care_needs,
    death_log_hazard,
    take,
)
from riskstrat.sources.synthetic.eventlog import NO_DAY, EventLog
from riskstrat.sources.synthetic.population import People, birth_days
from riskstrat.sources.synthetic.truth import HazardRatios

LOCALITY_MODEL = "integrated_locality_model"
RISK_LIST = "risk_list"
NEVER = np.iinfo(np.int32).max
OUTCOMES = effects.OUTCOMES
ACTIONS: tuple[str, ...] = ("none", "reablement_plan", "social_prescribing")
_STAY_DAYS = np.arange(1, emit.MAX_STAY + 1, dtype=float)


def expected_stay(log_mean: np.ndarray, multiplier: float) -> np.ndarray:
    """E[min(floor(multiplier * L), MAX_STAY)] for L lognormal(log_mean, STAY_LOG_SD):
    the sum over k of P(multiplier * L >= k)."""
    z = (np.log(_STAY_DAYS / multiplier)[None, :] - log_mean[:, None]) / emit.STAY_LOG_SD
    return ndtr(-z).sum(axis=1)


@dataclass(frozen=True, slots=True)
class ListDecision:
    """A risk list decided outside the generator for one run date: everyone it scored (the
    saved band, keyed by ``patient_id`` as in ``patients.parquet``), their ``score`` (a
    probability) and whether they are ``listed``. The arrays are copied and made read-only."""

    patient_id: np.ndarray
    score: np.ndarray
    listed: np.ndarray

    def __post_init__(self) -> None:
        ids, score, listed = (
            np.array(self.patient_id, dtype=object),
            np.array(self.score),
            np.array(self.listed),
        )
        for name, values in (("patient_id", ids), ("score", score), ("listed", listed)):
            if values.ndim != 1:
                raise ValueError(f"ListDecision.{name} must be one-dimensional")
        if not len(ids) == len(score) == len(listed):
            raise ValueError(
                f"ListDecision: patient_id, score and listed must have equal lengths, got "
                f"{len(ids)}, {len(score)} and {len(listed)}"
            )
        if listed.dtype != bool:
            raise ValueError(f"ListDecision.listed must be boolean, got {listed.dtype}")
        if not np.issubdtype(score.dtype, np.number) or np.issubdtype(
            score.dtype, np.complexfloating
        ):
            raise ValueError(f"ListDecision.score must be numbers, got {score.dtype}")
        score = score.astype(float)
        bad = ~(np.isfinite(score) & (score >= 0.0) & (score <= 1.0))
        if bad.any():
            raise ValueError(
                f"ListDecision.score must be finite and in [0, 1]: {bad.sum()} are not, e.g. "
                f"{score[bad][0]} for {str(ids[bad][0])!r}"
            )
        unique, counts = np.unique(ids.astype(str), return_counts=True)
        if len(unique) < len(ids):
            raise ValueError(
                f"ListDecision.patient_id must be unique: {np.sum(counts > 1)} ids repeat, "
                f"e.g. {str(unique[counts > 1][0])!r}"
            )
        for name, values in (("patient_id", ids), ("score", score), ("listed", listed)):
            values.flags.writeable = False
            object.__setattr__(self, name, values)


@dataclass(frozen=True, slots=True)
class _Band:
    """The people a list run scores and keeps (indices, in order), their scores and who is
    listed."""

    person: np.ndarray
    score: np.ndarray
    listed: np.ndarray


def _decided_bands(
    decisions: Mapping[date, ListDecision], ids: np.ndarray, config: SynthConfig
) -> dict[date, _Band]:
    """Each decision's band by person index; a date that is not a simulated first of a month
    or an id the borough does not have is refused, naming the date."""
    index = pd.Index(ids)
    bands = {}
    for day, decision in decisions.items():
        if isinstance(day, datetime) or not isinstance(day, date):
            raise ValueError(f"list decision dates must be datetime.date values, got {day!r}")
        if day.day != 1 or not config.start <= day <= config.end:
            raise ValueError(
                f"list decision for {day}: the date must be the first of a month from "
                f"{config.start} to {config.end}"
            )
        person = index.get_indexer(decision.patient_id)
        unknown = person < 0
        if unknown.any():
            raise ValueError(
                f"list decision for {day}: {unknown.sum()} unknown patient id(s), e.g. "
                f"{str(decision.patient_id[unknown][0])!r}"
            )
        order = np.argsort(person, kind="stable")
        bands[day] = _Band(person[order], decision.score[order], decision.listed[order])
    return bands


@dataclass
class _Run:
    """One list run's saved band and its follow-up sums."""

    month: int
    day: int
    person: np.ndarray
    score: np.ndarray
    listed: np.ndarray
    action: np.ndarray  # index into ACTIONS
    ratio: np.ndarray  # this run's action's hazard ratio (1 for none)
    person_months: np.ndarray = field(init=False)
    with_action: np.ndarray = field(init=False)
    without_action: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        self.person_months = np.zeros(len(self.person))
        self.with_action = np.zeros(len(self.person))
        self.without_action = np.zeros(len(self.person))


class Programme:
    """The interventions' state through the simulation, their events and their truth."""

    def __init__(
        self,
        config: SynthConfig,
        people: People,
        cluster_of_practice: np.ndarray,
        ids: np.ndarray,
        decisions: Mapping[date, ListDecision] | None = None,
    ):
        """``ids``: everyone's pseudonym; ``decisions``: lists decided by the caller, which
        replace the oracle's scheduled runs (None: the oracle's)."""
        self.config, self.people, self.ids, n = config, people, ids, people.size
        self.model, self.lists = (
            config.interventions.locality_model,
            config.interventions.list_actions,
        )
        seed = config.seed
        self.ilm_rng = np.random.default_rng(np.random.SeedSequence([seed, 0x11A]))
        self.list_rng = np.random.default_rng(np.random.SeedSequence([seed, 0x1157]))
        self.effect_rng = np.random.default_rng(np.random.SeedSequence([seed, 0xEFFEC7]))
        self.cohorts: list[effects.Cohort] = []
        self.total_rows: list[tuple] = []
        self.cluster = np.asarray(cluster_of_practice)[people.practice]
        self.eligible = np.zeros(n, bool)
        self.frail = np.zeros(n, bool)
        self.managed_from = np.full(n, NEVER, np.int64)  # month index of the person's go-live
        self.go_live_of = np.full(n, NEVER, np.int64)  # their cluster's go-live (month index)
        if self.model.enabled:
            for cluster, go_live in self.model.go_live.items():
                month = config.month_index(go_live)
                if month < config.months:
                    self.go_live_of[self.cluster == cluster] = month
        self.baseline_month = config.month_index(self.model.baseline)
        self.action_until = np.zeros(n, np.int64)  # first month the list action no longer runs
        self.action_ratio = np.ones(n)
        self.person_noise = self.list_rng.normal(0.0, self.lists.person_noise_sd, n)
        self.runs: list[_Run] = []
        self.effect_rows: list[tuple] = []
        self.case_start = np.full(n, NO_DAY, np.int32)
        self.actions: list[tuple[EventKind, np.ndarray, int, int]] = []
        self.start_day = day_number(config.start)
        if decisions is not None and not self.lists.enabled:
            raise ValueError("list decisions were given but list_actions is not enabled")
        self.decided = None if decisions is None else _decided_bands(decisions, ids, config)

    # ---- what multiplies what, this month ----------------------------------------------

    def managed(self, month: int) -> np.ndarray:
        return self.managed_from <= month

    def _ilm_ratio(self, month: int) -> np.ndarray:
        ratio = np.where(
            self.frail, self.model.admission_hr_frail, self.model.admission_hr_not_frail
        )
        return np.where(self.managed(month), ratio, 1.0)

    def _list_ratio(self, month: int) -> np.ndarray:
        return np.where(self.action_until > month, self.action_ratio, 1.0)

    def keep_admissions(self, month: int, who: np.ndarray) -> np.ndarray:
        """Which of the admissions drawn at the untreated hazard happen (Poisson thinning)."""
        if not (self.model.enabled or self.lists.enabled) or len(who) == 0:
            return np.ones(len(who), bool)
        ratio = (self._ilm_ratio(month) * self._list_ratio(month))[who]
        return self.ilm_rng.random(len(who)) < ratio

    def stay_multiplier(self, month: int, who: np.ndarray) -> np.ndarray | float:
        if not self.model.enabled:
            return 1.0
        return np.where(self.managed(month)[who], self.model.stay_multiplier, 1.0)

    def care_home_ratio(self, month: int) -> np.ndarray | float:
        if not self.model.enabled:
            return 1.0
        return np.where(self.managed(month), self.model.care_home_hr, 1.0)

    def package_ratio(self, month: int) -> np.ndarray | float:
        if not self.model.enabled:
            return 1.0
        return np.where(self.managed(month), self.model.package_cost_multiplier, 1.0)

    # ---- the start of a month: caseload, go-live, list run ------------------------------

    def start_month(
        self,
        month: int,
        first: date,
        present: np.ndarray,
        register_ok: np.ndarray,
        state: State,
        log: EventLog,
        records: emit.Records,
    ) -> None:
        """``register_ok``: registered on the first day as the patients table will say."""
        if self.model.enabled and month == self.baseline_month:
            self._decide_caseload(first, register_ok, log)
        if self.model.enabled and month >= self.baseline_month:
            self._go_live(month, first, present, state, log, records)
        if self.lists.enabled:
            band = self._band(first, present, register_ok, state)
            if band is not None:
                self._run_list(month, first, band, log)

    def _decide_caseload(self, baseline: date, register_ok: np.ndarray, log: EventLog) -> None:
        day = day_number(baseline)
        age = (day - birth_days(self.people, self.start_day)) / DAYS_PER_YEAR
        frail = np.zeros(self.people.size, bool)
        frail[log.persons(EventKind.LTC_DIAGNOSIS, -(2**31) + 1, day, code="frailty")] = True
        admissions = np.bincount(
            log.persons(EventKind.EMERGENCY_ADMISSION, day - 365, day), minlength=self.people.size
        )
        criteria = np.zeros(self.people.size, bool)
        if self.model.frailty_coded:
            criteria |= frail
        if self.model.prior_admissions is not None:
            criteria |= admissions >= self.model.prior_admissions
        self.eligible = register_ok & (age >= self.model.min_age) & criteria
        self.frail = self.eligible & frail

    def _go_live(
        self,
        month: int,
        first: date,
        present: np.ndarray,
        state: State,
        log: EventLog,
        records: emit.Records,
    ) -> None:
        starting = present[self.eligible[present] & (self.go_live_of[present] == month)]
        if len(starting) == 0:
            return
        self.managed_from[starting] = month
        self.case_start[starting] = day_number(first)
        self.cohorts.append(
            effects.Cohort(
                month=month,
                person=starting,
                state=take(state, starting),
                people=self.people.take(starting),
                admission_hr=self._ilm_ratio(month)[starting],
                hours=np.where(
                    records.package_start[starting] >= 0, records.package_hours[starting], 0.0
                ),
            )
        )
        multiplier = self.model.package_cost_multiplier
        running = starting[records.package_start[starting] >= 0]
        if multiplier != 1.0 and len(running):
            # The team reviews each running package: it ends and a smaller one starts.
            hours = records.package_hours[running] * multiplier
            emit.close_packages(log, records, running, np.full(len(running), day_number(first)))
            records.package_start[running], records.package_hours[running] = (
                day_number(first),
                hours,
            )

    def _is_run(self, first: date) -> bool:
        gap = self.config.month_index(first) - self.config.month_index(self.lists.first_run)
        return gap >= 0 and gap % self.lists.every_months == 0

    @staticmethod
    def twelve_month_probability(state: State, people: People, month_of_year: int) -> np.ndarray:
        """Probability of an emergency admission in 12 months with the state held as it is
        now (seasons and death as a competing event included), at the untreated hazard."""
        survival, p = np.ones(len(state.age)), np.zeros(len(state.age))
        death = np.exp(death_log_hazard(state))
        for step in range(12):
            calendar_month = (month_of_year - 1 + step) % 12 + 1
            admission = np.exp(admission_log_hazard(state, people, calendar_month))
            total = admission + death
            p += survival * admission / total * -np.expm1(-total)
            survival *= np.exp(-total)
        return p

    def _band(
        self, first: date, present: np.ndarray, register_ok: np.ndarray, state: State
    ) -> _Band | None:
        """This month's band: the caller's decision, else the oracle's on its schedule."""
        if self.decided is None:
            return self._oracle_band(first, present, state) if self._is_run(first) else None
        band = self.decided.get(first)
        if band is not None:
            absent = ~register_ok[band.person]
            if absent.any():
                raise ValueError(
                    f"list decision for {first}: {absent.sum()} patient id(s) not registered "
                    f"and alive on that date, e.g. {str(self.ids[band.person[absent][0]])!r}"
                )
        return band

    def _oracle_band(self, first: date, present: np.ndarray, state: State) -> _Band:
        """Every registered adult's noisy 12-month probability; the band keeps the high ones."""
        lists = self.lists
        adults = present[state.age[present] >= 18]
        p = np.clip(
            self.twelve_month_probability(
                take(state, adults), self.people.take(adults), first.month
            ),
            1e-9,
            1 - 1e-9,
        )
        logit = np.log(p / (1 - p)) + self.person_noise[adults]
        noise = self.list_rng.normal(0.0, lists.run_noise_sd, len(adults))
        score = 1 / (1 + np.exp(-(logit + noise)))
        band = score >= lists.cutoff * lists.band_fraction
        return _Band(adults[band], score[band], score[band] >= lists.cutoff)

    def _run_list(self, month: int, first: date, band: _Band, log: EventLog) -> None:
        """Score events for the band; listed people without an action running may get one."""
        lists, rng = self.lists, self.list_rng
        person, score, listed = band.person, band.score, band.listed
        free = listed & (self.action_until[person] <= month)
        takes = free & (rng.random(len(person)) < lists.capacity_share)
        reable = rng.random(len(person)) < lists.reablement_share
        action = np.where(takes, np.where(reable, 1, 2), 0)
        ratio = np.select(
            [action == 1, action == 2], [lists.reablement_hr, lists.social_prescribing_hr], 1.0
        )
        day = day_number(first)
        log.add(
            EventKind.RISK_LIST_SCORE,
            person,
            np.full(len(person), day),
            value=score,
            code=np.where(listed, log.code("listed"), log.code("not_listed")),
        )
        until = month + lists.action_months
        self.action_until[person[takes]] = until
        self.action_ratio[person[takes]] = ratio[takes]
        end = day_number(month_start(first, lists.action_months)) - 1
        self.actions.append((EventKind.REABLEMENT_PLAN, person[action == 1], day, end))
        self.actions.append((EventKind.SOCIAL_PRESCRIBING_REFERRAL, person[action == 2], day, end))
        self.runs.append(_Run(month, day, person, score, listed, action, ratio))

    # ---- the truth, month by month -----------------------------------------------------

    def record_month(
        self,
        month: int,
        first: date,
        state: State,
        rate: np.ndarray,
        death_time: np.ndarray,
        present: np.ndarray,
    ) -> None:
        """Expected outcomes this month, with and without, from the state at its start.

        ``rate`` is everyone's monthly admission hazard without any intervention."""
        exposure = np.zeros(self.people.size)
        exposure[present] = np.minimum(death_time[present], 1.0)
        list_ratio = self._list_ratio(month)
        ilm_ratio = self._ilm_ratio(month)
        realised = rate * ilm_ratio * list_ratio
        for run in self.runs:
            if run.month <= month < run.month + self.lists.follow_up_months:
                expected = realised[run.person] * exposure[run.person]
                run.person_months += exposure[run.person]
                run.with_action += expected
                run.without_action += expected / run.ratio
        if not self.model.enabled:
            return
        cohort = present[self.managed(month)[present]]
        if len(cohort) == 0:
            return
        sub, people = take(state, cohort), self.people.take(cohort)
        time = exposure[cohort]
        untreated = rate[cohort] * list_ratio[cohort] * time
        treated = untreated * ilm_ratio[cohort]
        log_mean = emit.stay_log_mean(sub, np.arange(len(cohort)))
        stay_untreated = expected_stay(log_mean, 1.0)
        stay_treated = expected_stay(log_mean, self.model.stay_multiplier)
        avoidable = avoidable_share(sub, people)
        discharged = emit.ae_discharged_yearly_rate(sub, people, np.arange(len(cohort))) / 12
        deaths = -np.expm1(-np.exp(death_log_hazard(sub)))
        values = {
            "emergency_admissions": (treated, untreated),
            "avoidable_admissions": (treated * avoidable, untreated * avoidable),
            "bed_days": (treated * stay_treated, untreated * stay_untreated),
            "ae_attendances": (
                discharged * time + emit.ADMITTED_VIA_AE * treated,
                discharged * time + emit.ADMITTED_VIA_AE * untreated,
            ),
            "care_home_resident_admissions": (treated * sub.care_home, untreated * sub.care_home),
            "deaths": (deaths, deaths),
        }
        self._add_rows(month, first, cohort, time, values)

    def record_care_homes(
        self,
        month: int,
        first: date,
        before: State,
        after: State,
        constants: Constants,
        present_after: np.ndarray,
        present_before: np.ndarray,
        death_time: np.ndarray,
    ) -> None:
        """Expected permanent care-home admissions this month, with and without."""
        if not self.model.enabled:
            return
        cohort = present_before[self.managed(month)[present_before]]
        if len(cohort) == 0:
            return
        still = np.zeros(self.people.size, bool)
        still[present_after] = True
        at_risk = (
            still[cohort]
            & ~before.care_home[cohort]
            & (
                care_needs(take(after, cohort), self.people.take(cohort))
                > constants.care_home_threshold
            )
        )
        untreated = CARE_HOME_MONTHLY_CHANCE * at_risk
        values = {"care_home_admissions": (untreated * self.model.care_home_hr, untreated)}
        self._add_rows(month, first, cohort, np.minimum(death_time[cohort], 1.0), values)

    def _add_rows(
        self,
        month: int,
        first: date,
        cohort: np.ndarray,
        time: np.ndarray,
        values: dict[str, tuple[np.ndarray, np.ndarray]],
    ) -> None:
        go_live = self.managed_from[cohort]
        for group in np.unique(go_live):
            mine = go_live == group
            cohort_date = month_start(self.config.start, int(group))
            for outcome, (treated, untreated) in values.items():
                self.effect_rows.append(
                    (
                        LOCALITY_MODEL,
                        cohort_date,
                        outcome,
                        first,
                        float(time[mine].sum()),
                        float(np.sum(treated[mine])),
                        float(np.sum(untreated[mine])),
                    )
                )

    # ---- the end: events and truth tables ----------------------------------------------

    def finish(
        self, log: EventLog, exit_day: np.ndarray, last_day: int, constants: Constants
    ) -> None:
        """Write the case-management and action events, ending at death or leaving; work
        out the truth that needs the whole run (package cost, the total effects)."""
        managed = np.flatnonzero(self.case_start != NO_DAY)
        end = exit_day[managed]
        log.add(
            EventKind.CASE_MANAGEMENT,
            managed,
            self.case_start[managed],
            end=np.where(end == NO_DAY, last_day + 1, end),
            code=LOCALITY_MODEL,
        )
        for kind, person, day, planned_end in self.actions:
            left = exit_day[person]
            stop = np.where(left == NO_DAY, planned_end, np.minimum(planned_end, left))
            if kind == EventKind.REABLEMENT_PLAN:
                log.add(kind, person, np.full(len(person), day), end=stop, code=RISK_LIST)
            else:
                log.add(kind, person, np.full(len(person), day), code=RISK_LIST)
        if self.model.enabled:
            self._package_rows(log, exit_day, last_day)
            self.total_rows = self._total_rows(constants, last_day)

    def _package_rows(self, log: EventLog, exit_day: np.ndarray, last_day: int) -> None:
        """Social-care package cost of the managed along the path, every package counted as
        the evaluation counts it (weekly cost x days active / 7, the end day included, open
        ones to the last day of data, in the months the person is present); without the
        programme, home-care packages started under it cost their hours / the multiplier."""
        multiplier = self.model.package_cost_multiplier
        person, start, end, cost, home_care = [], [], [], [], []
        for code in ("home_care", "reablement"):
            p, s, e, c = log.episodes(EventKind.SOCIAL_CARE_PACKAGE, code)
            person.append(p.astype(np.int64))
            start.append(s.astype(np.int64))
            end.append(e.astype(np.int64))
            cost.append(c.astype(float))
            home_care.append(np.full(len(p), code == "home_care"))
        person, start, end, cost, home_care = (
            np.concatenate(a) for a in (person, start, end, cost, home_care)
        )
        keep = self.managed_from[person] != NEVER
        person, start, end, cost, home_care = (
            a[keep] for a in (person, start, end, cost, home_care)
        )
        stop = np.where(end == NO_DAY, last_day, np.minimum(end, last_day)) + 1
        under = home_care & (start >= self.case_start[person])
        untreated_cost = np.where(under, cost / multiplier, cost)
        go_live = self.managed_from[person]
        gone = exit_day[person].astype(np.int64)
        gone = np.where(gone == NO_DAY, np.iinfo(np.int64).max, gone)
        person_months = {(row[1], row[3]): row[4] for row in self.effect_rows if row[2] == "deaths"}
        month, index = self.config.start, 0
        while day_number(month) <= last_day:
            first, after = day_number(month), day_number(month_start(month, 1))
            days = np.clip(np.minimum(stop, after) - np.maximum(start, first), 0, None)
            counted = (days > 0) & (go_live <= index) & (gone >= first)
            for group in np.unique(go_live[counted]):
                mine = counted & (go_live == group)
                cohort_date = month_start(self.config.start, int(group))
                self.effect_rows.append(
                    (
                        LOCALITY_MODEL,
                        cohort_date,
                        "package_cost",
                        month,
                        person_months.get((cohort_date, month), 0.0),
                        float((cost[mine] * days[mine] / 7).sum()),
                        float((untreated_cost[mine] * days[mine] / 7).sum()),
                    )
                )
            month, index = month_start(month, 1), index + 1

    def _list_ratios(self, person: np.ndarray, from_month: int) -> np.ndarray:
        """(month from ``from_month``, person) hazard ratio of the list actions that ran."""
        ratio = np.ones((self.config.months - from_month, len(person)))
        column = np.full(self.people.size, -1)
        column[person] = np.arange(len(person))
        for run in self.runs:
            took = run.action != 0
            who = column[run.person[took]]
            inside = who >= 0
            for month in range(run.month, run.month + self.lists.action_months):
                if from_month <= month < self.config.months:
                    ratio[month - from_month, who[inside]] = run.ratio[took][inside]
        return ratio

    def _total_rows(self, constants: Constants, last_day: int) -> list[tuple]:
        """Each cohort's expected outcomes per month with and without the programme, from
        ``effect_paths`` coupled paths simulated from its go-live (see ``effects``)."""
        model, config = self.model, self.config
        months = effects.Months(config.start, config.months, last_day, EPOCH)
        paths = config.effect_paths
        rows = []
        for cohort in self.cohorts:
            arms = (
                effects.Arm(
                    cohort.admission_hr,
                    model.stay_multiplier,
                    model.care_home_hr,
                    model.package_cost_multiplier,
                ),
                effects.Arm(np.ones(len(cohort.person)), 1.0, 1.0, 1.0),
            )
            totals = effects.simulate(
                cohort,
                arms,
                self._list_ratios(cohort.person, cohort.month),
                months,
                constants,
                config.yearly_leaving_rate,
                paths,
                self.effect_rng,
            )
            cohort_date = month_start(config.start, cohort.month)
            difference = totals[0] - totals[1]
            se = difference.std(axis=-1, ddof=1) / np.sqrt(paths)
            treated, untreated = totals[0].mean(axis=-1), totals[1].mean(axis=-1)
            for i, outcome in enumerate(OUTCOMES):
                for step in range(totals.shape[2]):
                    rows.append(
                        (
                            LOCALITY_MODEL,
                            cohort_date,
                            outcome,
                            month_start(cohort_date, step),
                            float(treated[i, step]),
                            float(untreated[i, step]),
                            float(se[i, step]),
                        )
                    )
        return rows

    def effects(self) -> pd.DataFrame:
        """``truth/effects.parquet``: one row per intervention, cohort, outcome and month."""
        keys = ["intervention", "cohort", "outcome", "month"]
        path = pd.DataFrame(
            self.effect_rows, columns=[*keys, "person_months", "path_treated", "path_untreated"]
        )
        path = path.groupby(keys, as_index=False).sum()
        total = pd.DataFrame(
            self.total_rows,
            columns=[*keys, "expected_treated", "expected_untreated", "difference_se"],
        )
        frame = total.merge(path, on=keys, how="outer").fillna(
            {"person_months": 0.0, "path_treated": 0.0, "path_untreated": 0.0}
        )
        for column in ("cohort", "month"):
            frame[column] = pd.to_datetime(frame[column]).astype("datetime64[ms]")
        columns = [
            *keys,
            "person_months",
            "expected_treated",
            "expected_untreated",
            "difference_se",
            "path_treated",
            "path_untreated",
        ]
        return frame[columns].sort_values(keys, ignore_index=True)

    def list_actions(self, ids: np.ndarray) -> pd.DataFrame:
        """``truth/list_actions.parquet``: one row per person in a run's saved band."""
        frames = [
            pd.DataFrame(
                {
                    "patient_id": ids[run.person],
                    "run": pd.Timestamp(from_day_number(run.day)),
                    "score": run.score,
                    "listed": run.listed,
                    "action": np.asarray(ACTIONS)[run.action],
                    "person_months": run.person_months,
                    "expected_treated": run.with_action,
                    "expected_untreated": run.without_action,
                }
            )
            for run in self.runs
        ]
        if not frames:
            return pd.DataFrame(
                columns=[
                    "patient_id",
                    "run",
                    "score",
                    "listed",
                    "action",
                    "person_months",
                    "expected_treated",
                    "expected_untreated",
                ]
            )
        frame = pd.concat(frames, ignore_index=True)
        frame["run"] = frame["run"].astype("datetime64[ms]")
        return frame

    # ---- the oracle: hazard ratios known on an as-of date -------------------------------

    def known_ratios(self, month: int, months: int, person: np.ndarray) -> HazardRatios | None:
        """Hazard ratios over the next ``months`` months for ``person``, as known on the
        first day of ``month``: the roll-out schedule for the caseload (decided at the
        baseline) and list actions already running; actions of later runs are not known.
        With the list on, ``untreated_admission`` is the same without the list's actions (the
        locality model's ratios kept: the list does not trigger it)."""
        if not (self.model.enabled or self.lists.enabled):
            return None
        steps = month + np.arange(months)[:, None]
        admission = np.ones((months, len(person)))
        care_home = np.ones((months, len(person)))
        if self.model.enabled and month >= self.baseline_month:
            # The caseload is fixed at the baseline and the schedule is public.
            go_live = np.where(self.eligible[person], self.go_live_of[person], NEVER)
            on = steps >= go_live[None, :]
            frail = self.frail[person]
            ratio = np.where(
                frail, self.model.admission_hr_frail, self.model.admission_hr_not_frail
            )
            admission = np.where(on, ratio[None, :], 1.0)
            care_home = np.where(on, self.model.care_home_hr, 1.0)
        if not self.lists.enabled:
            return HazardRatios(admission, care_home)
        running = steps < self.action_until[person][None, :]
        with_list = admission * np.where(running, self.action_ratio[person][None, :], 1.0)
        return HazardRatios(with_list, care_home, untreated_admission=admission)
