"""A one-page HTML card for a fitted benefit model: what it estimates, what the data say per
kind of help, what it rests on and where it must not be used (docs/targeting.md at length)."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from jinja2 import Environment

from riskstrat.common.templates import html_environment
from riskstrat.models.benefit import BenefitModel
from riskstrat.training.benefit import BenefitSettings

TEMPLATES = Path(__file__).parent / "templates"


@cache
def _environment() -> Environment:
    return html_environment(TEMPLATES)


def benefit_card(model: BenefitModel, settings: BenefitSettings) -> str:
    """The card's HTML for ``model``, fitted with ``settings``."""
    return _environment().get_template("benefit_card.html").render(m=model, s=settings)


def save_benefit(model: BenefitModel, settings: BenefitSettings, path: Path, card: Path) -> None:
    """The model where the weekly run reads it, and its card beside it."""
    model.save(path)
    card.write_text(benefit_card(model, settings), encoding="utf-8")
