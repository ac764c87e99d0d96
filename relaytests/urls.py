from django.urls import include, path

from relaytests import info_views
from relaytests.views import dashboards, exports, runs, servers, tokens

app_name = "relaytests"

server_urls = [
    path("", servers.server, name="server"),
    path("test/", servers.start_test, name="server-test"),
    path("history.csv", exports.server_history_csv, name="server-history-csv"),
]

run_urls = [
    path("", runs.run, name="run"),
    path("live/", runs.run_live, name="run-live"),
    path("status/", runs.run_status, name="run-status"),
    path("retest/", runs.retest, name="run-retest"),
]

urlpatterns = [
    path("", dashboards.home, name="home"),
    path("overview/", dashboards.overview, name="overview"),
    path("overview/servers.csv", exports.overview_csv, name="overview-csv"),
    path("departments/<slug:slug>/", dashboards.department, name="department"),
    path("departments/<slug:slug>/servers.csv", exports.department_csv, name="department-csv"),
    path("servers/new/", servers.register, name="register"),
    path("servers/<int:pk>/", include(server_urls)),
    path("runs/<int:pk>/", include(run_urls)),
    path("about/<slug:slug>/", info_views.info_page, name="info"),
    path("account/tokens/", tokens.tokens, name="tokens"),
    path("account/tokens/<int:pk>/revoke/", tokens.revoke, name="token-revoke"),
]
