"""The primary diagnosis (ICD-10) of each emergency admission, drawn from the person's state.

Each cause has a weight that depends on the person's conditions, age, frailty and mental
health; an admission's cause is drawn in proportion to the weights. Which causes are
potentially avoidable (ambulatory-care-sensitive) is decided by ``features.avoidable``, the
list the evaluation counts with, never here. The weights are set so that about a fifth of
emergency admissions are potentially avoidable, more among older and multimorbid people, as
in England.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from riskstrat.features.avoidable import is_potentially_avoidable
from riskstrat.sources.synthetic.conditions import CONDITIONS
from riskstrat.sources.synthetic.dynamics import State, mental_ill_health
from riskstrat.sources.synthetic.population import People

_IDX = {c.code: i for i, c in enumerate(CONDITIONS)}


@dataclass(frozen=True, slots=True)
class Terms:
    """What the causes' weights are made of, worked out once per state."""

    state: State
    people: People
    frail: np.ndarray  # 0 for the fit, about 1 at the frailty coding threshold, rising after
    old: np.ndarray
    crisis: np.ndarray
    child: np.ndarray

    @classmethod
    def of(cls, s: State, p: People) -> Terms:
        return cls(
            state=s,
            people=p,
            frail=np.logaddexp(0.0, 1.5 * (s.log_frailty - 0.3)) / np.log(2.0),
            old=np.clip((s.age - 40.0) / 40.0, 0.0, 1.5),
            crisis=np.maximum(mental_ill_health(s, p) - 1.5, 0.0),
            child=(s.age < 16).astype(float),
        )


Weight = Callable[[Terms], np.ndarray]


def _has(condition: str, weight: float) -> Weight:
    return lambda t: weight * t.state.has[:, _IDX[condition]]


@dataclass(frozen=True, slots=True)
class Cause:
    code: str  # ICD-10 without the dot
    weight: Weight


CAUSES: tuple[Cause, ...] = (
    # Chronic ambulatory-care-sensitive conditions: an exacerbation of a known condition.
    Cause("J441", _has("copd", 0.6)),
    Cause("J440", _has("copd", 0.2)),
    Cause("I500", _has("heart_failure", 0.7)),
    Cause("E119", _has("diabetes", 0.12)),
    Cause("E116", _has("diabetes", 0.08)),
    Cause("J459", _has("asthma", 0.35)),
    Cause("F03X", _has("dementia", 0.15)),
    Cause("G409", _has("epilepsy", 0.6)),
    Cause("I489", _has("atrial_fibrillation", 0.2)),
    Cause("I209", _has("chd", 0.25)),
    Cause("I10X", _has("hypertension", 0.02)),
    # Acute ambulatory-care-sensitive conditions, commoner among the old and frail.
    Cause("N390", lambda t: 0.015 + 0.02 * t.old + 0.025 * t.frail),
    Cause("L031", lambda t: 0.02 + 0.01 * t.old + 0.01 * t.frail),
    Cause("J181", lambda t: 0.005 + 0.01 * t.old + 0.015 * t.frail),
    Cause("J188", lambda t: 0.005 + 0.01 * t.old + 0.01 * t.frail),
    Cause("E86X", lambda t: 0.005 + 0.01 * t.old + 0.02 * t.frail),
    Cause("J069", lambda t: 0.01 + 0.06 * t.child),
    # Not avoidable by better primary and community care.
    Cause("R074", lambda t: 0.16 + 0.06 * t.old),
    Cause("R104", lambda t: 0.20),
    Cause("K358", lambda t: 0.04 + 0.06 * ((t.state.age >= 5) & (t.state.age < 35))),
    Cause("K802", lambda t: 0.06 * (t.state.age >= 18)),
    Cause("S720", lambda t: 0.01 + 0.06 * t.frail + 0.25 * t.state.has[:, _IDX["falls"]]),
    Cause("S069", lambda t: 0.05 + 0.03 * t.frail),
    Cause("S525", lambda t: 0.04),
    Cause("R55X", lambda t: 0.04 + 0.04 * t.old),
    Cause("R296", lambda t: 0.01 + 0.05 * t.frail),
    Cause("R410", lambda t: 0.01 + 0.03 * t.frail),
    Cause("I214", lambda t: 0.02 * t.old + 0.25 * t.state.has[:, _IDX["chd"]]),
    Cause("I639", lambda t: 0.015 * t.old + 0.25 * t.state.has[:, _IDX["stroke_tia"]]),
    Cause("A419", lambda t: 0.02 + 0.05 * t.frail),
    Cause("C809", _has("cancer", 0.6)),
    Cause("K922", lambda t: 0.03 + 0.02 * t.old),
    Cause("F209", lambda t: 0.6 * t.state.has[:, _IDX["serious_mental_illness"]] * t.crisis),
    Cause("F329", lambda t: 0.15 * t.crisis),
    Cause("T391", lambda t: 0.25 * t.crisis * (t.state.age < 35)),
    Cause("J219", lambda t: 0.35 * (t.state.age < 2)),
    Cause("R509", lambda t: 0.04 + 0.25 * (t.state.age < 5)),
    Cause("O200", lambda t: 0.06 * t.people.female * (t.state.age >= 18) * (t.state.age < 42)),
)
CODES: tuple[str, ...] = tuple(c.code for c in CAUSES)
AVOIDABLE = np.array([is_potentially_avoidable(code) for code in CODES])


def cause_weights(state: State, people: People) -> np.ndarray:
    """Unnormalised weights, one row per person of ``state`` and one column per cause."""
    n, terms = len(state.age), Terms.of(state, people)
    return np.column_stack([np.broadcast_to(c.weight(terms), (n,)) for c in CAUSES])


def avoidable_share(state: State, people: People) -> np.ndarray:
    """Each person's probability that an emergency admission now is potentially avoidable."""
    weights = cause_weights(state, people)
    return weights[:, AVOIDABLE].sum(axis=1) / weights.sum(axis=1)


def hazard_ratio(share: np.ndarray, avoidable_hr: np.ndarray) -> np.ndarray:
    """What multiplies the whole admission hazard when the hazard of potentially avoidable
    admissions is multiplied by ``avoidable_hr`` and the others are left alone, for people
    whose avoidable ``share`` (``avoidable_share``) is as given: exactly 1 where the ratio
    is 1."""
    return 1.0 - share * (1.0 - avoidable_hr)


def treated_avoidable_share(share: np.ndarray, avoidable_hr: np.ndarray) -> np.ndarray:
    """The share of admissions that are potentially avoidable once their hazard is
    multiplied by ``avoidable_hr`` (``share`` itself where the ratio is 1)."""
    return share * avoidable_hr / hazard_ratio(share, avoidable_hr)


def draw_causes(
    state: State,
    people: People,
    rng: np.random.Generator,
    avoidable_hr: np.ndarray | None = None,
) -> np.ndarray:
    """Index into ``CODES`` of one cause per row of ``state`` (an admission each), the
    potentially avoidable causes' weights multiplied by ``avoidable_hr`` (per row; None: by
    1), the ratio of an action lowering their hazard."""
    weights = cause_weights(state, people)
    if avoidable_hr is not None:
        weights[:, AVOIDABLE] *= avoidable_hr[:, None]
    weights = np.cumsum(weights, axis=1)
    u = rng.random(len(weights)) * weights[:, -1]
    return (weights < u[:, None]).sum(axis=1)
