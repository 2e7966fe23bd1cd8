"""Real daphne and rq worker processes on this test run's database and Redis, for the
end-to-end and browser tests. Each runs in a session of its own and is stopped (then
killed, if it must be) when its `with` block ends."""

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from urllib.error import URLError

import psutil
import psycopg
from django.conf import settings
from django.db import connection

BASE_DIR = Path(__file__).resolve().parent.parent
START_TIMEOUT = 30  # seconds for daphne to answer
STOP_TIMEOUT = 10  # seconds a process gets to stop before it is killed


def application(name):
    return f"bulkops-test-{name}"


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def environment(name, **extra):
    """The test database (pytest-django has created it) and this run's Redis and channel prefix,
    then `extra` (e.g. another REDIS_URL, a small throttle rate).
    The child's database connections carry its name (application_name), to be waited for."""
    db = connection.settings_dict
    credentials = db["USER"] + (f":{db['PASSWORD']}" if db["PASSWORD"] else "")
    url = f"postgres://{credentials}@{db['HOST']}:{db['PORT']}/{db['NAME']}"
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "DATABASE_URL": f"{url}?application_name={application(name)}",
        "REDIS_URL": settings.REDIS_URL,
        "BULKOPS_CHANNEL_PREFIX": settings.CHANNEL_LAYERS["default"]["CONFIG"]["prefix"],
        "LOG_LEVEL": "WARNING",
        "PYTHONUNBUFFERED": "1",
        **extra,
    }


@contextmanager
def process(name, command, **env):
    """Run `command`; on the way out SIGTERM its process group, SIGKILL after STOP_TIMEOUT.
    Its output goes to a file that is printed if the block fails (pytest shows it)."""
    with tempfile.TemporaryFile(prefix=f"bulkops-{name}-") as log:
        child = subprocess.Popen(
            command,
            cwd=BASE_DIR,
            env=environment(name, **env),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            yield child
        except BaseException:
            log.seek(0)
            print(f"--- {name} output ---\n{log.read().decode(errors='replace')[-5000:]}")
            raise
        finally:
            stop(child)
            wait_until_disconnected(name)


def stop(child):
    if child.poll() is not None:
        return
    os.killpg(child.pid, signal.SIGTERM)
    try:
        child.wait(STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(child.pid, signal.SIGKILL)
        child.wait(STOP_TIMEOUT)


def wait_until_disconnected(name):
    """Until PostgreSQL has ended the backends of stopped children: one outlives its client by
    a moment, and the test database cannot be dropped while any remains."""
    with maintenance_connection() as probe:
        deadline = time.monotonic() + STOP_TIMEOUT
        while count_sessions(probe, name) and time.monotonic() < deadline:
            time.sleep(0.05)


def maintenance_connection():
    """A connection to the test server's `postgres` database, outside the test's own."""
    db = connection.settings_dict
    params = {"host": db["HOST"], "port": db["PORT"], "user": db["USER"], "password": db["PASSWORD"] or None}
    return psycopg.connect(dbname="postgres", autocommit=True, **params)


def count_sessions(probe, name):
    """How many PostgreSQL sessions the child process `name` holds on the test database."""
    query = "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND application_name = %s"
    return probe.execute(query, [connection.settings_dict["NAME"], application(name)]).fetchone()[0]


def wait_until_answering(url, child):
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if child.poll() is not None:
            raise RuntimeError(f"daphne exited with code {child.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except (URLError, ConnectionError, TimeoutError):
            time.sleep(0.1)
    raise TimeoutError(f"daphne did not answer at {url} within {START_TIMEOUT} s")


@contextmanager
def daphne(**env):
    """HTTP and WebSocket on a free loopback port; yields the base URL. `env` adds to its
    environment (see `environment`)."""
    port = free_port()
    command = [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "config.asgi:application"]
    with process("daphne", command, **env) as child:
        url = f"http://127.0.0.1:{port}"
        wait_until_answering(f"{url}/login/", child)
        yield url


@contextmanager
def worker():
    """The bulk engine's rq worker (what `make run` starts)."""
    with process("worker", [sys.executable, "manage.py", "bulkops_worker", "bulkops"]) as child:
        yield child


@contextmanager
def redis_server():
    """A Redis of this test's own on a free port, to be stopped (an outage) without touching the
    shared one; yields (url, process)."""
    port = free_port()
    command = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    child = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while not port_answers(port):
            if child.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"redis-server did not start on port {port}")
            time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0", child
    finally:
        stop(child)


def port_answers(port):
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def listening_process(url):
    """The process that listens at `url` (a daphne started here), for its memory."""
    port = int(url.rsplit(":", 1)[1])
    pid = next(c.pid for c in psutil.net_connections("tcp") if c.status == psutil.CONN_LISTEN and c.laddr.port == port)
    return psutil.Process(pid)
