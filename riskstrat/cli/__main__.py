"""``python -m riskstrat.cli``: the ``riskstrat`` command."""

from riskstrat.cli import main

main()
