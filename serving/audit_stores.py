"""Which audit store the service's settings choose: the append-only table in PostgreSQL
when ``RISKSTRAT_DATABASE_URL`` is set (every server shares it), else the log file."""

from __future__ import annotations

from riskstrat.serving.audit import AuditLog, audit_key
from riskstrat.serving.audit_db import DatabaseAuditLog
from riskstrat.serving.settings import ServiceSettings


def audit_store(settings: ServiceSettings) -> AuditLog | DatabaseAuditLog:
    """The service's audit log as its settings say, not yet checked (``start``)."""
    if settings.database_url:
        return DatabaseAuditLog(settings.database_url, audit_key(settings))
    return AuditLog.from_settings(settings)


def open_audit_log(settings: ServiceSettings) -> AuditLog | DatabaseAuditLog:
    """The service's audit log, checked as the service starts (``start``): a
    ``ChainBrokenError`` (or a key or settings error) means it must not serve."""
    log = audit_store(settings)
    log.start()
    return log
