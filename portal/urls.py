from django.conf import settings
from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from portal.throttle import limit_password_resets
from relaytests.metrics import metrics

urlpatterns = [
    path("admin/", admin.site.urls),
    # Before the auth URLs, so this limited view answers the name "password_reset".
    path(
        "accounts/password_reset/",
        limit_password_resets(auth_views.PasswordResetView.as_view()),
        name="password_reset",
    ),
    path("accounts/", include("django.contrib.auth.urls")),
    path("api/", include("relaytests.api.routes")),
    path("metrics", metrics, name="metrics"),  # Prometheus's default path, no slash
    path("", include("relaytests.urls")),
]
if settings.PORTAL_OIDC:
    urlpatterns.insert(0, path("oidc/", include("mozilla_django_oidc.urls")))
