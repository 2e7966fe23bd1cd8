"""Request bodies on the real server (SPEC §16): the size limit holds while the body streams
in, for Content-Length and chunked bodies alike, before authentication — a 300 MB body costs
daphne < 50 MB and is refused with 413 within a second."""

import json
import select
import socket
import time
from urllib.parse import urlsplit

import pytest
import requests
from rest_framework.authtoken.models import Token

from bench.data import pending_operation
from bench.probes import Poller
from bulkops.models import BulkOperation

from . import servers
from .factories import AgentFactory, TicketFactory

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]
BODY = 300 * 1024 * 1024
CHUNK = b"x" * 65536
MB = 1024 * 1024
PATH = "/api/v1/tickets/bulk-operations/"


@pytest.fixture(scope="module")
def server(django_db_setup):
    with servers.daphne() as url:
        yield url


class PeakMemory(Poller):
    """The most resident memory the process reaches while the block runs, over its start."""

    def __init__(self, process):
        super().__init__()
        self.process = process
        self.before = self.peak = process.memory_info().rss

    def run(self):
        while not self.done.wait(0.01):
            self.peak = max(self.peak, self.process.memory_info().rss)

    @property
    def growth(self):
        return self.peak - self.before


def post_large(url, chunked, limit=30):
    """POST a 300 MB body without credentials, the way a patient client does: keep sending
    until the server answers (or the body is sent), then read the answer.
    (status, error body, seconds until the answer began)."""
    parts = urlsplit(url)
    framing = "Transfer-Encoding: chunked" if chunked else f"Content-Length: {BODY}"
    head = f"POST {PATH} HTTP/1.1\r\nHost: {parts.netloc}\r\nContent-Type: application/json\r\n{framing}\r\n\r\n"
    frame = f"{len(CHUNK):x}\r\n".encode() + CHUNK + b"\r\n" if chunked else CHUNK
    answer, sent = b"", 0
    with socket.create_connection((parts.hostname, parts.port)) as sock:
        started = time.monotonic()
        sock.sendall(head.encode())
        while b"\r\n\r\n" not in answer and time.monotonic() - started < limit:
            readable, writable, _ = select.select([sock], [sock] if sent < BODY else [], [], 1)
            if readable:
                data = sock.recv(65536)
                if not data:
                    break
                answer += data
            elif writable:
                try:
                    sock.send(frame)
                except (BrokenPipeError, ConnectionResetError):
                    sent = BODY  # the server stopped reading: its answer is on the way
                sent += len(CHUNK)
        elapsed = time.monotonic() - started
        head, _, body = answer.partition(b"\r\n\r\n")
        status = int(head.split(b" ")[1])
        return status, json.loads(read_body(sock, head, body)), elapsed


def read_body(sock, head, body):
    """The rest of the answer's body, framed by Content-Length or chunked."""
    fields = dict(line.lower().split(b": ", 1) for line in head.split(b"\r\n")[1:])
    if b"content-length" in fields:
        while len(body) < int(fields[b"content-length"]):
            body += sock.recv(65536)
        return body
    while not body.endswith(b"0\r\n\r\n"):
        body += sock.recv(65536)
    chunks = []
    while True:
        size, _, body = body.partition(b"\r\n")
        if not int(size, 16):
            return b"".join(chunks)
        chunks.append(body[: int(size, 16)])
        body = body[int(size, 16) + 2 :]


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_a_300_mb_body_is_refused_within_a_second_at_little_memory(server, chunked):
    with PeakMemory(servers.listening_process(server)) as memory:
        status, body, elapsed = post_large(server, chunked)
    assert status == 413
    assert body["error"]["code"] == "REQUEST_TOO_LARGE"
    assert elapsed < 1
    assert memory.growth < 50 * MB


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_a_body_under_the_limit_reaches_the_application(server, chunked):
    ticket = TicketFactory()
    headers = {"Authorization": f"Token {Token.objects.create(user=AgentFactory()).key}"}
    body = json.dumps(
        {"ticket_ids": [ticket.pk], "operation_type": "set_priority", "operation_data": {"priority": "high"}}
    ).encode()
    data = iter([body[:10], body[10:]]) if chunked else body  # requests sends an iterator chunked
    response = requests.post(f"{server}{PATH}", data=data, headers={**headers, "Content-Type": "application/json"})
    assert response.status_code == 202, response.text
    assert BulkOperation.objects.filter(pk=response.json()["operation_id"]).exists()


def test_a_200_000_row_import_streams_through_the_server_at_little_memory(server, tmp_path):
    """twisted would parse the form itself (ten times the body in memory) and daphne would queue
    the whole body for the application: the import's file goes from disk to COPY instead."""
    path = tmp_path / "tickets.csv"
    with open(path, "w") as out:
        out.write("external_id,title,description,priority\n")
        for n in range(200_000):
            out.write(f"EXT-{n:07d},Imported ticket {n},A description that makes a row as long as most are,low\n")
    assert path.stat().st_size > 15 * MB
    headers = {"Authorization": f"Token {Token.objects.create(user=AgentFactory()).key}"}
    with PeakMemory(servers.listening_process(server)) as memory, open(path, "rb") as body:
        response = requests.post(
            f"{server}/api/v1/tickets/imports/",
            headers=headers,
            data={"match_on": "external_id", "action": "create"},
            files={"file": ("tickets.csv", body, "text/csv")},
            timeout=120,
        )
    assert response.status_code == 202, response.text
    op = BulkOperation.objects.get(pk=response.json()["operation_id"])
    assert (op.operation_type, op.total_items, op.items.count()) == ("import", 200_000, 200_000)
    assert op.items.get(position=199_999).payload == {
        "external_id": "EXT-0199999",
        "title": "Imported ticket 199999",
        "description": "A description that makes a row as long as most are",
        "priority": "low",
    }
    assert memory.growth < 40 * MB


def test_a_200_000_item_csv_streams_through_the_server_at_little_memory(server):
    """Django collects a synchronous iterator whole before an ASGI server sends its first
    byte: the CSV of a large operation must reach the client as it is read."""
    agent = AgentFactory()
    ids = [ticket.pk for ticket in TicketFactory.create_batch(2)]
    op = pending_operation(agent, ids * 100_000)
    headers = {"Authorization": f"Token {Token.objects.create(user=agent).key}"}
    with PeakMemory(servers.listening_process(server)) as memory:
        response = requests.get(f"{server}/api/v1/bulk-operations/{op.pk}/items.csv", headers=headers, stream=True)
        lines = sum(chunk.count(b"\n") for chunk in response.iter_content(65536))
    assert response.status_code == 200
    assert lines == 200_001  # the header and every item
    assert memory.growth < 20 * MB
