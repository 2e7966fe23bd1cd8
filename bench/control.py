"""Control of running work (SPEC §13), measured: `python -m bench --control`.

- Fair share: while a large operation runs on two workers, how long another user's 10-item
  operation takes from its creation to its completion — with the default slice budget
  (`BULKOPS_SLICE_SECONDS`), and with slices that never yield, for comparison.
- Throttle: the rate an operation achieves over 5 s windows against the `max_items_per_second`
  it asked for, before and after a `PATCH` changes it mid-run.

Operations are created through the services in this process (the API's own code path after
validation); the workers are real `bulkops_worker` processes of the stack.
"""

import statistics
import time

SMALL_ITEMS = 10
WINDOW = 5  # seconds
RATES = (100, 300)  # asked, then PATCHed to, mid-run


def run_control(stack, sizes, log):
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Permission

    from .data import seed, ticket_ids

    agent, _ = seed(sizes.tickets, 0)
    other = get_user_model().objects.create(username="colleague")
    other.user_permissions.add(Permission.objects.get(content_type__app_label="tickets", codename="change_ticket"))
    ids = ticket_ids()
    large, small = ids[: min(100_000, len(ids) - SMALL_ITEMS)], ids[-SMALL_ITEMS:]
    results = {}
    for label, seconds in (("default (2 s slices)", None), ("slices never yield", 3600)):
        log(f"bench: fair share, {label}: {len(large):,} items on 2 workers …")
        results[label] = fair_share(stack, agent, other, large, small, sizes.runs, seconds)
    log("bench: throttle …")
    windows = throttle(stack, agent, ids)
    return report(len(large), sizes.runs, results, windows)


def start(user, ids, status, **options):
    from bulkops import services

    request = services.Request("tickets", "update_status", ids, {"status": status}, **options)
    return services.start_operation(user, request)[0]


def wait_until(check, timeout=600, interval=0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := check():
            return value
        time.sleep(interval)
    raise TimeoutError("the operation did not get there in time")


def fresh(op):
    op.refresh_from_db()
    return op


def restart_workers(stack, slice_seconds):
    stack.stop_workers()
    if slice_seconds is None:
        stack.env.pop("BULKOPS_SLICE_SECONDS", None)
    else:
        stack.env["BULKOPS_SLICE_SECONDS"] = str(slice_seconds)
    stack.start_workers(2)


def fair_share(stack, agent, other, large, small, runs, slice_seconds):
    """Seconds from creation to completion of `runs` small operations made while the large one
    runs (its slices on both workers, and more of them queued)."""
    restart_workers(stack, slice_seconds)
    big = start(agent, large, "pending")
    wait_until(lambda: fresh(big).processed_items > 0)
    waits = []
    for run in range(runs):
        op = start(other, small, "resolved" if run % 2 == 0 else "open")
        done = wait_until(lambda op=op: fresh(op).is_finished and op)
        waits.append((done.completed_at - done.created_at).total_seconds())
        if fresh(big).is_finished:
            break
    share = fresh(big).processed_items / len(large)  # when the last small one finished
    wait_until(lambda: fresh(big).is_finished, timeout=1200, interval=0.5)
    return {"waits": waits, "large_done_meanwhile": share}


def throttle(stack, agent, ids):
    """Items per 5 s window of an operation asked for RATES[0] items/s, PATCHed to RATES[1]
    after two windows."""
    from django.db.models import Min

    from bulkops import control

    restart_workers(stack, None)
    first, second = RATES
    # Twice what the rates let through in the time measured: it is still running at the end.
    op = start(agent, ids[: 2 * (first * 2 * WINDOW + second * 3 * WINDOW)], "pending", max_items_per_second=first)
    began = wait_until(lambda: op.items.aggregate(t=Min("processed_at"))["t"])
    time.sleep(2 * WINDOW - (time.time() - began.timestamp()))
    changed = time.time() - began.timestamp()
    control.change_operation(agent, op.pk, max_items_per_second=second)
    time.sleep(3 * WINDOW)
    control.pause_operation(agent, op.pk)  # what is left need not be waited for
    wait_until(lambda: settled(op), timeout=60)
    times = [
        (t - began).total_seconds() for t in op.items.exclude(processed_at=None).values_list("processed_at", flat=True)
    ]
    windows = []
    for start_at, asked in ((0, first), (WINDOW, first), (changed, second), (changed + WINDOW, second)):
        count = sum(1 for t in times if start_at <= t < start_at + WINDOW)
        windows.append((start_at, asked, count / WINDOW))
    return {"windows": windows, "changed_after": changed}


def settled(op):
    """Paused and no chunk moved for a second."""
    before = fresh(op).processed_items
    time.sleep(1)
    return fresh(op).processed_items == before


def report(large_items, runs, results, throttle_result):
    lines = [
        "### Fair share and throttle (`python -m bench --control`)",
        "",
        "Measured on the shared 2-core machine while other developers' test suites and benchmarks ran on it:",
        "absolute times are pessimistic and vary from run to run.",
        "",
        f"**Fair share**: another user's {SMALL_ITEMS}-item operation, created while a {large_items:,}-item "
        "operation runs on two workers; seconds from its creation to its completion (target < 5 s).",
        "",
        "| slices | small operation: median (min–max) | runs | large operation's progress by then |",
        "|---|---|---|---|",
    ]
    for label, result in results.items():
        waits = result["waits"]
        lines.append(
            f"| {label} | {statistics.median(waits):.2f} s ({min(waits):.2f}–{max(waits):.2f}) | {len(waits)} "
            f"| {result['large_done_meanwhile']:.0%} |"
        )
    lines += [
        "",
        f"**Throttle**: items per second over 5 s windows; asked {RATES[0]}/s at creation, `PATCH`ed to "
        f"{RATES[1]}/s after {throttle_result['changed_after']:.1f} s (target ±20 %).",
        "",
        "| window (s from the first item) | asked | achieved | deviation |",
        "|---|---|---|---|",
    ]
    for start_at, asked, achieved in throttle_result["windows"]:
        lines.append(
            f"| {start_at:.1f}–{start_at + WINDOW:.1f} | {asked}/s | {achieved:.0f}/s | {achieved / asked - 1:+.1%} |"
        )
    return "\n".join(lines)
