"""Personal API tokens: made on the tokens page and shown that once, kept as a digest, refused once
expired or revoked, and each throttled on its own."""

from __future__ import annotations

import base64
import hashlib
from datetime import timedelta

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from portal import env
from relaytests import tokens
from relaytests.models import ApiToken
from tests.portal import browser as browser_helpers
from tests.portal.conftest import client_for
from tests.portal.factories import PASSWORD, make_user

pytestmark = pytest.mark.django_db
TOKENS_PAGE = reverse("relaytests:tokens")


def bearer(text: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {text}")
    return client


def create_on_the_page(user, name: str = "ticket system", expires_on: str = ""):
    return client_for(user).post(TOKENS_PAGE, {"name": name, "expires_on": expires_on})


# ---- the page ----


def test_a_new_token_is_shown_once_and_only_its_digest_is_kept(member):
    response = create_on_the_page(member)

    text = response.context["text"]
    stored = ApiToken.objects.get()
    assert response.status_code == 200
    assert text in response.text
    assert "no-store" in response["Cache-Control"]
    assert text.startswith(f"rtp_{stored.prefix}_")
    assert stored.digest == hashlib.sha256(text.encode()).hexdigest()
    secret = text.rsplit("_", 1)[-1]
    assert not any(secret in str(value) for value in ApiToken.objects.values().get().values())
    listed = client_for(member).get(TOKENS_PAGE)
    assert text not in listed.text
    assert f"rtp_{stored.prefix}_" in listed.text and "ticket system" in listed.text
    assert bearer(text).get("/api/servers/").status_code == 200


def test_a_token_acts_with_its_users_rights(member, outsider, server):
    _theirs, outsiders = tokens.issue(outsider, "mine")
    _ours, members = tokens.issue(member, "ours")

    assert bearer(outsiders).get(f"/api/servers/{server.pk}/").status_code == 404
    assert bearer(members).get(f"/api/servers/{server.pk}/").status_code == 200


def test_an_expiry_must_lie_after_today(member):
    response = create_on_the_page(member, expires_on=timezone.localdate().isoformat())

    assert response.context["form"].errors["expires_on"] == ["Choose a day after today, or none."]
    assert not ApiToken.objects.exists()


def test_a_token_with_an_expiry_stops_at_the_start_of_that_day(member):
    day = timezone.localdate() + timedelta(days=30)

    create_on_the_page(member, expires_on=day.isoformat())

    expires_at = timezone.localtime(ApiToken.objects.get().expires_at)
    assert (expires_at.date(), expires_at.hour, expires_at.minute) == (day, 0, 0)


def test_the_owner_revokes_a_token_and_it_works_no_more(member):
    token, text = tokens.issue(member, "monitoring")

    response = client_for(member).post(reverse("relaytests:token-revoke", args=[token.pk]), follow=True)

    assert response.redirect_chain == [(TOKENS_PAGE, 302)]
    assert "is revoked" in response.text
    answer = bearer(text).get("/api/servers/")
    assert answer.status_code == 401
    assert answer.json()["detail"] == "This API token was revoked."


def test_nobody_else_can_revoke_a_token(member, outsider, staff):
    token, _text = tokens.issue(member, "monitoring")

    for other in (outsider, staff):
        assert client_for(other).post(reverse("relaytests:token-revoke", args=[token.pk])).status_code == 404
    assert ApiToken.objects.get().revoked_at is None


def test_the_page_is_for_signed_in_users(client):
    assert client.get(TOKENS_PAGE)["Location"].startswith(reverse("login"))


def test_a_user_lists_only_their_own_tokens(member, outsider):
    tokens.issue(outsider, "someone else's")

    assert "someone else&#x27;s" not in client_for(member).get(TOKENS_PAGE).text


# ---- refused tokens ----


def test_an_expired_token_is_refused_with_a_reason(member):
    token, text = tokens.issue(member, "old", expires_at=timezone.now() + timedelta(days=1))
    ApiToken.objects.filter(pk=token.pk).update(expires_at=timezone.now() - timedelta(seconds=1))

    response = bearer(text).get("/api/servers/")

    assert response.status_code == 401
    assert response.json()["detail"] == "This API token has expired."


def test_a_disabled_users_token_is_refused(member):
    _token, text = tokens.issue(member, "gone")
    member.is_active = False
    member.save()

    assert bearer(text).get("/api/servers/").status_code == 401


@pytest.mark.parametrize(
    "header",
    ["Bearer rtp_00000000_nope", "Bearer rtp_", "Bearer", "Bearer a b", "Bearer ünïcode", "Bearer rtp_x_y_z"],
)
def test_a_made_up_token_is_refused(member, header):
    tokens.issue(member, "real")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=header)

    response = client.get("/api/servers/")

    assert response.status_code == 401


def test_a_right_prefix_with_a_wrong_secret_is_refused(member):
    _token, text = tokens.issue(member, "real")

    assert bearer(text[:-1] + ("A" if text[-1] != "A" else "B")).get("/api/servers/").status_code == 401


def test_a_use_is_noted_on_the_token(member):
    token, text = tokens.issue(member, "used")

    bearer(text).get("/api/servers/")

    assert ApiToken.objects.get(pk=token.pk).last_used_at is not None


def test_the_signed_in_session_works_too(member):
    assert client_for(member).get("/api/servers/").status_code == 200


# ---- throttling ----


def test_past_its_rate_a_token_gets_429_while_another_token_goes_on(member, settings):
    settings.PORTAL_API_RATE = "3/minute"
    _first, first = tokens.issue(member, "first")
    _second, second = tokens.issue(member, "second")

    answers = [bearer(first).get("/api/servers/").status_code for _ in range(4)]

    assert answers == [200, 200, 200, 429]
    assert "Retry-After" in bearer(first).get("/api/servers/")
    assert bearer(second).get("/api/servers/").status_code == 200


def test_an_expired_token_is_listed_as_expired(member):
    token, _text = tokens.issue(member, "old", expires_at=timezone.now() + timedelta(days=1))
    ApiToken.objects.filter(pk=token.pk).update(expires_at=timezone.now() - timedelta(days=1))

    assert "expired " in client_for(member).get(TOKENS_PAGE).text


def test_central_it_revokes_a_users_token_in_the_admin(member, settings):
    admin = make_user("root", staff=True)
    admin.is_superuser = True
    admin.save()
    token, text = tokens.issue(member, "leaked")

    response = client_for(admin).post(
        reverse("admin:relaytests_apitoken_changelist"),
        {"action": "revoke", "_selected_action": [token.pk]},
    )

    assert response.status_code == 302
    assert bearer(text).get("/api/servers/").status_code == 401


# ---- POST /api/tokens/: a program's first token ----

API_TOKENS = "/api/tokens/"


def basic(user_name: str, password: str) -> APIClient:
    client = APIClient()
    client.credentials(
        HTTP_AUTHORIZATION="Basic " + base64.b64encode(f"{user_name}:{password}".encode()).decode()
    )
    return client


def test_a_program_gets_a_token_with_its_user_s_password_shown_once_and_it_works(member, server):
    response = basic(member.username, PASSWORD).post(API_TOKENS, {"name": "inventory"}, format="json")

    assert response.status_code == 201 and "no-store" in response["Cache-Control"]
    stored = ApiToken.objects.get()
    assert (stored.user, stored.name, stored.expires_at) == (member, "inventory", None)
    assert response.json()["token"].startswith(f"rtp_{stored.prefix}_")
    assert stored.digest == hashlib.sha256(response.json()["token"].encode()).hexdigest()
    assert bearer(response.json()["token"]).get(f"/api/servers/{server.pk}/").status_code == 200


@pytest.mark.parametrize("persona", ["outsider", "member", "staff"])
def test_anyone_with_an_account_gets_a_token_of_their_own_and_anonymous_gets_401(request, persona):
    user = request.getfixturevalue(persona)

    made = basic(user.username, PASSWORD).post(API_TOKENS, {"name": "mine"}, format="json")
    anonymous = APIClient().post(API_TOKENS, {"name": "mine"}, format="json")

    assert (made.status_code, anonymous.status_code) == (201, 401)
    assert list(ApiToken.objects.values_list("user__username", flat=True)) == [user.username]


def test_a_token_from_the_api_has_the_page_s_rules(member):
    with_password = basic(member.username, PASSWORD)
    today = timezone.localdate().isoformat()

    refused = with_password.post(API_TOKENS, {"name": "x", "expires_on": today}, format="json")
    nameless = with_password.post(API_TOKENS, {"name": ""}, format="json")

    assert refused.status_code == 400 and refused.json() == {
        "expires_on": ["Choose a day after today, or none."]
    }
    assert nameless.status_code == 400 and "name" in nameless.json()
    assert not ApiToken.objects.exists()


def test_a_wrong_password_or_a_token_makes_no_token(member):
    _, text = tokens.issue(member, "ticket system")

    wrong = basic(member.username, "not-the-password").post(API_TOKENS, {"name": "x"}, format="json")
    by_token = bearer(text).post(API_TOKENS, {"name": "x"}, format="json")

    assert wrong.status_code == 401 and wrong["WWW-Authenticate"].startswith("Basic")
    assert by_token.status_code == 401  # a leaked token must not make tokens that outlive it
    assert ApiToken.objects.count() == 1


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_a_token_made_on_a_phone_is_readable_whole_and_works(new_page, live_server, member):
    phone = new_page(browser_helpers.PHONE)
    browser_helpers.sign_in(phone, live_server.url, member.get_username())

    phone.goto(live_server.url + TOKENS_PAGE)
    phone.get_by_label("Name").fill("inventory")
    phone.get_by_role("button", name="Create token").click()

    text = phone.locator("#new-token").text_content()
    assert not browser_helpers.scrolls_sideways(phone)
    assert browser_helpers.serious_violations(phone) == []
    assert bearer(text).get("/api/servers/").status_code == 200


@pytest.mark.parametrize("value", ["120", "120/fortnight", "fast", "/minute"])
def test_a_rate_setting_that_is_no_rate_stops_the_start(monkeypatch, value):
    monkeypatch.setenv("PORTAL_API_RATE", value)

    with pytest.raises(ImproperlyConfigured, match="PORTAL_API_RATE must be a number of requests per"):
        env.rate("PORTAL_API_RATE", "120/minute")


@pytest.mark.parametrize(
    "value, read", [("", "120/minute"), ("5/second", "5/second"), ("1000/day", "1000/day")]
)
def test_a_rate_setting_is_read_as_given_or_its_default(monkeypatch, value, read):
    monkeypatch.setenv("PORTAL_API_RATE", value)

    assert env.rate("PORTAL_API_RATE", "120/minute") == read


def test_guessing_a_password_through_the_api_meets_the_sign_in_lockout(member, settings):
    for _ in range(settings.AXES_FAILURE_LIMIT):
        basic(member.username, "a guess").post(API_TOKENS, {"name": "x"}, format="json")

    right = basic(member.username, PASSWORD).post(API_TOKENS, {"name": "x"}, format="json")

    assert right.status_code == 401
    assert not ApiToken.objects.exists()
