"""Watching the workers while they run: peak memory, and (on request) a py-spy profile."""

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import psutil
import psycopg

PY_SPY = Path(sys.executable).with_name("py-spy")
PROJECT_DIRS = ("bulkops/", "tickets/", "metrics/")


def vm_hwm_bytes(pid):
    """The process's peak resident set size so far (VmHWM), or 0 once it is gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


class Poller(threading.Thread):
    """A daemon thread that polls until its `with` block ends."""

    def __init__(self):
        super().__init__(daemon=True)
        self.done = threading.Event()

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.done.set()
        self.join()


class PeakRss(Poller):
    """Polls VmHWM of the workers and of their forked work-horses until stopped.

    VmHWM is the peak so far, so polling every 20 ms misses at most the last 20 ms of a
    work-horse's life (when it only reports back to its parent)."""

    def __init__(self, pids, interval=0.02):
        super().__init__()
        self.pids, self.interval = pids, interval
        self.peak = 0

    def tree(self):
        for pid in self.pids:
            yield pid
            try:
                yield from (child.pid for child in psutil.Process(pid).children(recursive=True))
            except psutil.NoSuchProcess:
                pass

    def run(self):
        while not self.done.wait(self.interval):
            for pid in self.tree():
                self.peak = max(self.peak, vm_hwm_bytes(pid))


class Profile:
    """py-spy record of a worker and its work-horses, as collapsed stacks (and speedscope)."""

    def __init__(self, pid, out_dir, name):
        self.pid, self.out = pid, Path(out_dir)
        self.out.mkdir(parents=True, exist_ok=True)
        self.raw = self.out / f"{name}.txt"
        self.process = None

    def __enter__(self):
        self.process = subprocess.Popen(
            [str(PY_SPY), "record", "--pid", str(self.pid), "--subprocesses", "--rate", "200"]
            + ["--format", "raw", "--output", str(self.raw), "--nonblocking"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        return self

    def __exit__(self, *exc):
        self.process.send_signal(signal.SIGINT)  # py-spy writes its output on SIGINT
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


FRAME = re.compile(r"^(?P<func>.+?) \((?P<file>.+?)(?::\d+)?\)$")


def frame_name(frame):
    """'apply_update (tickets/services.py:101)' ⇒ 'tickets/services.py:apply_update'."""
    match = FRAME.match(frame.strip())
    if not match:
        return frame.strip()
    path = match["file"]
    for marker in ("site-packages/", "/work/main/", str(Path.cwd()) + os.sep):
        if marker in path:
            path = path.split(marker, 1)[1]
    return f"{path}:{match['func']}"


def summarize(raw_path, top=25):
    """Inclusive and self shares of the samples, per function, from py-spy's raw output."""
    inclusive, own, total = Counter(), Counter(), 0
    for line in Path(raw_path).read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = [frame_name(f) for f in stack.split(";")]
        total += int(count)
        for name in set(frames):
            inclusive[name] += int(count)
        own[frames[-1]] += int(count)
    if not total:
        return "no samples"
    lines = [f"{total} samples", "", "inclusive (project code and the database driver):"]
    for name, count in inclusive.most_common():
        if name.startswith(PROJECT_DIRS) or "psycopg" in name or "django/db/models" in name:
            lines.append(f"  {100 * count / total:5.1f}%  {name}")
        if len(lines) >= top + 3:
            break
    lines += ["", "self (where the time is spent):"]
    lines += [f"  {100 * c / total:5.1f}%  {n}" for n, c in own.most_common(top)]
    return "\n".join(lines)


class CommitWatch(Poller):
    """Sees each chunk commit from outside: polls the operation's counters on a connection of
    its own every few milliseconds, and notes when each new `processed_items` value appeared."""

    def __init__(self, dsn, table, interval=0.003):
        super().__init__()
        self.dsn, self.interval = dsn, interval
        self.query = f"SELECT processed_items FROM {table} WHERE id = %s"
        self.op_id = None
        self.seen = []  # (POSIX time first seen, processed_items)

    def run(self):
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            while not self.done.wait(self.interval):
                if self.op_id is None:
                    continue
                row = conn.execute(self.query, [self.op_id]).fetchone()
                if row and (not self.seen or row[0] > self.seen[-1][1]):
                    self.seen.append((time.time(), row[0]))

    def committed_at(self, processed_items):
        """When a commit that brought the counter to at least `processed_items` was first seen."""
        return next((at for at, count in self.seen if count >= processed_items), None)
