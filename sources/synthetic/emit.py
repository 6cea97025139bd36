"""Observable events: the consequences of the hidden state that services record.

Each function records one family of events for one month. Rates are per year at the person's
current state; every event falls on a uniformly drawn day of the month and only before the
person's death. Services see consequences only: no column here copies a hidden variable.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from riskstrat.contract.schema import EventKind
from riskstrat.features.avoidable import ICD10
from riskstrat.sources.synthetic.conditions import ACUTE_DRUGS, CONDITIONS, DRUG_CLASSES
from riskstrat.sources.synthetic.dynamics import (
    CANCER,
    DEMENTIA,
    FRAILTY_CODED_ABOVE,
    LONELY_ABOVE,
    MENTAL_HEALTH_CONTACTS_ABOVE,
    SMI,
    Constants,
    State,
    Transitions,
    care_needs,
    loneliness,
    mental_ill_health,
)
from riskstrat.sources.synthetic.eventlog import EventLog
from riskstrat.sources.synthetic.population import People

DRUG_INDEX = {d: i for i, d in enumerate(DRUG_CLASSES)}
CONDITION_DRUGS = [[(DRUG_INDEX[d], p) for d, p in c.drugs] for c in CONDITIONS]
HOME_CARE_HOURLY_COST = 24.0
STAY_LOG_SD = 1.5
MAX_STAY = 120
ADMITTED_VIA_AE = 0.8
REABLEMENT_HOURLY_COST = 30.0
REABLEMENT_CHANCE = 0.35  # of a reablement package after an admission of the frail
REABLEMENT_MIN_LOG_FRAILTY = -0.3
REABLEMENT_HOURS = (10.0, 3.0, 4, 20)  # weekly hours: normal mean, sd, rounded and clipped
REABLEMENT_LAST_DAY = 42  # days after discharge
PACKAGE_HOURS = (2.0, 2, 40)  # home-care weekly hours: noise sd, rounded and clipped
CARE_HOME_WEEKLY_COST = 950.0


@dataclass
class Records:
    """What services have recorded so far, that later records depend on."""

    diagnosis_due: np.ndarray  # int16 person x condition: month it gets recorded, -1 never
    on_drug: np.ndarray  # bool person x drug class
    frailty_coded: np.ndarray
    package_start: np.ndarray  # day the current package started, or -1
    package_hours: np.ndarray


@dataclass(frozen=True, slots=True)
class Admissions:
    """This month's emergency admissions: who, when (fraction of the month), the primary
    diagnosis (code index in the event log) and what multiplies the drawn length of stay."""

    person: np.ndarray
    u: np.ndarray
    codes: np.ndarray
    stay_multiplier: np.ndarray | float = 1.0


@dataclass(frozen=True, slots=True)
class Month:
    """One simulated month, seen from the services."""

    index: int
    first_day: int  # days since 1970-01-01
    days: int
    present: np.ndarray  # indices of people registered and alive on the first day
    death_time: np.ndarray  # per person, in months from the first day (>= 1: survives)
    rng: np.random.Generator
    log: EventLog

    def day(self, u: np.ndarray) -> np.ndarray:
        return self.first_day + np.floor(u * self.days).astype(np.int32)

    def poisson(self, yearly_rate: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Events of a Poisson process at ``yearly_rate`` (per present person) this month."""
        counts = self.rng.poisson(yearly_rate / 12.0)
        person = np.repeat(self.present, counts)
        u = self.rng.random(len(person))
        alive = u < self.death_time[person]
        return person[alive], u[alive]

    def once(self, who: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """One event for each person in ``who`` (indices) on a random day before death."""
        u = self.rng.random(len(who))
        alive = u < self.death_time[who]
        return who[alive], u[alive]


def _frailty_load(state: State, idx: np.ndarray) -> np.ndarray:
    return np.logaddexp(0.0, state.log_frailty[idx] + 1.0)


def _crisis(state: State, people: People, idx: np.ndarray, level: float) -> np.ndarray:
    return np.maximum(mental_ill_health(state, people)[idx] - level, 0.0)


def primary_care(month: Month, state: State, people: People) -> None:
    idx = month.present
    age, n_conditions = state.age[idx], state.has[idx].sum(axis=1)
    base = 3.2 * (1 + 0.5 * (people.female[idx] & (age >= 15) & (age < 65))) * (1 + 0.8 * (age < 5))
    rate = base * np.exp(
        0.17 * n_conditions
        + 0.3 * _crisis(state, people, idx, 1.0)
        + 0.3 * np.maximum(loneliness(state, people)[idx] - LONELY_ABOVE, 0.0)
        + 0.3 * _frailty_load(state, idx)
    )
    person, u = month.poisson(rate)
    home = month.rng.random(len(person)) < 0.5 / (
        1 + np.exp(-2.5 * (state.log_frailty[person] - 1.0))
    )
    phone = ~home & (month.rng.random(len(person)) < 0.35)
    codes = np.where(
        home,
        month.log.code("home_visit"),
        np.where(phone, month.log.code("telephone"), month.log.code("face_to_face")),
    )
    month.log.add(EventKind.GP_CONTACT, person, month.day(u), code=codes)


def stay_log_mean(state: State, idx: np.ndarray) -> np.ndarray:
    """Mean of the log of an emergency stay's length (days, before flooring and capping)."""
    return 0.4 + 0.3 * np.maximum(state.log_frailty[idx], 0)


def ae_discharged_yearly_rate(state: State, people: People, idx: np.ndarray) -> np.ndarray:
    """Yearly rate of A&E attendances that do not end in admission, for people ``idx``."""
    age = state.age[idx]
    return 0.2 * np.exp(
        0.45 * _frailty_load(state, idx)
        + 0.12 * state.has[idx].sum(axis=1)
        + 0.5 * _crisis(state, people, idx, 1.5)
        + 0.45 * ((age >= 15) & (age < 30))
        + 0.35 * (age < 5)
        + 0.2 * (5.5 - people.deprivation[idx]) / 4.5
    )


def emergency_care(
    month: Month,
    state: State,
    people: People,
    admission: Admissions,
) -> None:
    """Emergency admissions (drawn by the caller from the hazard), A&E, and what follows."""
    rng, log, admitted = month.rng, month.log, admission.person
    drawn = rng.lognormal(stay_log_mean(state, admitted), STAY_LOG_SD)
    length = np.minimum(np.floor(drawn * admission.stay_multiplier), MAX_STAY).astype(np.int32)
    start = month.day(admission.u)
    log.add(
        EventKind.EMERGENCY_ADMISSION,
        admitted,
        start,
        end=start + length,
        value=length,
        code=admission.codes,
        code_system=ICD10,
    )
    via_ae = rng.random(len(admitted)) < ADMITTED_VIA_AE
    log.add(EventKind.AE_ATTENDANCE, admitted[via_ae], start[via_ae], code="admitted")

    person, u = month.poisson(ae_discharged_yearly_rate(state, people, month.present))
    log.add(EventKind.AE_ATTENDANCE, person, month.day(u), code="discharged")

    reable = (state.log_frailty[admitted] > REABLEMENT_MIN_LOG_FRAILTY) & (
        rng.random(len(admitted)) < REABLEMENT_CHANCE
    )
    frail, discharge = admitted[reable], (start + length)[reable]
    mean, sd, low, high = REABLEMENT_HOURS
    hours = np.clip(np.rint(rng.normal(mean, sd, len(frail))), low, high)
    log.add(EventKind.SOCIAL_CARE_ASSESSMENT, frail, discharge, code="reablement_referral")
    log.add(
        EventKind.SOCIAL_CARE_PACKAGE,
        frail,
        discharge,
        end=discharge + REABLEMENT_LAST_DAY,
        code="reablement",
        value=hours,
        cost=hours * REABLEMENT_HOURLY_COST,
    )


def planned_care(month: Month, state: State, people: People) -> None:
    idx, rng = month.present, month.rng
    age, n_conditions = state.age[idx], state.has[idx].sum(axis=1)
    cancer = state.has[idx, CANCER]
    elective = 0.09 * np.exp(0.15 * n_conditions + 0.9 * cancer + 0.02 * np.maximum(age - 50, 0))
    person, u = month.poisson(elective)
    start = month.day(u)
    stay = np.where(rng.random(len(person)) < 0.7, 0, rng.integers(1, 8, len(person)))
    month.log.add(
        EventKind.ELECTIVE_ADMISSION, person, start, end=start + stay, value=stay, code="elective"
    )

    outpatient = 1.55 * np.exp(0.2 * n_conditions + 0.8 * cancer + 0.01 * np.maximum(age - 40, 0))
    person, u = month.poisson(outpatient)
    missed = 0.05 * np.exp(
        0.35 * (5.5 - people.deprivation[person]) / 4.5
        + 0.4 * _crisis(state, people, person, 1.0)
        + 0.3 * ((state.age[person] >= 18) & (state.age[person] < 35))
    )
    dna = rng.random(len(person)) < np.minimum(missed, 0.5)
    codes = np.where(dna, month.log.code("dna"), month.log.code("attended"))
    month.log.add(EventKind.OUTPATIENT, person, month.day(u), code=codes)


def community_and_mental_health(month: Month, state: State, people: People) -> None:
    idx, rng, log = month.present, month.rng, month.log
    frail = 1 / (1 + np.exp(-2.5 * (state.log_frailty[idx] - 0.3)))
    community = (
        0.08 + 5.0 * frail + 3.0 * state.care_home[idx] + 4.0 * (state.instability[idx] > 0.5)
    )
    person, u = month.poisson(community)
    therapy = rng.random(len(person)) < 0.35
    codes = np.where(therapy, log.code("therapy"), log.code("district_nursing"))
    log.add(EventKind.COMMUNITY_CONTACT, person, month.day(u), code=codes)

    mental = mental_ill_health(state, people)[idx]
    smi = state.has[idx, SMI]
    secondary = 6 * (1.2 * np.maximum(mental - 1.8, 0.0) + 0.25 * smi)
    person, u = month.poisson(secondary)
    crisis = mental_ill_health(state, people)[person] > 2.8
    codes = np.where(crisis, log.code("crisis"), log.code("community_team"))
    log.add(EventKind.MENTAL_HEALTH_CONTACT, person, month.day(u), code=codes)
    therapy_rate = 0.6 * (
        (mental > MENTAL_HEALTH_CONTACTS_ABOVE) & (mental <= 1.8) & (state.age[idx] >= 16)
    )
    person, u = month.poisson(therapy_rate)
    log.add(EventKind.MENTAL_HEALTH_CONTACT, person, month.day(u), code="talking_therapy")


def coordination_and_prescribing(month: Month, state: State, people: People) -> None:
    idx = month.present
    lonely = np.maximum(loneliness(state, people)[idx] - LONELY_ABOVE, 0.0)
    frail = 1 / (1 + np.exp(-2.0 * (state.log_frailty[idx] - 0.2)))
    calls = (
        0.03
        + 1.1 * frail
        + 0.5 * state.package[idx]
        + 0.8 * state.has[idx, DEMENTIA]
        + 0.3 * lonely
    )
    person, u = month.poisson(calls)
    month.log.add(EventKind.CARE_COORDINATION_CALL, person, month.day(u), code="call")

    adult = state.age[idx] >= 18
    referral = (
        adult
        * 0.011
        * np.exp(
            1.1 * lonely
            + 0.6 * _crisis(state, people, idx, 1.0)
            + 0.3 * (5.5 - people.deprivation[idx]) / 4.5
        )
    )
    person, u = month.poisson(referral)
    month.log.add(EventKind.SOCIAL_PRESCRIBING_REFERRAL, person, month.day(u), code="link_worker")


def prescriptions(month: Month, state: State, records: Records) -> None:
    """Repeat medicines every 12 weeks for each class a person is on; acute courses."""
    idx, rng, log = month.present, month.rng, month.log
    due = idx[(idx + month.index) % 3 == 0]
    person, drug = np.nonzero(records.on_drug[due])
    person, u = due[person], rng.random(len(person))
    alive = u < month.death_time[person]
    person, drug, u = person[alive], drug[alive], u[alive]
    start = month.day(u)
    log.add(
        EventKind.PRESCRIPTION,
        person,
        start,
        end=start + 84,
        value=3.0,
        code=np.array([log.code(d) for d in DRUG_CLASSES], np.int16)[drug],
    )
    load = np.exp(0.15 * state.has[idx].sum(axis=1) + 0.3 * _frailty_load(state, idx))
    for drug_class, yearly in ACUTE_DRUGS:
        person, u = month.poisson(yearly * load)
        start = month.day(u)
        log.add(EventKind.PRESCRIPTION, person, start, end=start + 7, value=1.0, code=drug_class)


def diagnoses(month: Month, state: State, records: Records) -> None:
    """Conditions recorded this month (after a lag); medicines that follow a diagnosis."""
    rng, log = month.rng, month.log
    person, condition = np.nonzero(records.diagnosis_due[month.present] == month.index)
    person = month.present[person]
    person, condition, u = _before_death(month, person, condition)
    log.add(
        EventKind.LTC_DIAGNOSIS,
        person,
        month.day(u),
        code=np.array([log.code(c.code) for c in CONDITIONS], np.int16)[condition],
    )
    start_drugs(records, person, condition, rng)
    idx = month.present
    noticed = idx[
        (state.log_frailty[idx] > FRAILTY_CODED_ABOVE)
        & ~records.frailty_coded[idx]
        & (rng.random(len(idx)) < 0.08)
    ]
    noticed, u = month.once(noticed)
    records.frailty_coded[noticed] = True
    log.add(EventKind.LTC_DIAGNOSIS, noticed, month.day(u), code="frailty")


def _before_death(
    month: Month, person: np.ndarray, other: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    u = month.rng.random(len(person))
    alive = u < month.death_time[person]
    return person[alive], other[alive], u[alive]


def start_drugs(
    records: Records, person: np.ndarray, condition: np.ndarray, rng: np.random.Generator
) -> None:
    for c, drugs in enumerate(CONDITION_DRUGS):
        who = person[condition == c]
        for drug, p in drugs:
            records.on_drug[who[rng.random(len(who)) < p], drug] = True


def transitions(
    month: Month,
    state: State,
    people: People,
    constants: Constants,
    changes: Transitions,
    records: Records,
    package_ratio: np.ndarray | float = 1.0,
) -> None:
    """Events that record a change of state: new diagnoses queued, bereavement, care;
    ``package_ratio`` multiplies the hours of each person's new home-care package."""
    rng, log, idx = month.rng, month.log, month.present
    person, condition = np.nonzero(changes.new_condition[idx])
    person = idx[person]
    recorded = rng.random(len(person)) < 0.85
    lag = rng.geometric(1 / 3, len(person))
    records.diagnosis_due[person[recorded], condition[recorded]] = month.index + lag[recorded]

    for flag, code, p in (
        (changes.bereaved, "bereavement", 0.35),
        (changes.started_living_alone, "lives_alone", 0.4),
    ):
        who, u = month.once(idx[flag[idx] & (rng.random(len(idx)) < p)])
        log.add(EventKind.SOCIAL_CIRCUMSTANCE, who, month.day(u), code=code)

    needs = care_needs(state, people)
    starts, u = month.once(idx[changes.package_started[idx]])
    day = month.day(u)
    sd, low, high = PACKAGE_HOURS
    hours = (
        np.clip(
            np.rint(
                package_hours_centre(needs[starts], constants) + rng.normal(0, sd, len(starts))
            ),
            low,
            high,
        )
        * np.broadcast_to(package_ratio, (len(state.age),))[starts]
    )
    log.add(
        EventKind.SOCIAL_CARE_ASSESSMENT,
        starts,
        np.maximum(day - 14, month.first_day),
        code="eligible_needs",
    )
    carer = rng.random(len(starts)) < 0.4
    log.add(EventKind.SOCIAL_CIRCUMSTANCE, starts[carer], day[carer], code="has_carer")
    records.package_start[starts], records.package_hours[starts] = day, hours

    ended, u = month.once(idx[changes.package_ended[idx] & (records.package_start[idx] >= 0)])
    close_packages(log, records, ended, month.day(u))

    near = idx[
        ~state.package[idx]
        & (needs[idx] > constants.package_threshold - 0.5)
        & (rng.random(len(idx)) < 0.015)
    ]
    near, u = month.once(near)
    log.add(EventKind.SOCIAL_CARE_ASSESSMENT, near, month.day(u), code="no_eligible_needs")

    homes, u = month.once(idx[changes.entered_care_home[idx]])
    log.add(
        EventKind.CARE_HOME_ADMISSION,
        homes,
        month.day(u),
        code="permanent",
        cost=CARE_HOME_WEEKLY_COST,
    )


def package_hours_centre(needs: np.ndarray, constants: Constants) -> np.ndarray:
    """Weekly home-care hours of a package starting at care needs ``needs``, before noise."""
    return 6 + 8 * (needs - constants.package_threshold)


def close_packages(
    log: EventLog, records: Records, person: np.ndarray, end: np.ndarray | None
) -> None:
    """Write the package episodes of ``person``, ending on ``end`` (None: still open)."""
    start = records.package_start[person]
    hours = records.package_hours[person]
    log.add(
        EventKind.SOCIAL_CARE_PACKAGE,
        person,
        start,
        end=end,
        code="home_care",
        value=hours,
        cost=hours * HOME_CARE_HOURLY_COST,
    )
    records.package_start[person] = -1
