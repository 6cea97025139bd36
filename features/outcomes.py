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
