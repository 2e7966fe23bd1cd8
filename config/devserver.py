"""`make run`: Bulkops on one machine with whatever services it has.

Chooses the services (PostgreSQL and Redis where they answer, else SQLite and an
in-process fakeredis), prepares the database (create, migrate, collectstatic, demo data),
then runs daphne and an rq worker as child processes until Ctrl-C, or until either dies.

    python -m config.devserver --host 127.0.0.1 --port 8000
"""

import argparse
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import fakeredis
import psycopg
import redis
from fakeredis._clients._tcp_server import TCPFakeRequestHandler
from psycopg import conninfo, sql

from . import defaults

BASE_DIR = Path(__file__).resolve().parent.parent
# The server and the worker write to the one file: IMMEDIATE transactions take the write lock
# up front (no deadlock between two upgrading readers), and a writer waits up to 20 s for it.
SQLITE_URL = f"sqlite:///{BASE_DIR / 'db.sqlite3'}?timeout=20&transaction_mode=IMMEDIATE"
PROBE_TIMEOUT = 2  # seconds to wait for a service to answer
STOP_TIMEOUT = 10  # seconds a child gets to stop before it is killed
POLL_INTERVAL = 0.2

log = logging.getLogger("config.devserver")


# --- choosing the services ----------------------------------------------------------------


def is_postgres(url):
    return url.startswith(("postgres://", "postgresql://"))


def maintenance_conninfo(url):
    """The same server's `postgres` database, which exists even when ours does not yet."""
    return conninfo.make_conninfo(url, dbname="postgres", connect_timeout=PROBE_TIMEOUT)


def postgres_answers(url):
    try:
        with psycopg.connect(maintenance_conninfo(url)):
            return True
    except psycopg.Error:
        return False


def redis_answers(url):
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=PROBE_TIMEOUT, socket_timeout=PROBE_TIMEOUT)
        with client:
            return bool(client.ping())
    except redis.RedisError:
        return False


def choose_database(environ, answers=postgres_answers):
    """(url, why). DATABASE_URL when set; else the default PostgreSQL if it answers; else SQLite.

    BULKOPS_PG_PROBE_URL replaces the default PostgreSQL address (tests point it at a dead port).
    """
    if environ.get("DATABASE_URL"):
        return environ["DATABASE_URL"], "from DATABASE_URL"
    default = environ.get("BULKOPS_PG_PROBE_URL") or defaults.DATABASE_URL
    if answers(default):
        return default, "PostgreSQL answers at the default address"
    return SQLITE_URL, f"no PostgreSQL answers at {default}: embedded fallback, SQLite"


def choose_redis(environ, answers=redis_answers):
    """(url, why); url None means: start fakeredis. REDIS_URL when set; else the default Redis
    if it answers (BULKOPS_REDIS_PROBE_URL replaces its address); else fakeredis."""
    if environ.get("REDIS_URL"):
        return environ["REDIS_URL"], "from REDIS_URL"
    default = environ.get("BULKOPS_REDIS_PROBE_URL") or defaults.REDIS_URL
    if answers(default):
        return default, "Redis answers at the default address"
    return None, f"no Redis answers at {default}: embedded fallback, fakeredis in this process"


class FakeRedisHandler(TCPFakeRequestHandler):
    """Two fixes to fakeredis 2.40's TCP server, which rq and channels-redis trip over:
    - it closes the connection after any error reply (rq probes INFO, which it lacks, and
      the client's next command fails): answer the error and keep the connection;
    - it shows a client's addresses as Python tuples in CLIENT INFO, which redis-py cannot
      parse (an rq worker asks when it starts): say `host:port`."""

    def setup(self):
        super().setup()
        client = self.current_client
        info = client._client_info  # copied into the connection when it opens
        for key in ("addr", "laddr"):
            if isinstance(info.get(key), tuple):
                info[key] = "{}:{}".format(*info[key][:2])
        read_response = client.read_response

        def read_response_or_error(**kwargs):
            try:
                return read_response(**kwargs)
            except redis.ResponseError as exc:
                return exc  # written back as an error reply, as a real server does

        client.read_response = read_response_or_error


def start_fake_redis():
    """fakeredis's TCP server on a free loopback port, in a thread of this process."""
    server = fakeredis.TcpFakeServer(("127.0.0.1", 0))  # port 0: the system picks a free one
    server.RequestHandlerClass = FakeRedisHandler
    # A connection thread can sit in a blocking command (an rq worker's BLMOVE) for minutes:
    # on exit, do not wait for those threads.
    server.daemon_threads, server.block_on_close = True, False
    threading.Thread(target=server.serve_forever, name="fakeredis", daemon=True).start()
    host, port = server.server_address
    return server, f"redis://{host}:{port}/0"


def child_environment(environ, database_url, redis_url):
    env = dict(environ, DATABASE_URL=database_url, REDIS_URL=redis_url)
    env.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    if not env.get("SECRET_KEY"):
        # settings refuses to start without SECRET_KEY unless told that this is a dev run.
        env["BULKOPS_INSECURE_DEV_KEY"] = "1"
    return env


# --- preparing the database ---------------------------------------------------------------


def create_database(url):
    name = conninfo.conninfo_to_dict(url).get("dbname")
    with psycopg.connect(maintenance_conninfo(url), autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            return
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    log.info("created database %s", name)


def manage(env, *args):
    subprocess.run([sys.executable, "manage.py", *args], cwd=BASE_DIR, env=env, check=True)


def prepare(env):
    url = env["DATABASE_URL"]
    if is_postgres(url):
        if not postgres_answers(url):
            raise SystemExit(f"devserver: PostgreSQL at DATABASE_URL does not answer: {url}")
        create_database(url)
    if not redis_answers(env["REDIS_URL"]):
        raise SystemExit(f"devserver: Redis at REDIS_URL does not answer: {env['REDIS_URL']}")
    manage(env, "migrate", "--noinput")
    manage(env, "collectstatic", "--noinput", "--verbosity", "0")
    manage(env, "seed_demo")


# --- running the children -----------------------------------------------------------------


def worker_command():
    if (BASE_DIR / "bulkops" / "management" / "commands" / "bulkops_worker.py").exists():
        return [sys.executable, "manage.py", "bulkops_worker"]
    return [sys.executable, "manage.py", "rqworker", "bulkops", "default", "--with-scheduler"]


def server_command(host, port):
    return [sys.executable, "-m", "daphne", "-b", host, "-p", str(port), "config.asgi:application"]


def start_children(env, host, port):
    # Each in a session of its own: Ctrl-C reaches only us, and we stop them in order;
    # killing a child's process group takes the rq work horse along.
    commands = {"daphne": server_command(host, port), "worker": worker_command()}
    children = {}
    for name, command in commands.items():
        children[name] = subprocess.Popen(command, cwd=BASE_DIR, env=env, start_new_session=True)
        log.info("started %s (pid %s): %s", name, children[name].pid, " ".join(command[1:]))
    return children


def run(env, host, port):
    """Start the children and wait for SIGINT/SIGTERM or a child's exit, then stop every
    child. Returns the exit code: 0 after a signal, non-zero when a child died."""
    received = []
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda signum, frame: received.append(signum))
    children = start_children(env, host, port)
    code = 0
    while not received:
        exited = next((name for name, child in children.items() if child.poll() is not None), None)
        if exited:
            log.error("%s exited with code %s; stopping the rest", exited, children[exited].returncode)
            code = children[exited].returncode or 1
            break
        time.sleep(POLL_INTERVAL)
    else:
        log.info("%s received; stopping", signal.Signals(received[0]).name)
    stop(children)
    return code


def stop(children):
    for child in children.values():
        if child.poll() is None:
            child.terminate()
    deadline = time.monotonic() + STOP_TIMEOUT
    for name, child in children.items():
        try:
            child.wait(timeout=max(deadline - time.monotonic(), 0))
        except subprocess.TimeoutExpired:
            log.warning("%s did not stop within %s s; killing it", name, STOP_TIMEOUT)
            os.killpg(child.pid, signal.SIGKILL)
            child.wait()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="devserver: %(message)s")

    database_url, why = choose_database(os.environ)
    log.info("database: %s (%s)", database_url, why)
    redis_url, why = choose_redis(os.environ)
    fake_redis = None
    if redis_url is None:
        fake_redis, redis_url = start_fake_redis()
    log.info("redis: %s (%s)", redis_url, why)
    env = child_environment(os.environ, database_url, redis_url)
    if env.get("BULKOPS_INSECURE_DEV_KEY") and not os.environ.get("SECRET_KEY"):
        log.warning("SECRET_KEY is not set: using a development-only key (set SECRET_KEY in production)")
    try:
        prepare(env)
        code = run(env, args.host, args.port)
    except subprocess.CalledProcessError as exc:
        log.error("%s failed with code %s", " ".join(exc.cmd[1:]), exc.returncode)
        code = exc.returncode
    except KeyboardInterrupt:
        code = 130
    finally:
        if fake_redis is not None:
            fake_redis.shutdown()
            fake_redis.server_close()
    log.info("stopped")
    return code


if __name__ == "__main__":
    sys.exit(main())
