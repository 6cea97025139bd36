"""The pages' query parameters: parsed and checked (a clear 400 naming the parameter), then
applied to a week's people. Pure functions over frames; the pages do the I/O."""

from __future__ import annotations

import io
import math
from dataclasses import dataclass, fields
from datetime import date

import pandas as pd
from pydantic.fields import FieldInfo

from riskstrat.common.settings import SettingsError, bounds, settings_fields, without_none
from riskstrat.common.spreadsheet import write_rows
from riskstrat.serving.weekly.flags import FLAGS as FLAG_RULES
from riskstrat.serving.weekly.pathways import PATHWAYS
from riskstrat.serving.weekly.referrals import TIERS, Driver, ReferralCriteria, Tier

PAGE_SIZE = 50
FLAGS: dict[str, str] = {name: rule.title for name, rule in FLAG_RULES.items()}
SORTS: dict[str, str] = {"risk": "Risk", "change": "Change since last week", "age": "Age"}
ORDERS: dict[str, str] = {"desc": "Highest first", "asc": "Lowest first"}
LIST_PARAMS = frozenset(
    {"week", "locality", "cluster", "practice", "tier", "flag", "pathway", "new", "sort"}
    | {"order", "page"}
)


class BadQueryError(ValueError):
    """A query parameter the page cannot use; the message names it."""

    def __init__(self, param: str, problem: str) -> None:
        super().__init__(f"{param}: {problem}")
        self.param = param


Items = list[tuple[str, str]]


def _values(items: Items, name: str) -> list[str]:
    return [v for k, v in items if k == name]


def _single(items: Items, name: str) -> str | None:
    """The parameter's one value; an empty value counts as not given."""
    values = _values(items, name)
    if len(values) > 1:
        raise BadQueryError(name, "give it once")
    value = values[0].strip() if values else ""
    if len(value) > 200:
        raise BadQueryError(name, "too long")
    return value or None


def check_known(items: Items, known: frozenset[str]) -> None:
    unknown = sorted({k for k, _ in items} - known)
    if unknown:
        raise BadQueryError(unknown[0], f"unknown parameter (known: {', '.join(sorted(known))})")


def parse_week(items: Items) -> date | None:
    value = _single(items, "week")
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise BadQueryError("week", f"{value!r} is not a date like 2026-10-26") from None


def parse_page(items: Items) -> int:
    value = _single(items, "page")
    if value is None:
        return 1
    if not value.isdigit() or int(value) < 1:
        raise BadQueryError("page", f"{value!r} is not a page number (1, 2, ...)")
    return int(value)


@dataclass(frozen=True, slots=True)
class ListQuery:
    """The list page's filters, sort and page (checked for form, not yet against data)."""

    week: date | None = None
    locality: str | None = None
    cluster: str | None = None
    practice: str | None = None
    tier: str | None = None
    flags: tuple[str, ...] = ()
    pathway: str | None = None
    new_only: bool = False
    sort: str = "risk"
    order: str = "desc"
    page: int = 1

    @classmethod
    def parse(cls, items: Items) -> ListQuery:
        check_known(items, LIST_PARAMS)
        tier = _single(items, "tier")
        if tier is not None and tier not in TIERS:
            raise BadQueryError("tier", f"{tier!r} is not one of {', '.join(TIERS)}")
        flags = tuple(_values(items, "flag"))
        for flag in flags:
            if flag not in FLAGS:
                raise BadQueryError("flag", f"{flag!r} is not one of {', '.join(FLAGS)}")
        pathway = _single(items, "pathway")
        if pathway is not None and pathway not in PATHWAYS:
            raise BadQueryError("pathway", f"{pathway!r} is not one of {', '.join(PATHWAYS)}")
        new = _single(items, "new")
        if new not in (None, "1"):
            raise BadQueryError("new", "use new=1 for people new on the list this week")
        sort = _single(items, "sort") or "risk"
        if sort not in SORTS:
            raise BadQueryError("sort", f"{sort!r} is not one of {', '.join(SORTS)}")
        order = _single(items, "order") or "desc"
        if order not in ORDERS:
            raise BadQueryError("order", f"{order!r} is not one of {', '.join(ORDERS)}")
        return cls(
            week=parse_week(items),
            locality=_single(items, "locality"),
            cluster=_single(items, "cluster"),
            practice=_single(items, "practice"),
            tier=tier,
            flags=tuple(dict.fromkeys(flags)),
            pathway=pathway,
            new_only=new == "1",
            sort=sort,
            order=order,
            page=parse_page(items),
        )

    def select(self, listed: pd.DataFrame) -> pd.DataFrame:
        """The rows of ``listed`` (people the caller may see) these filters keep, sorted.

        Locality, cluster and practice must be among the values ``listed`` holds.
        """
        keep = pd.Series(True, index=listed.index)
        for param, column, value in (
            ("locality", "locality", self.locality),
            ("cluster", "gp_cluster", self.cluster),
            ("practice", "practice_id", self.practice),
        ):
            if value is None:
                continue
            known = sorted(listed[column].unique())
            if value not in known:
                raise BadQueryError(param, f"{value!r} is not one of {', '.join(known)}")
            keep &= listed[column] == value
        if self.tier is not None:
            keep &= listed["tier"] == self.tier
        for flag in self.flags:
            keep &= listed[f"flag_{flag}"].astype(bool)
        if self.pathway is not None:
            keep &= listed["pathway"] == self.pathway
        if self.new_only:
            keep &= listed["week_status"] == "new"
        chosen = listed[keep]
        return chosen.sort_values(
            [self.sort, "rank"],
            ascending=[self.order == "asc", True],
            na_position="last",
            kind="stable",
        )

    def items(self, **changes: object) -> Items:
        """The query as parameters (defaults left out), with ``changes`` applied."""
        values = {f.name: getattr(self, f.name) for f in fields(self)} | changes
        out: Items = []
        if values["week"] is not None:
            out.append(("week", values["week"].isoformat()))
        for name in ("locality", "cluster", "practice", "tier"):
            if values[name] is not None:
                out.append((name, values[name]))
        out += [("flag", f) for f in values["flags"]]
        if values["pathway"] is not None:
            out.append(("pathway", values["pathway"]))
        if values["new_only"]:
            out.append(("new", "1"))
        if values["sort"] != "risk":
            out.append(("sort", values["sort"]))
        if values["order"] != "desc":
            out.append(("order", values["order"]))
        if values["page"] != 1:
            out.append(("page", str(values["page"])))
        return out


def page_of(rows: pd.DataFrame, page: int) -> tuple[pd.DataFrame, int]:
    """The rows of page ``page`` (1-based) and the number of pages (at least 1)."""
    pages = max(1, math.ceil(len(rows) / PAGE_SIZE))
    if page > pages:
        raise BadQueryError("page", f"page {page} does not exist (there are {pages})")
    return rows.iloc[(page - 1) * PAGE_SIZE : page * PAGE_SIZE], pages


# The social prescribing form: one control per ReferralCriteria field.
REFERRAL_LABELS: dict[str, tuple[str, str]] = {
    "min_tier": ("Lowest tier", "People at this tier or higher; any: whoever matches"),
    "min_risk": ("Lowest risk (%)", "Leave empty for any risk"),
    "drivers": ("What drives their risk", "People with at least one of the ticked drivers"),
    "min_age": ("Lowest age", "In years"),
    "exclude_care_home": ("Leave out care-home residents", ""),
    "not_referred_months": (
        "Leave out people referred in the last (months)",
        "0 keeps people referred recently",
    ),
    "exclude_mental_health_care": (
        "Leave out people in crisis or secondary mental-health care",
        "",
    ),
    "localities": ("Localities", "None ticked: all the localities you may see"),
}


@dataclass(frozen=True, slots=True)
class FormField:
    """One control of the social prescribing form."""

    name: str
    kind: str  # tier, percent, drivers, localities, integer, number, boolean, text
    label: str
    hint: str
    value: object


def _kind(info: FieldInfo) -> str:
    """The control for a criteria field, from its type (a probability shows as a percent)."""
    annotation = without_none(info.annotation)
    if annotation == Tier:
        return "tier"
    if annotation == tuple[Driver, ...]:
        return "drivers"
    if annotation == tuple[str, ...]:
        return "localities"
    if annotation is bool:
        return "boolean"
    if annotation is float:
        return "percent" if bounds(info) == {"ge": 0, "le": 1} else "number"
    return "integer" if annotation is int else "text"


# The form's controls: one per ReferralCriteria field, in its order.
REFERRAL_KINDS: dict[str, str] = {
    name: _kind(info) for name, info in settings_fields(ReferralCriteria).items()
}


def referral_fields(criteria: ReferralCriteria) -> list[FormField]:
    """The form's controls, in the criteria's field order, showing ``criteria``'s values."""
    out = []
    for name, kind in REFERRAL_KINDS.items():
        label, hint = REFERRAL_LABELS.get(name, (name.replace("_", " ").capitalize(), ""))
        out.append(FormField(name, kind, label, hint, getattr(criteria, name)))
    return out


def parse_referral_query(items: Items) -> tuple[ReferralCriteria, int]:
    """The criteria and page the form asks for, the localities as asked (none: all). Which
    of them the caller may see is not decided here: the page asks
    ``Principal.localities_for``, the rule the API uses.

    Without ``run`` (the first visit) the criteria's defaults are used; with it, an unticked
    box means false and an empty choice "any". The values are checked by ReferralCriteria
    itself.
    """
    check_known(items, frozenset({"run", "week", "page", *REFERRAL_KINDS}))
    page = parse_page(items)
    values: dict[str, object] = {}
    submitted = _single(items, "run") is not None
    for name, kind in REFERRAL_KINDS.items():
        if kind in ("drivers", "localities"):
            chosen = tuple(dict.fromkeys(v.strip() for v in _values(items, name) if v.strip()))
            if chosen or submitted or kind == "localities":
                values[name] = chosen
            continue
        raw = _single(items, name)
        if raw is None:
            if submitted and kind in ("boolean", "tier", "percent"):
                values[name] = False if kind == "boolean" else None
            continue
        values[name] = _fraction(name, raw) if kind == "percent" else raw
    try:
        criteria = ReferralCriteria.from_mapping(values, "referral filter")
    except SettingsError as exc:
        raise BadQueryError(exc.field or "criteria", exc.problem) from None
    return criteria, page


def _fraction(name: str, percent: str) -> float | str:
    """A percentage as a fraction; text that is no number goes on to be refused by name."""
    try:
        number = float(percent)
    except ValueError:
        return percent
    if not 0 <= number <= 100:
        raise BadQueryError(name, f"must be between 0 and 100 (%) (got {percent})")
    return number / 100


def referral_items(
    criteria: ReferralCriteria, allowed: tuple[str, ...], week: date | None
) -> Items:
    """The form's parameters for ``criteria`` (for links: CSV, pages)."""
    out: Items = [("run", "1")]
    if week is not None:
        out.append(("week", week.isoformat()))
    for f in referral_fields(criteria):
        if f.kind == "drivers":
            out += [(f.name, d) for d in f.value]
        elif f.kind == "localities":
            if tuple(f.value) != allowed:
                out += [(f.name, loc) for loc in f.value]
        elif f.kind == "boolean":
            if f.value:
                out.append((f.name, "true"))
        elif f.kind == "percent":
            out.append((f.name, "" if f.value is None else f"{100 * f.value:g}"))
        else:
            out.append((f.name, "" if f.value is None else str(f.value)))
    return out


LIST_CSV_COLUMNS = (
    "rank",
    "patient_id",
    "risk_percent",
    "tier",
    "new_or_stayed",
    "change_points",
    "age",
    "age_band",
    "sex",
    "practice_id",
    "practice_name",
    "gp_cluster",
    "locality",
    "flags",
    "pathway",
    "reason_1",
    "reason_2",
    "reason_3",
)
REFERRAL_CSV_COLUMNS = (
    "rank",
    "patient_id",
    "risk_percent",
    "tier",
    "age",
    "sex",
    "practice_id",
    "practice_name",
    "gp_cluster",
    "locality",
    "matched",
    "pathway",
)


def to_csv(rows: pd.DataFrame, columns: tuple[str, ...]) -> str:
    """The rows as CSV: risk as a percentage, change in percentage points, text safe to open
    in a spreadsheet (the one rule for every CSV, ``common.spreadsheet``)."""
    frame = rows.assign(
        risk_percent=(100 * rows["risk"]).round(1),
        change_points=(100 * rows["change"]).round(1),
        new_or_stayed=rows["week_status"],
    )
    out = io.StringIO()
    rows = frame[list(columns)].itertuples(index=False)
    write_rows(out, columns, ([None if pd.isna(v) else v for v in row] for row in rows))
    return out.getvalue()
