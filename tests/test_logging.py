import json
import logging
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from config.logging import JsonFormatter, logging_config

from .factories import AgentFactory, TicketFactory

ROOT = Path(__file__).resolve().parents[1]


def record(message="operation created", level=logging.INFO, exc_info=None, **extra):
    logger = logging.getLogger("bulkops")
    return logger.makeRecord("bulkops", level, __file__, 1, message, (), exc_info, extra=extra)


def formatted(rec):
    line = JsonFormatter().format(rec)
    assert "\n" not in line
    return json.loads(line)


def test_each_line_is_one_json_object_with_level_logger_message_and_the_extra_fields():
    line = formatted(record(operation_id="0d3c", user_id=7, total_items=3))
    assert (
        line.items()
        >= {
            "level": "INFO",
            "logger": "bulkops",
            "message": "operation created",
            "operation_id": "0d3c",
            "user_id": 7,
            "total_items": 3,
        }.items()
    )
    assert line["timestamp"].endswith("+00:00")


def test_it_leaves_out_the_standard_record_attributes():
    line = formatted(record())
    assert set(line) == {"timestamp", "level", "logger", "message"}


def test_message_arguments_are_interpolated():
    rec = logging.getLogger("bulkops").makeRecord("bulkops", logging.WARNING, __file__, 1, "%s lost", ("x",), None)
    assert formatted(rec)["message"] == "x lost"


def test_a_traceback_stays_inside_the_one_line():
    try:
        raise ValueError("bad\nvalue")
    except ValueError:
        line = formatted(record("failed", logging.ERROR, exc_info=sys.exc_info()))
    assert line["level"] == "ERROR"
    assert line["exc_info"].startswith("Traceback")
    assert "ValueError: bad\nvalue" in line["exc_info"]


def test_an_extra_that_json_cannot_hold_is_written_as_text():
    op_id = uuid.uuid4()
    assert formatted(record(operation_id=op_id))["operation_id"] == str(op_id)


def test_plain_text_can_be_chosen_instead():
    config = logging_config("plain", "INFO")
    assert config["handlers"]["console"]["formatter"] == "plain"


def test_an_unknown_log_format_is_refused_at_start():
    with pytest.raises(ValueError, match="LOG_FORMAT must be json or plain"):
        logging_config("xml", "INFO")


def test_the_settings_log_json_by_default():
    env = {k: v for k, v in os.environ.items() if k != "LOG_FORMAT"}
    code = (
        "import django, logging; django.setup(); "
        "logging.getLogger('bulkops').info('operation started', extra={'operation_id': 'x', 'user_id': 1})"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={**env, "DJANGO_SETTINGS_MODULE": "tests.settings"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stderr.splitlines()]
    assert {"message": "operation started", "operation_id": "x", "user_id": 1}.items() <= lines[-1].items()


@pytest.mark.django_db
def test_every_lifecycle_event_of_an_operation_carries_its_operation_and_user_ids(
    client_for, caplog, django_capture_on_commit_callbacks
):
    agent = AgentFactory()
    tickets = TicketFactory.create_batch(2)
    client = client_for(agent)
    body = {"ticket_ids": [t.pk for t in tickets], "operation_type": "update_status"}
    with caplog.at_level(logging.INFO, logger="bulkops"), django_capture_on_commit_callbacks(execute=True):
        done = client.post(
            "/api/v1/tickets/bulk-operations/",
            {**body, "operation_data": {"status": "resolved"}, "execution": "sync"},
            format="json",
        ).json()
        pending = client.post(
            "/api/v1/tickets/bulk-operations/", {**body, "operation_data": {"status": "closed"}}, format="json"
        ).json()
        client.post(f"/api/v1/bulk-operations/{pending['operation_id']}/cancel/")
    events = [formatted(r) for r in caplog.records if r.name == "bulkops"]
    by_op = {}
    for event in events:
        assert event["user_id"] == agent.pk
        by_op.setdefault(event["operation_id"], []).append(event["message"])
    assert by_op[done["operation_id"]] == ["operation created", "operation started", "operation finished"]
    assert by_op[pending["operation_id"]] == ["operation created", "operation cancelling", "operation finished"]
    finished = [e for e in events if e["message"] == "operation finished"]
    assert [e["status"] for e in finished] == ["completed", "cancelled"]
