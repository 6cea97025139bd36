"""The outcomes an evaluation can count per person and calendar month: names and meanings.

One list for both sides: ``riskstrat.impact`` counts these from the contract tables, and the
synthetic generator writes its known truth of an intervention's effect under the same names
(it may not import the evaluation, so the names live here, below both). The model's own
outcome, the label it learns, is ``labels``.

- ``emergency_admissions``: emergency admissions starting in the month;
- ``avoidable_admissions``: those whose ICD-10 primary diagnosis is ambulatory-care-sensitive
  (``avoidable``);
- ``bed_days``: the length of stay of those admissions, counted in the month of admission (a
  stay still open at the end of the data counts up to that day);
- ``ae_attendances``: A&E attendances;
- ``care_home_resident_admissions``: emergency admissions of people living in a care home
  (a permanent care-home admission on or before the admission day);
- ``care_home_admissions``: permanent care-home admissions;
- ``package_cost``: social-care package cost in GBP (weekly cost x days active / 7);
- ``deaths``: deaths (a safety outcome).
"""

from __future__ import annotations

from riskstrat.contract.schema import EventKind

OUTCOMES: dict[str, str] = {
    "emergency_admissions": "emergency admissions",
    "avoidable_admissions": "potentially avoidable emergency admissions",
    "bed_days": "emergency bed days",
    "ae_attendances": "A&E attendances",
    "care_home_resident_admissions": "emergency admissions of care-home residents",
    "care_home_admissions": "permanent care-home admissions",
    "package_cost": "social-care package cost (GBP)",
    "deaths": "deaths",
}
"""Every outcome an evaluation can count, in the order results list them, and its label."""

_ADMISSION = (EventKind.EMERGENCY_ADMISSION,)
OUTCOME_KINDS: dict[str, tuple[EventKind, ...]] = {
    "emergency_admissions": _ADMISSION,
    "avoidable_admissions": _ADMISSION,
    "bed_days": _ADMISSION,
    "ae_attendances": (EventKind.AE_ATTENDANCE,),
    # Without care-home admissions nobody is known to live in a care home.
    "care_home_resident_admissions": (*_ADMISSION, EventKind.CARE_HOME_ADMISSION),
    "care_home_admissions": (EventKind.CARE_HOME_ADMISSION,),
    "package_cost": (EventKind.SOCIAL_CARE_PACKAGE,),
    "deaths": (),  # the patients table's death dates
}
"""The event kinds each outcome is counted from: an outcome whose kinds the data lack is not
measured (zero would read as "none happened")."""
