"""A user's personal API tokens: create (the token shown this once), list, revoke."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.cache import add_never_cache_headers
from django.views.decorators.http import require_POST

from relaytests import tokens as api_tokens
from relaytests.forms import ApiTokenForm


@login_required
def tokens(request):
    form = ApiTokenForm(request.POST or None)
    created, text = None, ""
    if request.method == "POST" and form.is_valid():
        created, text = api_tokens.issue(request.user, form.cleaned_data["name"], form.expires_at())
        form = ApiTokenForm()
    context = {"form": form, "tokens": request.user.api_tokens.all(), "created": created, "text": text}
    response = render(request, "relaytests/tokens.html", context)
    add_never_cache_headers(response)  # the new token's only showing: no cache keeps it
    return response


@login_required
@require_POST
def revoke(request, pk: int):
    token = get_object_or_404(request.user.api_tokens, pk=pk)  # another user's token: 404
    api_tokens.revoke(token, by=request.user)
    messages.success(request, f"The token {token.name} ({token.prefix}) is revoked; it works no more.")
    return redirect("relaytests:tokens")
