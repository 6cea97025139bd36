"""Several sources in one run: one person id per person, one registered population.

Each source's person id is pseudonymised at the door with the run's one key, so the same
person has the same pseudonym in every source (and every week):

- ``nhs_number`` (HES, ASC-CLD and GP extracts): normalised first (spaces and hyphens
  removed; ten digits whose Modulus 11 check digit is right); a person whose number is not
  valid is set aside, rows and all, with the reason ``invalid_nhs_number``;
- ``local`` (OMOP person ids, Synthea ids, contract tables): hashed as given;
- ``pseudonym`` (an id already pseudonymised upstream, named in the manifest): taken as is.

The registered population is the people of the sources that supply registrations (a ``gp``
source, or one the manifest marks ``registrations = true``); a person only in other sources
(out of area, not registered) is set aside with the reason ``not_registered``: their events
go to ``unmapped/`` and are counted. When no source supplies registrations the population
is everyone in any source, and the verdict says so.

A person in several sources gets one patients row (``reconcile``): the registration
(practice, registration start and end) from the first source by precedence (a registration
source first, then the source with the person's most recent record, then manifest order),
every other field from the first source by that order that gives it; the people whose
sources disagree on a field are counted per field.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

import pandas as pd
from pydantic import Field

from riskstrat.common.errors import UserError
from riskstrat.common.settings import read_toml, settings_model, validate
from riskstrat.contract.pseudonym import Pseudonymiser
from riskstrat.contract.schema import PATIENTS
from riskstrat.sources.ingest.mapping import Mapped

IdKind = Literal["nhs_number", "local", "pseudonym"]
NHS_NUMBER_KINDS = frozenset({"hes", "asc-cld", "gp"})
REGISTRATION_KINDS = frozenset({"gp"})
# The source tables whose rows are people (patients rows are counted against them).
PERSON_TABLES = ("person", "patients")
# The person-id spellings adapters read; a manifest's ``pseudonymised_id`` column is read in
# their place.
PERSON_ID_COLUMNS = (
    "nhs_number",
    "nhsnumber",
    "nhs_no",
    "nhsno",
    "newnhsno",
    "person_id",
    "patient_id",
    "patient",
)
INVALID_NHS_NUMBER = "invalid_nhs_number"
NOT_REGISTERED = "not_registered"
REGISTRATION_FIELDS = ("practice_id", "registration_start", "registration_end")
_SEPARATORS = re.compile(r"[\s-]")
_TEN_DIGITS = re.compile(r"^\d{10}$")


class LinkageError(UserError):
    """The sources of a run cannot be told apart or read as given."""


def nhs_number(text: str) -> str | None:
    """``text`` as ten digits when it is a valid NHS number (Modulus 11), else None."""
    digits = _SEPARATORS.sub("", text)
    if not _TEN_DIGITS.match(digits):
        return None
    total = sum(int(d) * w for d, w in zip(digits[:9], range(10, 1, -1), strict=True))
    check = 11 - total % 11
    check = 0 if check == 11 else check
    return digits if check != 10 and check == int(digits[9]) else None


@dataclass(frozen=True, slots=True)
class Source:
    """One source of a run: its name in the report, its adapter, where it is, its ids."""

    name: str
    kind: str
    path: str
    id: IdKind
    registrations: bool
    id_column: str | None = None

    @classmethod
    def of(
        cls,
        name: str,
        kind: str,
        path: str,
        *,
        id: IdKind | None = None,
        registrations: bool | None = None,
        id_column: str | None = None,
    ) -> Source:
        """With the kind's defaults: NHS numbers for hes, asc-cld and gp (a named
        ``id_column`` holds pseudonyms); registrations from gp."""
        chosen = id or ("pseudonym" if id_column else None)
        chosen = chosen or ("nhs_number" if kind in NHS_NUMBER_KINDS else "local")
        registers = kind in REGISTRATION_KINDS if registrations is None else registrations
        return cls(name, kind, path, chosen, registers, id_column and id_column.lower())

    def pseudonyms(self, key: Pseudonymiser, ids: pd.Series) -> pd.Series:
        """The run's pseudonym of each source id (missing stays missing)."""
        if self.id == "pseudonym":
            return ids.astype("str")
        if self.id == "nhs_number":
            text = ids.astype("str")
            digits = text.str.replace(_SEPARATORS, "", regex=True)
            ids = digits.where(digits.str.fullmatch(r"\d+", na=False), text)
        return key.series(ids.astype("str"))


@settings_model
class ManifestEntry:
    """``[sources.NAME]`` of a manifest."""

    kind: str
    path: str
    id: IdKind | None = None
    pseudonymised_id: str | None = Field(None, min_length=1)
    registrations: bool | None = None


@settings_model
class Manifest:
    """A TOML manifest: one ``[sources.NAME]`` table per source."""

    sources: dict[str, ManifestEntry] = Field(min_length=1)


def read_manifest(path: Path) -> tuple[Source, ...]:
    """The sources a manifest names, in its order; paths relative to the manifest's folder."""
    manifest = validate(Manifest, read_toml(path), str(path))
    return tuple(
        Source.of(
            name,
            entry.kind,
            entry.path if "://" in entry.path else str(path.parent / entry.path),
            id=entry.id,
            registrations=entry.registrations,
            id_column=entry.pseudonymised_id,
        )
        for name, entry in manifest.sources.items()
    )


def sources_given(
    named: Sequence[str], path: str | None, manifest: Path | None
) -> tuple[Source, ...]:
    """The sources of the command line: ``--source NAME --path P`` (one extract),
    ``--source NAME=PATH`` (repeatable) or ``--manifest FILE``; mixing them is an error."""
    if manifest is not None:
        if named or path:
            raise LinkageError("give either --manifest or --source, not both")
        return read_manifest(manifest)
    if path is not None:
        if len(named) != 1 or "=" in named[0]:
            raise LinkageError(
                "--path goes with one --source NAME; for several sources give --source "
                "NAME=PATH for each"
            )
        return (Source.of(named[0], named[0], path),)
    if not named:
        raise LinkageError(
            "name a source: --source NAME --path P, --source NAME=PATH or --manifest"
        )
    out = []
    for text in named:
        name, equals, location = text.partition("=")
        if not equals or not name or not location:
            raise LinkageError(
                f"--source {text}: give NAME=PATH (or one --source NAME with --path P)"
            )
        out.append(Source.of(name.strip(), name.strip(), location.strip()))
    return tuple(out)


@dataclass(frozen=True, slots=True)
class SourceLink:
    """One source after linkage, and what linkage did to its people."""

    source: Source
    mapped: Mapped  # the rows kept, still under source ids
    patient_ids: pd.Series  # the pseudonym of each kept patients row
    people: int
    invalid_ids: int
    matched: int
    not_registered: int
    in_other_sources: int
    events_set_aside: dict[str, int]


@dataclass(frozen=True, slots=True)
class Linked:
    """Every source linked: the contract frames under pseudonyms, and the linkage counts."""

    links: tuple[SourceLink, ...]
    practices: pd.DataFrame
    patients: pd.DataFrame
    events: pd.DataFrame
    registered_from: tuple[str, ...]
    in_several_sources: int
    disagreements: dict[str, int]

    def summary(self) -> dict[str, object]:
        """The linkage section of the quality report."""
        population = (
            f"registrations of {', '.join(self.registered_from)}"
            if self.registered_from
            else "everyone in any source (no source supplies registrations)"
        )
        return {
            "registered_population": population,
            "people": len(self.patients),
            "people_in_several_sources": self.in_several_sources,
            "patients_disagreements": self.disagreements,
        }


def _set_aside(mapped: Mapped, ids: set[str], reason: str) -> tuple[Mapped, int]:
    """``mapped`` without the people ``ids`` (source ids); their rows go to the ledger."""
    if not ids:
        return mapped, 0
    ledger = mapped.ledger
    gone = mapped.events["source_id"].isin(ids)
    for table, rows in mapped.events[gone].groupby("source_table", sort=True):
        unique = rows.drop_duplicates("source_row").set_index("source_row")
        ledger.ignore(str(table), unique, reason)
    people = mapped.patients["source_id"].isin(ids)
    person_table = next((t for t in PERSON_TABLES if t in ledger.rows_in), None)
    if person_table is not None:
        ledger.ignore(
            person_table, mapped.patients[people], reason, "registration_start", None, None, None
        )
    kept = replace(mapped, patients=mapped.patients[~people], events=mapped.events[~gone])
    return kept, int(gone.sum())


def not_valid(text: str) -> bool:
    """``text`` is digits (spaces and hyphens aside) but not a valid NHS number.

    Anything else an NHS-number source hands on (an upstream pseudonym such as HES's
    ``PSEUDO_HESID``, a council's own person id) is an id of another kind: kept and
    pseudonymised as given, though it can link only to sources that use the same id.
    """
    digits = _SEPARATORS.sub("", text)
    return digits.isdigit() and nhs_number(digits) is None


def _check_ids(source: Source, mapped: Mapped) -> tuple[Mapped, int, int]:
    """Without the people whose NHS number is not valid; how many people and events."""
    if source.id != "nhs_number":
        return mapped, 0, 0
    ids = pd.concat([mapped.patients["source_id"], mapped.events["source_id"]]).dropna()
    invalid = {i for i in ids.astype("str").unique() if not_valid(i)}
    kept, events = _set_aside(mapped, invalid, INVALID_NHS_NUMBER)
    return kept, len(invalid), events


def _latest(mapped: Mapped, ids: pd.Series) -> pd.Series:
    """The start of each patients row's most recent event in the source (NaT: none)."""
    last = mapped.events.groupby("source_id")["start"].max()
    return pd.Series(
        last.reindex(mapped.patients["source_id"].to_numpy()).to_numpy(), index=ids.index
    )


def reconcile(rows: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, int]]:
    """One patients row per ``patient_id`` from rows ordered by precedence (see the module
    docstring); the people whose sources disagree, per field."""
    fields = [c.name for c in PATIENTS.columns if c.name != "patient_id"]
    known = rows[fields].assign(
        ethnicity_group=rows["ethnicity_group"].mask(rows["ethnicity_group"] == "Unknown")
    )
    grouped = known.assign(patient_id=rows["patient_id"]).groupby("patient_id", sort=True)
    out = grouped.first()
    chosen = rows.drop_duplicates("patient_id").set_index("patient_id")
    for column in REGISTRATION_FIELDS:
        out[column] = chosen[column].reindex(out.index)
    out["ethnicity_group"] = out["ethnicity_group"].fillna(
        chosen["ethnicity_group"].reindex(out.index)
    )
    distinct = grouped.nunique(dropna=True)
    disagreements = {f: int((distinct[f] > 1).sum()) for f in fields if (distinct[f] > 1).any()}
    return out.reset_index()[[c.name for c in PATIENTS.columns]], disagreements


@dataclass(frozen=True, slots=True)
class _Checked:
    """A source with its invalid ids set aside, and the pseudonyms of its people."""

    source: Source
    mapped: Mapped
    patient_ids: pd.Series
    event_ids: pd.Series
    invalid_people: int
    invalid_events: int

    @property
    def unconfirmed(self) -> set[str]:
        """The people (pseudonyms) the source knows only from rows that cannot stand alone."""
        alone = self.mapped.patients["source_id"].isin(self.mapped.unconfirmed)
        return set(self.patient_ids[alone.to_numpy()].dropna())

    @property
    def people(self) -> set[str]:
        """Everyone the source names, in its patients rows or only in its events."""
        return set(self.patient_ids.dropna()) | set(self.event_ids.dropna())

    def source_ids(self, people: set[str]) -> set[str]:
        """The source ids of ``people`` (pseudonyms)."""
        patients = self.mapped.patients.loc[self.patient_ids.isin(people), "source_id"]
        events = self.mapped.events.loc[self.event_ids.isin(people), "source_id"]
        return set(patients) | set(events)


def _checked(source: Source, mapped: Mapped, key: Pseudonymiser) -> _Checked:
    kept, invalid_people, invalid_events = _check_ids(source, mapped)
    return _Checked(
        source,
        kept,
        source.pseudonyms(key, kept.patients["source_id"]),
        source.pseudonyms(key, kept.events["source_id"]),
        invalid_people,
        invalid_events,
    )


def link(sources: Sequence[tuple[Source, Mapped]], key: Pseudonymiser) -> Linked:
    """Link the mapped sources (in manifest order) into one contract under pseudonyms."""
    checked = [_checked(source, mapped, key) for source, mapped in sources]
    registering = [set(c.patient_ids.dropna()) for c in checked if c.source.registrations]
    registered = set().union(*registering) if registering else None
    seen: dict[str, int] = {}
    for item in checked:
        for person in item.people:
            seen[person] = seen.get(person, 0) + 1
    links: list[SourceLink] = []
    for item in checked:
        source, mapped, ids = item.source, item.mapped, item.patient_ids
        invalid_people, invalid_events = item.invalid_people, item.invalid_events
        people = item.people
        outside = people - registered if registered is not None else set()
        outside |= {p for p in item.unconfirmed if seen[p] < 2}
        outside_ids = item.source_ids(outside)
        kept, not_registered_events = _set_aside(mapped, outside_ids, NOT_REGISTERED)
        links.append(
            SourceLink(
                source=source,
                mapped=kept,
                patient_ids=ids[~ids.isin(outside)],
                people=len(people),
                invalid_ids=invalid_people,
                matched=len(people) - len(outside),
                not_registered=len(outside),
                in_other_sources=sum(1 for p in people if seen[p] > 1),
                events_set_aside={
                    k: v
                    for k, v in (
                        (INVALID_NHS_NUMBER, invalid_events),
                        (NOT_REGISTERED, not_registered_events),
                    )
                    if v
                },
            )
        )
    return _combined(links, key)


def _ranked(links: Sequence[SourceLink]) -> pd.DataFrame:
    """Every source's patients rows under pseudonyms, in precedence order per person."""
    frames = []
    for order, item in enumerate(links):
        patients = item.mapped.patients
        frames.append(
            patients.drop(columns="source_id").assign(
                patient_id=item.patient_ids.to_numpy(),
                secondary=not item.source.registrations,
                latest=_latest(item.mapped, item.patient_ids).to_numpy(),
                order=order,
            )
        )
    rows = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    rows["latest"] = pd.to_datetime(rows["latest"])
    return rows.sort_values(
        ["patient_id", "secondary", "latest", "order"],
        ascending=[True, True, False, True],
        na_position="last",
        kind="stable",
    )


def _combined(links: Sequence[SourceLink], key: Pseudonymiser) -> Linked:
    ranked = _ranked(links)
    columns = [c.name for c in PATIENTS.columns]
    if len(links) == 1:
        patients, disagreements = ranked.sort_index()[columns], {}
    else:
        # A person given twice by one source is that source's mistake, not a disagreement
        # between sources: the later rows follow the reconciled ones, and validation
        # quarantines them as duplicates.
        repeated = ranked.duplicated(["patient_id", "order"])
        patients, disagreements = reconcile(ranked[~repeated])
        patients = pd.concat([patients, ranked.loc[repeated, columns]], ignore_index=True)
    events = pd.concat(
        [
            item.mapped.events.assign(
                patient_id=item.source.pseudonyms(key, item.mapped.events["source_id"])
            ).drop(columns="source_id")
            for item in links
        ],
        ignore_index=True,
    )
    by_precedence = sorted(links, key=lambda item: not item.source.registrations)
    practices = pd.concat(
        [item.mapped.practices for item in by_precedence], ignore_index=True
    ).drop_duplicates("practice_id")
    counts = ranked.drop_duplicates(["patient_id", "order"]).groupby("patient_id").size()
    return Linked(
        links=tuple(links),
        practices=practices,
        patients=patients,
        events=events,
        registered_from=tuple(item.source.name for item in links if item.source.registrations),
        in_several_sources=int((counts > 1).sum()),
        disagreements=disagreements,
    )


def ignored(item: SourceLink, key: Pseudonymiser) -> pd.DataFrame:
    """The source's rows not mapped (or set aside), with their reason, under pseudonyms."""
    rows = item.mapped.ledger.ignored_frame()
    ids = rows["source_id"].astype("str").where(rows["source_id"].notna())
    return rows.assign(patient_id=item.source.pseudonyms(key, ids).to_numpy()).drop(
        columns="source_id"
    )


def person_counts(links: Sequence[SourceLink]) -> dict[str, dict[str, object]]:
    """Per source: its people, matched to the registered population, set aside."""
    return {
        item.source.name: {
            "people": item.people,
            "invalid_nhs_numbers": item.invalid_ids,
            "matched_to_registered": item.matched,
            "not_registered": item.not_registered,
            "in_other_sources": item.in_other_sources,
            "events_set_aside": item.events_set_aside,
        }
        for item in links
    }


def supplies(events: pd.DataFrame) -> tuple[dict[str, int], dict[str, str | None]]:
    """The event kinds a source supplied (events per kind) and its date span."""
    kinds = events["kind"].value_counts().sort_index()
    starts = pd.to_datetime(events["start"]).dropna()
    span = {
        "first": None if starts.empty else str(starts.min().date()),
        "last": None if starts.empty else str(starts.max().date()),
    }
    return {str(k): int(v) for k, v in kinds.items()}, span
