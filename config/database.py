"""Database connections of the web process: one psycopg pool (SPEC §16)."""

from django.apps import apps
from django.conf import settings

POOL_MIN = 1


def pool_connections():
    """Give the web process one pool of at most BULKOPS_DB_POOL_MAX PostgreSQL connections.

    Under ASGI every request runs in a context of its own, so a persistent connection
    (CONN_MAX_AGE) is never reused and a busy daphne piles up one per request until PostgreSQL
    refuses everyone. A pool bounds that; Django requires CONN_MAX_AGE 0 with it (a request
    hands its connection back when it ends).

    Only the ASGI entry point calls this. rq workers fork a work-horse per job and a pool's
    threads do not survive a fork, so workers (and management commands) keep one plain
    connection each, closed before every fork. It must run before Django starts: a process that
    started Django first (a test importing the ASGI application) keeps the connections it has.
    """
    if apps.ready:
        return
    for database in settings.DATABASES.values():
        if database["ENGINE"] == "django.db.backends.postgresql":
            database["CONN_MAX_AGE"] = 0
            # Each connection is checked as a request takes it from the pool: after a PostgreSQL
            # restart a dead one is replaced instead of failing the request.
            database["CONN_HEALTH_CHECKS"] = True
            database.setdefault("OPTIONS", {})["pool"] = {
                "min_size": POOL_MIN,
                "max_size": settings.BULKOPS_DB_POOL_MAX,
                "timeout": settings.BULKOPS_DB_POOL_TIMEOUT,
            }
