"""`make run` (config.devserver): service choice, fallbacks, database creation, supervision."""

import os
import signal
import subprocess
import sys
import threading
import time

import psycopg
import pytest
import redis
import requests
from django.conf import settings
from psycopg import sql
from rq import Queue, Worker

from config import defaults, devserver

from .processes import ROOT, free_port, kill_group, wait_for
from .processes import test_database_url as database_url  # the alias: pytest would collect test_*

DEAD_PG = "postgres://postgres@127.0.0.1:1/bulkops"
DEAD_REDIS = "redis://127.0.0.1:1/0"


def never(url):
    raise AssertionError(f"probed {url}")


# --- choosing the services ------------------------------------------------------------------


def test_a_set_database_url_is_used_without_probing():
    assert devserver.choose_database({"DATABASE_URL": "postgres://db/x"}, answers=never)[0] == "postgres://db/x"


def test_without_database_url_the_default_postgres_is_used_when_it_answers():
    url, why = devserver.choose_database({}, answers=lambda url: url == defaults.DATABASE_URL)
    assert url == defaults.DATABASE_URL
    assert "PostgreSQL answers" in why


def test_without_database_url_and_postgres_sqlite_is_the_fallback():
    url, why = devserver.choose_database({}, answers=lambda url: False)
    assert url.startswith("sqlite:///") and "/db.sqlite3?" in url
    assert "embedded fallback, SQLite" in why


def test_the_probe_url_replaces_the_default_address():
    url, why = devserver.choose_database({"BULKOPS_PG_PROBE_URL": DEAD_PG})
    assert url == devserver.SQLITE_URL
    assert DEAD_PG in why


def test_the_probe_finds_the_real_postgres(db):
    assert devserver.postgres_answers(database_url())
    assert not devserver.postgres_answers(DEAD_PG)


def test_the_probe_counts_a_server_whose_database_is_missing_as_answering(db):
    assert devserver.postgres_answers(database_url() + "_does_not_exist")


def test_a_set_redis_url_is_used_without_probing():
    assert devserver.choose_redis({"REDIS_URL": "redis://r/1"}, answers=never)[0] == "redis://r/1"


def test_without_redis_url_the_default_redis_is_used_when_it_answers():
    assert devserver.choose_redis({}, answers=lambda url: True)[0] == defaults.REDIS_URL


def test_without_redis_url_and_redis_fakeredis_is_the_fallback():
    url, why = devserver.choose_redis({"BULKOPS_REDIS_PROBE_URL": DEAD_REDIS})
    assert url is None
    assert "embedded fallback, fakeredis" in why


def test_the_redis_probe_finds_the_real_redis():
    assert devserver.redis_answers(settings.REDIS_URL)
    assert not devserver.redis_answers(DEAD_REDIS)


def test_the_children_get_the_chosen_urls_and_a_dev_key_flag_without_secret_key():
    env = devserver.child_environment({"PATH": "/bin"}, "sqlite:///x", "redis://h:1/0")
    assert env == {
        "PATH": "/bin",
        "DATABASE_URL": "sqlite:///x",
        "REDIS_URL": "redis://h:1/0",
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "BULKOPS_INSECURE_DEV_KEY": "1",
    }


def test_a_set_secret_key_needs_no_dev_key_flag():
    env = devserver.child_environment({"SECRET_KEY": "k"}, "sqlite:///x", "redis://h:1/0")
    assert "BULKOPS_INSECURE_DEV_KEY" not in env


def import_settings(**env):
    base = {key: value for key, value in os.environ.items() if key not in {"SECRET_KEY", "DEBUG"}}
    return subprocess.run(
        [sys.executable, "-c", "import config.settings"], cwd=ROOT, env={**base, **env}, capture_output=True, text=True
    )


def test_settings_refuse_a_missing_secret_key_with_debug_off():
    result = import_settings()
    assert result.returncode != 0
    assert "SECRET_KEY must be set when DEBUG is off" in result.stderr


def test_settings_accept_a_missing_secret_key_with_the_dev_key_flag():
    assert import_settings(BULKOPS_INSECURE_DEV_KEY="1").returncode == 0


@pytest.fixture
def sqlite_env(tmp_path):
    """The environment of `make run` on the SQLite fallback, migrated."""
    url = devserver.SQLITE_URL.replace(str(devserver.BASE_DIR / "db.sqlite3"), str(tmp_path / "db.sqlite3"))
    env = devserver.child_environment(dict(os.environ, DJANGO_SETTINGS_MODULE="tests.settings"), url, DEAD_REDIS)
    devserver.manage(env, "migrate", "--noinput", "--verbosity", "0")
    return env


def run_manage(env, *args):
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, check=True
    )


def test_the_sqlite_fallback_migrates_and_takes_the_demo_data(sqlite_env):
    result = run_manage(sqlite_env, "seed_demo", "--tickets", "30", "--metrics", "4")
    assert "Added 30 tickets (now 30) and 4 metrics (now 4)" in result.stdout


CHANGE_BOTH = """
from django.contrib.auth import get_user_model
from bulkops.operations import Context
from metrics import services as metrics
from tickets import services as tickets
ctx = Context(actor=get_user_model().objects.create_user("staff", is_staff=True, is_superuser=True))
ticket = tickets.create(ctx, {"title": "Printer"})
tickets.change(ticket.pk, ctx, tickets.apply_update, {"priority": "high"})
metric = metrics.create(ctx, {"name": "Churn", "definition": "lost / all"})
metrics.change(metric.pk, ctx, metrics.apply_update, {"verification": "verified"})
print([(e.field, e.new_value) for e in ticket.events.all()], [(e.field, e.new_value) for e in metric.events.all()])
"""


def test_the_sqlite_fallback_writes_changes_with_their_audit_rows(sqlite_env):
    result = run_manage(sqlite_env, "shell", "--no-startup", "-c", CHANGE_BOTH)
    assert result.stdout.splitlines()[-1] == "[('priority', 'high')] [('verification', 'verified')]"


# --- the fakeredis fallback -------------------------------------------------------------------


@pytest.fixture
def fake_redis():
    server, url = devserver.start_fake_redis()
    yield url
    server.shutdown()
    server.server_close()


def test_fakeredis_serves_what_rq_and_channels_need(fake_redis):
    client = redis.Redis.from_url(fake_redis)
    assert client.ping()
    assert client.eval("return ARGV[1]", 0, "lua") == b"lua"  # channels-redis sends Lua scripts
    worker = Worker([Queue("bulkops", connection=client)], connection=client)  # asks CLIENT INFO
    assert worker.ip_address.startswith("127.0.0.1:")


def test_fakeredis_keeps_a_connection_open_after_an_error_reply(fake_redis):
    connection = redis.Redis.from_url(fake_redis).connection_pool.get_connection()
    connection.send_command("NO-SUCH-COMMAND")
    with pytest.raises(redis.ResponseError):
        connection.read_response()
    connection.send_command("PING")
    assert connection.read_response() == b"PONG"


def test_fakeredis_stops_at_once_with_a_client_in_a_blocking_command():
    server, url = devserver.start_fake_redis()
    threading.Thread(target=lambda: redis.Redis.from_url(url).blpop(["nothing"], timeout=60), daemon=True).start()
    time.sleep(0.3)
    started = time.monotonic()
    server.shutdown()
    server.server_close()
    assert time.monotonic() - started < 5


# --- creating the database ----------------------------------------------------------------------


@pytest.fixture
def new_database_url(db):
    url = database_url() + "_created"
    yield url
    drop_database(url)


def drop_database(url):
    name = psycopg.conninfo.conninfo_to_dict(url)["dbname"]
    with psycopg.connect(devserver.maintenance_conninfo(url), autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def test_a_missing_database_is_created_once(new_database_url):
    devserver.create_database(new_database_url)
    devserver.create_database(new_database_url)
    with psycopg.connect(new_database_url) as conn:
        assert conn.execute("SELECT current_database()").fetchone()[0].endswith("_created")


def test_a_set_database_url_that_does_not_answer_stops_the_run():
    with pytest.raises(SystemExit, match="PostgreSQL at DATABASE_URL does not answer"):
        devserver.prepare({"DATABASE_URL": DEAD_PG, "REDIS_URL": settings.REDIS_URL})


def test_a_set_redis_url_that_does_not_answer_stops_the_run(db):
    with pytest.raises(SystemExit, match="Redis at REDIS_URL does not answer"):
        devserver.prepare({"DATABASE_URL": database_url(), "REDIS_URL": DEAD_REDIS})


# --- supervising the children -------------------------------------------------------------------


def python(code):
    return [sys.executable, "-c", code]


SLEEPER = python("import time; time.sleep(60)")
STUBBORN = python("import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)")


@pytest.fixture
def children(monkeypatch):
    """Replace daphne and the worker by small programs; restore the signal handlers after."""
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    started = {}
    popen = subprocess.Popen

    def record(command, **kwargs):
        process = popen(command, **kwargs)
        started[process.pid] = process
        return process

    def use(server, worker):
        monkeypatch.setattr(devserver, "server_command", lambda host, port: server)
        monkeypatch.setattr(devserver, "worker_command", lambda: worker)

    monkeypatch.setattr(devserver.subprocess, "Popen", record)
    yield use, started
    for sig, handler in handlers.items():
        signal.signal(sig, handler)
    for process in started.values():
        if process.poll() is None:
            kill_group(process)


def signal_soon(sig, delay=0.5):
    threading.Timer(delay, os.kill, [os.getpid(), sig]).start()


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_stops_both_children_and_exits_0(children, sig):
    use, started = children
    use(SLEEPER, SLEEPER)
    signal_soon(sig)
    assert devserver.run(dict(os.environ), "127.0.0.1", 0) == 0
    assert len(started) == 2
    assert all(process.returncode is not None for process in started.values())


def test_when_one_child_dies_the_other_is_stopped_and_the_exit_is_non_zero(children):
    use, started = children
    use(SLEEPER, python("import sys; sys.exit(3)"))
    began = time.monotonic()
    assert devserver.run(dict(os.environ), "127.0.0.1", 0) == 3
    assert time.monotonic() - began < devserver.STOP_TIMEOUT
    assert all(process.returncode is not None for process in started.values())


def test_a_child_that_exits_cleanly_on_its_own_still_fails_the_run(children):
    use, _ = children
    use(python("pass"), SLEEPER)
    assert devserver.run(dict(os.environ), "127.0.0.1", 0) == 1


def test_a_child_that_ignores_sigterm_is_killed(children, monkeypatch):
    monkeypatch.setattr(devserver, "STOP_TIMEOUT", 1)
    use, started = children
    use(STUBBORN, SLEEPER)
    signal_soon(signal.SIGINT, delay=1)
    assert devserver.run(dict(os.environ), "127.0.0.1", 0) == 0
    assert {process.returncode for process in started.values()} == {-signal.SIGKILL, -signal.SIGTERM}


# --- the whole thing ------------------------------------------------------------------------------


@pytest.mark.worker
def test_make_run_creates_the_database_serves_the_api_and_stops_on_ctrl_c(new_database_url, tmp_path):
    port = free_port()
    env = {key: value for key, value in os.environ.items() if key not in {"REDIS_URL", "BULKOPS_DEMO_PASSWORD"}}
    env.update(
        DJANGO_SETTINGS_MODULE="tests.settings",
        DATABASE_URL=new_database_url,
        BULKOPS_REDIS_PROBE_URL=DEAD_REDIS,  # Redis "unreachable": fakeredis in the devserver
        PYTHONUNBUFFERED="1",
    )
    log = tmp_path / "devserver.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "config.devserver", "--host", "127.0.0.1", "--port", str(port)],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    base = f"http://127.0.0.1:{port}/api/v1"
    try:
        wait_for(lambda: answers(base), timeout=120, message=f"the devserver; log:\n{log.read_text()[-3000:]}")
        text = log.read_text()
        assert "created database" in text and "embedded fallback, fakeredis" in text
        assert "User agent" in text and "started daphne" in text and "started worker" in text

        token = requests.post(f"{base}/auth/token/", json={"username": "agent", "password": "agent"}).json()["token"]
        headers = {"Authorization": f"Bearer {token}"}
        response = requests.patch(f"{base}/tickets/1/", json={"title": "Printer on fire"}, headers=headers)
        assert response.status_code == 200 and response.json()["version"] == 2

        body = {"ticket_ids": [2, 3], "operation_type": "set_priority", "operation_data": {"priority": "urgent"}}
        response = requests.post(f"{base}/tickets/bulk-operations/", json=body, headers=headers)
        assert response.status_code == 202, log.read_text()[-4000:]
        status_url = response.headers["Location"]
        final = wait_for(
            lambda: (s := requests.get(status_url, headers=headers).json())["status"] == "completed" and s,
            timeout=60,
            message="the worker to finish the operation",
        )
        assert final["successful_items"] == 2

        os.kill(process.pid, signal.SIGINT)
        assert process.wait(timeout=30) == 0
        assert not answers(base)
        assert "SIGINT received; stopping" in log.read_text()
    finally:
        kill_group(process)


def answers(base):
    try:
        return requests.get(f"{base}/tickets/", timeout=2).status_code == 401
    except requests.ConnectionError:
        return False
