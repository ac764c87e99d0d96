"""Who has which servers, and how they stand: the home page, a department's page, central IT's overview.

Every list reads the server's state columns (`MailServer.latest_verdict` and the rest, written when a
run gets its verdict), never a report: filtered, sorted, counted and paginated in the database, in a
number of queries that does not grow with the number of servers.
"""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db.models import Case, Count, IntegerField, OuterRef, Q, QuerySet, Subquery, Value, When
from django.http import Http404
from django.shortcuts import render

from relaytests import access
from relaytests.models import ACTIVE_STATUSES, MailServer, TestRun, Verdict
from relaytests.probe.report import VERDICT_SEVERITY

SERVERS_PER_PAGE = 50
# Central IT's overview sorts by this: a blocklisted server is as urgent as an open relay.
BLOCKLISTED_SEVERITY = VERDICT_SEVERITY["open_relay"]
UNTESTED_SEVERITY = VERDICT_SEVERITY["inconclusive"]
SEVERITY = Case(
    When(blocklisted=True, then=Value(BLOCKLISTED_SEVERITY)),
    *(When(latest_verdict=verdict, then=Value(severity)) for verdict, severity in VERDICT_SEVERITY.items()),
    default=Value(UNTESTED_SEVERITY),
    output_field=IntegerField(),
)
# What each count of the overview selects.
COUNTED = {
    **{verdict: Q(latest_verdict=verdict) for verdict in Verdict.values},
    "untested": Q(latest_verdict=""),
    "blocklisted": Q(blocklisted=True),
}


def server_rows(servers: QuerySet[MailServer]) -> QuerySet[MailServer]:
    """The servers with their severity and their run queued or running, if any (`active_run_id`,
    `active_status`), for the server table."""
    active = TestRun.objects.filter(server=OuterRef("pk"), status__in=ACTIVE_STATUSES)
    return servers.annotate(
        severity=SEVERITY,
        active_run_id=Subquery(active.values("pk")[:1]),
        active_status=Subquery(active.values("status")[:1]),
    )


def verdict_counts(servers: QuerySet[MailServer]) -> list[tuple[str, str, int]]:
    """(css class, words, number of servers) per verdict, worst first, then the untested and blocklisted:
    one COUNT ... GROUP BY over the state columns."""
    by_verdict = {
        (row["latest_verdict"], row["blocklisted"]): row["number"]
        for row in servers.order_by().values("latest_verdict", "blocklisted").annotate(number=Count("pk"))
    }
    counts = {verdict: 0 for verdict in [*Verdict.values, "", "blocklisted"]}
    for (verdict, blocklisted), number in by_verdict.items():
        counts[verdict] += number
        counts["blocklisted"] += number if blocklisted else 0
    result = [(value, label, counts[value]) for value, label in Verdict.choices]
    result.append(("untested", "Not tested yet", counts[""]))
    result.append(("blocklisted", "On a blocklist", counts["blocklisted"]))
    return result


def page_of(request, servers: QuerySet[MailServer]):
    return Paginator(servers, SERVERS_PER_PAGE).get_page(request.GET.get("page"))


def home(request):
    if not request.user.is_authenticated:
        return render(request, "relaytests/home.html")
    departments = [
        (department, server_rows(department.servers.all())[:SERVERS_PER_PAGE])
        for department in request.user.departments.all()
    ]
    return render(request, "relaytests/dashboard.html", {"departments": departments})


@login_required
def department(request, slug: str):
    department = access.get_department_for_user(request.user, slug)
    page = page_of(request, server_rows(department.servers.all()))
    context = {"department": department, "rows": page.object_list, "page": page}
    return render(request, "relaytests/department.html", context)


@login_required
def overview(request):
    """Central IT's view of every department's servers, the worst first."""
    if not request.user.is_staff:
        raise Http404
    counts = verdict_counts(MailServer.objects.all())
    shown, ordered = overview_rows(request.GET.get("verdict", ""))
    page = page_of(request, ordered)
    context = {"rows": page.object_list, "page": page, "counts": counts, "filtered": shown}
    return render(request, "relaytests/overview.html", context)


def overview_rows(shown: str) -> tuple[str, QuerySet[MailServer]]:
    """The count shown ("" for an unknown one: every server) and its servers' rows, the worst first."""
    if shown not in COUNTED:
        shown = ""
    servers = MailServer.objects.filter(COUNTED[shown]) if shown else MailServer.objects.all()
    ordered = server_rows(servers.select_related("department")).order_by(
        "-severity", "department__name", "target"
    )
    return shown, ordered
