"""The bulk-operation viewset, mounted for any resource and once per resource."""

from django.urls import include, path
from rest_framework.routers import SimpleRouter

from .views import BulkOperationViewSet


def mount(resource_type, basename):
    viewset = type(f"{basename}ViewSet", (BulkOperationViewSet,), {"resource_type": resource_type})
    router = SimpleRouter()
    router.register("bulk-operations", viewset, basename=basename)
    return router.urls


urlpatterns = [
    path("", include(mount(None, "bulk-operation"))),
    path("tickets/", include(mount("tickets", "ticket-bulk-operation"))),
    path("metrics/", include(mount("metrics", "metric-bulk-operation"))),
]
