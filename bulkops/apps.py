from django.apps import AppConfig
from django.utils.module_loading import autodiscover_modules


class BulkopsConfig(AppConfig):
    name = "bulkops"

    def ready(self):
        # Domain apps declare their bulk operations in <app>/operations.py, and what the
        # batch endpoints do with their records in <app>/batch.py.
        autodiscover_modules("operations", "batch")
