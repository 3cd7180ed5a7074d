"""Log lines: readable text by default, one JSON object per line on request."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest

from scheduler import logs


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def test_json_lines_carry_the_message_and_the_extra_fields(
    capsys: pytest.CaptureFixture[str],
) -> None:
    logs.configure("json", "info")
    logging.getLogger("enforgate.daemon").info(
        "delivery %s ok", "dlv_1", extra={"delivery_id": "dlv_1", "status": 204}
    )
    line = capsys.readouterr().err.strip().splitlines()[-1]
    entry = json.loads(line)
    assert entry["message"] == "delivery dlv_1 ok"
    assert (entry["level"], entry["logger"]) == ("info", "enforgate.daemon")
    assert (entry["delivery_id"], entry["status"]) == ("dlv_1", 204)


def test_text_is_the_default_format(capsys: pytest.CaptureFixture[str]) -> None:
    logs.configure("text", "info")
    logging.getLogger("enforgate.daemon").info("hello")
    assert capsys.readouterr().err.rstrip().endswith("INFO enforgate.daemon: hello")
