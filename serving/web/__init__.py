"""The web pages: the weekly list, patient pages and the social prescribing view.

A Starlette app mounted under ``/ui`` on the BentoML service. Its sign-in, sessions and page
roles are ``serving.web.gate``, to which the API's access middleware (``serving.access``)
hands page requests, over the same principals and audit log. The pages read the weekly
run's folders (``RISKSTRAT_WEEKLY_DIR``) and, for timelines, the contract tables
(``RISKSTRAT_DATA_DIR``).
"""
