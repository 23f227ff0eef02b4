"""The PhoneCall a log line is about, for structured logs (``b2bua serve --log-format json``).

``CALL_ID`` is set in each call's task (``Engine._run_call``); trio tasks inherit the context of
the task that starts them, so every line logged by a call's task and its children carries the
call's id without passing it around. A line logged elsewhere about a call passes it explicitly:
``logger.info(..., extra={"call": call.id})``; the formatter takes ``extra`` first.
"""

from __future__ import annotations

from contextvars import ContextVar

__all__ = ["CALL_ID"]

CALL_ID: ContextVar[str | None] = ContextVar("b2bua_call_id", default=None)
