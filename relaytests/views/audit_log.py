"""Central IT's audit log: who registered, moved or removed a server, started a test, created or revoked
a token, changed a schedule period; filtered, a page at a time."""

from __future__ import annotations

from django.core.paginator import Paginator
from django.shortcuts import render

from relaytests.forms import AuditFilterForm
from relaytests.models import AuditEntry
from relaytests.views.found_pages import central_it_only

ENTRIES_PER_PAGE = 50


@central_it_only
def audit_log(request):
    form = AuditFilterForm(request.GET)
    entries = form.entries() if form.is_valid() else AuditEntry.objects.none()
    page = Paginator(entries, ENTRIES_PER_PAGE).get_page(request.GET.get("page"))
    return render(
        request, "relaytests/audit_log.html", {"form": form, "page": page, "entries": page.object_list}
    )
