"""The batch endpoints, mounted under /api/v1/ (bulkops/api/urls.py)."""

from django.urls import path

from .api import BatchGetView, BatchView

urlpatterns = [
    path("batch/", BatchView.as_view(), name="batch"),
    path("batch/get/", BatchGetView.as_view(), name="batch-get"),
]
