"""Feature metadata: what each column means, its default, its valid range, and how to say it
in plain words.

The model bundle saves these specs, so serving can explain a score, and refuse a value no
person could have, without the feature code.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass


@dataclass(frozen=True, slots=True, kw_only=True)
class FeatureSpec:
    """One model input column.

    ``template`` is formatted with ``value`` (and ``label`` for categoricals) to make a
    sentence a nurse or social worker understands; ``concept`` groups columns that a person
    would recognise as one reason (all emergency-admission counts are "emergency admissions").
    ``default`` is the value for a person with no events (None: stays missing, as for an
    unrecorded deprivation decile). ``zero_template``, if given, is used instead when the
    value is 0 ("no emergency admissions in the last 12 months"). ``vocabulary`` lists the
    categories of a categorical column; the column holds their position (integer codes),
    and -1 for a category not in the vocabulary. ``minimum`` and ``maximum`` bound the
    values the column can take (None: unbounded, as in bundles saved before ranges); a
    categorical's range is always its codes.
    """

    name: str
    description: str
    template: str
    concept: str
    default: float | None
    vocabulary: tuple[str, ...] = ()
    zero_template: str = ""
    minimum: float | None = None
    maximum: float | None = None

    def __post_init__(self) -> None:
        low, high = self.bounds
        if not low <= high:
            raise ValueError(f"feature {self.name}: minimum {low} is above maximum {high}")

    @property
    def categorical(self) -> bool:
        return bool(self.vocabulary)

    @property
    def bounds(self) -> tuple[float, float]:
        """The smallest and largest valid value: -1 to the last code for a categorical."""
        if self.categorical:
            return -1.0, float(len(self.vocabulary) - 1)
        low = -math.inf if self.minimum is None else self.minimum
        return low, math.inf if self.maximum is None else self.maximum

    def range_text(self) -> str:
        """The valid values in words, for an error message."""
        low, high = self.bounds
        if self.categorical:
            codes = ", ".join(self.vocabulary)
            return f"a whole number from {low:g} to {high:g} (codes of {codes})"
        return f"from {low:g} to {high:g}"

    def sentence(self, value: float) -> str:
        """The plain-English reason for this column at ``value``."""
        if math.isnan(value):  # unknown in the source (deprivation in most real extracts)
            return f"{self.name.replace('_', ' ')} not recorded"
        if self.categorical:
            code = int(value)
            label = self.vocabulary[code] if 0 <= code < len(self.vocabulary) else "unknown"
            return self.template.format(label=label, value=value)
        if value == 0 and self.zero_template:
            return self.zero_template.format(value=value)
        return self.template.format(value=value, whole=math.floor(value))

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> FeatureSpec:
        return cls(**{**data, "vocabulary": tuple(data.get("vocabulary", ()))})
