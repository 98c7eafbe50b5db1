"""A calm console for both services: no access-log line per health poll, no INFO line per
outgoing HTTP request, no migration-plugin chatter. Real requests are still logged, and
`--log-level debug` still shows everything."""

from __future__ import annotations

import logging

# Polled every fraction of a second by `ecg up`, the web page, probes and the backend itself.
HEALTH_PATHS = frozenset({"/health", "/api/upload-video/ml-server/health", "/metrics"})
# Libraries that log each routine step at INFO.
CHATTY_LOGGERS = ("httpx", "httpcore", "alembic.runtime.plugins")


class HealthPollFilter(logging.Filter):
    """Drops uvicorn's access line for a successful health poll (its args: client, method,
    path, HTTP version, status)."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if not isinstance(args, tuple) or len(args) < 5:
            return True
        path, status = str(args[2]).split("?", 1)[0], args[4]
        return not (path in HEALTH_PATHS and isinstance(status, int) and status < 400)


def quiet_routine_logs() -> None:
    """Install the filter on uvicorn's access log and raise the chatty loggers to WARNING
    (unless the console is at DEBUG)."""
    access = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, HealthPollFilter) for f in access.filters):
        access.addFilter(HealthPollFilter())
    if logging.getLogger().getEffectiveLevel() > logging.DEBUG:
        for name in CHATTY_LOGGERS:
            logging.getLogger(name).setLevel(logging.WARNING)
