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
