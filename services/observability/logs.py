"""The broker's log lines: plain text for people, or one JSON object per line for collectors.

Owns: `JsonFormatter` (time in RFC 3339 UTC, level, logger, message, the RPC's request id when
the line was written inside a call, and the traceback of an exception) and `configure_logging`,
which `orbitq serve` calls once. Does not own: what is logged.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Literal

from orbitq.services.observability.request_ids import current_request_id

LogFormat = Literal["text", "json"]
LOG_FORMATS: tuple[LogFormat, ...] = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# A log line's message is cut here: one line must never carry a megabyte of input.
MESSAGE_CHARS_MAX = 8_000


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        if len(message) > MESSAGE_CHARS_MAX:
            message = message[: MESSAGE_CHARS_MAX - 3] + "..."
        line: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": message,
        }
        request_id = current_request_id.get()
        if request_id is not None:
            line["request_id"] = request_id
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False, default=str)


class _TextWithRequestId(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        request_id = current_request_id.get()
        return text if request_id is None else f"{text} [request {request_id}]"


def configure_logging(level: str, fmt: LogFormat = "text") -> None:
    """The root logger writes to stderr at `level`, in `fmt`."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if fmt == "json" else _TextWithRequestId(TEXT_FORMAT))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
