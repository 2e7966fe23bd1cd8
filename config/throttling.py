"""Failed logins counted atomically in Redis (SPEC §16), with the bulk throttles' counter."""

import hashlib

from bulkops.api.throttling import count_hit, hits_so_far

LOGIN_FAILURES = 10  # failed logins per user name, and per client address, in one window
LOGIN_WINDOW = 300  # seconds
LOGIN_THROTTLED = "Too many failed logins; try again in {wait} seconds."


def login_keys(request, username):
    """The counters a login attempt falls under: its user name and its client address."""
    name = hashlib.sha256(str(username or "").casefold().encode()).hexdigest()  # any length, one key size
    return [f"login-failures:user:{name}", f"login-failures:address:{request.META.get('REMOTE_ADDR', '')}"]


def login_retry_after(request, username):
    """Seconds until this user name and address may try to log in again; 0 if they may now."""
    counts = [hits_so_far(key) for key in login_keys(request, username)]
    return max((ttl for hits, ttl in counts if hits >= LOGIN_FAILURES), default=0)


def count_failed_login(request, username):
    for key in login_keys(request, username):
        count_hit(key, LOGIN_WINDOW)
