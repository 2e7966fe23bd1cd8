"""The pages: operation history and one operation's progress, with its buttons."""

from django.urls import path

from . import imports, registry, views

app_name = "bulkops"
urlpatterns = [
    *(
        path(f"{name}/import/", views.import_form, {"resource": name}, name=f"import-{name}")
        for name in sorted(registry.names_with(imports.IMPORT))
    ),
    path("bulk-operations/", views.operation_list, name="operations"),
    path("bulk-operations/<uuid:op_id>/start-import/", views.start_import, name="start-import"),
    path("bulk-operations/awaiting-approval/", views.awaiting_approval, name="approvals"),
    path("bulk-operations/<uuid:op_id>/", views.operation_detail, name="operation"),
    path("bulk-operations/<uuid:op_id>/cancel/", views.cancel, name="cancel"),
    path("bulk-operations/<uuid:op_id>/pause/", views.change, {"verb": "pause"}, name="pause"),
    path("bulk-operations/<uuid:op_id>/resume/", views.change, {"verb": "resume"}, name="resume"),
    path("bulk-operations/<uuid:op_id>/revert/", views.revert, name="revert"),
    path("bulk-operations/<uuid:op_id>/retry/", views.retry, name="retry"),
    path("bulk-operations/<uuid:op_id>/approve/", views.approve, name="approve"),
    path("bulk-operations/<uuid:op_id>/reject/", views.reject, name="reject"),
]
