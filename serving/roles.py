"""The service's role names, in a module with no imports so that the command line can offer
them as choices without loading the service's settings (``riskstrat --help`` stays fast).

``riskstrat.serving.access`` re-exports them; what each role may do is decided there.
"""

ROLES = ("system", "data_scientist", "social_prescriber", "locality_team")
