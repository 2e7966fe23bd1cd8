from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

from bulkops.telemetry import metrics_view

from .views import ObtainToken, throttle_logins

api_v1 = [
    path("auth/token/", ObtainToken.as_view(), name="auth-token"),
    # Before the domain routers: "bulk-operations" must not be taken for a ticket id.
    path("", include("bulkops.api.urls")),
    path("", include("tickets.api.urls")),
    path("", include("metrics.api.urls")),
]

urlpatterns = [
    path("admin/login/", throttle_logins(admin.site.login)),  # the admin's own, throttled
    path("admin/", admin.site.urls),
    path("api/v1/", include(api_v1)),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="docs"),
    path("api/redoc/", SpectacularRedocView.as_view(url_name="schema"), name="redoc"),
    path("metrics", metrics_view, name="prometheus-metrics"),
    path("django-rq/", include("django_rq.urls")),  # staff only (django-rq's own check)
    # The pages, for people who never touch the API.
    path("", RedirectView.as_view(pattern_name="tickets:list"), name="home"),
    path("login/", throttle_logins(auth_views.LoginView.as_view()), name="login"),
    path("logout/", auth_views.LogoutView.as_view(next_page="login"), name="logout"),
    path("", include("tickets.urls")),
    path("", include("bulkops.urls")),
]

# API paths answer with the API's JSON error body, even for URLs that match nothing.
handler404 = "config.views.not_found"
handler500 = "config.views.server_error"
