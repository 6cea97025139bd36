"""Offers within each team's capacity: who the week proposes to offer which help, and why.

A locality team has a fixed number of places a week per action (``[weekly.offers]``,
``config.OfferSettings``). Among the people on the list (every listed tier) who have no
list-triggered help running, each person is put in line for at most one action, and each
team's line for an action is offered in order until its places are taken:

- **The ranking key** is one for the week, the first available of: the estimated benefit
  (``benefit_<action>``: expected avoidable admissions prevented, one column per action with
  places), the risk of a potentially avoidable admission (``avoidable_risk``), the risk of
  any emergency admission (``risk``). A column is available when present and known for
  every listed person; the manifest says which was used and why the others were not.
- **The action**: by estimated benefit, the action with places in the person's team whose
  benefit is largest (none when no benefit is above zero); by a risk, the action the
  person's suggested pathway names (``PATHWAY_ACTION``): the pathway rules say what help fits.
- **Second choices**: places still free after the first choices go, in the same order, to
  listed people not offered help (nor in a draw) whom the action fits too: a benefit above
  zero, or a rule of the action's pathway holding for them (``pathways.Rules.fits``).
- **The team's overrides** (``overrides.Overrides``) come first: an offer takes one of the
  team's places for that action (refused beyond them), a decline takes the person out of
  that action's line this week.
- **The lottery** (off by default): when a line is longer than its places and the people
  around the boundary have keys within ``lottery_band`` (a share) of the boundary person's
  key, the places left for that band are drawn by lot (``draw``), seeded by
  ``lottery_seed``, the week, the team and the action, and the draw is returned to be
  kept (``DRAW_COLUMNS``). It orders only the extra offer: the tier, the list and the
  pathway are the same either way.

Every listed person (and everyone an override names) gets a reason in plain words; nobody
at very high risk goes without one. Pure pandas and numpy, no I/O.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date

import numpy as np
import pandas as pd

from riskstrat.common.settings import SettingsError
from riskstrat.contract.schema import EVENTS, EventKind
from riskstrat.models.benefit import benefit_column
from riskstrat.serving.weekly.config import ACTIONS, OFFERS_TABLE, OfferSettings
from riskstrat.serving.weekly.overrides import NO_OVERRIDES, Decision, Override, Overrides
from riskstrat.serving.weekly.tiers import listed_mask

PATHWAY_ACTION = {
    "integrated reablement plan": "reablement_plan",
    "social prescribing": "social_prescribing_referral",
}
ACTION_WORDS = {
    "reablement_plan": "reablement plan",
    "social_prescribing_referral": "social prescribing referral",
}
VERY_HIGH = "very high"
COLUMNS = ("offer", "offer_by", "offer_key", "offer_reason")
DRAW_COLUMNS = (
    "week",
    "team",
    "action",
    "seed",
    "draw_seed",
    "boundary_key",
    "band_low",
    "band_high",
    "places",
    "drawn",
    "patient_id",
    "key",
    "won",
)


class CapacityError(SettingsError):
    """Capacity for a team the week's data does not have; ``in_file`` names the file."""

    def in_file(self, path: object) -> SettingsError:
        return SettingsError(str(path), self.problem, self.table, self.field)


def words(action: str) -> str:
    """An action as people say it."""
    return ACTION_WORDS.get(action, action.replace("_", " "))


def ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


@dataclass(frozen=True, slots=True)
class RankingKey:
    """What orders the lines this week: its name, its words, the column per action."""

    name: str  # "benefit", "avoidable_risk" or "risk"
    words: str
    columns: dict[str, str]
    not_used: tuple[str, ...]  # why each earlier key was not used, in words

    @property
    def per_action(self) -> bool:
        return self.name == "benefit"

    def shown(self, value: float) -> str:
        return f"{value:.2g}" if self.per_action else f"{100 * value:.1f}%"

    def to_manifest(self) -> dict:
        return {
            "key": self.name,
            "words": self.words,
            "columns": self.columns,
            "not_used": list(self.not_used),
        }


def ranking_key(listed: pd.DataFrame, actions: Sequence[str]) -> RankingKey:
    """The first available of estimated benefit, avoidable-admission risk and risk (see the
    module docstring)."""
    choices = (
        ("benefit", "expected admissions prevented", {a: benefit_column(a) for a in actions}),
        ("avoidable_risk", "risk of a potentially avoidable admission", None),
        ("risk", "risk of emergency admission", None),
    )
    not_used: list[str] = []
    for name, said, columns in choices:
        columns = columns or {a: name for a in actions}
        gaps = [_gap(listed, c) for c in dict.fromkeys(columns.values())]
        gaps = [g for g in gaps if g]
        if not gaps:
            return RankingKey(name, said, columns, tuple(not_used))
        not_used.append(f"{said}: {'; '.join(gaps)}")
    raise ValueError("the risk of emergency admission is missing for listed people")


def _gap(listed: pd.DataFrame, column: str) -> str:
    if column not in listed.columns:
        return f"no {column} column"
    missing = int(listed[column].isna().sum())
    return f"{column} missing for {missing:,} listed people" if missing else ""


def draw_seed(seed: int, week: date, team: str, action: str) -> int:
    """The draw's own seed: the settings' seed, the week, the team and the action together,
    so that weeks and lines with the same seed do not share one order."""
    text = f"{seed}\0{week.isoformat()}\0{team}\0{action}".encode()
    return int.from_bytes(hashlib.sha256(text).digest()[:8], "big")


def draw(patient_ids: Sequence[str], seed: int, week: date, team: str, action: str) -> list[str]:
    """The lottery's order of ``patient_ids``: sorted, then shuffled by ``draw_seed``. The
    same seed, week, team, action and people give the same order."""
    ordered = sorted(map(str, patient_ids))
    rng = np.random.default_rng(draw_seed(seed, week, team, action))
    return [ordered[i] for i in rng.permutation(len(ordered))]


@dataclass(frozen=True, slots=True)
class Offers:
    """Per person (``COLUMNS``, people's index), the lottery's draws (``DRAW_COLUMNS``) and
    the manifest block."""

    columns: pd.DataFrame
    draws: pd.DataFrame
    manifest: dict

    @property
    def offered(self) -> pd.Series:
        return self.columns["offer"] != ""


@dataclass(slots=True)
class _Week:
    """What the allocation fills in as it goes."""

    people: pd.DataFrame
    settings: OfferSettings
    key: RankingKey
    very_high: frozenset[str] = frozenset()
    offer: dict[str, str] = field(default_factory=dict)
    by: dict[str, str] = field(default_factory=dict)
    key_value: dict[str, float] = field(default_factory=dict)
    reason: dict[str, str] = field(default_factory=dict)
    tally: dict[str, dict[str, dict[str, int]]] = field(default_factory=dict)
    draws: list[dict] = field(default_factory=list)

    def places(self, action: str, team: str) -> int:
        return self.settings.capacity.get(action, {}).get(team, 0)

    def count(self, action: str, team: str, what: str, n: int = 1) -> None:
        line = self.tally.setdefault(action, {}).setdefault(team, {"places": 0})
        line["places"] = self.places(action, team)
        line[what] = line.get(what, 0) + n

    def give(self, pid: str, action: str, by: str, reason: str) -> None:
        self.offer[pid], self.by[pid], self.reason[pid] = action, by, reason

    def refuse(self, pid: str, reason: str) -> None:
        """Not offered: the reason (after any earlier one, such as a decline of the other
        action), said first for anyone at very high risk."""
        if pid in self.very_high:
            reason = reason.replace("not offered", "very high risk, not offered", 1)
        earlier = self.reason.get(pid)
        self.reason[pid] = f"{earlier}; {reason}" if earlier else reason


def allocate(
    people: pd.DataFrame,
    settings: OfferSettings,
    running: pd.Series,
    week: date,
    overrides: Overrides = NO_OVERRIDES,
    fits: pd.DataFrame | None = None,
) -> Offers:
    """The week's offers for ``people`` (indexed by patient: the team column, ``tier``,
    ``risk``, ``pathway``, and optionally ``avoidable_risk`` and ``benefit_<action>``);
    ``running`` holds, per patient with list-triggered help running, the kinds running
    (``features.exposure.running_kinds``); ``fits`` (``pathways.Rules.fits``: a column per
    pathway) says which other pathways' rules hold for each person, for the second choices.
    See the module docstring."""
    _check_teams(people, settings)
    _check_people(people, overrides)
    if not settings.active:
        if overrides.rows:
            row = overrides.rows[0]
            raise overrides.error(row.row, f"no places are set in [{OFFERS_TABLE}] capacity")
        return _blank(people, settings, overrides)
    listed = people[listed_mask(people["tier"]).to_numpy()]
    actions = [a for a in ACTIONS if a in settings.capacity]
    very_high = frozenset(people.index[people["tier"].to_numpy() == VERY_HIGH].astype("str"))
    state = _Week(people, settings, ranking_key(listed, actions), very_high)
    declined = _apply_overrides(state, overrides)
    lines = _lines(state, listed, running, declined)
    for (team, action), line in sorted(lines.items()):
        _offer_line(state, team, action, line, week)
    _second_choices(state, listed, running, declined, _fitting(listed, state.key, fits))
    return _result(state, overrides)


def _fitting(listed: pd.DataFrame, key: RankingKey, fits: pd.DataFrame | None) -> pd.DataFrame:
    """Per listed person and action, whether the action fits them: by estimated benefit,
    when it is above zero; by a risk, when the suggested pathway names it or a rule for a
    pathway naming it holds too (``fits``)."""
    found = {}
    for action in key.columns:
        if key.per_action:
            found[action] = listed[key.columns[action]].to_numpy() > 0
            continue
        pathways = [p for p, a in PATHWAY_ACTION.items() if a == action]
        holds = listed["pathway"].isin(pathways).to_numpy()
        for pathway in pathways:
            if fits is not None and pathway in fits.columns:
                holds = holds | fits[pathway].reindex(listed.index, fill_value=False).to_numpy(bool)
        found[action] = holds
    return pd.DataFrame(found, index=listed.index)


def _second_choices(
    state: _Week,
    listed: pd.DataFrame,
    running: pd.Series,
    declined: dict[str, dict[str, Override]],
    fitting: pd.DataFrame,
) -> None:
    """Places left after everyone's first choice go, in the same order, to listed people not
    offered help (nor in a draw, which stays as drawn) whom the action fits too."""
    drawn = {d["patient_id"] for d in state.draws}
    helped = set(running.index.astype("str"))
    key = state.key
    team_of = listed[state.settings.team].astype("str")
    for action in key.columns:
        for team in sorted(state.settings.capacity[action]):
            line = state.tally.get(action, {}).get(team, {})
            taken = sum(line.get(k, 0) for k in ("by_team", "ranked", "lottery", "second_choice"))
            free = state.places(action, team) - taken
            if free <= 0:
                continue
            chosen = fitting[action].to_numpy() & (team_of == team).to_numpy()
            waiting = [
                (pid, float(listed.at[pid, key.columns[action]]), float(listed.at[pid, "risk"]))
                for pid in listed.index[chosen].astype("str")
                if pid not in state.offer
                and pid not in drawn
                and pid not in helped
                and action not in declined.get(pid, {})
            ]
            waiting.sort(key=lambda p: (-p[1], -p[2], p[0]))
            places = state.places(action, team)
            for i, (pid, value, _) in enumerate(waiting[:free]):
                state.count(action, team, "second_choice")
                state.give(
                    pid,
                    action,
                    "second choice",
                    f"offered {words(action)}, which fits them too, with places left after "
                    f"the first choices: {ordinal(taken + i + 1)} of {places} in {team} by "
                    f"{key.words} {key.shown(value)}",
                )
                state.key_value[pid] = value


def _check_teams(people: pd.DataFrame, settings: OfferSettings) -> None:
    check_teams(people[settings.team].dropna().unique(), settings, "the week's data")


def check_teams(found: Iterable[object], settings: OfferSettings, where: str) -> None:
    """Every team given places is among the teams ``found`` in ``where``."""
    teams = {str(t) for t in found}
    for action, places in settings.capacity.items():
        for team in places:
            if team not in teams:
                known = ", ".join(sorted(teams)) or "none"
                raise CapacityError(
                    "the settings",
                    f"no {settings.team.replace('_', ' ')} {team!r} in {where} (known: {known})",
                    f"[{OFFERS_TABLE}.capacity.{action}]",
                    team,
                )


def _check_people(people: pd.DataFrame, overrides: Overrides) -> None:
    check_people(people.index, overrides, "the week's people")


def check_people(found: Collection[str], overrides: Overrides, where: str) -> None:
    """Every person an override names is among the people ``found`` in ``where``."""
    for row in overrides.rows:
        if row.patient_id not in found:
            raise overrides.error(row.row, f"patient_id {row.patient_id!r} is not among {where}")


def _apply_overrides(state: _Week, overrides: Overrides) -> dict[str, dict[str, Override]]:
    """The team's offers take places first (refused beyond them); returns the declines,
    by patient and action."""
    declined: dict[str, dict[str, Override]] = {}
    team_of = state.people[state.settings.team].astype(str)
    for row in overrides.rows:
        pid, action = row.patient_id, row.action
        if row.decision is Decision.DECLINE:
            declined.setdefault(pid, {})[action] = row
            state.count(action, team_of[pid], "declined")
            continue
        team = team_of[pid]
        places = state.places(action, team)
        taken = state.tally.get(action, {}).get(team, {}).get("by_team", 0)
        if taken >= places:
            raise overrides.error(
                row.row,
                f"offers {action} in {team} beyond its {places} place(s) a week "
                f"([{OFFERS_TABLE}.capacity.{action}] {team}); decline someone or raise it",
            )
        state.count(action, team, "by_team")
        state.give(
            pid,
            action,
            "team",
            f"offered {words(action)} by the team ({row.who}: {row.why}); "
            f"{ordinal(taken + 1)} of {places} in {team}",
        )
    for pid, rows in declined.items():
        for action, row in rows.items():
            if pid not in state.offer:
                state.refuse(
                    pid, f"not offered {words(action)}: declined by the team ({row.who}: {row.why})"
                )
    return declined


def _lines(
    state: _Week,
    listed: pd.DataFrame,
    running: pd.Series,
    declined: dict[str, dict[str, Override]],
) -> dict[tuple[str, str], list[tuple[str, float, float]]]:
    """Each team's line per action: (patient, key, risk) of everyone put in it."""
    lines: dict[tuple[str, str], list[tuple[str, float, float]]] = {}
    key = state.key
    helped = running.to_dict()
    columns = ["risk", "pathway", *dict.fromkeys(key.columns.values())]
    values_of = {c: listed[c].to_numpy() for c in columns}
    rows = listed[state.settings.team].astype("str").to_numpy()
    for i, (pid, team) in enumerate(zip(listed.index.astype("str"), rows, strict=True)):
        if pid in state.offer:
            continue
        row = {c: values_of[c][i] for c in columns}
        kinds = helped.get(pid)
        if isinstance(kinds, tuple) and kinds:
            said = " and ".join(f"a {words(k)}" for k in kinds)
            state.refuse(pid, f"not offered: {said} already running")
            continue
        open_ = [
            a for a in key.columns if state.places(a, team) > 0 and a not in declined.get(pid, {})
        ]
        if key.per_action:
            values = {a: float(row[key.columns[a]]) for a in open_}
            chosen = max((a for a in open_ if values[a] > 0), key=values.get, default=None)
            if chosen is None:
                offered = " or ".join(words(a) for a in open_) or "any help with places"
                state.refuse(pid, f"not offered: no {key.words} by {offered} in {team}")
                continue
        else:
            chosen = PATHWAY_ACTION.get(str(row["pathway"]))
            if chosen is None:
                state.refuse(pid, f"not offered: suggested pathway is {row['pathway']}")
                continue
            if state.places(chosen, team) == 0:
                state.refuse(pid, f"not offered: no {words(chosen)} places set for {team}")
                continue
            if chosen not in open_:
                continue  # declined: its reason is already given
        value = float(row[key.columns[chosen]])
        state.key_value[pid] = value
        lines.setdefault((team, chosen), []).append((pid, value, float(row["risk"])))
    return lines


def _offer_line(
    state: _Week, team: str, action: str, line: list[tuple[str, float, float]], week: date
) -> None:
    """Offer the line in order until the places are taken; the lottery at the boundary."""
    line = sorted(line, key=lambda p: (-p[1], -p[2], p[0]))
    places = state.places(action, team)
    taken = state.tally.get(action, {}).get(team, {}).get("by_team", 0)
    free = places - taken
    state.count(action, team, "in_line", len(line))
    lottery = _band(state.settings, line, free) if state.settings.lottery else None
    start, stop = lottery if lottery else (len(line), len(line))
    key = state.key
    for i, (pid, value, _) in enumerate(line):
        if start <= i < stop:
            continue
        place = taken + i + 1
        if i < free:
            state.count(action, team, "ranked")
            state.give(
                pid,
                action,
                "ranked",
                f"offered {words(action)}: {ordinal(place)} of {places} in {team} by "
                f"{key.words} {key.shown(value)}",
            )
        else:
            state.refuse(
                pid,
                f"not offered {words(action)}: capacity of {places} in {team} reached, "
                f"{ordinal(place)} by {key.words} {key.shown(value)}",
            )
    if lottery:
        _draw(state, team, action, line[start:stop], free - start, taken + start, week)


def _band(
    settings: OfferSettings, line: list[tuple[str, float, float]], free: int
) -> tuple[int, int] | None:
    """The positions [start, stop) of the people in the lottery, or None when there is no
    tie at the boundary (the line fits, or the next person's key is outside the band)."""
    if free <= 0 or len(line) <= free:
        return None
    boundary = line[free - 1][1]
    width = settings.lottery_band * abs(boundary)
    keys = np.array([p[1] for p in line])
    inside = np.flatnonzero(np.abs(keys - boundary) <= width)
    start, stop = int(inside.min()), int(inside.max()) + 1
    return (start, stop) if stop > free else None


def _draw(
    state: _Week,
    team: str,
    action: str,
    band: list[tuple[str, float, float]],
    places: int,
    before: int,
    week: date,
) -> None:
    """Draw ``places`` of ``band`` by lot; ``before`` places are already taken ahead of it."""
    settings, key = state.settings, state.key
    seed = int(settings.lottery_seed)  # required by the settings when the lottery is on
    order = draw([p[0] for p in band], seed, week, team, action)
    values = {p[0]: p[1] for p in band}
    boundary = band[places - 1][1]  # the key of the last place by rank: the band's centre
    width = settings.lottery_band * abs(boundary)
    within = f"within {settings.lottery_band:.0%} of the boundary's {key.shown(boundary)}"
    capacity = state.places(action, team)
    for drawn, pid in enumerate(order, start=1):
        won = drawn <= places
        shown = key.shown(values[pid])
        if won:
            state.count(action, team, "lottery")
            state.give(
                pid,
                action,
                "lottery",
                f"offered {words(action)}: {ordinal(before + drawn)} of {capacity} in {team}, "
                f"drawn {ordinal(drawn)} of {len(band)} by lottery ({key.words} {shown}, "
                f"{within})",
            )
        else:
            state.refuse(
                pid,
                f"not offered {words(action)}: capacity of {capacity} in {team} reached, "
                f"drawn {ordinal(drawn)} of {len(band)} by lottery ({key.words} {shown}, "
                f"{within})",
            )
        state.draws.append(
            {
                "week": week.isoformat(),
                "team": team,
                "action": action,
                "seed": seed,
                "draw_seed": str(draw_seed(seed, week, team, action)),
                "boundary_key": boundary,
                "band_low": boundary - width,
                "band_high": boundary + width,
                "places": places,
                "drawn": drawn,
                "patient_id": pid,
                "key": values[pid],
                "won": won,
            }
        )


def _blank(people: pd.DataFrame, settings: OfferSettings, overrides: Overrides) -> Offers:
    columns = pd.DataFrame(
        {"offer": "", "offer_by": "", "offer_key": np.nan, "offer_reason": ""},
        index=people.index,
    ).astype({"offer": "str", "offer_by": "str", "offer_key": "float64", "offer_reason": "str"})
    manifest = {
        "active": False,
        "team": settings.team,
        "capacity": settings.capacity,
        "overrides": overrides.to_manifest(),
        "lottery": {"on": settings.lottery, "band": settings.lottery_band, "draws": []},
    }
    return Offers(columns, _draws_frame([]), manifest)


def _draws_frame(rows: list[dict]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=list(DRAW_COLUMNS))
    return frame.astype(
        {
            "week": "str",
            "team": "str",
            "action": "str",
            "seed": "int64",
            "draw_seed": "str",
            "boundary_key": "float64",
            "band_low": "float64",
            "band_high": "float64",
            "places": "int64",
            "drawn": "int64",
            "patient_id": "str",
            "key": "float64",
            "won": "bool",
        }
    )


def _result(state: _Week, overrides: Overrides) -> Offers:
    index = state.people.index
    columns = pd.DataFrame(
        {
            "offer": pd.Series(state.offer, dtype="str").reindex(index).fillna(""),
            "offer_by": pd.Series(state.by, dtype="str").reindex(index).fillna(""),
            "offer_key": pd.Series(state.key_value, dtype="float64").reindex(index),
            "offer_reason": pd.Series(state.reason, dtype="str").reindex(index).fillna(""),
        },
        index=index,
    )
    draws = _draws_frame(state.draws)
    very_high = state.people["tier"].to_numpy() == VERY_HIGH
    settings = state.settings
    manifest = {
        "active": True,
        "team": settings.team,
        "capacity": settings.capacity,
        "ranking": state.key.to_manifest(),
        "lines": state.tally,
        "offered": {a: int((columns["offer"] == a).sum()) for a in settings.capacity},
        "very_high": {
            "listed": int(very_high.sum()),
            "offered": int((very_high & (columns["offer"] != "").to_numpy()).sum()),
        },
        "overrides": overrides.to_manifest(),
        "lottery": {
            "on": settings.lottery,
            "band": settings.lottery_band,
            "seed": settings.lottery_seed,
            "draws": _draws_manifest(draws),
        },
    }
    return Offers(columns, draws, manifest)


def draw_events(draws: pd.DataFrame) -> pd.DataFrame:
    """A week's draws (``WeekStore.lottery``) as contract events, the way ``riskstrat
    evaluate`` reads a recorded lottery: one ``risk_list_lottery`` event per person drawn,
    on the week's date, code the action drawn for, value 1 won (offered) or 0 not; to be
    fed back with the next extract, like the list's scores."""
    return pd.DataFrame(
        {
            "patient_id": draws["patient_id"].astype("str").to_numpy(),
            "kind": EventKind.RISK_LIST_LOTTERY.value,
            "start": pd.Series([date.fromisoformat(w) for w in draws["week"]], dtype=object),
            "end": None,
            "code_system": "riskstrat",
            "code": draws["action"].astype("str").to_numpy(),
            "value": draws["won"].astype("float64").to_numpy(),
            "cost": np.nan,
        },
        columns=list(EVENTS.schema.names),
    )


def _draws_manifest(draws: pd.DataFrame) -> list[dict]:
    """One entry per line drawn: who was in it, in the order drawn, and who won."""
    found = []
    for (team, action), rows in draws.groupby(["team", "action"], sort=True):
        first = rows.iloc[0]
        found.append(
            {
                "team": str(team),
                "action": str(action),
                "draw_seed": str(first["draw_seed"]),
                "boundary_key": float(first["boundary_key"]),
                "band": [float(first["band_low"]), float(first["band_high"])],
                "places": int(first["places"]),
                "order": [str(p) for p in rows.sort_values("drawn")["patient_id"]],
                "won": [str(p) for p in rows.loc[rows["won"], "patient_id"]],
            }
        )
    return found
