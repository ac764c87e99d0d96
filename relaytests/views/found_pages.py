"""Central IT's list of the mail servers in scope that nobody registered: assign one, or mark it known."""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db import IntegrityError, transaction
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from relaytests import unregistered
from relaytests.models import Department, FoundServer, TestRun
from relaytests.tasks import PUBLISH_ERRORS, discover_servers
from relaytests.views.servers import start_run


def central_it_only(view):
    def checked(request, *args, **kwargs):
        if not request.user.is_staff:
            raise Http404
        return view(request, *args, **kwargs)

    return login_required(checked)


@central_it_only
def found_servers(request):
    context = {
        **unregistered.coverage(),
        "departments": Department.objects.all(),
        "domains": unregistered.domains(),
        "sweep": settings.RELAYTEST_DISCOVERY_SWEEP,
        "networks": settings.RELAYTEST_SCOPE_NETWORKS,
        "too_large": unregistered.too_large(),
        "ports": settings.RELAYTEST_DISCOVERY_PORTS,
        "rate": settings.RELAYTEST_DISCOVERY_RATE,
    }
    return render(request, "relaytests/found_servers.html", context)


@central_it_only
@require_POST
def discover_now(request):
    try:
        discover_servers.apply_async()
    except PUBLISH_ERRORS:
        messages.error(request, "The task queue is unreachable; nothing was looked for. Try again later.")
    else:
        messages.success(request, "The search is queued; reload this page in a few minutes.")
    return redirect("relaytests:found-servers")


@central_it_only
@require_POST
def assign(request, pk: int):
    """Register the found server in the chosen department and test it, in one step."""
    found = get_object_or_404(FoundServer, pk=pk)
    department = get_object_or_404(Department, pk=request.POST.get("department") or 0)
    try:
        with transaction.atomic():
            server, refusals = unregistered.assign(found, department, request.user)
    except IntegrityError:  # registered by someone else between the check and now
        server, refusals = None, [f"{found.target_text} was registered a moment ago by someone else."]
    if server is None:
        for refusal in refusals:
            messages.error(request, f"{found.target_text}: {refusal}")
        return redirect("relaytests:found-servers")
    messages.success(request, f"{server} is registered in {department}.")
    return start_run(request, server, TestRun.Trigger.MANUAL)


@central_it_only
@require_POST
def ignore(request, pk: int):
    found = get_object_or_404(FoundServer, pk=pk)
    unregistered.ignore(found, request.POST.get("note", ""))
    messages.success(request, f"{found.target_text} is marked as known.")
    return redirect("relaytests:found-servers")
