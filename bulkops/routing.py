"""The WebSocket URL of an operation's live progress."""

from django.urls import path

from .consumers import OperationConsumer

websocket_urlpatterns = [path("ws/bulk-operations/<uuid:op_id>/", OperationConsumer.as_asgi())]
