"""Password-reset requests limited per client address and per e-mail address.

Each request counts against both in Django's cache for an hour from the first; past the limit the
form answers 429 and sends nothing, so the page cannot be used to flood a mailbox or to probe many
addresses. Sign-in attempts are limited by django-axes (settings, "Sign-in lockout").
"""

from __future__ import annotations

from functools import wraps

from axes.helpers import get_client_ip_address
from django.conf import settings
from django.core.cache import cache
from django.shortcuts import render

WINDOW_SECONDS = 3600


def limit_password_resets(view):
    @wraps(view)
    def limited(request, *args, **kwargs):
        if request.method == "POST":
            email = request.POST.get("email", "").strip().lower()
            counts = [_count(f"password-reset:ip:{get_client_ip_address(request)}")]
            if email:
                counts.append(_count(f"password-reset:email:{email}"))
            if max(counts) > settings.PORTAL_PASSWORD_RESETS_PER_HOUR:
                return render(request, "registration/password_reset_limited.html", status=429)
        return view(request, *args, **kwargs)

    return limited


def _count(key: str) -> int:
    """Counts one more request under KEY and returns the count in the current window."""
    cache.add(key, 0, WINDOW_SECONDS)
    try:
        return cache.incr(key)
    except ValueError:  # the window ended between add and incr
        cache.add(key, 1, WINDOW_SECONDS)
        return 1
