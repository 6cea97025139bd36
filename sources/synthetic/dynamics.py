"""The hidden state of each person, how it drifts month by month, and the hazards it sets.

Nothing here is ever written out. Emergency admission and death are the only events that
feed back into the state (an admission raises frailty and a short-lived instability), so the
exact probability of no admission in a horizon is the product of monthly survival along the
no-admission path, averaged over sampled paths of the slow drift (see ``truth``).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from riskstrat.sources.synthetic.conditions import CONDITIONS
from riskstrat.sources.synthetic.population import People

N_CONDITIONS = len(CONDITIONS)
_IDX = {c.code: i for i, c in enumerate(CONDITIONS)}
HF, CKD, DEMENTIA, LD, CANCER, SMI = (
    _IDX[c]
    for c in (
        "heart_failure",
        "ckd",
        "dementia",
        "learning_disability",
        "cancer",
        "serious_mental_illness",
    )
)
_CHILDHOOD = np.array([c.code in {"asthma", "epilepsy", "learning_disability"} for c in CONDITIONS])
_AGE_SLOPE = np.array([c.age_slope for c in CONDITIONS])
_AGE_SLOPE_32 = _AGE_SLOPE.astype(np.float32)
_MENTAL = np.array([c.mental for c in CONDITIONS])
_FRAILTY = np.array([c.frailty for c in CONDITIONS])
_LOG_FEMALE = np.log([c.female_odds for c in CONDITIONS])
_ADMISSION = np.array([c.admission for c in CONDITIONS])
_DEATH = np.array([c.death for c in CONDITIONS])

ADMISSION_BASE = -6.65
DEATH_BASE = -6.25
MAX_ADMISSIONS_PER_MONTH = 0.25
CARE_HOME_MONTHLY_CHANCE = 0.05  # of a permanent move for people whose needs pass the threshold
FRAILTY_CODED_ABOVE = 0.3  # log-frailty above which a practice may code frailty
LONELY_ABOVE = 0.5  # loneliness above which it raises the admission hazard and GP use
MENTAL_HEALTH_CONTACTS_ABOVE = 0.8  # mental ill-health above which services see the person


@dataclass(frozen=True, slots=True)
class Constants:
    """Per-population constants fixed at the start: the care-needs thresholds."""

    package_threshold: float
    care_home_threshold: float


@dataclass(frozen=True, slots=True)
class State:
    """Hidden state on the first day of a month, one element (or row) per person."""

    age: np.ndarray
    log_frailty: np.ndarray
    has: np.ndarray  # bool, person x condition
    mental: np.ndarray  # short-run deviation of mental ill-health from the person's level
    lonely: np.ndarray  # short-run deviation of loneliness
    lives_alone: np.ndarray
    package: np.ndarray
    care_home: np.ndarray
    instability: np.ndarray  # decaying trace of recent emergency admissions
    condition_propensity: np.ndarray  # float32 person x condition: the log-odds not due to age


@dataclass(frozen=True, slots=True)
class Transitions:
    """What changed in one month, for the observable events that follow."""

    new_condition: np.ndarray  # bool, person x condition
    bereaved: np.ndarray
    started_living_alone: np.ndarray
    package_started: np.ndarray
    package_ended: np.ndarray
    entered_care_home: np.ndarray


def weighted(has: np.ndarray, weights: np.ndarray, rows: int = 65_536) -> np.ndarray:
    """``has @ weights`` (person x condition flags times a weight per condition), ``rows``
    people at a time: the product casts the flags to float64, a copy eight times their size."""
    out = np.empty(len(has))
    for first in range(0, len(has), rows):
        out[first : first + rows] = has[first : first + rows] @ weights
    return out


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _softplus(x: np.ndarray) -> np.ndarray:
    return np.logaddexp(0.0, x)


def _deprived(people: People) -> np.ndarray:
    return (5.5 - people.deprivation) / 4.5


def condition_propensity(people: People) -> np.ndarray:
    """Each person's log-odds of each condition that does not change with age."""
    return (
        _MENTAL[None, :] * people.mood[:, None]
        + 0.5 * _FRAILTY[None, :] * people.health[:, None]
        + _LOG_FEMALE[None, :] * people.female[:, None]
        + 0.2 * _deprived(people)[:, None]
    )


def condition_logit(propensity: np.ndarray, age: np.ndarray) -> np.ndarray:
    """Log-odds of having each condition at ``age``, given the person's propensity."""
    adult = (age >= 18)[:, None] | _CHILDHOOD[None, :]
    years = (age[:, None].astype(np.float32) - np.float32(55.0)) / np.float32(10.0)
    return propensity + _AGE_SLOPE_32[None, :] * years - np.float32(4.0) * ~adult


def _solve_intercepts(base: np.ndarray, adult: np.ndarray) -> np.ndarray:
    """Intercepts that make each condition's adult prevalence match its target."""
    target = np.array([c.prevalence for c in CONDITIONS])
    low, high = np.full(N_CONDITIONS, -20.0), np.full(N_CONDITIONS, 10.0)
    for _ in range(40):
        mid = (low + high) / 2
        prevalence = _sigmoid(base[adult] + mid).mean(axis=0)
        low, high = (
            np.where(prevalence < target, mid, low),
            np.where(prevalence < target, high, mid),
        )
    return (low + high) / 2


def care_needs(state: State, people: People) -> np.ndarray:
    """A hidden care-needs score; packages and care homes follow its thresholds."""
    return (
        state.log_frailty
        + 1.0 * state.has[:, DEMENTIA]
        + 0.5 * state.has[:, LD]
        + 0.35 * state.lives_alone
        + people.care_noise
    )


def initial_state(people: People, rng: np.random.Generator) -> tuple[State, Constants]:
    """Everyone's state on the start date, drawn to match the guide's prevalences."""
    n, age = people.size, people.age0.copy()
    propensity = condition_propensity(people)
    intercept = _solve_intercepts(condition_logit(propensity, age), age >= 18)
    propensity = (propensity + intercept).astype(np.float32)
    has = rng.random((n, N_CONDITIONS)) < _sigmoid(condition_logit(propensity, age))
    log_frailty = _log_frailty(age, people, has) + rng.normal(0, 0.2, n)
    lives_alone = (age >= 18) & (rng.random(n) < _sigmoid(-1.8 + 0.035 * np.maximum(age - 40, 0)))
    state = State(
        age=age,
        log_frailty=log_frailty,
        has=has,
        mental=rng.normal(0, 0.85, n),
        lonely=rng.normal(0, 0.6, n),
        lives_alone=lives_alone,
        package=np.zeros(n, bool),
        care_home=np.zeros(n, bool),
        instability=np.zeros(n),
        condition_propensity=propensity,
    )
    needs = care_needs(state, people)
    package_threshold = float(np.quantile(needs, 0.975))
    care_home_threshold = float(np.quantile(needs, 0.99))
    in_home = needs > care_home_threshold
    state = replace(state, care_home=in_home, package=(needs > package_threshold) & ~in_home)
    return state, Constants(package_threshold, care_home_threshold)


def _log_frailty(age: np.ndarray, people: People, has: np.ndarray) -> np.ndarray:
    return 0.07 * (age - 80.0) + 0.7 * people.health + 0.25 * weighted(has, _FRAILTY)


def mental_ill_health(state: State, people: People) -> np.ndarray:
    return people.mood + state.mental


def loneliness(state: State, people: People) -> np.ndarray:
    return 0.5 * people.sociability + 0.9 * state.lives_alone + state.lonely


def admission_log_hazard(state: State, people: People, calendar_month: int) -> np.ndarray:
    """Monthly log-hazard of an emergency admission: non-linear, interacting, seasonal.

    The linear predictor is capped smoothly at ``MAX_ADMISSIONS_PER_MONTH`` (a harmonic
    cap): the sickest people are admitted a few times a year, not hundreds.
    """
    mental_crisis = np.maximum(mental_ill_health(state, people) - 1.5, 0.0)
    isolation = np.maximum(loneliness(state, people) - LONELY_ABOVE, 0.0)
    has = state.has
    n_conditions = has.sum(axis=1)
    unmet_need = has[:, DEMENTIA] & state.lives_alone & ~state.package & ~state.care_home
    linear = (
        ADMISSION_BASE
        + 1.4 * _softplus(state.log_frailty + 1.0)
        + 1.4 * weighted(has, _ADMISSION)
        + 0.3 * np.maximum(n_conditions - 2, 0)
        + 0.4 * (has[:, HF] & has[:, CKD])
        + mental_crisis * (0.8 + 0.5 * (state.age < 35))
        + 0.6 * isolation * _sigmoid(2.0 * (state.log_frailty + 0.5))
        + 0.7 * unmet_need
        + 0.3 * state.care_home
        - 0.8 * np.expm1(-state.instability)
        + 0.3 * _deprived(people)
        + 0.9 * (state.age < 2)
        + 0.4 * (state.age < 5)
        + 0.18 * np.cos(2 * np.pi * (calendar_month - 0.5) / 12)
    )
    return -np.logaddexp(-linear, -np.log(MAX_ADMISSIONS_PER_MONTH))


def death_log_hazard(state: State) -> np.ndarray:
    """Monthly log-hazard of death."""
    residual_frailty = state.log_frailty - 0.07 * (state.age - 80.0)
    return (
        DEATH_BASE
        + 0.1 * (state.age - 80.0)
        + 0.35 * residual_frailty
        + weighted(state.has, _DEATH)
        - 0.4 * np.expm1(-state.instability)
        + 0.3 * state.care_home
    )


def advance(
    state: State,
    people: People,
    constants: Constants,
    admissions: np.ndarray,
    rng: np.random.Generator,
    care_home_ratio: np.ndarray | float = 1.0,
) -> tuple[State, Transitions]:
    """The state one month later, given each person's emergency admissions this month;
    ``care_home_ratio`` multiplies each person's chance of moving into a care home."""
    n = len(state.age)
    age = state.age + 1.0 / 12.0
    chance = rng.random((n, N_CONDITIONS), dtype=np.float32)
    new_condition = _new_conditions(state, age, chance)
    has = state.has | new_condition
    log_frailty = np.clip(
        state.log_frailty
        + 0.07 / 12.0
        + 0.25 * weighted(new_condition, _FRAILTY)
        + 0.08 * admissions
        + rng.normal(0, 0.035, n),
        -8.0,
        2.5,
    )
    bereavement_rate = 0.02 / 12.0 * np.exp(0.05 * (age - 70.0))
    bereaved = (age >= 18) & (rng.random(n) < np.minimum(bereavement_rate, 0.02))
    started_alone = bereaved & ~state.lives_alone & (rng.random(n) < 0.6)
    lonely = 0.9 * state.lonely + rng.normal(0, 0.26, n) + 1.2 * bereaved
    moved = replace(
        state,
        age=age,
        log_frailty=log_frailty,
        has=has,
        mental=0.85 * state.mental + rng.normal(0, 0.45, n) + 0.6 * bereaved,
        lonely=lonely,
        lives_alone=state.lives_alone | started_alone,
        instability=0.55 * state.instability + admissions,
    )
    needs = care_needs(moved, people)
    enters_home = (
        ~state.care_home
        & (needs > constants.care_home_threshold)
        & (rng.random(n) < CARE_HOME_MONTHLY_CHANCE * care_home_ratio)
    )
    starts = (
        ~state.package
        & ~state.care_home
        & ~enters_home
        & (needs > constants.package_threshold)
        & (rng.random(n) < 0.05)
    )
    recovers = state.package & (needs < constants.package_threshold - 0.3) & (rng.random(n) < 0.03)
    ends = state.package & (enters_home | recovers)
    moved = replace(
        moved,
        package=(state.package & ~ends) | starts,
        care_home=state.care_home | enters_home,
    )
    return moved, Transitions(new_condition, bereaved, started_alone, starts, ends, enters_home)


def _new_conditions(
    state: State, age: np.ndarray, chance: np.ndarray, rows: int = 65_536
) -> np.ndarray:
    """Who acquires each condition this month (``chance``: uniform draws, person x
    condition), worked out ``rows`` people at a time: the same answer as all at once, in a
    fraction of the memory (the truth runs four paths of everyone together)."""
    slope = ((np.maximum(_AGE_SLOPE, 0.0) / 10.0 + 0.02) / 12.0).astype(np.float32)
    new = np.empty(chance.shape, bool)
    for first in range(0, len(age), rows):
        part = slice(first, first + rows)
        logit = condition_logit(state.condition_propensity[part], age[part])
        new[part] = ~state.has[part] & (chance[part] < slope * _sigmoid(logit))
    return new


def monthly_leaving_rate(yearly_rate: float, age: np.ndarray) -> np.ndarray:
    """Each person's chance of leaving the practice lists this month (young adults move most)."""
    return yearly_rate * np.where((age >= 18) & (age < 40), 2.0, 0.6) / 12.0


def take(state: State, index: np.ndarray) -> State:
    """The state of a subset (or a repeat) of people."""
    return State(*(getattr(state, f)[index] for f in State.__slots__))
