"""`python -m bench.imports [--rows N]`: upload an N-row CSV (default 1,000,000, ≈150 MB) to
POST /api/v1/tickets/imports/ through daphne, and report the time to the 202, the web
process's peak RSS, and the time until a worker has imported every row.

Runs on its own database and Redis database (dropped and flushed), like `python -m bench`.
"""

import argparse
import signal
import sys
import tempfile
import time
from pathlib import Path

import requests

from .__main__ import log, setup_django
from .probes import vm_hwm_bytes
from .stack import Stack, recreate_database

ROW = 'IMP-{n:09d},Imported ticket number {n} from the bench\'s file,"{description}",{priority}\n'
DESCRIPTION = "A description of about eighty characters, so that a row is as long as a real one."
PRIORITIES = ("low", "normal", "high", "urgent")


def arguments():
    parser = argparse.ArgumentParser(prog="python -m bench.imports", description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--workers", type=int, default=2, help="rq workers importing the rows (0: upload only)")
    parser.add_argument("--db-name", default="bulkops_bench_import")
    parser.add_argument("--redis-db", type=int, default=8)
    parser.add_argument("--keep-db", action="store_true")
    return parser.parse_args()


def write_csv(path, rows):
    with open(path, "w", encoding="utf-8", newline="") as out:
        out.write("external_id,title,description,priority\n")
        for n in range(rows):
            out.write(ROW.format(n=n, description=DESCRIPTION, priority=PRIORITIES[n % 4]))
    return path.stat().st_size


def upload(base_url, token, path):
    """POST the file as multipart, streamed from disk; returns the 202 body."""
    with open(path, "rb") as body:
        response = requests.post(
            f"{base_url}/api/v1/tickets/imports/",
            headers={"Authorization": f"Token {token}"},
            data={"match_on": "external_id", "action": "create", "batch_size": "1000"},
            files={"file": (path.name, body, "text/csv")},
            timeout=600,
        )
    if response.status_code != 202:
        raise SystemExit(f"bench: the upload answered {response.status_code}: {response.text[:500]}")
    return response.json()


def wait_until_finished(url, token, timeout=3600):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = requests.get(url, headers={"Authorization": f"Token {token}"}, timeout=30).json()
        if status["status"] in ("completed", "partial", "failed", "cancelled"):
            return status
        time.sleep(1)
    raise TimeoutError("the import did not finish")


def main():
    args = arguments()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    recreate_database(args.db_name)
    setup_django(args)
    stack = Stack(args.db_name, args.redis_db, keep_db=args.keep_db)
    try:
        run(stack, args)
    finally:
        stack.close()


def run(stack, args):
    import django_rq

    from .data import seed

    django_rq.get_connection("bulkops").flushdb()
    stack.migrate()
    _, token = seed(0, 0)
    stack.start_daphne(token)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "tickets.csv"
        size = write_csv(path, args.rows)
        log(
            f"bench.imports: {args.rows:,} rows, {size / 2**20:.0f} MiB; daphne at {vm_hwm_bytes(stack.daphne.pid) / 2**20:.0f} MiB"
        )
        began = time.perf_counter()
        created = upload(stack.base_url, token, path)
        accepted = time.perf_counter() - began
    peak = vm_hwm_bytes(stack.daphne.pid)
    log(f"bench.imports: 202 after {accepted:.1f} s; daphne peak RSS {peak / 2**20:.0f} MiB")
    print(f"rows={args.rows} file_mib={size / 2**20:.0f} accepted_s={accepted:.1f} web_peak_rss_mib={peak / 2**20:.0f}")
    if args.workers:
        began = time.perf_counter()
        stack.start_workers(args.workers)
        status = wait_until_finished(created["links"]["self"], token)
        took = time.perf_counter() - began
        log(f"bench.imports: {status['status']}, {status['created_items']:,} created in {took:.0f} s")
        print(f"imported_s={took:.0f} rows_per_s={args.rows / took:.0f} status={status['status']}")


if __name__ == "__main__":
    main()
