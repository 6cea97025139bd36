"""Interventions with known effects, run beside the month loop: the integrated locality model
(``locality_model``) and the risk list's actions (``list_actions``).

``Programme`` is the month loop's one handle on both. It passes each month's calls to the two
and does what needs them together: thinning emergency admissions by each person's combined
hazard ratio, the hazard ratios known on an as-of date, and the order of the final events.
Each intervention's randomness comes from its own streams, so switching one off leaves the
borough as it was, and with every effect set to none the borough is the same with the
intervention events added.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date

import numpy as np
import pandas as pd

from riskstrat.sources.synthetic.config import SynthConfig
from riskstrat.sources.synthetic.dynamics import Constants
from riskstrat.sources.synthetic.eventlog import EventLog
from riskstrat.sources.synthetic.list_actions import ListActionsSim, ListDecision
from riskstrat.sources.synthetic.locality_model import LocalityModelSim
from riskstrat.sources.synthetic.month import MonthStart
from riskstrat.sources.synthetic.population import People
from riskstrat.sources.synthetic.truth import HazardRatios

__all__ = ["ListDecision", "Programme"]


class Programme:
    """Both interventions through the simulation, as the month loop calls them."""

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
        self.people = people
        self.thinning_rng = np.random.default_rng(np.random.SeedSequence([config.seed, 0x11A]))
        self.locality = LocalityModelSim(config, people, cluster_of_practice)
        self.lists = ListActionsSim(config, people, ids, decisions)

    # ---- what multiplies what, this month ----------------------------------------------

    def keep_admissions(self, month: int, who: np.ndarray) -> np.ndarray:
        """Which of the admissions drawn at the untreated hazard happen (Poisson thinning by
        both interventions' hazard ratios)."""
        if not (self.locality.enabled or self.lists.enabled) or len(who) == 0:
            return np.ones(len(who), bool)
        ratio = (self.locality.admission_ratio(month) * self.lists.admission_ratio(month))[who]
        return self.thinning_rng.random(len(who)) < ratio

    def admitted(self, month: int, who: np.ndarray) -> None:
        """Note the month's emergency admissions (``who``: one entry each), which the list's
        actions help more soon after."""
        if self.lists.enabled:
            self.lists.admitted(month, who)

    def avoidable_ratio(self, month: int, who: np.ndarray) -> np.ndarray | None:
        """What multiplies the potentially avoidable causes' weights for the admissions of
        ``who`` this month: the ratio of the list action running (None without the list)."""
        return self.lists.avoidable_ratio(month)[who] if self.lists.enabled else None

    def stay_multiplier(self, month: int, who: np.ndarray) -> np.ndarray | float:
        return self.locality.stay_multiplier(month, who)

    def care_home_ratio(self, month: int) -> np.ndarray | float:
        return self.locality.care_home_ratio(month)

    def package_ratio(self, month: int) -> np.ndarray | float:
        return self.locality.package_ratio(month)

    def known_ratios(self, month: int, months: int, person: np.ndarray) -> HazardRatios | None:
        """Hazard ratios over the next ``months`` months for ``person``, as known on the
        first day of ``month``: the roll-out schedule for the caseload (decided at the
        baseline) and list actions already running; actions of later runs are not known.
        With the list on, ``avoidable`` is what the list's actions multiply the hazard of
        potentially avoidable admissions by (the truth without them keeps the rest: the
        locality model's ratios kept: the list does not trigger it)."""
        if not (self.locality.enabled or self.lists.enabled):
            return None
        admission, care_home = self.locality.known_ratios(month, months, person)
        if not self.lists.enabled:
            return HazardRatios(admission, care_home)
        avoidable = self.lists.known_avoidable_ratio(month, months, person)
        return HazardRatios(admission, care_home, avoidable=avoidable)

    # ---- the start of a month: caseload, go-live, list run ------------------------------

    def start_month(self, start: MonthStart) -> None:
        """The locality model's caseload and go-live, then the month's list run."""
        self.locality.start_month(start)
        self.lists.start_month(start)

    # ---- the truth, month by month -----------------------------------------------------

    def record_month(self, start: MonthStart, rate: np.ndarray, death_time: np.ndarray) -> None:
        """Expected outcomes of the month that began with ``start``, with and without, from
        the state at its start. ``rate`` is everyone's monthly admission hazard without any
        intervention."""
        month, present = start.month, start.present
        exposure = np.zeros(self.people.size)
        exposure[present] = np.minimum(death_time[present], 1.0)
        self.lists.follow_up(month, rate * self.locality.admission_ratio(month), exposure)
        self.locality.record_month(
            month,
            start.first,
            start.state,
            rate * self.lists.admission_ratio(month),
            exposure,
            present,
            self.lists.avoidable_ratio(month),
        )

    # ---- the end: events and truth tables ----------------------------------------------

    def finish(
        self, log: EventLog, exit_day: np.ndarray, last_day: int, constants: Constants
    ) -> None:
        """Write the case-management and action events, ending at death or leaving; work
        out the truth that needs the whole run (package cost, the total effects)."""
        self.locality.write_events(log, exit_day, last_day)
        self.lists.write_events(log, exit_day)
        self.locality.finish(log, exit_day, last_day, constants, self.lists.avoidable_ratios)

    def effects(self) -> pd.DataFrame:
        """``truth/effects.parquet``: one row per intervention, cohort, outcome and month."""
        return self.locality.effects()

    def list_actions(self, ids: np.ndarray) -> pd.DataFrame:
        """``truth/list_actions.parquet``: one row per person in a run's saved band."""
        return self.lists.table(ids)
