"""How fast and how long a slice may work: the operation's throttle (`max_items_per_second`),
shared by all its slices and workers through one token bucket in Redis, and the fair-share
budget (`BULKOPS_SLICE_SECONDS`) after which a slice continues at the back of the queue.

The rate is read from the operation row before every chunk, so a change (PATCH) applies
from the next chunk on; a chunk never holds more items than the rate allows in
`CHUNK_SECONDS`, so one chunk never overshoots it.
"""

import math
import time

import django_rq

from . import conf
from .models import BulkOperation

QUEUE = "bulkops"
MAX_RATE = 100_000  # items per second: the highest throttle an operation may ask for (SPEC §13)
# A throttled chunk is at most this many seconds' worth of the rate: small enough that any
# 5 s window sees the rate within a few per cent, large enough not to cost a round trip per item.
CHUNK_SECONDS = 0.25

# Reserve `ARGV[2]` tokens of a bucket refilled at `ARGV[1]` per second and holding at most
# `ARGV[3]`; answer how many milliseconds to wait before using them. The balance may go
# negative (a reservation), so concurrent slices queue up behind each other instead of all
# waking at once. A wait longer than `ARGV[4]` ms reserves nothing and answers -wait: the
# caller gives its worker up instead of sleeping on it. Redis's own clock: one clock for all.
TAKE = """
local rate, wanted, capacity, longest = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens, at = tonumber(state[1]), tonumber(state[2])
if tokens == nil then tokens, at = capacity, now end
tokens = math.min(capacity, tokens + (now - at) * rate)
local wait = math.max(0, (wanted - tokens) / rate) * 1000
if wait > longest then return -math.ceil(wait) end
redis.call('HSET', KEYS[1], 'tokens', tokens - wanted, 'at', now)
redis.call('PEXPIRE', KEYS[1], 60000)
return math.ceil(wait)
"""


def bucket_key(op_id):
    return f"bulkops:rate:{op_id}"


def chunk_limit(rate, batch_size):
    """The most items one chunk may hold under `rate` items per second."""
    return batch_size if rate is None else max(1, min(batch_size, math.ceil(rate * CHUNK_SECONDS)))


class Pace:
    """A slice job's time budget (fair share) and its operation's throttle. A sync operation
    has none: it runs inside its request, to the end."""

    def __init__(self, op_id, seconds):
        self.op_id = op_id
        self.seconds = seconds
        self.deadline = time.monotonic() + seconds
        self.first = True

    def next_chunk(self, size):
        """The size of the slice's next chunk (at most `size`), once the operation's tokens for
        it are there; 0 when the slice should go on from the back of the queue instead: its
        time is up, or the tokens are further off than the time it has left. The first chunk
        of a turn always runs (tokens permitting), so every turn makes progress."""
        left = max(0, self.deadline - time.monotonic())
        if not left and not self.first:
            return 0
        rate = BulkOperation.objects.filter(pk=self.op_id).values_list("max_items_per_second", flat=True).first()
        if rate is not None:
            size = chunk_limit(rate, size)
            wait = take(self.op_id, rate, size, longest=left)
            if wait < 0:
                return 0
            time.sleep(wait)
        self.first = False
        return size


def take(op_id, rate, size, *, longest):
    """Seconds to wait before `size` items may go (reserved), or a negative number of seconds
    when that is longer than `longest` (nothing reserved)."""
    connection = django_rq.get_queue(QUEUE).connection
    capacity = chunk_limit(rate, conf.MAX_BATCH_SIZE)  # a burst of one chunk at most
    millis = connection.eval(TAKE, 1, bucket_key(op_id), rate, size, capacity, int(longest * 1000))
    return millis / 1000
