from django.urls import include, path

from relaytests import info_views
from relaytests.views import audit_log, dashboards, exports, found_pages, run_pages, servers, token_pages

app_name = "relaytests"

server_urls = [
    path("", servers.server, name="server"),
    path("test/", servers.start_test, name="server-test"),
    path("history.csv", exports.server_history_csv, name="server-history-csv"),
]

run_urls = [
    path("", run_pages.run, name="run"),
    path("live/", run_pages.run_live, name="run-live"),
    path("status/", run_pages.run_status, name="run-status"),
    path("retest/", run_pages.retest, name="run-retest"),
]

urlpatterns = [
    path("", dashboards.home, name="home"),
    path("overview/", dashboards.overview, name="overview"),
    path("overview/found/", found_pages.found_servers, name="found-servers"),
    path("overview/found/search/", found_pages.discover_now, name="found-servers-search"),
    path("overview/found/<int:pk>/assign/", found_pages.assign, name="found-server-assign"),
    path("overview/found/<int:pk>/ignore/", found_pages.ignore, name="found-server-ignore"),
    path("overview/servers.csv", exports.overview_csv, name="overview-csv"),
    path("overview/audit/", audit_log.audit_log, name="audit-log"),
    path("overview/audit.csv", exports.audit_csv, name="audit-csv"),
    path("departments/<slug:slug>/", dashboards.department, name="department"),
    path("departments/<slug:slug>/alerts/", dashboards.department_alerts, name="department-alerts"),
    path("departments/<slug:slug>/servers.csv", exports.department_csv, name="department-csv"),
    path("servers/new/", servers.register, name="register"),
    path("servers/<int:pk>/", include(server_urls)),
    path("runs/<int:pk>/", include(run_urls)),
    path("about/<slug:slug>/", info_views.info_page, name="info"),
    path("account/tokens/", token_pages.tokens, name="tokens"),
    path("account/tokens/<int:pk>/revoke/", token_pages.revoke, name="token-revoke"),
]
