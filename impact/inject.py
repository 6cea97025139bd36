"""A known effect put into counted outcomes: the plasmode check's only edit of the user's data.

The outcomes are the designs' own person-month counts (``impact.outcomes.PersonMonths``), so
the data are read once and every replicate re-estimates from a cheap copy. In the chosen
person-months each outcome is multiplied by ``ratio``: events by binomial thinning (each
event kept with probability ``ratio``, so the result is still a count with the data's own
over-dispersion and zeros), amounts (bed days, package cost) by scaling. Everything else,
the people, their exposure and every other month, is left as it was.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace

import numpy as np

from riskstrat.impact.outcomes import Months, PersonMonths

AMOUNTS = frozenset({"bed_days", "package_cost"})
"""Outcomes that are amounts rather than counts of events: scaled, not thinned."""


def inject(
    counts: PersonMonths,
    where: np.ndarray,
    ratio: float,
    outcomes: Iterable[str],
    rng: np.random.Generator,
) -> PersonMonths:
    """``counts`` with each of ``outcomes`` multiplied by ``ratio`` (in (0, 1]) in the
    person-months where ``where`` (people x months, boolean) holds; ``counts`` is unchanged."""
    if not 0 < ratio <= 1:
        raise ValueError(f"an injected ratio must be in (0, 1], got {ratio}")
    if where.shape != counts.exposure.shape:
        raise ValueError(f"where has shape {where.shape}, the counts {counts.exposure.shape}")
    changed = dict(counts.outcomes)
    for name in outcomes:
        values = counts.outcomes[name]
        new = values.copy()
        if name in AMOUNTS:
            new[where] = values[where] * ratio
        else:
            new[where] = rng.binomial(np.rint(values[where]).astype(np.int64), ratio)
        changed[name] = new
    return replace(counts, outcomes=changed)


def window(counts: PersonMonths, months: Months) -> PersonMonths:
    """``counts`` cut to the calendar ``months`` (which must lie within its own)."""
    start, stop = counts.months.index(months.first), counts.months.index(months.end)
    if start < 0 or stop > len(counts.months):
        raise ValueError(f"months {months.first}..{months.end} are not within the counts'")
    return PersonMonths(
        people=counts.people,
        months=months,
        exposure=counts.exposure[:, start:stop],
        outcomes={name: values[:, start:stop] for name, values in counts.outcomes.items()},
        absent=counts.absent,
    )


def from_month(months: Months, first: np.ndarray) -> np.ndarray:
    """People x months: True from each person's period ``first`` on (-1: never)."""
    period = np.arange(len(months))[None, :]
    return (first[:, None] >= 0) & (period >= first[:, None])
