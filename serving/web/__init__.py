"""The web pages: the weekly list, patient pages and the social prescribing view.

A Starlette app mounted under ``/ui`` on the BentoML service, behind the same access
middleware as the API (``serving.access``); it reads the weekly run's folders
(``RISKSTRAT_WEEKLY_DIR``) and, for timelines, the contract tables (``RISKSTRAT_DATA_DIR``).
"""
