"""The risk list in the simulation: its runs, the actions they trigger, and their truth.

The list is the generator's own noisy oracle, run on a schedule, unless the caller decides
the lists (``ListDecision`` per run date): then the lists run on exactly those dates, the
decided people are the band, and the same capacity draws pick who gets an action. A listed
person without an action running may get a reablement plan or a social prescribing
referral; while it runs, their admission hazard is multiplied by its hazard ratio.

The actions are recorded as what the features count as list-triggered help: the event kinds
and code of ``ExposureRule``'s defaults (``riskstrat.features.exposure``, the one definition).
Each run's band is kept with its follow-up sums (``truth/list_actions.parquet``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime

import numpy as np
import pandas as pd

from riskstrat.common.months import day_number, from_day_number, month_start
from riskstrat.contract.schema import EventKind
from riskstrat.features.exposure import ExposureRule
from riskstrat.sources.synthetic.config import SynthConfig
from riskstrat.sources.synthetic.dynamics import (
    State,
    admission_log_hazard,
    death_log_hazard,
    take,
)
from riskstrat.sources.synthetic.eventlog import NO_DAY, EventLog
from riskstrat.sources.synthetic.month import MonthStart
from riskstrat.sources.synthetic.population import People

# List-triggered help as the features define it: the code, then the two kinds in the rule's
# order (an episode with an end, a referral without one). A rule that changes them fails here.
(RISK_LIST,) = ExposureRule().codes
REABLEMENT, SOCIAL_PRESCRIBING = (EventKind(kind) for kind in ExposureRule().kinds)
ACTIONS: tuple[str, ...] = ("none", "reablement_plan", "social_prescribing")  # in the truth
_TABLE_COLUMNS = [
    "patient_id",
    "run",
    "score",
    "listed",
    "action",
    "person_months",
    "expected_treated",
    "expected_untreated",
]


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


def twelve_month_probability(state: State, people: People, month_of_year: int) -> np.ndarray:
    """Probability of an emergency admission in 12 months with the state held as it is now
    (seasons and death as a competing event included), at the untreated hazard."""
    survival, p = np.ones(len(state.age)), np.zeros(len(state.age))
    death = np.exp(death_log_hazard(state))
    for step in range(12):
        calendar_month = (month_of_year - 1 + step) % 12 + 1
        admission = np.exp(admission_log_hazard(state, people, calendar_month))
        total = admission + death
        p += survival * admission / total * -np.expm1(-total)
        survival *= np.exp(-total)
    return p


class ListActionsSim:
    """The risk list's runs through the simulation, the actions they trigger and their truth."""

    def __init__(
        self,
        config: SynthConfig,
        people: People,
        ids: np.ndarray,
        decisions: Mapping[date, ListDecision] | None = None,
    ):
        """``ids``: everyone's pseudonym; ``decisions``: lists decided by the caller, which
        replace the oracle's scheduled runs (None: the oracle's)."""
        self.config, self.people, self.ids, n = config, people, ids, people.size
        self.lists = config.interventions.list_actions
        self.rng = np.random.default_rng(np.random.SeedSequence([config.seed, 0x1157]))
        self.action_until = np.zeros(n, np.int64)  # first month the list action no longer runs
        self.action_ratio = np.ones(n)
        self.person_noise = self.rng.normal(0.0, self.lists.person_noise_sd, n)
        self.runs: list[_Run] = []
        self.actions: list[tuple[EventKind, np.ndarray, int, int]] = []
        if decisions is not None and not self.lists.enabled:
            raise ValueError("list decisions were given but list_actions is not enabled")
        self.decided = None if decisions is None else _decided_bands(decisions, ids, config)

    @property
    def enabled(self) -> bool:
        return self.lists.enabled

    # ---- what multiplies what -------------------------------------------------------------

    def admission_ratio(self, month: int) -> np.ndarray:
        """Everyone's admission hazard ratio this month (1 without an action running)."""
        return np.where(self.action_until > month, self.action_ratio, 1.0)

    def known_ratio(self, month: int, months: int, person: np.ndarray) -> np.ndarray:
        """Admission hazard ratios over the next ``months`` months for ``person``, as known on
        the first day of ``month``: the actions already running (later runs are not known)."""
        steps = month + np.arange(months)[:, None]
        running = steps < self.action_until[person][None, :]
        return np.where(running, self.action_ratio[person][None, :], 1.0)

    def ratios(self, person: np.ndarray, from_month: int) -> np.ndarray:
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

    # ---- the start of a month: the list run -----------------------------------------------

    def start_month(self, start: MonthStart) -> None:
        """Run the list if this month has one."""
        if self.lists.enabled:
            band = self._band(start.first, start.present, start.register_ok, start.state)
            if band is not None:
                self._run_list(start.month, start.first, band, start.log)

    def _is_run(self, first: date) -> bool:
        gap = self.config.month_index(first) - self.config.month_index(self.lists.first_run)
        return gap >= 0 and gap % self.lists.every_months == 0

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
            twelve_month_probability(take(state, adults), self.people.take(adults), first.month),
            1e-9,
            1 - 1e-9,
        )
        logit = np.log(p / (1 - p)) + self.person_noise[adults]
        noise = self.rng.normal(0.0, lists.run_noise_sd, len(adults))
        score = 1 / (1 + np.exp(-(logit + noise)))
        band = score >= lists.cutoff * lists.band_fraction
        return _Band(adults[band], score[band], score[band] >= lists.cutoff)

    def _run_list(self, month: int, first: date, band: _Band, log: EventLog) -> None:
        """Score events for the band; listed people without an action running may get one."""
        lists, rng = self.lists, self.rng
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
        self.actions.append((REABLEMENT, person[action == 1], day, end))
        self.actions.append((SOCIAL_PRESCRIBING, person[action == 2], day, end))
        self.runs.append(_Run(month, day, person, score, listed, action, ratio))

    # ---- the truth, month by month ---------------------------------------------------------

    def follow_up(self, month: int, realised: np.ndarray, exposure: np.ndarray) -> None:
        """Add this month to each run's follow-up sums: ``realised`` is everyone's monthly
        admission hazard with every intervention, ``exposure`` the share of the month each
        is present."""
        for run in self.runs:
            if run.month <= month < run.month + self.lists.follow_up_months:
                expected = realised[run.person] * exposure[run.person]
                run.person_months += exposure[run.person]
                run.with_action += expected
                run.without_action += expected / run.ratio

    # ---- the end: events and the truth table ----------------------------------------------

    def write_events(self, log: EventLog, exit_day: np.ndarray) -> None:
        """The actions' events, a plan ending early at death or leaving."""
        for kind, person, day, planned_end in self.actions:
            left = exit_day[person]
            stop = np.where(left == NO_DAY, planned_end, np.minimum(planned_end, left))
            if kind == REABLEMENT:
                log.add(kind, person, np.full(len(person), day), end=stop, code=RISK_LIST)
            else:
                log.add(kind, person, np.full(len(person), day), code=RISK_LIST)

    def table(self, ids: np.ndarray) -> pd.DataFrame:
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
            return pd.DataFrame(columns=_TABLE_COLUMNS)
        frame = pd.concat(frames, ignore_index=True)
        frame["run"] = frame["run"].astype("datetime64[ms]")
        return frame
