"""Long-term conditions of the synthetic borough and the medicines that follow a diagnosis.

Which conditions exist and their codes are the features' (``features.catalogue.CONDITIONS``):
the generator only gives each of them its parameters. Prevalence targets are the adult figures
in the design guide; the age slope is the change in log-odds per decade of age; ``admission``
and ``death`` are log-hazard weights; ``mental`` and ``frailty`` tie the condition to those
hidden states.
"""

from __future__ import annotations

from dataclasses import dataclass

from riskstrat.features.catalogue import CONDITIONS as CATALOGUE


@dataclass(frozen=True, slots=True)
class Condition:
    code: str  # a key of features.catalogue.CONDITIONS
    prevalence: float
    age_slope: float
    admission: float
    death: float = 0.0
    mental: float = 0.0
    frailty: float = 0.3
    female_odds: float = 1.0
    drugs: tuple[tuple[str, float], ...] = ()

    def __post_init__(self) -> None:
        if self.code not in CATALOGUE:
            raise ValueError(
                f"condition {self.code!r} is not in features.catalogue.CONDITIONS: add it "
                "there first, so that the features see it"
            )


CONDITIONS: tuple[Condition, ...] = (
    Condition("hypertension", 0.14, 0.75, 0.05, drugs=(("antihypertensive", 0.85),)),
    Condition(
        "depression", 0.13, 0.0, 0.10, mental=0.9, female_odds=1.6, drugs=(("antidepressant", 0.7),)
    ),
    Condition(
        "anxiety",
        0.08,
        -0.05,
        0.05,
        mental=0.8,
        female_odds=1.7,
        drugs=(("antidepressant", 0.4), ("benzodiazepine", 0.15)),
    ),
    Condition(
        "diabetes",
        0.075,
        0.45,
        0.20,
        0.1,
        drugs=(("antidiabetic", 0.85), ("insulin", 0.2), ("statin", 0.6)),
    ),
    Condition("asthma", 0.065, -0.1, 0.25, drugs=(("inhaled_corticosteroid", 0.8),)),
    Condition("ckd", 0.04, 1.0, 0.25, 0.2),
    Condition("cancer", 0.035, 0.8, 0.40, 1.1, drugs=(("opioid", 0.3),)),
    Condition(
        "chd",
        0.03,
        0.9,
        0.25,
        0.2,
        female_odds=0.5,
        drugs=(("statin", 0.85), ("antiplatelet", 0.75)),
    ),
    Condition("atrial_fibrillation", 0.02, 1.2, 0.25, 0.2, drugs=(("anticoagulant", 0.8),)),
    Condition(
        "copd",
        0.02,
        0.9,
        0.70,
        0.5,
        frailty=0.6,
        drugs=(("inhaled_corticosteroid", 0.7), ("bronchodilator", 0.9)),
    ),
    Condition(
        "stroke_tia",
        0.02,
        1.1,
        0.30,
        0.3,
        frailty=0.6,
        drugs=(("antiplatelet", 0.7), ("statin", 0.8)),
    ),
    Condition(
        "heart_failure",
        0.01,
        1.3,
        0.75,
        0.7,
        frailty=0.7,
        drugs=(("diuretic", 0.9), ("antihypertensive", 0.7)),
    ),
    Condition(
        "serious_mental_illness",
        0.01,
        -0.1,
        0.45,
        0.3,
        mental=1.3,
        drugs=(("antipsychotic", 0.85),),
    ),
    Condition("epilepsy", 0.008, 0.0, 0.45, 0.2, drugs=(("antiepileptic", 0.9),)),
    Condition(
        "dementia",
        0.007,
        1.9,
        0.45,
        0.6,
        frailty=1.0,
        drugs=(("antidementia", 0.6), ("antipsychotic", 0.1)),
    ),
    Condition("learning_disability", 0.005, -0.2, 0.40, 0.3, frailty=0.4),
    Condition("parkinsons", 0.003, 1.6, 0.35, 0.3, frailty=0.8, drugs=(("dopaminergic", 0.9),)),
    Condition("rheumatoid_arthritis", 0.01, 0.5, 0.10, female_odds=2.5, drugs=(("dmard", 0.8),)),
    Condition(
        "osteoporosis",
        0.03,
        1.3,
        0.10,
        female_odds=4.0,
        frailty=0.6,
        drugs=(("bisphosphonate", 0.7),),
    ),
    Condition("falls", 0.02, 1.4, 0.35, 0.1, frailty=1.2),
)

CONDITION_CODES: tuple[str, ...] = tuple(c.code for c in CONDITIONS)
# Acute medicines issued as short courses, with yearly courses per person at mean risk.
ACUTE_DRUGS: tuple[tuple[str, float], ...] = (
    ("antibiotic", 0.9),
    ("opioid", 0.15),
    ("benzodiazepine", 0.05),
    ("nsaid", 0.25),
)
DRUG_CLASSES: tuple[str, ...] = tuple(
    sorted({d for c in CONDITIONS for d, _ in c.drugs} | {d for d, _ in ACUTE_DRUGS})
)
