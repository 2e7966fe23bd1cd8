"""A test-only app that makes its model bulk-editable with no change to `bulkops` (docs/extending.md)."""
