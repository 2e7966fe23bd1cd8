"""The heterogeneous batch (POST /api/v1/batch/, SPEC §5.4) and batch get (§5.5): a package
apart from the engine, on the same registry — each resource's `batch_methods` and verbs."""
