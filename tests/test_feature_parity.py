"""Parity: on a few hundred synthetic people, every feature equals a slow, obvious reference.

The reference below is plain Python over each person's list of events, written from the
definitions' documented meaning (not from the SQL), so it checks the engine's windows,
joins, null handling and defaults together.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date

import numpy as np
import pandas as pd
import pytest

from riskstrat.contract.schema import ETHNICITY_GROUPS, SEXES
from riskstrat.contract.tables import ContractTables
from riskstrat.features.catalogue import (
    DERIVED,
    FAMILIES,
    FRAILTY_DEFICITS,
    LIST_CONTEXT,
    POLYPHARMACY_CLASSES,
)
from riskstrat.features.definitions import (
    ActiveFlag,
    ActiveValue,
    Count,
    DaysInStay,
    DaysSince,
    DaysSinceEnd,
    Definition,
    DistinctCodes,
    Flag,
    Trend,
    YearsSinceFirst,
)
from riskstrat.features.engine import build_features
from riskstrat.sources.synthetic.borough import generate
from riskstrat.sources.synthetic.config import SynthConfig

AS_OF = (date(2023, 3, 1), date(2025, 1, 1))


def _days(as_of: date, when: pd.Timestamp) -> int:
    return (pd.Timestamp(as_of) - when).days


def reference_value(
    definition: Definition, events: list[dict], as_of: date, lookback: int | None
) -> float:
    history = [e for e in events if e["start"] < pd.Timestamp(as_of)]
    if lookback is not None:
        history = [e for e in history if _days(as_of, e["start"]) <= lookback]
    chosen = [
        e
        for e in history
        if e["kind"] in definition.kinds and (not definition.codes or e["code"] in definition.codes)
    ]
    within = [
        e for e in chosen if definition.days is None or _days(as_of, e["start"]) <= definition.days
    ]
    running = [e for e in within if pd.isna(e["end"]) or e["end"] >= pd.Timestamp(as_of)]
    match definition:
        case Trend():
            recent = sum(_days(as_of, e["start"]) <= definition.recent_days for e in chosen)
            earlier = sum(
                definition.recent_days < _days(as_of, e["start"]) <= definition.days for e in chosen
            )
            return recent * 365 / definition.recent_days - earlier * 365 / (
                definition.days - definition.recent_days
            )
        case Count():
            return float(len(within))
        case Flag():
            return float(bool(within))
        case DistinctCodes():
            return float(len({e["code"] for e in within if e["code"] is not None}))
        case DaysInStay():
            end = pd.Timestamp(as_of)
            return float(
                sum(
                    ((end if pd.isna(e["end"]) else min(e["end"], end)) - e["start"]).days
                    for e in within
                )
            )
        case DaysSince():
            return min([_days(as_of, e["start"]) for e in within], default=definition.default)
        case DaysSinceEnd():
            ended = [_days(as_of, e["end"]) for e in within if not any(e is r for r in running)]
            return min(ended, default=definition.default)
        case YearsSinceFirst():
            return max([_days(as_of, e["start"]) for e in within], default=0) / 365.25
        case ActiveValue():
            values = [e[definition.column] for e in running if not pd.isna(e[definition.column])]
            return float(sum(values)) if values else definition.default
        case ActiveFlag():
            return float(bool(running))
    raise AssertionError(f"no reference for {type(definition).__name__}")


def reference_features(patients: pd.DataFrame, events: pd.DataFrame) -> pd.DataFrame:
    by_person: dict[str, list[dict]] = defaultdict(list)
    for record in events.to_dict("records"):
        by_person[record["patient_id"]].append(record)
    rows = {}
    for as_of in AS_OF:
        stamp = pd.Timestamp(as_of)
        for p in patients.to_dict("records"):
            registered = p["registration_start"] <= stamp and (
                pd.isna(p["registration_end"]) or p["registration_end"] >= stamp
            )
            alive = pd.isna(p["death_date"]) or p["death_date"] >= stamp
            if not (registered and alive and p["birth_month"] <= stamp):
                continue
            row = {
                "age": (stamp - p["birth_month"]).days / 365.25,
                "sex": SEXES.index(p["sex"]),
                "deprivation_decile": float(p["deprivation_decile"]),
                "ethnicity_group": ETHNICITY_GROUPS.index(p["ethnicity_group"]),
            }
            for family in (*FAMILIES, LIST_CONTEXT):
                for definition in family.definitions:
                    row[definition.name] = reference_value(
                        definition, by_person[p["patient_id"]], as_of, family.lookback_days
                    )
            row["polypharmacy"] = float(row["drug_classes_90d"] >= POLYPHARMACY_CLASSES)
            row["frailty_index"] = np.mean([row[c] > 0 for c in FRAILTY_DEFICITS])
            rows[(p["patient_id"], as_of)] = row
    frame = pd.DataFrame.from_dict(rows, orient="index")
    frame.index = frame.index.set_names(["patient_id", "as_of"])
    return frame.sort_index(level=["as_of", "patient_id"])


@pytest.fixture(scope="module")
def tables() -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    borough = generate(SynthConfig(patients=300, seed=5, truth_as_of=()))
    return tuple(
        t.to_pandas(date_as_object=False)
        for t in (borough.patients, borough.events, borough.practices)
    )


@pytest.mark.slow
def test_every_feature_matches_the_reference(tables: tuple) -> None:
    patients, events, practices = tables
    engine = build_features(
        ContractTables.from_frames(patients, events, practices),
        AS_OF,
        families=(*FAMILIES, LIST_CONTEXT),
    )
    reference = reference_features(patients, events)
    assert [d.name for d in DERIVED] == ["polypharmacy", "frailty_index"]
    assert list(engine.index) == list(reference.index)
    assert len(engine) > 500
    pd.testing.assert_frame_equal(
        engine,
        reference[engine.columns].astype(engine.dtypes.to_dict()),
        check_exact=False,
        rtol=1e-9,
    )
