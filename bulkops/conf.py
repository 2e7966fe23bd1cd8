"""The engine's settings and their defaults: `conf.MAX_ITEMS` reads `settings.BULKOPS_MAX_ITEMS`.

Read at each access, not copied at import, so `override_settings` in tests and a project's
own settings.py both win over the defaults below (the way django-rq reads `RQ`).
"""

from django.conf import settings

DEFAULTS = {
    "MAX_ITEMS": 1_000_000,
    "MAX_SYNC_ITEMS": 1_000,
    "MAX_IMPORT_BYTES": 500 * 1024 * 1024,  # an uploaded import file (SPEC §12): 413 beyond
    "MAX_ATOMIC_ITEMS": 100,
    "MAX_ACTIVE_PER_USER": 5,
    "MAX_BATCH_SIZE": 1_000,
    # No batch_size in the request: the engine sizes chunks itself (bulkops.sizing).
    "FIRST_CHUNK_SIZE": 100,
    "CHUNK_LOCK_MS": 250,
    "SLICE_MIN_ITEMS": 5_000,
    "MAX_SLICES": 4,
    "STALE_AFTER": 60,  # seconds
    # Fair share: a slice job works at most this long, then continues at the back of the queue.
    "SLICE_SECONDS": 2,
    "LOCK_TIMEOUT_MS": 5_000,
    "PROGRESS_INTERVAL_MS": 250,
    "RETENTION_DAYS": 30,
    "IDEMPOTENCY_HOURS": 24,
    "WEBHOOK_ALLOW_PRIVATE": False,
    "WS_TICKET_MAX_AGE": 300,  # seconds
    # An operation of this many items or more waits for another person's approval (0: never).
    "APPROVAL_THRESHOLD": 10_000,
    # Prometheus scrapers have no session: /metrics is open unless a bearer token is set.
    "METRICS_TOKEN": "",
}


def __getattr__(name):
    if name not in DEFAULTS:
        raise AttributeError(f"bulkops.conf has no setting {name}")
    return getattr(settings, f"BULKOPS_{name}", DEFAULTS[name])
