from django.urls import path, re_path
from drf_spectacular.views import SpectacularAPIView
from rest_framework.routers import SimpleRouter

from relaytests.api import views

router = SimpleRouter(use_regex_path=False)  # ids through Django's int converter, as the pages'
router.register("servers", views.ServerViewSet, basename="api-server")
router.register("runs", views.RunViewSet, basename="api-run")

urlpatterns = [
    path("departments/", views.DepartmentList.as_view(), name="api-departments"),
    *router.urls,
    path("verdict-changes/", views.VerdictChangeList.as_view(), name="api-verdict-changes"),
    path("tokens/", views.TokenCreate.as_view(), name="api-tokens"),
    path("dashboard/", views.Dashboard.as_view(), name="api-dashboard"),
    path("schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("docs/", views.Documentation.as_view(), name="api-docs"),
    re_path(
        r"^(?P<path>[\s\S]*)$", views.not_found
    ),  # last: what matched nothing above, e.g. /api/servers/x/
]
