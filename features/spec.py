"""Feature metadata: what each column means, its default, and how to say it in plain words.

The model bundle saves these specs, so serving can explain a score without the feature code.
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
    and -1 for a category not in the vocabulary.
    """

    name: str
    description: str
    template: str
    concept: str
    default: float | None
    vocabulary: tuple[str, ...] = ()
    zero_template: str = ""

    @property
    def categorical(self) -> bool:
        return bool(self.vocabulary)

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
