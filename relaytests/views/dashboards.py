"""Who has which servers, and how they stand: the home page, a department's page, central IT's overview.

Every list reads the server's state columns (`MailServer.latest_verdict` and the rest, written when a
run gets its verdict), never a report: filtered, sorted, counted and paginated in the database, in a
number of queries that does not grow with the number of servers.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.cache import cache
from django.core.paginator import Paginator
from django.db.models import Count, OuterRef, Q, QuerySet, Subquery
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.utils.functional import cached_property
from django.views.decorators.http import require_POST

from relaytests import access, schedule
from relaytests.models import ACTIVE_STATUSES, MailServer, Membership, TestRun, Verdict, VerdictChange
from relaytests.vantages import relays_only_from

SERVERS_PER_PAGE = 50
# Central IT's overview over time: the counts now beside those this long ago, and the verdict changes
# since this long ago, the newest first, at most this many.
COMPARED_WITH = timedelta(days=30)
RECENT_CHANGES_SINCE = timedelta(days=7)
RECENT_CHANGES_SHOWN = 50
COUNTS_KEPT = 24 * 3600  # seconds a past day's verdict counts stay in the cache
# What each count of the overview selects.
COUNTED = {
    **{verdict: Q(latest_verdict=verdict) for verdict in Verdict.values},
    "untested": Q(latest_verdict=""),
    "blocklisted": Q(blocklisted=True),
}


def server_rows(servers: QuerySet[MailServer]) -> QuerySet[MailServer]:
    """The servers with their run queued or running, if any (`active_run_id`,
    `active_status`), when the schedule re-tests them (`next_due`), and the vantage from which alone
    their latest run relays (`relays_only_from`), for the server table."""
    active = TestRun.objects.filter(server=OuterRef("pk"), status__in=ACTIVE_STATUSES)
    return schedule.with_next_due(servers).annotate(
        active_run_id=Subquery(active.values("pk")[:1]),
        active_status=Subquery(active.values("status")[:1]),
        relays_only_from=relays_only_from(),
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


def verdict_counts_then(when: datetime) -> dict[str, int]:
    """How many servers had each verdict at the start of `when`'s day, and were untested. A day past
    does not change, and counting it reads a subquery per server (a second at 50,000 servers), so each
    day's counts are computed once and kept in the cache for a day."""
    day = when.replace(hour=0, minute=0, second=0, microsecond=0)
    return cache.get_or_set(
        f"verdict-counts-at:{day.isoformat()}", lambda: count_verdicts_at(day), COUNTS_KEPT
    )


def count_verdicts_at(when: datetime) -> dict[str, int]:
    """How many of the servers registered by `when` had each verdict then (the verdict of their newest
    run started before it), and were untested: one query, a subquery per server."""
    then = TestRun.objects.with_verdict().filter(server=OuterRef("pk"), created_at__lt=when)
    rows = (
        MailServer.objects.filter(created_at__lt=when)
        .annotate(verdict_then=Subquery(then.values("verdict")[:1]))
        .order_by()
        .values("verdict_then")
        .annotate(number=Count("pk"))
    )
    return {row["verdict_then"] or "untested": row["number"] for row in rows}


class ServerPaginator(Paginator):
    """Pages of server rows, counted on the servers as filtered: the rows' annotations join the
    department, which a COUNT over tens of thousands of servers need not pay for."""

    def __init__(self, rows: QuerySet[MailServer], servers: QuerySet[MailServer]):
        super().__init__(rows, SERVERS_PER_PAGE)
        self.servers = servers

    @cached_property
    def count(self) -> int:
        return self.servers.count()


def page_of(request, servers: QuerySet[MailServer], rows: QuerySet[MailServer]):
    return ServerPaginator(rows, servers).get_page(request.GET.get("page"))


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
    servers = department.servers.all()
    page = page_of(request, servers, server_rows(servers))
    membership = department.memberships.filter(user=request.user).first()
    context = {"department": department, "rows": page.object_list, "page": page, "membership": membership}
    return render(request, "relaytests/department.html", context)


@login_required
@require_POST
def department_alerts(request, slug: str):
    """A member turns the department's alert mails to themselves on ("on") or off; nobody else's."""
    membership = get_object_or_404(Membership, user=request.user, department__slug=slug)
    membership.alerts = request.POST.get("alerts") == "on"
    membership.save(update_fields=["alerts"])
    messages.success(
        request, "You get this department's alert mails." if membership.alerts else "You get no alert mails."
    )
    return redirect("relaytests:department", slug=slug)


@login_required
def overview(request):
    """Central IT's view of every department's servers, the worst first."""
    if not request.user.is_staff:
        raise Http404
    now = timezone.now()
    then = verdict_counts_then(now - COMPARED_WITH)
    # Blocklistings are kept per server, not per run: there is no count of them back then.
    counts = [
        (css, words, number, then.get(css, 0))
        for css, words, number in verdict_counts(MailServer.objects.all())
    ]
    changes = VerdictChange.objects.filter(created_at__gte=now - RECENT_CHANGES_SINCE).select_related(
        "server__department", "run"
    )
    shown, servers, ordered = overview_rows(request.GET.get("verdict", ""))
    page = page_of(request, servers, ordered)
    context = {
        "rows": page.object_list,
        "page": page,
        "counts": counts,
        "filtered": shown,
        "changes": changes.defer("run__report", "run__addresses")[:RECENT_CHANGES_SHOWN],
        "compared_with": COMPARED_WITH.days,
    }
    return render(request, "relaytests/overview.html", context)


def overview_rows(shown: str) -> tuple[str, QuerySet[MailServer], QuerySet[MailServer]]:
    """The count shown ("" for an unknown one: every server), its servers, and their rows, the worst
    first."""
    if shown not in COUNTED:
        shown = ""
    servers = MailServer.objects.filter(COUNTED[shown]) if shown else MailServer.objects.all()
    ordered = server_rows(servers.select_related("department")).order_by(
        "-severity", "department__name", "target"
    )
    return shown, servers, ordered
