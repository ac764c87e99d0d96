"""Sign-in lockout (django-axes) and the password-reset limit: guessing and flooding stop early."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.core import mail
from django.test import Client
from django.urls import reverse

from tests.portal.factories import PASSWORD, make_user

pytestmark = pytest.mark.django_db
ATTACKER = "198.51.100.7"


def sign_in(client: Client, username: str, password: str, address: str = ATTACKER, **headers):
    return client.post(
        reverse("login"), {"username": username, "password": password}, REMOTE_ADDR=address, **headers
    )


def signed_in(client: Client) -> bool:
    return "_auth_user_id" in client.session


def test_five_wrong_passwords_lock_the_account_with_a_page_that_says_so(settings, member):
    client = Client()
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        assert sign_in(client, "alice", "wrong").status_code == 200  # the form again, with its error

    locked = sign_in(client, "alice", "wrong")
    right_password = sign_in(Client(), "alice", PASSWORD, address="203.0.113.9")  # from elsewhere too

    assert locked.status_code == 429
    assert "Sign-in paused" in locked.text and "60 minutes" in locked.text
    assert right_password.status_code == 429
    assert not signed_in(client)


def test_one_address_guessing_many_accounts_is_locked_out_even_for_a_right_password(settings, member):
    client = Client()
    for n in range(settings.AXES_FAILURE_LIMIT):
        sign_in(client, f"guess{n}", "wrong")

    response = sign_in(client, "alice", PASSWORD)

    assert response.status_code == 429
    assert not signed_in(client)
    assert sign_in(Client(), "alice", PASSWORD, address="203.0.113.9").status_code == 302  # others still can


def test_a_forged_forwarded_for_header_does_not_change_the_address_without_a_trusted_proxy(settings, member):
    client = Client()
    for n in range(settings.AXES_FAILURE_LIMIT):
        sign_in(client, f"guess{n}", "wrong", HTTP_X_FORWARDED_FOR=f"192.0.2.{n}")

    assert sign_in(client, "alice", PASSWORD, HTTP_X_FORWARDED_FOR="192.0.2.200").status_code == 429


def test_behind_a_trusted_proxy_the_client_is_the_address_the_proxy_appended(settings, member):
    # What PORTAL_BEHIND_PROXY=1 sets.
    settings.AXES_IPWARE_META_PRECEDENCE_ORDER = ("HTTP_X_FORWARDED_FOR", "REMOTE_ADDR")
    settings.AXES_IPWARE_PROXY_ORDER = "right-most"
    proxy = "172.18.0.5"
    for n in range(settings.AXES_FAILURE_LIMIT):
        sign_in(Client(), f"guess{n}", "wrong", address=proxy, HTTP_X_FORWARDED_FOR=f"192.0.2.1, {ATTACKER}")

    def from_client(client_address: str) -> int:
        return sign_in(
            Client(), "alice", PASSWORD, address=proxy, HTTP_X_FORWARDED_FOR=client_address
        ).status_code

    assert from_client("203.0.113.9") == 302
    assert from_client(ATTACKER) == 429


def test_a_right_password_before_the_limit_signs_in_and_clears_the_failures(settings, member):
    client = Client()
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        sign_in(client, "alice", "wrong")
    assert sign_in(client, "alice", PASSWORD).status_code == 302

    assert sign_in(Client(), "alice", "wrong").status_code == 200  # counting starts again


def test_an_administrator_lifts_a_lockout_in_the_admin(settings, member):
    for _ in range(settings.AXES_FAILURE_LIMIT):
        sign_in(Client(), "alice", "wrong")
    admin = Client()
    admin.force_login(get_user_model().objects.create_superuser("root", password=PASSWORD))
    attempts = reverse("admin:axes_accessattempt_changelist")
    [attempt_id] = admin.get(attempts).context["cl"].result_list.values_list("pk", flat=True)

    admin.post(attempts, {"action": "delete_selected", "_selected_action": [attempt_id], "post": "yes"})

    assert sign_in(Client(), "alice", PASSWORD, address="203.0.113.9").status_code == 302


def reset(email: str, address: str = ATTACKER):
    return Client().post(reverse("password_reset"), {"email": email}, REMOTE_ADDR=address)


def test_password_reset_requests_are_limited_per_address(settings):
    for n in range(settings.PORTAL_PASSWORD_RESETS_PER_HOUR + 1):
        make_user(f"user{n}")
    answers = [
        reset(f"user{n}@example.edu").status_code for n in range(settings.PORTAL_PASSWORD_RESETS_PER_HOUR + 1)
    ]

    assert answers == [302] * settings.PORTAL_PASSWORD_RESETS_PER_HOUR + [429]
    assert len(mail.outbox) == settings.PORTAL_PASSWORD_RESETS_PER_HOUR
    assert reset("user0@example.edu", address="203.0.113.9").status_code == 302  # another address still can


def test_password_reset_requests_are_limited_per_email_address(settings, member):
    answers = [
        reset("Alice@example.edu", address=f"203.0.113.{n}").status_code
        for n in range(settings.PORTAL_PASSWORD_RESETS_PER_HOUR + 1)
    ]

    assert answers[-1] == 429
    assert "Too many reset requests" in reset("alice@example.edu", address="192.0.2.99").text
    assert len(mail.outbox) == settings.PORTAL_PASSWORD_RESETS_PER_HOUR
