"""A one-page HTML model card with the headings of the TRIPOD+AI reporting guideline.

Rendered from ``templates/model_card.html``; every sentence about the model is derived from
its typed description (outcome, test design, tier policy) and feature specs, and every number
comes from ``metrics.json`` or a CSV beside the card.
"""

from __future__ import annotations

from collections import Counter
from functools import cache
from pathlib import Path

import pandas as pd
from jinja2 import Environment
from markupsafe import Markup

from riskstrat.common.templates import html_environment
from riskstrat.features.spec import FeatureSpec
from riskstrat.models.description import ModelDescription
from riskstrat.models.registry import registered_name

TEMPLATES = Path(__file__).parent / "templates"


def table_html(frame: pd.DataFrame, digits: int = 3) -> Markup:
    """A table as HTML (pandas escapes the cells)."""
    return Markup(
        frame.to_html(
            index=False,
            float_format=lambda v: f"{v:.{digits}f}",
            border=0,
            classes="t",
            na_rep="-",
        )
    )


def missing_data(specs: tuple[FeatureSpec, ...]) -> str:
    """What a person with no events, or an unrecorded value, gets: from the specs' defaults."""
    defaults = Counter(s.default for s in specs if not s.categorical and s.default is not None)
    stays = sum(1 for s in specs if not s.categorical and s.default is None)
    parts = [f"{n} column(s) take {value:g}" for value, n in sorted(defaults.items())]
    text = ""
    if parts:
        text = "A person with no events in a feature's window gets its declared default: "
        text += "; ".join(parts) + ". "
    if stays:
        text += f"{stays} column(s) stay missing when unrecorded and LightGBM routes them. "
    if any(s.categorical for s in specs):
        text += "An unknown category is its own code (-1)."
    return text.strip()


@cache
def _environment() -> Environment:
    return html_environment(TEMPLATES, filters={"table": table_html})


def model_card(
    *,
    description: ModelDescription,
    specs: tuple[FeatureSpec, ...],
    comparison: pd.DataFrame,
    top_shares: pd.DataFrame,
    subgroups: pd.DataFrame,
    drift: pd.DataFrame,
    absent: list[str] | None = None,
) -> str:
    """The card's HTML, titled with the registered model's name (one per outcome);
    ``absent`` (``features.absent.describe_absent``) names the features computed from event
    kinds the training data held none of."""
    return (
        _environment()
        .get_template("model_card.html")
        .render(
            d=description,
            name=registered_name(description.outcome.admissions),
            m=description.metrics,
            n_features=len(specs),
            missing_data=missing_data(specs),
            comparison=comparison,
            top_shares=top_shares,
            subgroups=subgroups,
            drift=drift,
            absent=absent or [],
        )
    )
