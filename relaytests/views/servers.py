"""Registering a server, its page, and starting a test of it."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db import IntegrityError, transaction
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from relaytests import access
from relaytests.deliveries import upgraded_by_late_delivery
from relaytests.forms import RegisterServerForm
from relaytests.models import ACTIVE_STATUSES, MailServer, TestRun
from relaytests.probe.canary import new_run_id
from relaytests.tasks import enqueue_run


@login_required
def register(request):
    departments = access.departments_for(request.user)
    if not departments.exists():
        return render(request, "relaytests/register.html", {"form": None})
    form = RegisterServerForm(request.POST or None, departments=departments)
    if request.method == "POST" and form.is_valid():
        try:
            with transaction.atomic():
                server = form.save(request.user)
        except IntegrityError:  # registered by someone else between the check and now
            form.add_error("target", "This server was registered a moment ago by someone else.")
        else:
            messages.success(request, _registered_message(server, form.scoped.host_names))
            return redirect(server)
    return render(request, "relaytests/register.html", {"form": form})


def _registered_message(server: MailServer, host_names: list[str]) -> str:
    if server.kind == MailServer.Kind.DOMAIN:
        return f"{server} is registered; its mail hosts {', '.join(host_names)} are tested. Press Test to test them."
    return f"{server} is registered. Press Test to test it."


@login_required
def server(request, pk: int):
    server = access.get_server_for_user(request.user, pk)
    runs = server.runs.select_related("started_by")
    history = list(runs)
    context = {
        "server": server,
        "runs": history,
        "latest": history[0] if history else None,
        "active_run": runs.filter(status__in=ACTIVE_STATUSES).first(),
        "changes": server.verdict_changes.select_related("run")[:20],
        # Runs whose open_relay came only from canaries that arrived after the run was final.
        "late_upgrades": {run.pk for run in history if upgraded_by_late_delivery(run.report)},
    }
    return render(request, "relaytests/server.html", context)


@login_required
@require_POST
def start_test(request, pk: int):
    server = access.get_server_for_user(request.user, pk)
    return start_run(request, server, TestRun.Trigger.MANUAL)


def start_run(request, server: MailServer, trigger: str):
    """Create a queued run and send it to the workers, unless the user's hourly cap or an active run says no."""
    refusal = _over_hourly_cap(request.user)
    if refusal:
        messages.error(request, refusal)
        return redirect(server)
    try:
        with transaction.atomic():
            run = TestRun.objects.create(
                server=server,
                trigger=trigger,
                started_by=request.user,
                probe_run_id=new_run_id(),
                addresses=server.addresses,
            )
    except IntegrityError:  # the one-active-run-per-server constraint
        active_run = server.runs.filter(status__in=ACTIVE_STATUSES).first()
        messages.info(request, "A test of this server is already queued or running; here it is.")
        return redirect(active_run or server)
    if enqueue_run(run):
        messages.success(request, "The test is queued; results appear below as they arrive.")
    else:
        messages.error(request, run.status_reason)
    return redirect(run)


def _over_hourly_cap(user) -> str:
    """Why the user may not start another run now, or "" when they may."""
    cap = settings.RELAYTEST_RUNS_PER_HOUR
    recent = TestRun.objects.filter(started_by=user, created_at__gte=timezone.now() - timedelta(hours=1))
    started = list(recent.order_by("-created_at").values_list("created_at", flat=True)[:cap])
    if len(started) < cap:
        return ""
    free_at = timezone.localtime(started[-1] + timedelta(hours=1))
    return (
        f"You have started {cap} tests in the last hour, the most allowed. "
        f"You can start the next one at {free_at:%H:%M} ({free_at.tzname()})."
    )
