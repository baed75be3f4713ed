"""JSON logs: one object per line, with a line per request and per event.

``JsonFormatter`` writes any log record as one JSON line (``time``, ``level``, ``logger``,
``message``, the request id when there is one, and the record's own fields). ``RequestLog`` and
``EventLog`` write the request and event lines: ids, names, status and duration only, never a
parameter, a query string, a header or a cookie, so a password or a session cannot end up in
a log through them.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

from starmodel.adapters.driving.operations.request_watch import (
    RequestCall,
    RequestObserver,
    current_request_id,
)
from starmodel.app.observe import EventObserver, ObservedEvent

__all__ = ["EventLog", "JsonFormatter", "RequestLog", "json_handler", "json_logging_config", "use_json_logs"]

#: What a log record holds anyway; everything else on it was passed as ``extra=``.
_STANDARD = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "color_message"}
requests_log = logging.getLogger("starmodel.requests")
events_log = logging.getLogger("starmodel.events")


class JsonFormatter(logging.Formatter):
    """Formats each record as one line of JSON."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = getattr(record, "request_id", None) or current_request_id.get()
        if request_id is not None:
            line["request_id"] = request_id
        for name, value in record.__dict__.items():
            if name not in _STANDARD and name not in line and not name.startswith("_"):
                line[name] = value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        return json.dumps(line, default=str, ensure_ascii=False)


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is when a line is written (tests replace it)."""

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr
        super().emit(record)


def json_handler() -> logging.Handler:
    """A handler writing JSON lines to standard error."""
    handler = _StderrHandler()
    handler.setFormatter(JsonFormatter())
    return handler


def use_json_logs(level: int = logging.INFO) -> None:
    """Make StarModel's loggers write JSON lines to standard error, unless logging is set up
    already (``starmodel run --log-format json`` has done it; an app that configures logging
    itself keeps its configuration: ``JsonFormatter`` is there for it)."""
    logger = logging.getLogger("starmodel")
    if logger.handlers or logging.getLogger().handlers:
        return
    logger.addHandler(json_handler())
    logger.propagate = False
    if logger.level == logging.NOTSET or logger.level > level:
        logger.setLevel(level)


def json_logging_config(level: str) -> dict[str, Any]:
    """The ``logging.config.dictConfig`` of a server process writing JSON lines on standard
    error: the server's own lines (uvicorn's or granian's, access lines off: the request
    lines replace them) and StarModel's."""
    formatter = {"()": f"{__name__}.JsonFormatter"}
    handler = {"class": f"{__name__}._StderrHandler", "formatter": "main"}
    loud = level.upper()
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"main": formatter},
        "handlers": {"main": handler},
        "loggers": {
            "": {"handlers": ["main"], "level": "WARNING"},
            "starmodel": {"handlers": ["main"], "level": loud, "propagate": False},
            "uvicorn": {"handlers": ["main"], "level": loud, "propagate": False},
            "uvicorn.error": {"level": loud},
            "uvicorn.access": {"handlers": [], "level": "WARNING", "propagate": False},
            "_granian": {"handlers": ["main"], "level": loud, "propagate": False},
            "granian.access": {"handlers": [], "level": "WARNING", "propagate": False},
        },
    }


class RequestLog(RequestObserver):
    """A line per HTTP request: method, path (no query string), status, duration, request id."""

    def finished(self, request: RequestCall) -> None:
        if not requests_log.isEnabledFor(logging.INFO):
            return
        duration_ms = round(request.duration * 1000, 3)
        requests_log.info(
            "%s %s %d %.1f ms", request.method, request.path, request.status, duration_ms,
            extra={"request_id": request.request_id, "method": request.method, "path": request.path,
                   "status": request.status, "duration_ms": duration_ms},
        )


class EventLog(EventObserver):
    """A line per event: entity, event, status, duration and the request's id (an event run
    by a job or a background task carries the id of the request that started it, if any)."""

    def finished(self, call: ObservedEvent) -> None:
        if not events_log.isEnabledFor(logging.INFO):
            return
        duration_ms = round(call.duration * 1000, 3)
        events_log.info(
            "%s.%s %s %.1f ms", call.entity, call.event, call.status, duration_ms,
            extra={"entity": call.entity, "event": call.event, "status": call.status,
                   "duration_ms": duration_ms},
        )
