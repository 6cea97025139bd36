"""Plain-English sentences a board paper can quote, from an estimate and its interval."""

from __future__ import annotations

import math

from riskstrat.impact.results import Interval


def _sentence_case(text: str) -> str:
    """The first letter capitalised and nothing else changed ("A&E", "GBP" stay)."""
    return text[:1].upper() + text[1:]


def _percent(change: float) -> str:
    if math.isinf(change):
        return "no upper bound" if change > 0 else "no lower bound"
    size = abs(change) * 100
    text = f"{size:.0f}%" if size >= 1 else f"{size:.1f}%"
    return f"{text} {'lower' if change < 0 else 'higher'}"


def change_sentence(label: str, who: str, relative: Interval, against: str) -> str:
    """ "Emergency admissions among <who> were 14% lower (95% CI 8% to 20% lower) than
    <against>.", with what an interval that spans no change means said in words."""
    low, high = relative.ci_low, relative.ci_high
    if low < 0 < high or not (math.isfinite(low) and math.isfinite(high)):
        interval = f"95% CI {_percent(low)} to {_percent(high)}"
        verdict = "; the data are consistent with no change" if low < 0 < high else ""
    else:
        same = "lower" if high < 0 else "higher"
        a, b = sorted((abs(low), abs(high)))
        interval = f"95% CI {a * 100:.0f}% to {b * 100:.0f}% {same}"
        verdict = ""
    if abs(relative.estimate) < 0.005:
        return (
            f"{_sentence_case(label)} among {who} were about the same ({interval}) as "
            f"{against}{verdict}."
        )
    return (
        f"{_sentence_case(label)} among {who} were {_percent(relative.estimate)} ({interval}) "
        f"than {against}{verdict}."
    )


def cannot_answer(label: str, who: str, reason: str) -> str:
    """The sentence when the data cannot answer: the reason, never a number."""
    return f"The data cannot say whether {label} changed among {who}: {reason}."
