from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from core.admin import former_admin_paths
from workbench import views

urlpatterns = [
    path("", views.home, name="home"),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    *former_admin_paths(),
    path("admin/", admin.site.urls),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
    # routing first: its ".../items/<external_id>/decisions/" would otherwise match labeling's item detail
    # (external ids may contain slashes).
    path("api/", include("routing.api_urls")),
    path("api/", include("work.api_urls")),
    path("api/", include("labeling.api_urls")),
    path("api/", include("dashboards.api_urls")),
    path("experts/", include("experts.urls")),
    path("", include("labeling.urls")),
    path("", include("routing.urls")),
    path("", include("work.urls")),
    path("dashboards/", include("dashboards.urls")),
]

# Styled pages, or the API's JSON error shape under /api/ (workbench.errors).
handler400 = "workbench.errors.bad_request"
handler403 = "workbench.errors.permission_denied"
handler404 = "workbench.errors.page_not_found"
handler500 = "workbench.errors.server_error"
