"""Log formatting: one JSON object per line, for log collectors (LOG_FORMAT=json, the default).

Every `extra={...}` field a call site passes (operation_id, user_id, status, …) becomes a
key of its own, so a collector can filter on `operation_id` without parsing messages.
"""

import json
import logging
from datetime import UTC, datetime

# The attributes every LogRecord has; whatever else a record carries came from `extra`.
STANDARD_ATTRIBUTES = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def format(self, record):
        line = {
            "timestamp": datetime.fromtimestamp(record.created, tz=UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in STANDARD_ATTRIBUTES and not key.startswith("_"):
                line[key] = value
        if record.exc_info:
            line["exc_info"] = self.formatException(record.exc_info)
        if record.stack_info:
            line["stack_info"] = self.formatStack(record.stack_info)
        # default=str: an extra that JSON cannot hold (a request, a UUID) is still written, as text.
        return json.dumps(line, default=str, ensure_ascii=False)


def logging_config(log_format, level):
    """The LOGGING dict for settings: `json` (one object per line) or `plain` text."""
    if log_format not in {"json", "plain"}:
        raise ValueError(f"LOG_FORMAT must be json or plain, not {log_format!r}")
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {
            "json": {"()": JsonFormatter},
            "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        },
        "handlers": {"console": {"class": "logging.StreamHandler", "formatter": log_format}},
        "root": {"handlers": ["console"], "level": level},
        "loggers": {"django.db.backends": {"level": "WARNING"}, "rq.worker": {"level": "WARNING"}},
    }
