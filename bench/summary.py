"""The bench's results as table rows, with the targets of the issue."""

from .report import Figure, Row, percentile, ratio

MB = 1024 * 1024
TARGET_ITEMS_PER_S = {1: 6_000, 2: 10_000}
TARGET_VS_SEQUENTIAL, TARGET_VS_CONCURRENT = 50, 25
# SPEC §14: the engine against one set-based UPDATE of the same rows; a 100-item sync call
# against one single PATCH of one record (p50 over p50).
TARGET_VS_UPDATE = {1: 0.20, 2: 0.30}
TARGET_SYNC_VS_SINGLE = 2


def plural(workers):
    return "1 worker" if workers == 1 else f"{workers} workers"


def seconds(values):
    return Figure(values, "s", digits=2)


def rate(count, durations):
    return Figure([count / d for d in durations], "items/s", higher_is_better=True)


def millis(values):
    return Figure([1000 * v for v in values], "ms", digits=1)


def times(numerator, denominator, digits=1):
    figure = ratio(numerator, denominator, "×")
    figure.digits = digits
    return figure


class Summary:
    def __init__(self, results, sizes):
        self.results, self.sizes = results, sizes
        self.rows = []

    def get(self, *key):
        return self.results.get(key)

    def add(self, section, name, figure=None, target=None, note=""):
        self.rows.append(Row(section, name, figure, target, note))

    def build(self):
        for part in (self.engine, self.physical_limit, self.single_requests, self.sync_endpoints, self.large):
            part()
        self.progress()
        if self.get("scrape"):
            stored = self.results["stored-items"]
            self.add("7", f"GET /metrics (Prometheus scrape), {stored:,} items stored", millis(self.get("scrape")))
        for error in self.results.get("errors", []):
            self.add("!", "benchmark failed", note=f"ERROR: {error}")
        return self.rows

    # 1
    def engine(self):
        for size in self.sizes.async_items:
            for workers in self.sizes.workers:
                wall = self.get("async", size, workers, "wall")
                if not wall:
                    continue
                label = f"update_status async, {size:,} items, {plural(workers)}"
                self.add("1", f"{label}: POST → operation_completed", rate(size, wall), TARGET_ITEMS_PER_S.get(workers))
                self.add("1", f"{label}: wall time", seconds(wall))
                processing = self.get("async", size, workers, "processing")
                self.add("1", f"{label}: started_at → completed_at", rate(size, processing))
        for size in self.sizes.async_items:
            wall = self.get("async-batch50", size, min(self.sizes.workers))
            if wall:
                self.add(
                    "1",
                    f"update_status async, {size:,} items, 1 worker, batch_size 50 (the old default)",
                    rate(size, wall),
                )

    # 2
    def physical_limit(self):
        for size in self.sizes.async_items:
            bare, audited = self.get("set-based", size, False), self.get("set-based", size, True)
            if not bare:
                continue
            self.add("2", f"one set-based UPDATE … WHERE id = ANY(…), {size:,} tickets", rate(size, bare))
            self.add("2", f"the same UPDATE + one INSERT of the audit rows, {size:,} tickets", rate(size, audited))
            for connections in self.sizes.workers:
                floor = self.get("engine-writes", size, connections)
                if floor:
                    on = f"{connections} connections at once" if connections > 1 else "1 connection"
                    self.add(
                        "2",
                        f"the engine's writes alone, set-based, chunks of 1,000, {on}, {size:,} tickets",
                        rate(size, floor),
                    )
                    self.add(
                        "2",
                        f"the engine's writes alone ({on}) / bare UPDATE, {size:,}",
                        times(rate(size, floor), rate(size, bare), 2),
                    )
            for workers in self.sizes.workers:
                wall = self.get("async", size, workers, "wall")
                if wall:
                    ours = rate(size, wall)
                    self.add(
                        "2",
                        f"engine ({plural(workers)}) / bare UPDATE, {size:,}",
                        times(ours, rate(size, bare), 2),
                        TARGET_VS_UPDATE.get(workers),
                    )
                    self.add(
                        "2",
                        f"engine ({plural(workers)}) / UPDATE + audit, {size:,}",
                        times(ours, rate(size, audited), 2),
                    )
                    floor = self.get("engine-writes", size, workers)
                    if floor:  # the share of what the writes allow, with as many connections
                        self.add(
                            "2",
                            f"engine ({plural(workers)}) / the engine's writes alone, {size:,}",
                            times(ours, rate(size, floor), 2),
                        )

    # 3
    def single_requests(self):
        count, workers = self.sizes.patches, min(self.sizes.workers)
        bulk, sequential, concurrent = self.get("patch-bulk", workers), self.get("patch-seq"), self.get("patch-conc")
        if not bulk:
            return
        clients = self.sizes.clients
        self.add("3", f"{count:,} changes as one async operation (POST → completed, 1 worker)", seconds(bulk))
        self.add("3", f"{count:,} sequential single PATCH requests", seconds(sequential))
        self.add("3", f"{count:,} single PATCH requests from {clients} concurrent clients", seconds(concurrent))
        self.add("3", f"{count:,} changes: sequential PATCHes / operation", times(seconds(sequential), seconds(bulk)))
        self.add(
            "3",
            f"{count:,} changes: {clients} concurrent clients / operation",
            times(seconds(concurrent), seconds(bulk)),
        )
        wall = self.get("async", 10_000, workers, "wall")
        if wall:
            scale = 10_000 / count
            note = f"PATCH side projected from {count:,} requests"
            seq, conc = seconds([t * scale for t in sequential]), seconds([t * scale for t in concurrent])
            self.add(
                "3",
                "10,000 changes: sequential PATCHes / operation",
                times(seq, seconds(wall)),
                TARGET_VS_SEQUENTIAL,
                note,
            )
            self.add(
                "3",
                f"10,000 changes: {clients} concurrent clients / operation",
                times(conc, seconds(wall)),
                TARGET_VS_CONCURRENT,
                note,
            )

    # 4
    def sync_endpoints(self):
        for name, label in (("put-metrics", "PUT /api/v1/metrics/"), ("patch-tickets", "PATCH /api/v1/tickets/")):
            if self.get(name, "missing"):
                self.add("4", f"{label}, 100 items", note="n/a (endpoint missing)")
                continue
            if self.get(name, "p50"):
                self.add("4", f"{label}, 100 items: p50", millis(self.get(name, "p50")))
                self.add("4", f"{label}, 100 items: p95", millis(self.get(name, "p95")))
            single = self.get(name, "single-p50")
            if single:
                self.add("4", f"one single PATCH of one record ({label} side): p50", millis(single))
                figure = times(millis(self.get(name, "p50")), millis(single))
                figure.higher_is_better = False
                self.add("4", f"{label}, 100 items, p50 / single PATCH p50", figure, TARGET_SYNC_VS_SINGLE)
        for size in self.sizes.metric_updates:
            put, singles = self.get("metrics-put", size), self.get("metrics-singles", size)
            if not put:
                continue
            sent = min(size, self.sizes.metric_singles)
            note = f"projected from {sent:,} requests" if sent < size else ""
            self.add("4", f"PUT /api/v1/metrics/ with {size:,} updates", seconds(put))
            self.add("4", f"the same {size:,} updates as single PATCH requests", seconds(singles), note=note)
            self.add("4", f"{size:,} updates: single PATCHes / PUT", times(seconds(singles), seconds(put)), note=note)

    # 5
    def large(self):
        count = self.sizes.creation_items
        if self.get("create", count):
            self.add("5", f"creating a {count:,}-item operation (POST → 202)", seconds(self.get("create", count)), 1)
        size = max(self.sizes.async_items)
        for workers in self.sizes.workers:
            rss = self.get("async", size, workers, "rss")
            if rss:
                figure = Figure([r / MB for r in rss], "MB")
                self.add("5", f"worker peak RSS (VmHWM), {size:,} items, {plural(workers)}", figure, 200)

    # 6
    def progress(self):
        size = min(self.sizes.async_items)
        for workers in self.sizes.workers:
            for key, label in (("committed", "chunk commit → WebSocket receipt"), ("published", "publish → receipt")):
                runs = [r for r in self.get("progress", workers, key) or [] if r]
                if not runs:
                    continue
                for share in (0.50, 0.95):
                    figure = millis([percentile(r, share) for r in runs])
                    name = f"progress event, {label}, {size:,} items, {plural(workers)}: p{round(share * 100)}"
                    self.add("6", name, figure, 100 if key == "committed" else None)
