"""Every feature declares the values it can take; the bundle keeps them and refuses the rest."""

from __future__ import annotations

import math
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from riskstrat.contract.tables import ContractTables
from riskstrat.features.definitions import COUNT_CAP, LIFETIME_YEARS
from riskstrat.features.engine import build_features, feature_specs
from riskstrat.features.spec import FeatureSpec
from riskstrat.models.bundle import FeatureRangeError, ModelBundle
from riskstrat.models.registry import RegisteredBundle
from riskstrat.training.table import observed_range

SPECS = {s.name: s for s in feature_specs()}


@pytest.mark.parametrize(
    ("name", "bounds"),
    [
        ("age", (0.0, LIFETIME_YEARS)),
        ("deprivation_decile", (1.0, 10.0)),
        ("sex", (-1.0, 1.0)),
        ("emergency_admissions_365d", (0.0, COUNT_CAP)),
        ("has_copd", (0.0, 1.0)),
        ("days_since_emergency_admission", (0.0, 730.0)),
        ("frailty_index", (0.0, 1.0)),
        ("polypharmacy", (0.0, 1.0)),
        ("years_since_first_ltc", (0.0, LIFETIME_YEARS)),
    ],
)
def test_each_family_declares_its_range(name: str, bounds: tuple[float, float]) -> None:
    assert SPECS[name].bounds == bounds


def test_every_spec_is_bounded_both_ways() -> None:
    unbounded = [s.name for s in SPECS.values() if not all(map(math.isfinite, s.bounds))]
    assert unbounded == []


def test_trends_may_fall_as_well_as_rise() -> None:
    low, high = SPECS["emergency_admissions_trend"].bounds
    assert low < 0 < high


def test_a_real_borough_lies_within_the_ranges(validated: Path) -> None:
    features = build_features(ContractTables.from_dir(validated), [date(2025, 1, 1)])
    outside = {
        name: (float(features[name].min()), float(features[name].max()))
        for name, spec in SPECS.items()
        if not features[name].dropna().between(*spec.bounds).all()
    }
    assert outside == {}


def test_ranges_survive_the_bundle_and_old_specs_load_unbounded() -> None:
    age = SPECS["age"]
    assert FeatureSpec.from_dict(age.to_dict()) == age
    old = {k: v for k, v in age.to_dict().items() if k not in ("minimum", "maximum")}
    assert FeatureSpec.from_dict(old).bounds == (-math.inf, math.inf)


def test_a_spec_with_its_range_upside_down_is_refused() -> None:
    with pytest.raises(ValueError, match="feature x: minimum 5 is above maximum 1"):
        FeatureSpec(
            name="x", description="x", template="", concept="x", default=0, minimum=5, maximum=1
        )


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("age", 1e308, r"age 1e\+308 is not valid: must be from 0 to 120"),
        ("age", -1.0, "age -1 is not valid"),
        ("emergency_admissions_365d", -1e308, "emergency_admissions_365d -1e\\+308 is not valid"),
        ("sex", 1.5, "sex 1.5 is not valid: must be a whole number from -1 to 1"),
        ("sex", 2.0, "sex 2 is not valid"),
        ("ethnicity_group", -2.0, "ethnicity_group -2 is not valid"),
    ],
)
def test_the_bundle_refuses_a_value_outside_its_range_naming_row_and_feature(
    champion: RegisteredBundle, name: str, value: float, message: str
) -> None:
    bundle = champion.bundle
    values = np.zeros((3, len(bundle.specs)))
    values[:, bundle.feature_names.index("age")] = 70.0
    values[:, bundle.feature_names.index("deprivation_decile")] = np.nan
    bundle.check_ranges(values)
    values[2, bundle.feature_names.index(name)] = value
    with pytest.raises(FeatureRangeError, match=message) as caught:
        bundle.check_ranges(values)
    assert (caught.value.row, caught.value.spec.name) == (2, name)


def test_a_bring_your_own_table_model_gets_its_training_range_with_margin() -> None:
    assert observed_range(pd.Series([2.0, 5.0, None])) == (0.0, 8.0)
    assert observed_range(pd.Series([-3.0, 7.0])) == (-13.0, 17.0)
    assert observed_range(pd.Series([4.0, 4.0])) == (3.0, 5.0)
    assert observed_range(pd.Series([True, False])) == (0.0, 2.0)
    assert observed_range(pd.Series([None], dtype="float64")) == (None, None)


def test_bundles_keep_checking_after_a_save(champion: RegisteredBundle, tmp_path: Path) -> None:
    reloaded = ModelBundle.load(champion.bundle.save(tmp_path))
    assert reloaded.specs == champion.bundle.specs
    values = np.zeros((1, len(reloaded.specs)))
    values[0, reloaded.feature_names.index("age")] = 500.0
    with pytest.raises(FeatureRangeError, match="age 500"):
        reloaded.check_ranges(values)
