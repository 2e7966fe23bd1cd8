"""An operation's counters under the names each wire shape gives them, in one table: the
status, progress events and webhooks use the model's own names (`successful_items`)."""

SHAPES = {
    # POST /api/v1/batch/: the report's `summary` (SPEC §5.4)
    "batch_summary": {"completed": "successful_items", "failed": "failed_items"},
    # PATCH on a collection (SPEC §5.2)
    "collection_patch": {"success_count": "successful_items", "fail_count": "failed_items"},
    # PUT on a collection (SPEC §5.3)
    "collection_put": {
        "total_processed": "processed_items",
        "success_count": "successful_items",
        "failure_count": "failed_items",
    },
}


def counters(op, shape):
    """{wire name: value} of `op`'s counters for `shape`."""
    return {wire: getattr(op, name) for wire, name in SHAPES[shape].items()}
