"""Benchmarks of the bulk engine against the real stack: `python -m bench` (see docs/benchmarks.md).

The bench makes its own PostgreSQL database and uses its own Redis database, starts daphne and
rq workers as subprocesses, compares the engine with what it replaces (single PATCH requests)
and with the physical limit (one set-based UPDATE), prints one table, and stops everything it
started, whatever happens.
"""
