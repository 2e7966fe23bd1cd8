"""The engine's app: registers the domain apps' operations and connects the subscribers."""

from importlib import import_module

from django.apps import AppConfig
from django.utils.module_loading import autodiscover_modules


class BulkopsConfig(AppConfig):
    name = "bulkops"

    def ready(self):
        # Domain apps register their resources in <app>/resources.py and their operation types
        # in <app>/operations.py; the batch package registers its own, as a domain app would.
        autodiscover_modules("resources", "operations")
        import_module("bulkops.batch.operations")
        self.connect_subscribers()

    def connect_subscribers(self):
        """The engine sends signals and names no subscriber. Imported here, once the models are
        loaded (the subscribers use them at import). Connected in this order, they run in it:
        telemetry, then progress, then the webhook — as the runner called them before. A
        status change that no chunk reports goes to the WebSocket only: webhooks say "finished"."""
        from . import progress, signals, telemetry, webhooks

        for signal, receiver in (
            (signals.chunk_committed, telemetry.observe_chunk),
            (signals.chunk_committed, progress.chunk_done),
            (signals.operation_finished, telemetry.operation_finished),
            (signals.operation_finished, progress.operation_finished),
            (signals.operation_finished, webhooks.on_operation_finished),
            (signals.status_changed, progress.status_changed),
        ):
            signal.connect(receiver, dispatch_uid=f"{receiver.__module__}.{receiver.__name__}")
