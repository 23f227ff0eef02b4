"""``serve``'s log lines are written from a thread of their own: what the caller's thread must
do (the message text, the call's id from its task context, a traceback's text) is done before
the hand-over, so the lines read as if written in place."""

from __future__ import annotations

import io
import json
import logging
import logging.handlers
import queue
import threading

from b2bua.logs import JsonFormatter, _Handoff
from engine.logctx import CALL_ID


def test_a_handed_over_record_keeps_the_callers_text_call_and_traceback() -> None:
    out = io.StringIO()
    written_by: list[str] = []

    class Stream(logging.StreamHandler):  # type: ignore[type-arg]
        def emit(self, record: logging.LogRecord) -> None:
            written_by.append(threading.current_thread().name)
            super().emit(record)

    stream = Stream(out)
    stream.setFormatter(JsonFormatter())
    records: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
    writer = logging.handlers.QueueListener(records, stream)
    writer.start()
    log = logging.getLogger("test.handoff")
    log.propagate = False
    log.setLevel(logging.INFO)
    log.addHandler(_Handoff(records))
    parties = ["0003*210"]
    token = CALL_ID.set("c42")
    try:
        log.info("call %s: parties %s", "c42", parties)
        parties.append("changed after the line")  # the line says what was true when logged
        try:
            raise ValueError("boom")
        except ValueError:
            log.exception("failed")
    finally:
        CALL_ID.reset(token)
        writer.stop()  # writes what is queued
        log.handlers.clear()
    first, second = (json.loads(line) for line in out.getvalue().splitlines())
    assert first["msg"] == "call c42: parties ['0003*210']"
    assert first["call"] == second["call"] == "c42"
    assert "ValueError: boom" in second["exc"]
    assert written_by and threading.main_thread().name not in written_by
