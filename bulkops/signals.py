"""The engine's events, for the subscribers (progress, webhooks, telemetry) to act on.

The runner sends them and names no subscriber; each subscriber connects in
`BulkopsConfig.ready`. Receivers get the operation as `op` (sender: `BulkOperation`).
"""

from django.dispatch import Signal

# A chunk's transaction committed: `op`, `seconds` it took, `last_position` of its items.
chunk_committed = Signal()
# The operation reached its final status, and that status is committed: `op`.
operation_finished = Signal()
status_changed = Signal()  # sent with op=<BulkOperation> after the change commits
