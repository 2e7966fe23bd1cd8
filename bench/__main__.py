"""`python -m bench [--quick] [--runs N] [--write-docs] [--profile DIR] [--control]` (also `make bench`)."""

import argparse
import dataclasses
import os
import re
import signal
import sys
import time

from .sizes import FULL, QUICK
from .stack import ROOT, Stack, environment, recreate_database

DOCS = ROOT / "docs" / "benchmarks.md"
MILLION = 1_000_000


def log(message):
    print(message, file=sys.stderr, flush=True)


def arguments():
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run of a minute or two")
    parser.add_argument(
        "--million", action="store_true", help="instead: one 1,000,000-item operation, create to revert (~15 min)"
    )
    parser.add_argument(
        "--million-create", action="store_true", help="instead: only create and cancel that operation, --runs times"
    )
    parser.add_argument("--runs", type=int, help="runs per figure (default 3)")
    parser.add_argument(
        "--batch-size", type=int, help="chunk size of the async operations (default: none, the engine's)"
    )
    parser.add_argument("--db-name", default="bulkops_bench", help="PostgreSQL database (dropped and recreated)")
    parser.add_argument("--redis-db", type=int, default=9, help="Redis database number (flushed)")
    parser.add_argument("--keep-db", action="store_true", help="leave the database behind for inspection")
    parser.add_argument("--write-docs", action="store_true", help=f"put the table into {DOCS.relative_to(ROOT)}")
    parser.add_argument("--profile", metavar="DIR", help="py-spy the first worker during the largest operation")
    parser.add_argument(
        "--control", action="store_true", help="measure fair share and throttle (bench/control.py) instead"
    )
    return parser.parse_args()


def sizes_from(args):
    sizes = QUICK if args.quick else FULL
    changes = {"runs": args.runs, "batch_size": args.batch_size}
    return dataclasses.replace(sizes, **{k: v for k, v in changes.items() if v})


def setup_django(args):
    """The bench process itself uses the ORM and django-rq on the bench's database and Redis."""
    os.environ.update(environment(args.db_name, args.redis_db))
    import django

    django.setup()


def versions():
    import django_rq
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version")
        pg = cursor.fetchone()[0].split()[0]
    redis = django_rq.get_connection("bulkops").info("server")["redis_version"]
    return pg, redis


def write_docs(text, marker):
    """Between `<!-- {marker}:start -->` and `<!-- {marker}:end -->` (the full, --million and --control figures)."""
    start, end = f"<!-- {marker}:start -->", f"<!-- {marker}:end -->"
    current = DOCS.read_text() if DOCS.exists() else ""
    if start not in current:
        current += f"\n{start}\n{end}\n"
    pattern = re.compile(re.escape(start) + ".*?" + re.escape(end), re.S)
    DOCS.write_text(pattern.sub(lambda _: f"{start}\n{text}\n{end}", current))
    log(f"bench: table written to {DOCS}")


def main():
    args = arguments()
    sizes = sizes_from(args)
    # A SIGTERM (a CI timeout, `kill`) must also stop daphne and the workers.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    recreate_database(args.db_name)
    setup_django(args)
    stack = Stack(args.db_name, args.redis_db, keep_db=args.keep_db)
    try:
        return (run_control if args.control else run)(stack, sizes, args)
    finally:
        stack.close()
        log(f"bench: stopped everything; process logs in {stack.logs}")


def run(stack, sizes, args):
    import django_rq
    from rq import Worker

    from .cases import Bench
    from .client import Api
    from .data import seed
    from .million import Million
    from .report import Row, machine, table
    from .summary import Summary

    began = time.perf_counter()
    redis = django_rq.get_connection("bulkops")
    if Worker.all(connection=redis):
        raise SystemExit(f"bench: rq workers use Redis database {args.redis_db}; choose another with --redis-db")
    redis.flushdb()
    log(f"bench: migrating {args.db_name} …")
    stack.migrate()
    args.million = args.million or args.million_create
    tickets = MILLION if args.million else sizes.tickets
    log(f"bench: seeding {tickets:,} tickets and {sizes.metrics:,} metrics …")
    agent, token = seed(tickets, sizes.metrics)
    stack.start_daphne(token)
    if args.million:
        bench = Million(stack, Api(stack.base_url, token), MILLION, runs=args.runs or (3 if args.million_create else 1))
        bench.run(log, create_only=args.million_create)
        rows = []
        bench.rows(lambda *cells: rows.append(Row(*cells)))
    else:
        bench = Bench(stack, Api(stack.base_url, token), agent, sizes, profile_dir=args.profile)
        bench.run(log)
        rows = Summary(bench.results, sizes).build()
    pg_version, redis_version = versions()
    mode = "million" if args.million else "quick" if args.quick else "full"
    flag = " --million-create" if args.million_create else " --million" if args.million else ""
    runs = bench.runs if args.million else sizes.runs
    text = "\n".join(
        [
            f"`python -m bench{' --quick' if args.quick else ''}{flag}` ({mode}; {runs} runs per figure, "
            f"median and min–max; async chunks: {sizes.batch_size or 'engine-sized (no batch_size)'}; {time.perf_counter() - began:.0f} s)",
            "",
            *machine(pg_version, redis_version),
            "",
            table(rows),
        ]
    )
    print(text)
    for path, profile in bench.profiles:
        print(f"\nProfile ({path}):\n{profile}")
    if args.write_docs:
        write_docs(
            text, "bench-million-create" if args.million_create else "bench-million" if args.million else "bench"
        )
    return 1 if bench.results.get("errors") else 0


def run_control(stack, sizes, args):
    import django_rq

    from .control import run_control as measure

    django_rq.get_connection("bulkops").flushdb()
    log(f"bench: migrating {args.db_name} …")
    stack.migrate()
    text = measure(stack, sizes, log)
    print(text)
    if args.write_docs:
        write_docs(text, "bench:control")  # a section of its own
    return 0


if __name__ == "__main__":
    sys.exit(main())
