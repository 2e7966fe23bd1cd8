"""How the bench talks to the running server: HTTP with a token, and the progress WebSocket."""

import json
import time
from dataclasses import dataclass, field
from datetime import datetime

import requests
from websockets.sync.client import connect

FINISHED = {"completed", "partial", "failed", "cancelled"}


class EndpointMissing(Exception):
    """The endpoint answers 404/405: not built yet (reported as n/a, not as a failure)."""


class BenchError(Exception):
    pass


class Api:
    def __init__(self, base_url, token):
        self.base_url, self.token = base_url, token
        self.http = self.session()

    def session(self):
        """A keep-alive session; one per client thread."""
        http = requests.Session()
        http.headers["Authorization"] = f"Token {self.token}"
        return http

    def call(self, method, path, *, expect=(200,), http=None, **kwargs):
        response = (http or self.http).request(method, self.base_url + path, timeout=300, **kwargs)
        if response.status_code in (404, 405) and 404 not in expect:
            raise EndpointMissing(f"{method} {path} ⇒ {response.status_code}")
        if response.status_code not in expect:
            raise BenchError(f"{method} {path} ⇒ {response.status_code}: {response.text[:500]}")
        return response

    def create_operation(self, ids, status, batch_size, execution="async"):
        body = {
            "ticket_ids": ids,
            "operation_type": "update_status",
            "operation_data": {"status": status},
            "execution": execution,
        }
        if batch_size is not None:  # else the engine sizes the chunks, as for any client that names none
            body["batch_size"] = batch_size
        return self.call("POST", "/api/v1/tickets/bulk-operations/", json=body, expect=(200, 202)).json()

    def operation(self, op_id):
        return self.call("GET", f"/api/v1/bulk-operations/{op_id}/").json()

    def cancel(self, op_id):
        return self.call("POST", f"/api/v1/bulk-operations/{op_id}/cancel/", expect=(202,)).json()


@dataclass
class Followed:
    """What a WebSocket client saw of one operation: (wall time, perf time, message)."""

    messages: list = field(default_factory=list)
    finished_before_connect: bool = False

    @property
    def finished_at(self):
        """perf_counter time the client learnt that the operation had finished."""
        return self.messages[-1][1]

    def progress(self):
        return [(wall, m) for wall, _, m in self.messages if m.get("type") == "progress_update"]


def follow(ws_url, origin, timeout):
    """Listen until `operation_completed` (or a snapshot of a finished operation)."""
    followed = Followed()
    deadline = time.monotonic() + timeout
    with connect(ws_url, origin=origin, open_timeout=10, close_timeout=1, max_size=None) as ws:
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise BenchError(f"no operation_completed within {timeout} s on {ws_url}")
            message = json.loads(ws.recv(timeout=remaining))
            followed.messages.append((time.time(), time.perf_counter(), message))
            if message.get("type") == "operation_completed":
                return followed
            if message.get("type") == "snapshot" and message.get("status") in FINISHED:
                followed.finished_before_connect = True
                return followed


def wall(iso):
    return datetime.fromisoformat(iso).timestamp()
