"""`python -m bench --million`: one operation over 1,000,000 tickets selected by `filter`, from
creation to revert (SPEC §14). One run of each step: a step takes minutes, not milliseconds.

Steps: create (POST → 202, no worker running) and cancel it while pending (every item
skipped at once; `--million-create` does only this, `--runs` times); create again and process
it with 2 workers (started_at → completed_at, and the workers' peak RSS); export its items as
CSV (the whole streamed body); revert it (POST → 202, then processing)."""

import time

from . import data
from .client import BenchError, wall
from .probes import PeakRss
from .report import Figure
from .summary import MB, plural, seconds

FINISHED = {"completed", "partial", "failed", "cancelled"}
WORKERS = 2


class Million:
    def __init__(self, stack, api, count, runs=1):
        self.stack, self.api, self.count, self.runs = stack, api, count, runs
        self.results, self.profiles = {}, []

    def create(self, status):
        body = {"filter": {"status": "open"}, "operation_type": "update_status", "operation_data": {"status": status}}
        started = time.perf_counter()
        created = self.api.call("POST", "/api/v1/tickets/bulk-operations/", json=body, expect=(202,)).json()
        elapsed = time.perf_counter() - started
        if created["total_items"] != self.count:
            raise BenchError(f"the filter selected {created['total_items']:,} tickets, not {self.count:,}")
        return created, elapsed

    def wait(self, op_id, timeout=3600):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            op = self.api.operation(op_id)
            if op["status"] in FINISHED:
                return op
            time.sleep(1)
        raise BenchError(f"operation {op_id} not finished within {timeout} s")

    def run(self, log, *, create_only=False):
        data.reset_tickets(data.ticket_ids())
        data.vacuum()
        self.results["create"], self.results["cancel"] = [], []
        for _ in range(self.runs):
            log("bench: creating (and cancelling) a 1,000,000-item operation …")
            created, elapsed = self.create("in_progress")
            self.results["create"].append(elapsed)
            started = time.perf_counter()
            self.api.cancel(created["operation_id"])
            self.results["cancel"].append(time.perf_counter() - started)
            data.vacuum()
        if create_only:
            return
        log("bench: processing it …")
        created, _ = self.create("in_progress")
        self.stack.start_workers(WORKERS)
        try:
            with PeakRss([w.pid for w in self.stack.workers]) as rss:
                op = self.wait(created["operation_id"])
                self.results["process"] = duration(op)
                log("bench: exporting its items as CSV …")
                self.results["csv"], self.results["csv-bytes"] = self.export(created["links"]["items_csv"])
                log("bench: reverting it …")
                started = time.perf_counter()
                revert = self.api.call("POST", f"/api/v1/bulk-operations/{op['operation_id']}/revert/", expect=(202,))
                self.results["revert-create"] = time.perf_counter() - started
                self.results["revert"] = duration(self.wait(revert.json()["operation_id"]))
            self.results["rss"] = rss.peak
        finally:
            self.stack.stop_workers()
        if op["successful_items"] != self.count:
            raise BenchError(f"operation {op['operation_id']} ended {op['status']}: {op['successful_items']:,}")

    def export(self, url):
        started, size = time.perf_counter(), 0
        with self.api.http.get(url, stream=True, timeout=3600) as response:
            for chunk in response.iter_content(1 << 16):
                size += len(chunk)
        return time.perf_counter() - started, size

    def rows(self, add):
        n, r = f"{self.count:,}", self.results
        add("8", f"creating a {n}-item operation selected by filter (POST → 202)", seconds(r["create"]), 5)
        add("8", f"cancelling it while pending ({n} items skipped; POST → 202)", seconds(r["cancel"]))
        if "process" not in r:  # --million-create
            return
        rate = Figure([self.count / r["process"]], "items/s", higher_is_better=True)
        add("8", f"processing {n} items, {plural(WORKERS)} (started_at → completed_at)", rate)
        add("8", f"items.csv of {n} items ({r['csv-bytes'] / MB:,.0f} MB, whole body)", seconds([r["csv"]]))
        add("8", f"revert of {n} items (POST → 202)", seconds([r["revert-create"]]))
        rate = Figure([self.count / r["revert"]], "items/s", higher_is_better=True)
        add("8", f"revert of {n} items, {plural(WORKERS)} (started_at → completed_at)", rate)
        add("8", f"worker peak RSS (VmHWM), {n} items", Figure([r["rss"] / MB], "MB"), 200)


def duration(op):
    return wall(op["completed_at"]) - wall(op["started_at"])
