"""CSV exports: central IT's overview and audit log, a department's servers and a server's history, with
the pages' filters and order, streamed row by row (no list of every server is built in memory)."""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterable
from itertools import chain

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpResponseBadRequest, StreamingHttpResponse

from relaytests import access
from relaytests.forms import AuditFilterForm
from relaytests.models import AuditEntry, MailServer, TestRun
from relaytests.vantages import with_verdicts_from_vantages
from relaytests.views.dashboards import overview_rows, server_rows
from relaytests.views.found_pages import central_it_only

# What a spreadsheet would take for a formula at the start of a cell (OWASP's CSV injection list).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
ROWS_PER_QUERY = 500


def _when(moment) -> str:
    return moment.isoformat() if moment else ""


# (header, value of a row): the columns of each export.
SERVER_COLUMNS: list[tuple[str, Callable[[MailServer], object]]] = [
    ("department", lambda s: s.department.slug),
    ("server", str),
    ("kind", lambda s: s.kind),
    ("port", lambda s: s.port),
    ("more_ports", lambda s: " ".join(map(str, s.more_ports))),  # tested in the same runs
    ("mail_domain", lambda s: s.mail_domain),
    ("addresses", lambda s: " ".join(s.addresses)),
    ("verdict", lambda s: s.latest_verdict or "untested"),
    ("blocklisted", lambda s: "yes" if s.blocklisted else "no"),
    ("last_tested_at", lambda s: _when(s.last_tested_at)),
    ("certificate_expires_at", lambda s: _when(s.certificate_expires_at)),
    ("latest_run", lambda s: s.latest_run_id or ""),
    ("active_run_status", lambda s: s.active_status or ""),
    ("relays_only_from", lambda s: s.relays_only_from or ""),
]
RUN_COLUMNS: list[tuple[str, Callable[[TestRun], object]]] = [
    ("run", lambda r: r.pk),
    ("created_at", lambda r: _when(r.created_at)),
    ("started_at", lambda r: _when(r.started_at)),
    ("finished_at", lambda r: _when(r.finished_at)),
    ("status", lambda r: r.status),
    ("status_reason", lambda r: r.status_reason),
    ("verdict", lambda r: r.verdict),
    ("trigger", lambda r: r.trigger),
    ("started_by", lambda r: r.started_by.get_username() if r.started_by else ""),
    ("settled_later", lambda r: "yes" if r.settled_later else "no"),
    ("upgraded_late", lambda r: "yes" if r.upgraded_late else "no"),
    ("vantage", lambda r: r.vantage),
]

AUDIT_COLUMNS: list[tuple[str, Callable[[AuditEntry], object]]] = [
    ("when", lambda e: _when(e.created_at)),
    ("user", lambda e: e.username),
    ("action", lambda e: e.action),
    ("object_kind", lambda e: e.object_kind),
    ("object_id", lambda e: e.object_id or ""),
    ("department", lambda e: e.department.slug if e.department else ""),
    ("text", lambda e: e.text),
]


@login_required
def overview_csv(request):
    if not request.user.is_staff:
        raise Http404
    shown, _servers, rows = overview_rows(request.GET.get("verdict", ""))
    return _csv(request, f"servers-{shown or 'all'}.csv", SERVER_COLUMNS, rows)


@login_required
def department_csv(request, slug: str):
    department = access.get_department_for_user(request.user, slug)
    rows = server_rows(department.servers.select_related("department"))
    return _csv(request, f"servers-{department.slug}.csv", SERVER_COLUMNS, rows)


@login_required
def server_history_csv(request, pk: int):
    server = access.get_server_for_user(request.user, pk)
    rows = server.runs.defer("report", "addresses").select_related("started_by")
    rows, names = with_verdicts_from_vantages(rows)
    columns = [*RUN_COLUMNS, *((name, lambda r, name=name: getattr(r, name) or "") for name in names)]
    return _csv(request, f"history-{server.pk}.csv", columns, rows)


@central_it_only
def audit_csv(request):
    form = AuditFilterForm(request.GET)
    if not form.is_valid():
        reasons = "; ".join(error for errors in form.errors.values() for error in errors)
        return HttpResponseBadRequest(f"These filters cannot be used: {reasons}", content_type="text/plain")
    return stream_csv("audit.csv", AUDIT_COLUMNS, form.entries())


class _Echo:
    """A file that hands back what is written: csv.writer then yields each line to stream."""

    def write(self, line: str) -> str:
        return line


def _csv(request, filename: str, columns, rows) -> StreamingHttpResponse:
    """The rows as CSV, each with the address of its page last."""
    page = ("page", lambda row: request.build_absolute_uri(row.get_absolute_url()))
    return stream_csv(filename, [*columns, page], rows)


def stream_csv(filename: str, columns, rows) -> StreamingHttpResponse:
    """The rows as CSV, a header line first, read from the database in chunks as they are sent."""
    writer = csv.writer(_Echo())
    header = [name for name, _value in columns]
    lines = ([value(row) for _name, value in columns] for row in rows.iterator(chunk_size=ROWS_PER_QUERY))
    response = StreamingHttpResponse(
        (writer.writerow(_spreadsheet_safe(line)) for line in chain([header], lines)),
        content_type="text/csv; charset=utf-8",
    )
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


def _spreadsheet_safe(line: Iterable[object]) -> list[object]:
    """A cell that starts like a formula gets a leading apostrophe, so a spreadsheet shows it as text."""
    return [
        f"'{cell}" if isinstance(cell, str) and cell.startswith(FORMULA_STARTS) else cell for cell in line
    ]
