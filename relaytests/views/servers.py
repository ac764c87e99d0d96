"""Registering a server, its page, and starting a test of it."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from relaytests import access, runs, schedule
from relaytests.forms import RegisterServerForm
from relaytests.models import ACTIVE_STATUSES, MailServer, TestRun
from relaytests.tasks import enqueue_run
from relaytests.vantages import relays_only_from, with_other_views

RUNS_PER_PAGE = 25


@login_required
def register(request):
    departments = access.departments_for(request.user)
    if not departments.exists():
        return render(request, "relaytests/register.html", {"form": None})
    form = RegisterServerForm(request.POST or None, departments=departments)
    if request.method == "POST" and form.is_valid():
        server = form.register(request.user)
        if server:
            messages.success(request, _registered_message(server, form.scoped.host_names))
            return redirect(server)
    return render(request, "relaytests/register.html", {"form": form})


def _registered_message(server: MailServer, host_names: list[str]) -> str:
    if server.kind == MailServer.Kind.DOMAIN:
        return f"{server} is registered; its mail hosts {', '.join(host_names)} are tested. Press Test to test them."
    return f"{server} is registered. Press Test to test it."


@login_required
def server(request, pk: int):
    """The server's state (its columns), the run in progress, and its history a page at a time, newest
    started first: no report is read."""
    servers = schedule.with_next_due(access.servers_for(request.user)).annotate(
        relays_only_from=relays_only_from()
    )
    server = get_object_or_404(servers, pk=pk)
    server_runs = server.runs.defer("report", "addresses")
    history = Paginator(server_runs.select_related("started_by"), RUNS_PER_PAGE).get_page(
        request.GET.get("page")
    )
    context = {
        "server": server,
        "runs": with_other_views(history.object_list),
        "page": history,
        "latest": server_runs.filter(
            pk=server.latest_run_id
        ).first(),  # the verdict now: the newest started run's
        "active_run": server_runs.filter(status__in=ACTIVE_STATUSES).first(),
        "changes": server.verdict_changes.select_related("run").defer("run__report", "run__addresses")[:20],
    }
    return render(request, "relaytests/server.html", context)


@login_required
@require_POST
def start_test(request, pk: int):
    server = access.get_server_for_user(request.user, pk)
    return start_run(request, server, TestRun.Trigger.MANUAL)


def start_run(request, server: MailServer, trigger: str):
    """Start a run of the server (`runs.start`) and send it to the workers; say why not when it cannot."""
    try:
        run = runs.start(server, request.user, trigger, site_url=_site_url(request))
    except runs.AlreadyActive as refusal:
        messages.info(request, str(refusal))
        return redirect(refusal.run or server)
    except runs.NotStarted as refusal:
        messages.error(request, str(refusal))
        return redirect(server)
    if enqueue_run(run):
        messages.success(request, "The test is queued; results appear below as they arrive.")
    else:
        messages.error(request, run.status_reason)
    return redirect(run)


def _site_url(request) -> str:
    """The portal's address as this request reached it: the run's permalink when SITE_URL is not set."""
    return request.build_absolute_uri("/").rstrip("/")
