"""Settings of the synthetic borough: a frozen, validated object."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import date

from riskstrat.common.defaults import SEED
from riskstrat.common.errors import UserError
from riskstrat.features.labels import HORIZON_DAYS
from riskstrat.sources.synthetic.population import CLUSTERS

DEFAULT_GO_LIVE: dict[str, date] = {
    "Central Pilot": date(2023, 7, 1),
    "North 1": date(2024, 7, 1),
    "North 2": date(2024, 7, 1),
    "Central 2": date(2025, 1, 1),
    "Central 3": date(2025, 1, 1),
    "South 1": date(2025, 1, 1),
}


def _first_of_month(name: str, value: date) -> None:
    if value.day != 1:
        raise UserError(f"{name} must be the first day of a month, got {value}")


def _ratio(name: str, value: float) -> None:
    if not 0.0 < value <= 2.0:
        raise UserError(f"{name} must be in (0, 2] (1 = no effect), got {value}")


@dataclass(frozen=True, slots=True, kw_only=True)
class LocalityModel:
    """The integrated locality model: case management of an eligible caseload, cluster by
    cluster from each cluster's go-live date (clusters not in ``go_live`` never go live).

    The caseload is everyone registered on ``baseline`` who is then at least ``min_age`` and
    has frailty coded (if ``frailty_coded``) or at least ``prior_admissions`` emergency
    admissions in the 365 days before (if it is not None), using only records made before
    ``baseline``. While managed, the emergency-admission hazard is multiplied by
    ``admission_hr_frail`` (frailty coded at baseline) or ``admission_hr_not_frail``, each
    stay's length by ``stay_multiplier``, the chance of a permanent care-home admission by
    ``care_home_hr`` and the hours (so the cost) of home-care packages by
    ``package_cost_multiplier``. Deaths are not affected.
    """

    enabled: bool = True
    go_live: dict[str, date] = field(default_factory=lambda: dict(DEFAULT_GO_LIVE))
    baseline: date = date(2023, 7, 1)
    min_age: float = 65.0
    frailty_coded: bool = True
    prior_admissions: int | None = 1
    admission_hr_frail: float = 0.75
    admission_hr_not_frail: float = 0.88
    stay_multiplier: float = 0.85
    care_home_hr: float = 0.75
    package_cost_multiplier: float = 0.9

    def __post_init__(self) -> None:
        _first_of_month("locality_model.baseline", self.baseline)
        known = {c[1] for c in CLUSTERS}
        for cluster, go_live in self.go_live.items():
            if cluster not in known:
                raise UserError(
                    f"locality_model.go_live: unknown GP cluster {cluster!r} (known: "
                    f"{', '.join(sorted(known))})"
                )
            _first_of_month(f"locality_model.go_live[{cluster!r}]", go_live)
            if go_live < self.baseline:
                raise UserError(
                    f"locality_model.go_live[{cluster!r}] ({go_live}) is before the baseline "
                    f"({self.baseline})"
                )
        if not 0 <= self.min_age <= 110:
            raise UserError(f"locality_model.min_age must be 0..110, got {self.min_age}")
        if not self.frailty_coded and self.prior_admissions is None:
            raise UserError("locality_model needs frailty_coded or prior_admissions (or both)")
        if self.prior_admissions is not None and self.prior_admissions < 1:
            raise UserError(
                f"locality_model.prior_admissions must be at least 1 or None, got "
                f"{self.prior_admissions}"
            )
        for name in (
            "admission_hr_frail",
            "admission_hr_not_frail",
            "stay_multiplier",
            "care_home_hr",
            "package_cost_multiplier",
        ):
            _ratio(f"locality_model.{name}", getattr(self, name))


REABLEMENT_RATIOS = (
    "reablement_hr",
    "reablement_hr_frail",
    "reablement_hr_recent_discharge",
    "reablement_hr_lives_alone",
)
"""``ListActions``' reablement ratios: for no characteristic, then per characteristic."""
SOCIAL_PRESCRIBING_RATIOS = (
    "social_prescribing_hr",
    "social_prescribing_hr_lonely",
    "social_prescribing_hr_mental_health",
)
"""``ListActions``' social prescribing ratios: for no characteristic, then per one."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ListActions:
    """Actions the risk list triggers. Every ``every_months`` months from ``first_run`` each
    registered adult gets a score: their 12-month emergency-admission probability at their
    current state, made imperfect on the logit scale by a fixed personal error
    (``person_noise_sd``) and a fresh one per run (``run_noise_sd``). People scoring at least
    ``cutoff`` are listed; scores of at least ``band_fraction * cutoff`` are kept. A listed
    person without a list-triggered action running gets one with probability
    ``capacity_share``: a reablement plan (share ``reablement_share``) or else a social
    prescribing referral, which runs for ``action_months``. That draw is a lottery among the
    listed without an action running: with ``lottery`` (the default) it is recorded as
    ``risk_list_lottery`` events (the help drawn for, drawn or not), as a weekly run's
    recorded lottery would be. Of those drawn, a share ``uptake`` take the offer up (the
    rest get nothing), so the lottery's effect among those who take help up differs from
    its effect of an offer. The truth counts expected
    admissions over ``follow_up_months`` after each run. When the caller decides the lists
    (``generate``'s ``decisions``), they replace the schedule, the scores and the cut-off; the
    rest applies.

    An action lowers only the hazard of potentially avoidable admissions (the causes
    ``features.avoidable`` lists): it multiplies their hazard by the person's hazard ratio
    ``hr``, so the whole admission hazard by ``1 - a * (1 - hr)`` with ``a`` the person's
    avoidable share of admissions that month, and the others are left alone. ``hr`` is set
    at the run from the person's true characteristics then (the truth of who the help can
    reach): a product of the action's ratio for someone with none of them and one factor
    per characteristic they have (a factor below 1 makes the help stronger):

    - reablement: ``reablement_hr``, times ``reablement_hr_frail`` if frail (the log-frailty
      above which frailty gets coded), ``reablement_hr_recent_discharge`` after an emergency
      admission in the 3 calendar months before the run, ``reablement_hr_lives_alone`` if
      living alone;
    - social prescribing: ``social_prescribing_hr``, times ``social_prescribing_hr_lonely``
      if lonely or isolated (loneliness above the level at which it raises the admission
      hazard) and ``social_prescribing_hr_mental_health`` if in contact with mental-health
      services (mental ill-health at the level that brings contacts, or a serious mental
      illness).

    ``varying=False`` (``uniform()``) gives every person the same ratio per action and run:
    the average of the varying ratios over the registered adults weighted by their hazard
    of an avoidable admission that month, so that offering the action to everyone would
    prevent as many avoidable admissions in either world. A benchmark can then compare
    targeting where effects vary against where they do not at the same average effect.
    """

    enabled: bool = True
    first_run: date = date(2024, 1, 1)
    every_months: int = 3
    cutoff: float = 0.7
    band_fraction: float = 1 / 3
    person_noise_sd: float = 0.5
    run_noise_sd: float = 0.3
    capacity_share: float = 0.4
    reablement_share: float = 0.5
    lottery: bool = True
    uptake: float = 1.0
    action_months: int = 6
    follow_up_months: int = 3
    reablement_hr: float = 0.9
    reablement_hr_frail: float = 0.6
    reablement_hr_recent_discharge: float = 0.7
    reablement_hr_lives_alone: float = 0.75
    social_prescribing_hr: float = 0.95
    social_prescribing_hr_lonely: float = 0.55
    social_prescribing_hr_mental_health: float = 0.75
    varying: bool = True

    def __post_init__(self) -> None:
        _first_of_month("list_actions.first_run", self.first_run)
        if not 1 <= self.every_months <= 12:
            raise UserError(f"list_actions.every_months must be 1..12, got {self.every_months}")
        if not 0.0 < self.cutoff < 1.0:
            raise UserError(f"list_actions.cutoff must be in (0, 1), got {self.cutoff}")
        if not 0.0 < self.band_fraction <= 1.0:
            raise UserError(
                f"list_actions.band_fraction must be in (0, 1], got {self.band_fraction}"
            )
        for name in ("person_noise_sd", "run_noise_sd"):
            if not 0.0 <= getattr(self, name) <= 3.0:
                raise UserError(f"list_actions.{name} must be 0..3, got {getattr(self, name)}")
        for name in ("capacity_share", "reablement_share", "uptake"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise UserError(f"list_actions.{name} must be 0..1, got {getattr(self, name)}")
        if not 1 <= self.action_months <= 24:
            raise UserError(f"list_actions.action_months must be 1..24, got {self.action_months}")
        if not 1 <= self.follow_up_months <= min(self.action_months, self.every_months):
            raise UserError(
                "list_actions.follow_up_months must be at least 1 and at most action_months "
                f"and every_months, got {self.follow_up_months}"
            )
        for name in (*REABLEMENT_RATIOS, *SOCIAL_PRESCRIBING_RATIOS):
            _ratio(f"list_actions.{name}", getattr(self, name))

    def uniform(self) -> ListActions:
        """The same actions with effects that do not vary: everyone gets the average."""
        return replace(self, varying=False)

    def no_effect(self) -> ListActions:
        """The same runs and actions, every hazard ratio 1 (no effect on anyone)."""
        return replace(self, **dict.fromkeys((*REABLEMENT_RATIOS, *SOCIAL_PRESCRIBING_RATIOS), 1.0))


@dataclass(frozen=True, slots=True, kw_only=True)
class Interventions:
    """What the borough's services do with known effects (both parts on by default)."""

    locality_model: LocalityModel = field(default_factory=LocalityModel)
    list_actions: ListActions = field(default_factory=ListActions)

    @classmethod
    def off(cls) -> Interventions:
        """No interventions: the borough as it was before they existed."""
        return cls(
            locality_model=LocalityModel(enabled=False), list_actions=ListActions(enabled=False)
        )

    def null_effects(self) -> Interventions:
        """The same roll-out, caseload, lists and actions (every event), with no effect on
        anything: for measuring how often an evaluation finds an effect that is not there."""
        return Interventions(
            locality_model=replace(
                self.locality_model,
                admission_hr_frail=1.0,
                admission_hr_not_frail=1.0,
                stay_multiplier=1.0,
                care_home_hr=1.0,
                package_cost_multiplier=1.0,
            ),
            list_actions=self.list_actions.no_effect(),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class SynthConfig:
    """What to generate. ``patients`` counts people registered on ``start``.

    ``truth_as_of`` are the dates (each the first of a month) for which the generator writes
    every living person's exact probability of an emergency admission within
    ``horizon_days``; ``truth_paths`` is the number of sampled paths of the slow state drift.
    ``effect_paths`` is the number of coupled paths per arm behind the locality model's total
    effect (``truth/effects.parquet``).
    ``interventions`` are the services with known effects (``Interventions.off()``: none).
    """

    patients: int = 265_000
    seed: int = SEED
    start: date = date(2021, 1, 1)
    end: date = date(2026, 10, 31)
    truth_as_of: tuple[date, ...] = field(default=(date(2024, 1, 1), date(2025, 1, 1)))
    horizon_days: int = HORIZON_DAYS  # the labels' default: the oracle answers their question
    truth_paths: int = 12
    effect_paths: int = 12
    yearly_leaving_rate: float = 0.045
    interventions: Interventions = field(default_factory=Interventions)

    def __post_init__(self) -> None:
        if self.patients < 100:
            raise UserError(f"patients must be at least 100, got {self.patients}")
        if self.start.day != 1:
            raise UserError(f"start must be the first day of a month, got {self.start}")
        if self.end <= self.start:
            raise UserError(f"end ({self.end}) must be after start ({self.start})")
        for as_of in self.truth_as_of:
            if as_of.day != 1 or not self.start < as_of <= self.end:
                raise UserError(
                    f"truth_as_of {as_of} must be the first of a month after start and not "
                    f"after end"
                )
        if not 1 <= self.horizon_days <= 3 * 365:
            raise UserError(f"horizon_days must be 1..1095, got {self.horizon_days}")
        if self.truth_paths < 4:
            raise UserError(f"truth_paths must be at least 4, got {self.truth_paths}")
        if self.effect_paths < 4:
            raise UserError(f"effect_paths must be at least 4, got {self.effect_paths}")
        if not 0 <= self.yearly_leaving_rate < 0.5:
            raise UserError(
                f"yearly_leaving_rate must be in [0, 0.5), got {self.yearly_leaving_rate}"
            )

        model = self.interventions.locality_model
        if model.enabled and model.baseline.toordinal() - self.start.toordinal() < 365:
            raise UserError(
                f"locality_model.baseline ({model.baseline}) must be at least 365 days after "
                f"start ({self.start}): eligibility looks back a year"
            )

    def month_index(self, day: date) -> int:
        """Months from ``start`` to the month holding ``day`` (0 for the first month)."""
        return (day.year - self.start.year) * 12 + day.month - self.start.month

    @property
    def months(self) -> int:
        """Number of calendar months simulated, the month holding ``end`` included."""
        return (self.end.year - self.start.year) * 12 + self.end.month - self.start.month + 1
