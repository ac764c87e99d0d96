from django.urls import path
from drf_spectacular.views import SpectacularAPIView
from rest_framework.routers import SimpleRouter

from relaytests.api import views

router = SimpleRouter()
router.register("servers", views.ServerViewSet, basename="api-server")
router.register("runs", views.RunViewSet, basename="api-run")

urlpatterns = [
    *router.urls,
    path("verdict-changes/", views.VerdictChangeList.as_view(), name="api-verdict-changes"),
    path("dashboard/", views.Dashboard.as_view(), name="api-dashboard"),
    path("schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("docs/", views.Documentation.as_view(), name="api-docs"),
]
