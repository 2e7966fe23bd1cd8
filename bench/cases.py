"""The benchmarks. Each one compares like with like: the same tickets, reset to the same state
before every run, the same change, measured side by side in one run of the bench."""

import time
from concurrent.futures import ThreadPoolExecutor
from functools import partial

from django.conf import settings
from django_rq import get_queue

from bulkops.models import BulkOperation

from . import data
from .client import BenchError, EndpointMissing, follow, wall
from .probes import CommitWatch, PeakRss, Profile, summarize
from .report import percentile


def progress_latency(followed, watch):
    """For each progress event of the running operation: chunk commit (as `watch` saw it) ⇒
    receipt, and publish (the payload's timestamp) ⇒ receipt."""
    committed, published = [], []
    for received, message in followed.progress():
        if message.get("status") != "in_progress":
            continue  # the final event follows finalize, not a chunk
        published.append(received - wall(message["timestamp"]))
        at = watch.committed_at(message["processed_items"])
        if at is not None:
            committed.append(received - at)
    return {"committed": committed, "published": published}


class Bench:
    def __init__(self, stack, api, agent, sizes, profile_dir=None):
        self.stack, self.api, self.agent, self.sizes = stack, api, agent, sizes
        self.profile_dir = profile_dir
        self.profiles = []
        ids = data.ticket_ids()
        self.async_ids = ids[: max(sizes.async_items)]
        self.pool = ids[max(sizes.async_items) :]  # for the single-request comparisons
        self.metric_ids = data.metric_ids()
        self.origin = stack.base_url
        self.results = {}  # (name, …) ⇒ list of per-run values

    def record(self, key, value):
        self.results.setdefault(key, []).append(value)

    # --- 1, 5, 6: async update_status ----------------------------------------------------

    def run_async(self, ids, batch_size, watch=None):
        """One operation, POST to operation_completed; returns the per-run figures."""
        data.reset_tickets(ids)
        data.vacuum()
        with PeakRss([w.pid for w in self.stack.workers]) as rss:
            started = time.perf_counter()
            created = self.api.create_operation(ids, "in_progress", batch_size)
            if watch:
                watch.op_id = created["operation_id"]
            followed = follow(created["links"]["websocket"], self.origin, timeout=600)
        op = self.api.operation(created["operation_id"])
        if op["status"] != "completed" or op["successful_items"] != len(ids):
            raise BenchError(f"operation {op['operation_id']} ended {op['status']}: {op.get('errors', [])[:3]}")
        result = {
            "wall": followed.finished_at - started,
            "processing": wall(op["completed_at"]) - wall(op["started_at"]),
            "rss": rss.peak,
        }
        if watch:
            result.update(progress_latency(followed, watch))
        return result

    def async_phase(self, workers):
        for size in self.sizes.async_items:
            ids = self.async_ids[:size]
            for _ in range(self.sizes.runs):
                for name, value in self.run_async(ids, self.sizes.batch_size).items():
                    self.record(("async", size, workers, name), value)
        if self.profile_dir:
            ids = self.async_ids[: max(self.sizes.async_items)]
            name = f"worker-{workers}w-{len(ids)}"
            self.profiled(self.stack.workers[0].pid, name, lambda: self.run_async(ids, self.sizes.batch_size))
        if workers == min(self.sizes.workers):
            size = min(self.sizes.async_items)
            for _ in range(self.sizes.runs):  # the API's default chunk size, for reference
                result = self.run_async(self.async_ids[:size], 50)
                self.record(("async-batch50", size, workers), result["wall"])

    def progress_phase(self, workers):
        """Separate runs, so that the polling of CommitWatch does not slow the timed ones."""
        ids = self.async_ids[: min(self.sizes.async_items)]
        for _ in range(self.sizes.runs):
            with CommitWatch(settings.DATABASE_URL, BulkOperation._meta.db_table) as watch:
                result = self.run_async(ids, self.sizes.batch_size, watch=watch)
            self.record(("progress", workers, "committed"), result["committed"])
            self.record(("progress", workers, "published"), result["published"])

    def profiled(self, pid, name, action):
        """One more run, under py-spy and not counted: the profiler takes CPU from the run."""
        with Profile(pid, self.profile_dir, name) as profile:
            action()
        self.profiles.append((profile.raw, summarize(profile.raw)))

    # --- 2: the physical limit ----------------------------------------------------------

    def set_based_phase(self):
        for size in self.sizes.async_items:
            ids = self.async_ids[:size]
            for with_audit in (False, True):
                for _ in range(self.sizes.runs):
                    data.reset_tickets(ids)
                    data.vacuum()
                    started = time.perf_counter()
                    data.set_based_update(ids, self.agent.pk, with_audit)
                    self.record(("set-based", size, with_audit), time.perf_counter() - started)
            for connections in self.sizes.workers:  # beside the engine with as many workers
                for _ in range(self.sizes.runs):
                    data.reset_tickets(ids)
                    op = data.pending_operation(self.agent, ids)
                    data.vacuum()
                    started = time.perf_counter()
                    data.engine_writes(op, ids, self.agent.pk, connections=connections)
                    self.record(("engine-writes", size, connections), time.perf_counter() - started)

    # --- 3: single PATCH requests ---------------------------------------------------------

    def patch_one(self, http, ticket_id):
        self.api.call("PATCH", f"/api/v1/tickets/{ticket_id}/", json={"status": "in_progress"}, http=http)

    def patches(self, ids, clients):
        data.reset_tickets(ids)
        data.vacuum()
        shares = [ids[n::clients] for n in range(clients)]

        def client(share):
            http = self.api.session()
            for ticket_id in share:
                self.patch_one(http, ticket_id)

        started = time.perf_counter()
        with ThreadPoolExecutor(clients) as pool:
            list(pool.map(client, shares))
        return time.perf_counter() - started

    def patch_phase(self, workers):
        ids = self.pool[: self.sizes.patches]
        for _ in range(self.sizes.runs):
            self.record(("patch-bulk", workers), self.run_async(ids, self.sizes.batch_size)["wall"])
            self.record(("patch-seq",), self.patches(ids, 1))
            self.record(("patch-conc",), self.patches(ids, self.sizes.clients))

    # --- 4: synchronous endpoints -----------------------------------------------------------

    def put_metrics(self, ids, verification):
        body = {"updates": [{"id": pk, "verification": verification} for pk in ids]}
        result = self.api.call("PUT", "/api/v1/metrics/", json=body).json()
        if result.get("success_count") != len(ids):
            raise BenchError(f"PUT /api/v1/metrics/ changed {result.get('success_count')} of {len(ids)}")

    def patch_tickets(self, ids, priority):
        result = self.api.call("PATCH", "/api/v1/tickets/", json=[{"id": pk, "priority": priority} for pk in ids])
        if result.json().get("success_count") != len(ids):
            raise BenchError(f"PATCH /api/v1/tickets/ ⇒ {result.text[:300]}")

    def latencies(self, send, ids, values):
        send(ids, values[1])  # warm-up
        timings = []
        for n in range(self.sizes.sync_requests):
            started = time.perf_counter()
            send(ids, values[n % 2])  # alternate, so that every request changes every record
            timings.append(time.perf_counter() - started)
        return timings

    def patch_single(self, path, field):
        """One single PATCH of one record, alternating the value, as `latencies` sends."""
        return lambda ids, value: self.api.call("PATCH", f"{path}{ids[0]}/", json={field: value})

    def sync_phase(self):
        endpoints = {
            "put-metrics": (self.put_metrics, self.metric_ids[:100], ("requested", "verified")),
            "patch-tickets": (self.patch_tickets, self.pool[:100], ("high", "low")),
        }
        singles = {
            "put-metrics": (self.patch_single("/api/v1/metrics/", "verification"), self.metric_ids[100:101]),
            "patch-tickets": (self.patch_single("/api/v1/tickets/", "priority"), self.pool[100:101]),
        }
        for name, (send, ids, values) in endpoints.items():
            try:
                for _ in range(self.sizes.runs):
                    # Side by side in the same run: the 100-item call and one single PATCH.
                    timings = self.latencies(send, ids, values)
                    self.record((name, "p50"), percentile(timings, 0.50))
                    self.record((name, "p95"), percentile(timings, 0.95))
                    single, single_ids = singles[name]
                    self.record((name, "single-p50"), percentile(self.latencies(single, single_ids, values), 0.50))
            except EndpointMissing:
                self.results[name, "missing"] = True
                continue
            if self.profile_dir:
                self.profiled(self.stack.daphne.pid, f"daphne-{name}", partial(self.latencies, send, ids, values))
        if ("put-metrics", "missing") in self.results:
            return
        for size in self.sizes.metric_updates:
            ids = self.metric_ids[:size]
            singles = ids[: self.sizes.metric_singles]
            for _ in range(self.sizes.runs):
                data.reset_metrics(ids)
                started = time.perf_counter()
                self.put_metrics(ids, "verified")
                self.record(("metrics-put", size), time.perf_counter() - started)
                data.reset_metrics(ids)
                started = time.perf_counter()
                for pk in singles:
                    self.api.call("PATCH", f"/api/v1/metrics/{pk}/", json={"verification": "verified"})
                # Projected to all `size` updates when fewer were sent (--quick).
                self.record(("metrics-singles", size), (time.perf_counter() - started) * size / len(singles))

    # --- 5: creating a large operation ---------------------------------------------------------

    def creation_phase(self):
        """POST to 202 with no worker running; the operation is cancelled (pending ⇒ at once)."""
        count = self.sizes.creation_items
        ids = (self.async_ids + self.pool)[:count]
        ids += list(range(max(ids) + 1, max(ids) + 1 + count - len(ids)))  # ids may be missing: never read
        for _ in range(self.sizes.runs):
            self.record(("create", count), self.create_and_cancel(ids))
        if self.profile_dir:
            self.profiled(self.stack.daphne.pid, "daphne-create", lambda: self.create_and_cancel(ids))
        get_queue("bulkops").empty()  # their slice jobs: nothing left to do

    def create_and_cancel(self, ids):
        started = time.perf_counter()
        created = self.api.create_operation(ids, "in_progress", self.sizes.batch_size)
        seconds = time.perf_counter() - started
        self.api.cancel(created["operation_id"])
        return seconds

    # --- 7: a Prometheus scrape, with every item of the run stored ------------------------------

    def scrape_phase(self):
        self.results["stored-items"] = data.item_count()
        for _ in range(self.sizes.runs):
            started = time.perf_counter()
            self.api.call("GET", "/metrics")
            self.record(("scrape",), time.perf_counter() - started)

    # --- the whole run ---------------------------------------------------------------------------

    def run(self, log):
        steps = [("creating operations (no worker)", self.creation_phase), ("set-based UPDATE", self.set_based_phase)]
        for workers in self.sizes.workers:
            steps.append((f"async update_status, {workers} worker(s)", lambda w=workers: self.with_workers(w)))
        steps += [("synchronous endpoints", self.sync_phase), ("GET /metrics", self.scrape_phase)]
        for title, step in steps:
            log(f"bench: {title} …")
            started = time.perf_counter()
            try:
                step()
            except EndpointMissing as exc:
                log(f"bench: {title}: endpoint missing ({exc})")
            except Exception as exc:  # noqa: BLE001 - one failing benchmark must not hide the others
                log(f"bench: {title} FAILED: {exc!r}")
                self.results.setdefault("errors", []).append(f"{title}: {exc}")
            log(f"bench: {title} done in {time.perf_counter() - started:.0f} s")

    def with_workers(self, workers):
        self.stack.start_workers(workers)
        try:
            self.run_async(self.async_ids[:100], self.sizes.batch_size)  # warm-up, not counted
            self.async_phase(workers)
            self.progress_phase(workers)
            if workers == min(self.sizes.workers):
                self.patch_phase(workers)
        finally:
            self.stack.stop_workers()
