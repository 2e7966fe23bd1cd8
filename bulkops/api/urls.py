"""The bulk-operation viewset, mounted for any resource and once per registered resource."""

from django.urls import include, path, re_path
from rest_framework.routers import SimpleRouter

from .. import imports, registry
from .imports import ImportView
from .views import BulkOperationViewSet


def without_slash(pattern):
    """`…/items.csv` names a file: no trailing slash (SPEC §4)."""
    return re_path(str(pattern.pattern).replace(r"\.csv/$", r"\.csv$"), pattern.callback, name=pattern.name)


def mount(resource_type, basename):
    viewset = type(f"{basename}ViewSet", (BulkOperationViewSet,), {"resource_type": resource_type})
    router = SimpleRouter()
    router.register("bulk-operations", viewset, basename=basename)
    return [without_slash(p) if p.name == f"{basename}-items-csv" else p for p in router.urls]


def resource_mounts():
    """/api/v1/<resource>/bulk-operations/ for each resource a create request may name."""
    for name in registry.resources():
        basename = f"{registry.resource(name).label.lower()}-bulk-operation"
        yield path(f"{name}/", include(mount(name, basename)))


def import_mounts():
    """/api/v1/<resource>/imports/ for each resource with an import operation type."""
    for name in sorted(registry.names_with(imports.IMPORT)):
        view = ImportView.as_view(resource_type=name)
        yield path(f"{name}/imports/", view, name=f"{registry.resource(name).label.lower()}-import")


urlpatterns = [
    path("", include("bulkops.batch.urls")),
    path("", include(mount(None, "bulk-operation"))),
    *resource_mounts(),
    *import_mounts(),
]
