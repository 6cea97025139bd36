"""What each intervention sees on the first day of a simulated month."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import numpy as np

from riskstrat.sources.synthetic import emit
from riskstrat.sources.synthetic.dynamics import State
from riskstrat.sources.synthetic.eventlog import EventLog


@dataclass(frozen=True, slots=True)
class MonthStart:
    """Month ``month`` (0 = the first simulated) starting on ``first``: who is present, who is
    registered that day as the patients table will say (``register_ok``), the health state,
    and where events and episode records go."""

    month: int
    first: date
    present: np.ndarray
    register_ok: np.ndarray
    state: State
    log: EventLog
    records: emit.Records
