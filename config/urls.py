from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.authtoken.views import ObtainAuthToken

api_v1 = [
    path("auth/token/", ObtainAuthToken.as_view(), name="auth-token"),
    # Before the domain routers: "bulk-operations" must not be taken for a ticket id.
    path("", include("bulkops.api.urls")),
    path("", include("tickets.api.urls")),
    path("", include("metrics.api.urls")),
]

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/v1/", include(api_v1)),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="docs"),
]
