"""Who may see what: every view fetches its object through these helpers.

A department's servers and runs are visible to its members and to central IT (``is_staff``).
Everyone else gets a 404, never a 403 that would confirm the server exists.
"""

from __future__ import annotations

from django.db.models import QuerySet
from django.shortcuts import get_object_or_404

from relaytests.models import Department, MailServer, TestRun


def departments_for(user) -> QuerySet[Department]:
    if user.is_staff:
        return Department.objects.all()
    return Department.objects.filter(memberships__user=user)


def servers_for(user) -> QuerySet[MailServer]:
    servers = MailServer.objects.select_related("department")
    if user.is_staff:
        return servers
    return servers.filter(department__memberships__user=user)


def runs_for(user, *, with_parts: bool = False) -> QuerySet[TestRun]:
    """The runs the user may see; `with_parts`: their parts from further vantages too."""
    manager = TestRun.with_parts if with_parts else TestRun.objects
    runs = manager.select_related("server__department", "started_by")
    if user.is_staff:
        return runs
    return runs.filter(server__department__memberships__user=user)


def get_department_for_user(user, slug: str) -> Department:
    return get_object_or_404(departments_for(user), slug=slug)


def get_server_for_user(user, pk: int) -> MailServer:
    return get_object_or_404(servers_for(user), pk=pk)


def get_run_for_user(user, pk: int) -> TestRun:
    """A run, or a part of one (its page is the view from that vantage)."""
    return get_object_or_404(runs_for(user, with_parts=True), pk=pk)
