"""HES / SUS+ admitted patient care: consultant episodes grouped into hospital spells.

- **Admission date**: ``ADMIDATE``; when it is missing, ``EPISTART`` of an episode with
  ``EPIORDER`` 1 (a spell's first episode starts on admission). Neither: the episode is not
  mapped (``no_admission_date``).
- **Duplicates**: an episode (``EPIKEY``) in two financial-year files (``PARTYEAR``), or twice
  in one, counts once: the copy from the latest year is kept (an episode unfinished at a year
  end is sent again, finished, the next year); the others are ``duplicate_episode``.
- **Spell**: the person's episodes at one provider (``PROCODE3``, else the first three
  characters of the provider or site code) with one admission date, ordered by ``EPIORDER``
  (unknown orders 98/99 last), then episode start and end. The first episode is the one with
  ``EPIORDER`` 1, else (the spell began before the extract) the lowest; the last is the
  highest. ``EPIORDER`` decides where ``SPELBGIN`` / ``SPELEND`` disagree (counted).
- **Discharge date**: ``DISDATE`` of the last episode; else the latest ``DISDATE`` of the
  spell's other episodes; else the last episode's ``EPIEND`` when it ends the spell
  (``SPELEND`` Y); else none (still in hospital, or not known: the admission keeps no end and
  no length of stay). A discharge before the admission is dropped the same way. Each rule's
  count is reported.
- **Kind**, from the first episode's ``ADMIMETH`` (``codes/hes_codes.csv``): emergency (21-25,
  28, 2A-2D) ``emergency_admission``; elective (11-13) ``elective_admission``; value: length
  of stay in days; code: the first episode's ``DIAG_4_01`` (ICD-10, four characters, no dot)
  so potentially avoidable admissions are counted. Maternity (31, 32), transfers (81),
  births (82, 83) and unknown methods have no contract kind: their first episode is not
  mapped, with that reason.
- **Care home**: a spell whose last episode's ``DISDEST`` is a care home (54 NHS run, 65 local
  authority residential, 85 non-NHS run; 88, a hospice, is not) gives a
  ``care_home_admission`` on the discharge date, unless the person was admitted from a care
  home (``ADMISORC`` 54, 65, 85: going back, counted).
- **Died in hospital** (``DISMETH`` 4 or ``DISDEST`` 79): the discharge date is the person's
  death date when no ONS death is given.

Every event of a spell names its first episode as its source row; the spell's other episodes
are not mapped separately (``later_episode_of_spell``), so episodes in = mapped + not mapped.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from riskstrat.contract.schema import EventKind as K
from riskstrat.features.avoidable import ICD10
from riskstrat.sources.ingest import hes_fields as hf
from riskstrat.sources.ingest.mapping import Ledger
from riskstrat.sources.ingest.tables import Extract

KINDS = {"emergency": K.EMERGENCY_ADMISSION, "elective": K.ELECTIVE_ADMISSION}
NOT_ADMISSIONS = {
    "maternity": "maternity_admission",
    "transfer": "transfer_admission",
    "birth": "birth_admission",
    "not_known": "admission_method_not_known",
}
UNKNOWN_ORDER = 98  # EPIORDER 98 (not applicable) and 99 (not known) sort after real orders


@dataclass(frozen=True, slots=True)
class Admitted:
    """What admitted patient care gives: events, what each episode says of its person, and
    deaths in hospital (``source_id``, ``date``)."""

    events: pd.DataFrame
    records: pd.DataFrame
    deaths: pd.DataFrame


def primary_diagnosis(values: pd.Series) -> pd.Series:
    """``DIAG_4_01`` as four ICD-10 characters (``I50.0`` -> ``I500``, ``R54X`` kept); HES's
    fillers (``-``, ``&``) and blanks become missing."""
    text = values.astype("str").str.upper().str.replace(r"[^A-Z0-9]", "", regex=True)
    code = text.str[:4]
    return code.where(code.str.fullmatch(r"[A-Z]\d{2}[0-9A-Z]?", na=False))


def _provider(episodes: pd.DataFrame) -> pd.Series:
    code = episodes["procode3"].astype("str").str.strip().str.upper().str[:3]
    return code.fillna("")


def _admission_date(extract: Extract, episodes: pd.DataFrame) -> pd.DataFrame:
    order = pd.to_numeric(episodes["epiorder"], errors="coerce")
    out = episodes.assign(
        **{c: hf.dates_by_file(extract, episodes, c) for c in ("admidate", "epistart", "epiend")},
        disdate=hf.dates_by_file(extract, episodes, "disdate"),
        order=order.where(order < UNKNOWN_ORDER),
    )
    return out.assign(start=out["admidate"].fillna(out["epistart"].where(out["order"] == 1)))


def _in_spells(episodes: pd.DataFrame) -> pd.DataFrame:
    """Episodes with ``spell`` (an id), ``first`` and ``last``, ordered within their spell."""
    keyed = episodes.assign(provider=_provider(episodes))
    keyed = keyed.sort_values(
        ["source_id", "provider", "start", "order", "epistart", "epiend", hf.TABLE, hf.ROW],
        na_position="last",
        kind="stable",
    )
    spell = keyed.groupby(["source_id", "provider", "start"], sort=False).ngroup()
    keyed = keyed.assign(spell=spell.to_numpy())
    position = keyed.groupby("spell").cumcount()
    size = keyed.groupby("spell")["spell"].transform("size")
    return keyed.assign(first=position == 0, last=position == size - 1)


def _discharge(spells: pd.DataFrame, first: pd.DataFrame, ledger: Ledger) -> pd.Series:
    """Each spell's discharge date (index: spell id), by the rule in the module docstring."""
    last = spells[spells["last"]].set_index("spell")
    from_last = last["disdate"]
    from_others = spells.groupby("spell")["disdate"].max()
    ends_spell = last["spelend"].astype("str").str.strip().str.upper() == "Y"
    from_end = last["epiend"].where(ends_spell.fillna(False))
    end = from_last.fillna(from_others).fillna(from_end)
    admitted = first.set_index("spell")["start"]
    backwards = (end < admitted).fillna(False)
    ledger.facts.setdefault("admissions", {})["discharge_date_rule"] = {
        "last_episode_disdate": int(from_last.notna().sum()),
        "other_episode_disdate": int((from_last.isna() & from_others.notna()).sum()),
        "last_episode_end": int((from_last.isna() & from_others.isna() & from_end.notna()).sum()),
        "none_still_in_hospital_or_unknown": int(end.isna().sum()),
        "before_admission_dropped": int(backwards.sum()),
    }
    return end.mask(backwards)


def _flag_disagreements(spells: pd.DataFrame) -> dict[str, int]:
    begin = spells["spelbgin"].astype("str").str.strip()
    end = spells["spelend"].astype("str").str.strip().str.upper()
    methods = spells.groupby("spell")["admimeth"].nunique()
    return {
        "spelbgin_disagrees_with_epiorder": int(
            ((spells["first"] & (begin == "0")) | (~spells["first"] & begin.isin(["1", "2"])))
            .fillna(False)
            .sum()
        ),
        "spelend_disagrees_with_epiorder": int(
            ((spells["last"] & (end == "N")) | (~spells["last"] & (end == "Y"))).fillna(False).sum()
        ),
        "spells_without_epiorder_1": int((~spells.loc[spells["first"], "order"].eq(1)).sum()),
        "spells_with_several_epiorder_1": int(
            (spells[spells["order"] == 1].groupby("spell").size() > 1).sum()
        ),
        "spells_with_several_admission_methods": int((methods > 1).sum()),
    }


def _spell_events(spells: pd.DataFrame, ledger: Ledger) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Admission and care-home events, one row per spell's first episode; in-hospital deaths."""
    first = spells[spells["first"]].set_index("spell", drop=False)
    last = spells[spells["last"]].set_index("spell")
    end = _discharge(spells, first, ledger)
    method = hf.outcome("admimeth", first["admimeth"])
    destination = hf.outcome("disdest", last["disdest"])
    died = (hf.outcome("dismeth", last["dismeth"]) == "died") | (destination == "died")
    from_care_home = hf.outcome("admisorc", first["admisorc"]) == "care_home"
    to_care_home = (destination == "care_home").fillna(False)
    diagnosis = primary_diagnosis(first["diag_4_01"])
    stay = (end - first["start"]).dt.days.astype("float64")
    parts = []
    for name, kind in KINDS.items():
        rows = first[method == name]
        parts.append(
            hf.event_frame(
                rows,
                kind.value,
                start=rows["start"],
                end=end[rows.index],
                code=diagnosis[rows.index],
                code_system=diagnosis[rows.index].where(diagnosis[rows.index].isna(), ICD10),
                value=stay[rows.index],
            )
        )
    moves = first[to_care_home & ~from_care_home.fillna(False) & end.notna()]
    parts.append(
        hf.event_frame(moves, K.CARE_HOME_ADMISSION.value, start=end[moves.index], code="care_home")
    )
    events = pd.concat(parts, ignore_index=True)
    mapped = method.isin(list(KINDS)) | first.index.isin(moves.index)
    unmapped = first[~mapped].assign(code=first["admimeth"], description=method)
    for reason, rows in unmapped.groupby(
        method[~mapped].map(NOT_ADMISSIONS).fillna("unknown_admission_method"), sort=True
    ):
        hf.each_file(ledger, rows, str(reason))
    facts = ledger.facts.setdefault("admissions", {})
    facts.update(
        {
            "spells": len(first),
            "spells_by_admission_method": {
                str(k): int(v)
                for k, v in method.fillna("unknown").value_counts().sort_index().items()
            },
            "emergency_admissions": int((method == "emergency").sum()),
            "elective_admissions": int((method == "elective").sum()),
            "admissions_without_primary_diagnosis": int(
                (method.isin(list(KINDS)) & diagnosis.isna()).sum()
            ),
            "discharges_to_care_home": int(to_care_home.sum()),
            "care_home_admissions": len(moves),
            "care_home_discharges_of_care_home_residents": int(
                (to_care_home & from_care_home.fillna(False)).sum()
            ),
            "care_home_discharges_without_date": int((to_care_home & end.isna()).sum()),
            "died_in_hospital": int(died.fillna(False).sum()),
            **_flag_disagreements(spells),
        }
    )
    dead = first[died.fillna(False) & end.notna()]
    deaths = pd.DataFrame({"source_id": dead["source_id"], "date": end[dead.index]})
    return events, deaths


def map_apc(extract: Extract, episodes: pd.DataFrame, ledger: Ledger) -> Admitted:
    """Spells and their events from the episodes of all APC files (see the module docstring)."""
    episodes = _admission_date(extract, episodes)
    episodes = hf.unique_records(episodes, "epikey", ledger, "duplicate_episode")
    episodes = hf.present(ledger, episodes, "source_id", "no_person_id")
    records = hf.person_records(episodes, episodes["epistart"].fillna(episodes["start"]))
    hf.each_file(ledger, episodes[episodes["start"].isna()], "no_admission_date")
    spells = _in_spells(episodes[episodes["start"].notna()])
    hf.each_file(ledger, spells[~spells["first"]], "later_episode_of_spell")
    ledger.facts.setdefault("admissions", {})["episodes"] = len(episodes)
    events, deaths = _spell_events(spells, ledger)
    return Admitted(events, records, deaths)
