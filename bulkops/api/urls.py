"""The bulk-operation viewset, mounted for any resource and once per resource."""

from django.urls import include, path, re_path
from rest_framework.routers import SimpleRouter

from .batch import BatchGetView, BatchView
from .views import BulkOperationViewSet


def without_slash(pattern):
    """`…/items.csv` names a file: no trailing slash (SPEC §4)."""
    return re_path(str(pattern.pattern).replace(r"\.csv/$", r"\.csv$"), pattern.callback, name=pattern.name)


def mount(resource_type, basename):
    viewset = type(f"{basename}ViewSet", (BulkOperationViewSet,), {"resource_type": resource_type})
    router = SimpleRouter()
    router.register("bulk-operations", viewset, basename=basename)
    return [without_slash(p) if p.name == f"{basename}-items-csv" else p for p in router.urls]


urlpatterns = [
    path("batch/", BatchView.as_view(), name="batch"),
    path("batch/get/", BatchGetView.as_view(), name="batch-get"),
    path("", include(mount(None, "bulk-operation"))),
    path("tickets/", include(mount("tickets", "ticket-bulk-operation"))),
    path("metrics/", include(mount("metrics", "metric-bulk-operation"))),
]
