"""Rate limits counted atomically in Redis, so that they hold across processes and under
concurrency (SPEC §9, §16): the bulk throttles (config/throttling.py counts failed logins with them)."""

from django.core.cache import cache
from rest_framework import throttling


def redis(key):
    # The cache's own client (its pool and timeouts): Django's cache API has no atomic
    # "create with expiry, then increment" of a counter.
    return cache._cache.get_client(key, write=True)


def count_hit(key, window):
    """Count one hit on `key` in a window of `window` seconds that starts at the key's first hit;
    (hits in the window so far, seconds until it ends). One MULTI/EXEC, so concurrent hits in any
    process each get their own count."""
    name = cache.make_key(key)
    with redis(name).pipeline() as pipe:
        pipe.set(name, 0, ex=window, nx=True)
        pipe.incr(name)
        pipe.ttl(name)
        _, hits, ttl = pipe.execute()
    return hits, max(ttl, 1)


def hits_so_far(key):
    """(hits in the current window, seconds until it ends), without counting one."""
    name = cache.make_key(key)
    with redis(name).pipeline() as pipe:
        pipe.get(name)
        pipe.ttl(name)
        hits, ttl = pipe.execute()
    return int(hits or 0), max(ttl, 1)


class AtomicRateThrottle(throttling.SimpleRateThrottle):
    """DRF's rate throttle with the count kept by `count_hit`. DRF's own reads the request
    history, then writes it back: requests that arrive together all pass on the same history."""

    def allow_request(self, request, view):
        if self.rate is None:
            return True
        key = self.get_cache_key(request, view)
        if key is None:
            return True
        hits, self.retry_after = count_hit(key, self.duration)
        return hits <= self.num_requests

    def wait(self):
        return self.retry_after


class ScopedRateThrottle(throttling.ScopedRateThrottle, AtomicRateThrottle):
    """DRF's scoped throttle (the view's `throttle_scope`), counted atomically."""
