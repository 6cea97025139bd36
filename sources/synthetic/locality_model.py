"""The integrated locality model in the simulation: its caseload, go-live, effects and truth.

The caseload is decided at the baseline from the event log exactly as the features see it
(age from the birth month, frailty coded before the baseline, emergency admissions in the 365
days before); case management starts cluster by cluster at each go-live. While managed, a
person's admission hazard, stay length, care-home chance and home-care hours are multiplied
by the model's ratios (``LocalityModel`` in the config).

Its truth is its total effect on each cohort (``effects``: both arms simulated from the
go-live). Along the path that happened it also records, each month from the realised state,
the expected value of each outcome with and without the model (hazard x exposure, the
closed-form expected length of stay, transition probabilities): the direct effect only, kept
for comparison. Never re-estimated.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date

import numpy as np
import pandas as pd
from scipy.special import ndtr

from riskstrat.common.months import DAYS_PER_YEAR, EPOCH, day_number, month_start
from riskstrat.contract.schema import EventKind
from riskstrat.sources.synthetic import effects, emit
from riskstrat.sources.synthetic.causes import avoidable_share, treated_avoidable_share
from riskstrat.sources.synthetic.config import SynthConfig
from riskstrat.sources.synthetic.dynamics import (
    CARE_HOME_MONTHLY_CHANCE,
    Constants,
    State,
    care_needs,
    death_log_hazard,
    take,
)
from riskstrat.sources.synthetic.eventlog import NO_DAY, EventLog
from riskstrat.sources.synthetic.month import MonthStart
from riskstrat.sources.synthetic.population import People, birth_days

LOCALITY_MODEL = "integrated_locality_model"
NEVER = np.iinfo(np.int32).max
OUTCOMES = effects.OUTCOMES
_STAY_DAYS = np.arange(1, emit.MAX_STAY + 1, dtype=float)

# The ratios of the list actions over (month from a start month, person) of the potentially
# avoidable admissions' hazard: the locality model's total effects are simulated with the
# list's actions as they ran.
ListRatios = Callable[[np.ndarray, int], np.ndarray]


def expected_stay(log_mean: np.ndarray, multiplier: float) -> np.ndarray:
    """E[min(floor(multiplier * L), MAX_STAY)] for L lognormal(log_mean, STAY_LOG_SD):
    the sum over k of P(multiplier * L >= k)."""
    z = (np.log(_STAY_DAYS / multiplier)[None, :] - log_mean[:, None]) / emit.STAY_LOG_SD
    return ndtr(-z).sum(axis=1)


class LocalityModelSim:
    """The integrated locality model's state through the simulation, its events and truth."""

    def __init__(self, config: SynthConfig, people: People, cluster_of_practice: np.ndarray):
        self.config, self.people, n = config, people, people.size
        self.model = config.interventions.locality_model
        self.effect_rng = np.random.default_rng(np.random.SeedSequence([config.seed, 0xEFFEC7]))
        self.cohorts: list[effects.Cohort] = []
        self.total_rows: list[tuple] = []
        self.effect_rows: list[tuple] = []
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
        self.case_start = np.full(n, NO_DAY, np.int32)
        self.start_day = day_number(config.start)

    @property
    def enabled(self) -> bool:
        return self.model.enabled

    # ---- what multiplies what, this month ----------------------------------------------

    def managed(self, month: int) -> np.ndarray:
        return self.managed_from <= month

    def admission_ratio(self, month: int) -> np.ndarray:
        """Everyone's admission hazard ratio this month (1 when not managed)."""
        ratio = np.where(
            self.frail, self.model.admission_hr_frail, self.model.admission_hr_not_frail
        )
        return np.where(self.managed(month), ratio, 1.0)

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

    def known_ratios(
        self, month: int, months: int, person: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """(admission, care-home) hazard ratios over the next ``months`` months for
        ``person``, as known on the first day of ``month``: the caseload is fixed at the
        baseline and the roll-out schedule is public. All 1 before the baseline."""
        admission = np.ones((months, len(person)))
        care_home = np.ones((months, len(person)))
        if self.model.enabled and month >= self.baseline_month:
            steps = month + np.arange(months)[:, None]
            go_live = np.where(self.eligible[person], self.go_live_of[person], NEVER)
            on = steps >= go_live[None, :]
            frail = self.frail[person]
            ratio = np.where(
                frail, self.model.admission_hr_frail, self.model.admission_hr_not_frail
            )
            admission = np.where(on, ratio[None, :], 1.0)
            care_home = np.where(on, self.model.care_home_hr, 1.0)
        return admission, care_home

    # ---- the start of a month: caseload and go-live -------------------------------------

    def start_month(self, start: MonthStart) -> None:
        """Decide the caseload in the baseline month; clusters go live from then on."""
        if self.model.enabled and start.month == self.baseline_month:
            self._decide_caseload(start.first, start.register_ok, start.log)
        if self.model.enabled and start.month >= self.baseline_month:
            self._go_live(
                start.month, start.first, start.present, start.state, start.log, start.records
            )

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
                admission_hr=self.admission_ratio(month)[starting],
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

    # ---- the truth along the path, month by month ----------------------------------------

    def record_month(
        self,
        month: int,
        first: date,
        state: State,
        rate: np.ndarray,
        exposure: np.ndarray,
        present: np.ndarray,
        list_avoidable_hr: np.ndarray,
    ) -> None:
        """Expected outcomes of the managed this month, with and without, from the state at
        its start. ``rate`` is everyone's monthly admission hazard without the locality model
        (the list's actions included, which multiply the avoidable admissions' hazard by
        ``list_avoidable_hr``); ``exposure`` the share of the month each is present."""
        if not self.model.enabled:
            return
        cohort = present[self.managed(month)[present]]
        if len(cohort) == 0:
            return
        sub, people = take(state, cohort), self.people.take(cohort)
        time = exposure[cohort]
        untreated = rate[cohort] * time
        treated = untreated * self.admission_ratio(month)[cohort]
        log_mean = emit.stay_log_mean(sub, np.arange(len(cohort)))
        stay_untreated = expected_stay(log_mean, 1.0)
        stay_treated = expected_stay(log_mean, self.model.stay_multiplier)
        avoidable = treated_avoidable_share(avoidable_share(sub, people), list_avoidable_hr[cohort])
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

    def write_events(self, log: EventLog, exit_day: np.ndarray, last_day: int) -> None:
        """The case-management episodes, ending at death or leaving (open at the end)."""
        managed = np.flatnonzero(self.case_start != NO_DAY)
        end = exit_day[managed]
        log.add(
            EventKind.CASE_MANAGEMENT,
            managed,
            self.case_start[managed],
            end=np.where(end == NO_DAY, last_day + 1, end),
            code=LOCALITY_MODEL,
        )

    def finish(
        self,
        log: EventLog,
        exit_day: np.ndarray,
        last_day: int,
        constants: Constants,
        list_ratios: ListRatios,
    ) -> None:
        """The truth that needs the whole run: package cost and the total effects."""
        if self.model.enabled:
            self._package_rows(log, exit_day, last_day)
            self.total_rows = self._total_rows(constants, last_day, list_ratios)

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

    def _total_rows(
        self, constants: Constants, last_day: int, list_ratios: ListRatios
    ) -> list[tuple]:
        """Each cohort's expected outcomes per month with and without the programme, from
        ``effect_paths`` coupled paths simulated from its go-live (see ``effects``), the
        list's actions as they ran."""
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
                list_ratios(cohort.person, cohort.month),
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
