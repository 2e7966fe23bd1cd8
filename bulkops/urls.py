"""The pages: operation history and one operation's progress, with its buttons."""

from django.urls import path

from . import views

app_name = "bulkops"
urlpatterns = [
    path("bulk-operations/", views.operation_list, name="operations"),
    path("bulk-operations/<uuid:op_id>/", views.operation_detail, name="operation"),
    path("bulk-operations/<uuid:op_id>/cancel/", views.cancel, name="cancel"),
    path("bulk-operations/<uuid:op_id>/pause/", views.change, {"verb": "pause"}, name="pause"),
    path("bulk-operations/<uuid:op_id>/resume/", views.change, {"verb": "resume"}, name="resume"),
    path("bulk-operations/<uuid:op_id>/revert/", views.revert, name="revert"),
    path("bulk-operations/<uuid:op_id>/retry/", views.retry, name="retry"),
]
