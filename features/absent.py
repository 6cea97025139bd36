"""Which features an absent event kind leaves without their source.

A family whose kind the data hold none of still gives every person its declared default (0
for counts, the cap for "days since"), so every command keeps working; but such a column
says "not recorded", not "none happened". The model card, the weekly manifest, the referral
filter and the evaluation name these columns with the kinds they lack, from this one map.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from riskstrat.features.catalogue import DERIVED, FAMILIES, LIST_CONTEXT
from riskstrat.features.definitions import Derived, Family


def feature_kinds(
    families: Sequence[Family] = (*FAMILIES, LIST_CONTEXT), derived: Sequence[Derived] = DERIVED
) -> dict[str, frozenset[str]]:
    """Every event-based feature column and the event kinds it is computed from (a derived
    column: the kinds of its inputs)."""
    kinds = {d.name: frozenset(d.kinds) for f in families for d in f.definitions}
    for column in derived:
        kinds[column.name] = frozenset().union(*(kinds.get(i, frozenset()) for i in column.inputs))
    return kinds


def absent_features(
    absent: Iterable[str], columns: Iterable[str] | None = None
) -> dict[str, tuple[str, ...]]:
    """Each feature (of ``columns``, default all) that reads an ``absent`` kind, with the
    absent kinds it reads, sorted."""
    missing = set(absent)
    read = feature_kinds()
    chosen = read if columns is None else [c for c in columns if c in read]
    lacking = {name: tuple(sorted(read[name] & missing)) for name in chosen}
    return {name: kinds for name, kinds in lacking.items() if kinds}


def describe_absent(features: Mapping[str, tuple[str, ...]]) -> list[str]:
    """One phrase per group of absent kinds: "no ltc_diagnosis events: has_copd, ltc_count"."""
    groups: dict[tuple[str, ...], list[str]] = {}
    for name, kinds in features.items():
        groups.setdefault(kinds, []).append(name)
    return [
        f"no {' or '.join(kinds)} events: {', '.join(names)}"
        for kinds, names in sorted(groups.items())
    ]
