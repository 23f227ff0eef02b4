"""Logging set-up of the ``b2bua`` command: the text format, or one JSON object per line.

``--log-format json`` writes each record as ``{"ts", "level", "logger", "msg", ...}``: ``ts`` in
ISO 8601 (UTC, milliseconds), ``call`` the PhoneCall id on every line about a call (from the
record's ``extra`` or from ``engine.logctx.CALL_ID``, set in each call's task), ``exc`` the
traceback of a logged exception, and any other ``extra`` field a line carries (the access
log's ``method``, ``route``, ``status``, ``duration_ms``, ``client``).

Levels: ``serve`` logs INFO by default (start, drain, each call's creation and end,
registrations, blocks, the access log) but keeps the SIP stack's per-message INFO lines
(``sip.*``: a dropped datagram, a failed send) at WARNING unless ``-v``; ``-vv`` is DEBUG.

``serve`` writes its lines from a thread of their own: the signalling thread makes the record
and its message text (and takes the call's id from its context) and hands it over; the
formatting and the write to stderr, which blocks when whatever reads stderr falls behind,
happen on the log thread. The lines still queued are written at exit (a ``kill -9`` loses
the few not written yet).
"""

from __future__ import annotations

import atexit
import json
import logging
import logging.handlers
import queue
from datetime import UTC, datetime
from typing import Any

from engine.logctx import CALL_ID

__all__ = ["JsonFormatter", "setup_logging"]

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

# LogRecord's own attributes: whatever else a record has came from ``extra``
_STANDARD = frozenset(
    logging.LogRecord("", 0, "", 0, "", None, None).__dict__.keys()
    | {"message", "asctime", "taskName"}
)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        call = getattr(record, "call", None) or CALL_ID.get()
        if call is not None:
            entry["call"] = call
        for key, value in record.__dict__.items():
            if key not in _STANDARD and key not in entry:
                entry[key] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exc"] = record.exc_text
        return json.dumps(entry, default=str, ensure_ascii=False)


class _Handoff(logging.handlers.QueueHandler):
    """Hands records to the log thread with what needs the caller's thread done: the message
    text (its arguments may change later), the call's id (a context variable of the caller's
    task) and an exception's traceback text."""

    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        if getattr(record, "call", None) is None:
            call = CALL_ID.get()
            if call is not None:
                record.call = call
        record.msg = record.getMessage()
        record.args = None
        if record.exc_info:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
            record.exc_info = None
        return record


def setup_logging(verbosity: int, log_format: str = "text", *, server: bool = False) -> None:
    """The root handler on stderr. ``server``: ``b2bua serve``'s levels (module docstring);
    else WARNING, ``-v`` INFO, ``-vv`` DEBUG."""
    if server:
        level = logging.DEBUG if verbosity >= 2 else logging.INFO
    else:
        level = [logging.WARNING, logging.INFO][verbosity] if verbosity < 2 else logging.DEBUG
    handler: logging.Handler = logging.StreamHandler()
    json_lines = log_format == "json"
    handler.setFormatter(JsonFormatter() if json_lines else logging.Formatter(TEXT_FORMAT))
    if server:
        records: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
        writer = logging.handlers.QueueListener(records, handler)
        writer.start()
        atexit.register(writer.stop)  # the lines still queued are written
        handler = _Handoff(records)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    if server and verbosity == 0:
        logging.getLogger("sip").setLevel(logging.WARNING)
