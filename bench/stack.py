"""The system under test: its own PostgreSQL database and Redis database, daphne and rq
workers as subprocesses. Every process started here is stopped by `Stack.close()`."""

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg
import requests
from psycopg import sql

ROOT = Path(__file__).resolve().parent.parent
PG_SERVER = os.environ.get("BENCH_PG_URL", "postgres://postgres@127.0.0.1:5432")
REDIS_SERVER = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379")
STOP_TIMEOUT = 15


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(check, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise TimeoutError(f"{what} not ready after {timeout} s")


def environment(db_name, redis_db):
    """What every process of the stack (and the bench itself) runs with: production
    settings, DEBUG off, throttles, the per-user cap and four-eyes approval (of 10,000 items
    or more) out of the way."""
    return {
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DATABASE_URL": f"{PG_SERVER}/{db_name}",
        "REDIS_URL": f"{REDIS_SERVER}/{redis_db}",
        "BULKOPS_CHANNEL_PREFIX": f"bulkops-bench-{redis_db}",
        "SECRET_KEY": "bench-only-secret-key",
        "DEBUG": "0",
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "BULKOPS_THROTTLE_RATE": "1000000/min",
        "BULKOPS_METRICS_THROTTLE_RATE": "1000000/min",
        "BULKOPS_MAX_ACTIVE_PER_USER": "1000",
        "BULKOPS_APPROVAL_THRESHOLD": "0",
        "LOG_LEVEL": "INFO",
    }


def recreate_database(name):
    with psycopg.connect(f"{PG_SERVER}/postgres", autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def drop_database(name):
    with psycopg.connect(f"{PG_SERVER}/postgres", autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def worker_command():
    """The lead's worker command where it exists (recovery, maintenance), else django-rq's."""
    if (ROOT / "bulkops" / "management" / "commands" / "bulkops_worker.py").exists():
        return ["manage.py", "bulkops_worker"]
    return ["manage.py", "rqworker", "bulkops", "default"]


class Stack:
    def __init__(self, db_name, redis_db, keep_db=False):
        self.db_name, self.redis_db, self.keep_db = db_name, redis_db, keep_db
        self.env = {**os.environ, **environment(db_name, redis_db)}
        self.logs = Path(tempfile.mkdtemp(prefix="bulkops-bench-"))
        self.processes = []  # (name, Popen)
        self.daphne = None
        self.workers = []
        self.spawned_workers = 0
        self.base_url = None

    # --- processes ---------------------------------------------------------------------

    def spawn(self, name, args):
        log = open(self.logs / f"{name}.log", "ab")  # the child keeps its own copy of the descriptor
        process = subprocess.Popen(
            [sys.executable, *args],
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: work-horses are stopped with it
        )
        log.close()
        self.processes.append((name, process))
        return process

    def stop(self, process):
        """SIGTERM the process group (rq: warm shutdown), SIGKILL what is left after a while."""
        if process.poll() is None:
            try:
                os.killpg(process.pid, signal.SIGTERM)
                process.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
            except ProcessLookupError:
                pass
        try:  # children that outlived their parent (a work-horse)
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.processes = [(n, p) for n, p in self.processes if p is not process]

    def migrate(self):
        done = subprocess.run(
            [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
        )
        if done.returncode:
            raise RuntimeError(f"migrate failed:\n{done.stderr}")

    def start_daphne(self, token):
        port = free_port()
        self.daphne = self.spawn(
            "daphne", ["-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "config.asgi:application"]
        )
        self.base_url = f"http://127.0.0.1:{port}"

        def ready():
            self.check_alive(self.daphne, "daphne")
            try:
                url = f"{self.base_url}/api/v1/tickets/?limit=1"
                return requests.get(url, headers={"Authorization": f"Token {token}"}, timeout=2).ok
            except requests.ConnectionError:
                return False

        wait_for(ready, 60, "daphne")

    def start_workers(self, count):
        from django_rq import get_queue
        from rq import Worker

        queue = get_queue("bulkops")
        for _ in range(count):
            self.spawned_workers += 1
            self.workers.append(self.spawn(f"worker-{self.spawned_workers}", worker_command()))

        def ready():
            for worker in self.workers:
                self.check_alive(worker, "worker")
            registered = {w.pid for w in Worker.all(connection=queue.connection, queue=queue)}
            return {w.pid for w in self.workers} <= registered

        wait_for(ready, 60, f"{count} rq worker(s)")

    def stop_workers(self):
        for worker in self.workers:
            self.stop(worker)
        self.workers = []

    def check_alive(self, process, name):
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited with {process.returncode}; see {self.logs}")

    def close(self):
        for _, process in list(self.processes):
            self.stop(process)
        if not self.keep_db:
            drop_database(self.db_name)
