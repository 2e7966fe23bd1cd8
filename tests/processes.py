"""Real worker (and server) processes for tests, on the test database."""

import os
import signal
import socket
import subprocess
import sys
import time
from contextlib import ExitStack, contextmanager
from pathlib import Path

from django.conf import settings
from django.db import connection
from redis import Redis

ROOT = Path(__file__).resolve().parent.parent


def test_database_url():
    db = connection.settings_dict
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    return f"postgres://{db['USER']}{password}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


def process_env(**extra):
    env = dict(os.environ)
    env.update(
        DJANGO_SETTINGS_MODULE="tests.settings",
        DATABASE_URL=test_database_url(),
        REDIS_URL=settings.REDIS_URL,
        PYTHONUNBUFFERED="1",
    )
    env.update({key: str(value) for key, value in extra.items()})
    return env


# Every supported worker command (README "Workers"); each runs bulkops.worker.RecoveringWorker.
WORKER_COMMANDS = {
    "bulkops_worker": ["manage.py", "bulkops_worker"],
    "rqworker": ["manage.py", "rqworker", "bulkops", "default"],
    "rq": ["-m", "rq.cli", "worker", "-w", "bulkops.worker.RecoveringWorker", "bulkops", "default"],
}


def start_worker(*args, kind="bulkops_worker", log_path=None, **env):
    """A worker command (WORKER_COMMANDS) in a session of its own, so that a kill reaches its
    work-horse. rq's own `rq worker` is told the Redis address by RQ_REDIS_URL."""
    environ = process_env(**env)
    environ["RQ_REDIS_URL"] = environ["REDIS_URL"]
    out = open(log_path, "ab") if log_path else subprocess.DEVNULL  # noqa: SIM115 - closed with the process
    return subprocess.Popen(
        [sys.executable, *WORKER_COMMANDS[kind], *args],
        cwd=ROOT,
        env=environ,
        stdout=out,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def session_members(session_id):
    """The ids of the processes in a session: the worker, its scheduler, and its work-horse,
    which rq moves to a process group of its own (so killpg of the worker misses it)."""
    members = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                # "pid (name) state ppid pgrp session …"; the name may hold spaces and parentheses.
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:  # it exited meanwhile
            continue
        if int(fields[3]) == session_id:
            members.append(int(entry))
    return members


def kill_group(process, sig=signal.SIGKILL):
    """Signal the process and everything it forked (the rq work-horse included)."""
    for pid in session_members(process.pid):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


@contextmanager
def running_worker(*args, **kwargs):
    """A worker (start_worker's arguments) for the length of a `with` block, then killed with
    its work-horse (kill_group) however the block ends; a kill inside the block is fine too."""
    worker = start_worker(*args, **kwargs)
    try:
        yield worker
    finally:
        kill_group(worker)


@contextmanager
def running_workers(log_paths, **kwargs):
    """One running_worker per log file, all for the length of the block."""
    with ExitStack() as stack:
        yield [stack.enter_context(running_worker(log_path=path, **kwargs)) for path in log_paths]


def wait_for(predicate, timeout=60, interval=0.1, message="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {message}")


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def ping(url):
    try:
        return Redis.from_url(url, socket_connect_timeout=0.2).ping()
    except Exception:  # noqa: BLE001 - not up yet
        return False


class RedisServer:
    """A short-lived redis-server of the test's own on a free port, keeping nothing on disk:
    stopping it loses everything queued, as a Redis restart does."""

    def __init__(self):
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process = None

    def start(self):
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
        )
        wait_for(lambda: ping(self.url), timeout=10, message="redis")

    def stop(self):
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None
