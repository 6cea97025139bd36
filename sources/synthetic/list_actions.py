"""The risk list in the simulation: its runs, the actions they trigger, and their truth.

The list is the generator's own noisy oracle, run on a schedule, unless the caller decides
the lists (``ListDecision`` per run date): then the lists run on exactly those dates, the
decided people are the band, and the same capacity draws pick who gets an action. A listed
person without an action running may get a reablement plan or a social prescribing
referral; while it runs, the hazard of their potentially avoidable admissions is multiplied
by its hazard ratio for them, set at the run from their characteristics then (``Reach``),
and the others are left alone (``ListActions`` says how).

The one place the avoidable share of each person's admission hazard is worked out in the
month loop is ``start_month``: once a month, from the state at its start, for the people an
action runs for and the people whose truth is being followed up; the hazard, the causes and
the truth all read it.

The actions are recorded as what the features count as list-triggered help: the event kinds
and code of ``ExposureRule``'s defaults (``riskstrat.features.exposure``, the one definition).
Each run's band is kept with its follow-up sums (``truth/list_actions.parquet``, described in
``ListActionsSim.table``).
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
from riskstrat.sources.synthetic.causes import avoidable_share, hazard_ratio
from riskstrat.sources.synthetic.config import ListActions, SynthConfig
from riskstrat.sources.synthetic.dynamics import (
    FRAILTY_CODED_ABOVE,
    LONELY_ABOVE,
    MENTAL_HEALTH_CONTACTS_ABOVE,
    SMI,
    State,
    admission_log_hazard,
    death_log_hazard,
    loneliness,
    mental_ill_health,
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
# Each action's event kind, by its name in the truth (the truth's columns use the names).
ACTION_KINDS: dict[str, str] = dict(
    zip(ACTIONS[1:], (REABLEMENT.value, SOCIAL_PRESCRIBING.value), strict=True)
)
RECENT_MONTHS = 3  # a recent discharge: an emergency admission in this many months before
_NEVER = -(10**6)  # the month of the latest admission of someone never admitted
_REACH = ("frail", "recent_discharge", "lives_alone", "lonely", "mental_health")
_TABLE_COLUMNS = [
    "patient_id",
    "run",
    "score",
    "listed",
    "action",
    "drawn_for",
    "drawn",
    "person_months",
    "expected_treated",
    "expected_untreated",
    "expected_avoidable_treated",
    "expected_avoidable_untreated",
    *(f"hr_{action}" for action in ACTIONS[1:]),
    *(f"prevented_{action}" for action in ACTIONS[1:]),
    *_REACH,
]


@dataclass(frozen=True, slots=True)
class Reach:
    """The characteristics that decide how much an action helps a person, true on a run
    date (not as recorded): ``frail`` (log-frailty above the level at which frailty gets
    coded), ``recent_discharge`` (an emergency admission in the ``RECENT_MONTHS`` calendar
    months before), ``lives_alone``, ``lonely`` (loneliness above the level at which it
    raises the admission hazard) and ``mental_health`` (in contact with mental-health
    services: mental ill-health at the level that brings contacts, or a serious mental
    illness)."""

    frail: np.ndarray
    recent_discharge: np.ndarray
    lives_alone: np.ndarray
    lonely: np.ndarray
    mental_health: np.ndarray

    @classmethod
    def of(cls, state: State, people: People, recent_discharge: np.ndarray) -> Reach:
        return cls(
            frail=state.log_frailty > FRAILTY_CODED_ABOVE,
            recent_discharge=recent_discharge,
            lives_alone=state.lives_alone.copy(),
            lonely=loneliness(state, people) > LONELY_ABOVE,
            mental_health=(mental_ill_health(state, people) > MENTAL_HEALTH_CONTACTS_ABOVE)
            | state.has[:, SMI],
        )

    def avoidable_hr(self, lists: ListActions) -> np.ndarray:
        """(action, person): each action's hazard ratio of potentially avoidable admissions
        for each person, as ``ListActions`` sets it, for the actions in ``ACTIONS[1:]``'s
        order; effects that do not vary are averaged by the caller."""
        reablement = (
            lists.reablement_hr
            * np.where(self.frail, lists.reablement_hr_frail, 1.0)
            * np.where(self.recent_discharge, lists.reablement_hr_recent_discharge, 1.0)
            * np.where(self.lives_alone, lists.reablement_hr_lives_alone, 1.0)
        )
        social = (
            lists.social_prescribing_hr
            * np.where(self.lonely, lists.social_prescribing_hr_lonely, 1.0)
            * np.where(self.mental_health, lists.social_prescribing_hr_mental_health, 1.0)
        )
        return np.stack([reablement, social])


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
    """One list run's saved band, each action's ratio for them, and the follow-up sums."""

    month: int
    day: int
    person: np.ndarray
    score: np.ndarray
    listed: np.ndarray
    action: np.ndarray  # index into ACTIONS
    drawn_for: np.ndarray  # index into ACTIONS: the action the capacity draw was for (0: not in it)
    drawn: np.ndarray  # drawn for it (offered); those who took it up have it as ``action``
    hr: np.ndarray  # (action, person): ACTIONS[1:]'s avoidable-admission hazard ratios
    reach: Reach
    person_months: np.ndarray = field(init=False)
    with_action: np.ndarray = field(init=False)
    without_action: np.ndarray = field(init=False)
    avoidable_with: np.ndarray = field(init=False)
    avoidable_without: np.ndarray = field(init=False)
    prevented: np.ndarray = field(init=False)  # (action, person)

    def __post_init__(self) -> None:
        n = len(self.person)
        self.person_months, self.with_action, self.without_action = np.zeros((3, n))
        self.avoidable_with, self.avoidable_without = np.zeros((2, n))
        self.prevented = np.zeros((len(ACTIONS) - 1, n))

    @property
    def given_hr(self) -> np.ndarray:
        """Each person's ratio of the action this run gave them (1 for none)."""
        given = np.concatenate([np.ones((1, len(self.person))), self.hr])
        return given[self.action, np.arange(len(self.person))]


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
        self.action_hr = np.ones(n)  # its ratio of the avoidable admissions' hazard
        self.last_admission = np.full(n, _NEVER)  # month of each person's latest admission
        self.share = np.zeros(n)  # this month's avoidable share, for those who need it
        self.share_month = -1
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

    def avoidable_ratio(self, month: int) -> np.ndarray:
        """Everyone's ratio of the avoidable admissions' hazard this month (1 without an
        action running)."""
        return np.where(self.action_until > month, self.action_hr, 1.0)

    def admission_ratio(self, month: int) -> np.ndarray:
        """Everyone's ratio of the whole admission hazard this month (1 without an action
        running), from the avoidable shares ``start_month`` worked out."""
        if not self.enabled:
            return np.ones(self.people.size)
        if self.share_month != month:
            raise RuntimeError(
                f"the avoidable shares are for month {self.share_month}, not {month}"
            )
        return hazard_ratio(self.share, self.avoidable_ratio(month))

    def known_avoidable_ratio(self, month: int, months: int, person: np.ndarray) -> np.ndarray:
        """Ratios of the avoidable admissions' hazard over the next ``months`` months for
        ``person``, as known on the first day of ``month``: the actions already running
        (later runs are not known)."""
        steps = month + np.arange(months)[:, None]
        running = steps < self.action_until[person][None, :]
        return np.where(running, self.action_hr[person][None, :], 1.0)

    def avoidable_ratios(self, person: np.ndarray, from_month: int) -> np.ndarray:
        """(month from ``from_month``, person) ratio of the avoidable admissions' hazard of
        the list actions that ran."""
        ratio = np.ones((self.config.months - from_month, len(person)))
        column = np.full(self.people.size, -1)
        column[person] = np.arange(len(person))
        for run in self.runs:
            took = run.action != 0
            who = column[run.person[took]]
            inside = who >= 0
            given = run.given_hr[took][inside]
            for month in range(run.month, run.month + self.lists.action_months):
                if from_month <= month < self.config.months:
                    ratio[month - from_month, who[inside]] = given
        return ratio

    def admitted(self, month: int, who: np.ndarray) -> None:
        """Note this month's emergency admissions (``who``: one entry each)."""
        self.last_admission[who] = month

    # ---- the start of a month: the list run, then the avoidable shares --------------------

    def start_month(self, start: MonthStart) -> None:
        """Run the list if this month has one; work out the avoidable shares this month
        needs (the one place they are computed in the month loop)."""
        if self.lists.enabled:
            band = self._band(start.first, start.present, start.register_ok, start.state)
            if band is not None:
                self._run_list(start, band)
            self._shares(start.month, start.state)

    def _shares(self, month: int, state: State) -> None:
        """The avoidable share of everyone an action runs for or whose run is being
        followed up, from the state at the start of ``month`` (0 for the others)."""
        need = np.zeros(self.people.size, bool)
        need[self.action_until > month] = True
        for run in self._following(month):
            need[run.person] = True
        who = np.flatnonzero(need)
        self.share = np.zeros(self.people.size)
        self.share[who] = avoidable_share(take(state, who), self.people.take(who))
        self.share_month = month

    def _following(self, month: int) -> list[_Run]:
        """The runs whose follow-up includes ``month``."""
        return [r for r in self.runs if r.month <= month < r.month + self.lists.follow_up_months]

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

    def _reach(self, month: int, state: State, person: np.ndarray) -> Reach:
        recent = self.last_admission[person] >= month - RECENT_MONTHS
        return Reach.of(take(state, person), self.people.take(person), recent)

    def _hr(self, start: MonthStart, band: Reach) -> np.ndarray:
        """(action, person) ratios for the band: their own, or with effects that do not
        vary, each action's average over the registered adults weighted by their hazard of
        an avoidable admission this month (exact where the ratios do not vary anyway)."""
        hr = band.avoidable_hr(self.lists)
        if self.lists.varying:
            return hr
        state, people = start.state, self.people
        adults = start.present[state.age[start.present] >= 18]
        sub, their = take(state, adults), people.take(adults)
        everyone = self._reach(start.month, state, adults).avoidable_hr(self.lists)
        weight = np.exp(admission_log_hazard(sub, their, start.first.month)) * avoidable_share(
            sub, their
        )
        average = [
            ratios[0] if np.all(ratios == ratios[0]) else np.average(ratios, weights=weight)
            for ratios in everyone
        ]
        return np.broadcast_to(np.asarray(average)[:, None], hr.shape).copy()

    def _run_list(self, start: MonthStart, band: _Band) -> None:
        """Score events for the band; listed people without an action running may get one."""
        lists, rng, month, first, log = self.lists, self.rng, start.month, start.first, start.log
        person, score, listed = band.person, band.score, band.listed
        free = listed & (self.action_until[person] <= month)
        drawn = free & (rng.random(len(person)) < lists.capacity_share)
        reable = rng.random(len(person)) < lists.reablement_share
        takes = drawn if lists.uptake == 1.0 else drawn & (rng.random(len(person)) < lists.uptake)
        action = np.where(takes, np.where(reable, 1, 2), 0)
        reach = self._reach(month, start.state, person)
        run = _Run(
            month,
            day_number(first),
            person,
            score,
            listed,
            action,
            np.where(free, np.where(reable, 1, 2), 0),
            drawn,
            self._hr(start, reach),
            reach,
        )
        log.add(
            EventKind.RISK_LIST_SCORE,
            person,
            np.full(len(person), run.day),
            value=score,
            code=np.where(listed, log.code("listed"), log.code("not_listed")),
        )
        if lists.lottery:
            log.add(
                EventKind.RISK_LIST_LOTTERY,
                person[free],
                np.full(int(free.sum()), run.day),
                value=drawn[free].astype(float),
                code=np.where(
                    reable[free], log.code(REABLEMENT.value), log.code(SOCIAL_PRESCRIBING.value)
                ),
            )
        self.action_until[person[takes]] = month + lists.action_months
        self.action_hr[person[takes]] = run.given_hr[takes]
        end = day_number(month_start(first, lists.action_months)) - 1
        self.actions.append((REABLEMENT, person[action == 1], run.day, end))
        self.actions.append((SOCIAL_PRESCRIBING, person[action == 2], run.day, end))
        self.runs.append(run)

    # ---- the truth, month by month ---------------------------------------------------------

    def follow_up(self, month: int, rate: np.ndarray, exposure: np.ndarray) -> None:
        """Add this month to each followed run's sums: ``rate`` is everyone's monthly
        admission hazard with every intervention but the list's actions, ``exposure`` the
        share of the month each is present. Without this run's action is with only the
        actions of other runs; each action's admissions prevented are those it would
        prevent in that world (all avoidable: the others' hazard is left alone)."""
        running = self.avoidable_ratio(month)
        for run in self._following(month):
            person = run.person
            share, base = self.share[person], rate[person] * exposure[person]
            now = running[person]
            other = np.where(run.action != 0, 1.0, now)  # without this run's action
            avoidable = base * share * other
            run.person_months += exposure[person]
            run.with_action += base * hazard_ratio(share, now)
            run.without_action += base * hazard_ratio(share, other)
            run.avoidable_with += base * share * now
            run.avoidable_without += avoidable
            run.prevented += avoidable[None, :] * (1.0 - run.hr)

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
        """``truth/list_actions.parquet``: one row per person in a run's saved band.

        ``score``, ``listed`` and ``action`` (the one given: none, reablement_plan or
        social_prescribing) as the run decided; ``drawn_for`` the action the capacity draw
        was for (none for those not in it: not listed, or an action already running) and
        ``drawn`` whether they were drawn (offered; those who took it up have it as
        ``action``); then sums over the ``follow_up_months``
        from the run, each month's hazard times the share of it the person was present, along
        the path that happened: ``person_months``, ``expected_treated`` and
        ``expected_untreated`` (emergency admissions with and without the action given; equal
        for none), ``expected_avoidable_treated`` and ``expected_avoidable_untreated`` (the
        potentially avoidable ones). ``hr_<action>`` is each action's hazard ratio of
        potentially avoidable admissions for the person at this run and
        ``prevented_<action>`` the admissions it would have prevented had they been offered
        it (for the action given, ``expected_untreated - expected_treated``); every
        prevented admission is a potentially avoidable one. The ``Reach`` flags say why the
        ratios are what they are."""
        frames = [
            pd.DataFrame(
                {
                    "patient_id": ids[run.person],
                    "run": pd.Timestamp(from_day_number(run.day)),
                    "score": run.score,
                    "listed": run.listed,
                    "action": np.asarray(ACTIONS)[run.action],
                    "drawn_for": np.asarray(ACTIONS)[run.drawn_for],
                    "drawn": run.drawn,
                    "person_months": run.person_months,
                    "expected_treated": run.with_action,
                    "expected_untreated": run.without_action,
                    "expected_avoidable_treated": run.avoidable_with,
                    "expected_avoidable_untreated": run.avoidable_without,
                    **{f"hr_{a}": run.hr[k] for k, a in enumerate(ACTIONS[1:])},
                    **{f"prevented_{a}": run.prevented[k] for k, a in enumerate(ACTIONS[1:])},
                    **{name: getattr(run.reach, name) for name in _REACH},
                }
            )
            for run in self.runs
        ]
        if not frames:
            return pd.DataFrame(columns=_TABLE_COLUMNS)
        frame = pd.concat(frames, ignore_index=True)
        frame["run"] = frame["run"].astype("datetime64[ms]")
        return frame
