"""Who has which servers, and how they stand: the home page, a department's page, central IT's overview."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from functools import cached_property

from django.contrib.auth.decorators import login_required
from django.db.models import OuterRef, QuerySet, Subquery
from django.http import Http404
from django.shortcuts import render

from relaytests import access
from relaytests.models import ACTIVE_STATUSES, MailServer, TestRun, Verdict
from relaytests.probe.report import VERDICT_SEVERITY

# Central IT's overview sorts by this: a blocklisted server is as urgent as an open relay.
BLOCKLISTED_SEVERITY = VERDICT_SEVERITY["open_relay"]
UNTESTED_SEVERITY = VERDICT_SEVERITY["inconclusive"]


@dataclass
class ServerRow:
    server: MailServer
    last_run: TestRun | None  # the newest started run that has a verdict (so far): the server's verdict now
    active_run: TestRun | None

    @property
    def verdict(self) -> str:
        return self.last_run.verdict if self.last_run else ""

    @cached_property  # read by the sort, the counts and the page: scan the report once
    def blocklisted(self) -> bool:
        return bool(self.last_run) and is_blocklisted(self.last_run.report)

    @property
    def severity(self) -> int:
        severity = VERDICT_SEVERITY.get(self.verdict, UNTESTED_SEVERITY)
        return max(severity, BLOCKLISTED_SEVERITY) if self.blocklisted else severity


def is_blocklisted(report: dict) -> bool:
    """A DNSBL check failed in the report: the target's own checks or any host's."""
    sections = [report, *report.get("hosts", [])]
    return any(
        check.get("id", "").startswith("dnsbl") and check.get("status") == "fail"
        for section in sections
        for check in section.get("checks", [])
    )


def server_rows(servers: QuerySet[MailServer]) -> list[ServerRow]:
    newest_first = TestRun.objects.filter(server=OuterRef("pk")).order_by("-pk").values("pk")
    servers = list(
        servers.annotate(
            last_run_id=Subquery(newest_first.with_verdict()[:1]),
            active_run_id=Subquery(newest_first.filter(status__in=ACTIVE_STATUSES)[:1]),
        )
    )
    wanted = {pk for s in servers for pk in (s.last_run_id, s.active_run_id) if pk}
    loaded = TestRun.objects.in_bulk(wanted)
    return [ServerRow(s, loaded.get(s.last_run_id), loaded.get(s.active_run_id)) for s in servers]


def verdict_counts(rows: list[ServerRow]) -> list[tuple[str, str, int]]:
    """(css class, words, number of servers) per verdict, worst first, then the untested and blocklisted."""
    counts = Counter(row.verdict for row in rows)
    result = [(value, label, counts[value]) for value, label in Verdict.choices]
    result.append(("untested", "Not tested yet", counts[""]))
    result.append(("blocklisted", "On a blocklist", sum(row.blocklisted for row in rows)))
    return result


def home(request):
    if not request.user.is_authenticated:
        return render(request, "relaytests/home.html")
    departments = [
        (department, server_rows(department.servers.all())) for department in request.user.departments.all()
    ]
    return render(request, "relaytests/dashboard.html", {"departments": departments})


@login_required
def department(request, slug: str):
    department = access.get_department_for_user(request.user, slug)
    rows = server_rows(department.servers.all())
    return render(request, "relaytests/department.html", {"department": department, "rows": rows})


@login_required
def overview(request):
    """Central IT's view of every department's servers, the worst first."""
    if not request.user.is_staff:
        raise Http404
    rows = server_rows(MailServer.objects.select_related("department"))
    rows.sort(key=lambda row: (-row.severity, row.server.department.name, row.server.target))
    counts = verdict_counts(rows)
    shown = request.GET.get("verdict", "")
    if shown not in {css for css, _words, _number in counts}:
        shown = ""  # an unknown count shows every server
    if shown:
        rows = [row for row in rows if shown in row_verdicts(row)]
    context = {"rows": rows, "counts": counts, "filtered": shown}
    return render(request, "relaytests/overview.html", context)


def row_verdicts(row: ServerRow) -> set[str]:
    """The counts a row is in: its verdict (or untested), and blocklisted."""
    return {row.verdict or "untested"} | ({"blocklisted"} if row.blocklisted else set())
