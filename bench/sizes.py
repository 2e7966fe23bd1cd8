"""How much each benchmark does: the full run, and --quick."""

from dataclasses import dataclass


@dataclass
class Sizes:
    async_items: tuple  # update_status sizes
    workers: tuple  # worker counts to compare
    runs: int  # runs per figure (the median is shown)
    batch_size: int | None  # None: none in the request, the engine sizes the chunks (the API's default)
    patches: int  # single PATCH requests per run (the bulk side does the same changes)
    sync_requests: int  # requests per run for the p50/p95 of the sync endpoints
    metric_updates: tuple  # PUT /metrics/ sizes
    metric_singles: int  # at most this many single metric PATCHes per run (the rest projected)
    creation_items: int
    clients: int = 8

    @property
    def tickets(self):
        return max(self.async_items) + max(self.patches, 100)

    @property
    def metrics(self):
        return max(self.metric_updates)


FULL = Sizes((10_000, 100_000), (1, 2), 3, None, 1_000, 30, (100, 1_000), 1_000, 100_000)
QUICK = Sizes((10_000,), (1, 2), 3, None, 200, 10, (100, 1_000), 200, 100_000)
