"""Flags on each row of the list: facts a locality team acts on, from the person's features."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from riskstrat.serving.weekly.config import WeeklyConfig


@dataclass(frozen=True, slots=True)
class FlagRule:
    """A flag: its label in the lists, when it applies, what it means, its title on a page."""

    label: str
    applies: Callable[[pd.DataFrame, WeeklyConfig], pd.Series]
    meaning: str
    title: str


FLAGS: dict[str, FlagRule] = {
    "care_home": FlagRule(
        "care home",
        lambda f, c: f["care_home_resident"] > 0,
        "admitted to a care home",
        "Care-home resident",
    ),
    "frailty": FlagRule(
        "frailty",
        lambda f, c: (f["frailty_index"] >= c.frailty_index_threshold) | (f["has_frailty"] > 0),
        "frailty coded, or a frailty index at or above the moderate threshold",
        "Frailty",
    ),
    "lives_alone": FlagRule(
        "lives alone",
        lambda f, c: f["lives_alone_coded"] > 0,
        "recorded as living alone",
        "Lives alone",
    ),
    "mental_health": FlagRule(
        "mental health",
        lambda f, c: (
            (f["has_serious_mental_illness"] > 0)
            | (f["has_depression"] > 0)
            | (f["has_anxiety"] > 0)
            | (f["mental_health_contacts_365d"] > 0)
        ),
        "serious mental illness, depression or anxiety recorded, or mental-health service "
        "contact in the last 12 months",
        "Mental-health needs",
    ),
    "social_care_package": FlagRule(
        "social-care package",
        lambda f, c: f["social_care_package_active"] > 0,
        "a social-care package running now",
        "Social-care package",
    ),
    "recent_discharge": FlagRule(
        "recent discharge",
        lambda f, c: f["days_since_emergency_discharge"] <= c.recent_discharge_days,
        "discharged from an emergency admission within the recent-discharge window",
        "Recent hospital discharge",
    ),
}


COLUMNS = (*(f"flag_{name}" for name in FLAGS), "flags")  # what ``flag_columns`` makes


def flag_columns(features: pd.DataFrame, config: WeeklyConfig) -> pd.DataFrame:
    """One boolean ``flag_<name>`` column per flag, and ``flags``: their labels joined."""
    frame = pd.DataFrame(
        {
            f"flag_{name}": rule.applies(features, config).astype(bool)
            for name, rule in FLAGS.items()
        },
        index=features.index,
    )
    # Each row's flags as bits of one number, which picks its label from all 2^6 joinings.
    rules = list(FLAGS.values())
    joined = [
        "; ".join(rule.label for bit, rule in enumerate(rules) if code >> bit & 1)
        for code in range(1 << len(rules))
    ]
    codes = sum(
        frame[f"flag_{name}"].to_numpy(dtype=np.int64) << bit for bit, name in enumerate(FLAGS)
    )
    labels = np.asarray(joined, dtype=object)[codes]
    return frame.assign(flags=pd.Series(labels, index=frame.index, dtype="str"))
