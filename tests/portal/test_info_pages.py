"""The explanatory pages: open to anonymous visitors, linked from every page, organisation from settings."""

from __future__ import annotations

import pytest
from django.test import Client, override_settings
from django.urls import reverse

from relaytests.info_views import INFO_PAGES

pytestmark = pytest.mark.django_db

INFO_URLS = [reverse("relaytests:info", args=[page.slug]) for page in INFO_PAGES]
OTHER_PAGES = [reverse("relaytests:home"), reverse("login")]


@pytest.mark.parametrize("url", INFO_URLS)
def test_each_page_renders_for_an_anonymous_visitor_with_every_nav_link(url):
    response = Client().get(url)
    assert response.status_code == 200
    html = response.content.decode()
    page = INFO_PAGES[INFO_URLS.index(url)]
    assert f"<h1>{page.title}</h1>" in html
    for link, other in zip(INFO_URLS, INFO_PAGES, strict=True):
        current = ' aria-current="page"' if other == page else ""
        assert f'<a class="info-link" href="{link}"{current}>{other.title}</a>' in html


@pytest.mark.parametrize("url", OTHER_PAGES)
def test_the_portals_other_pages_link_the_explanatory_pages_too(url):
    html = Client().get(url).content.decode()
    assert all(f'href="{link}"' in html for link in INFO_URLS)


def test_an_unknown_page_is_a_404():
    assert Client().get("/about/no-such-page/").status_code == 404


@override_settings(PORTAL_ORG_NAME="University of Minnesota", PORTAL_RELAY_HUB="relay.tc.umn.edu")
@pytest.mark.parametrize("url", INFO_URLS + OTHER_PAGES)
def test_the_organisation_and_hub_come_from_settings_on_every_page(url):
    html = Client().get(url).content.decode()
    assert "University of Minnesota" in html
    assert "relay.tc.umn.edu" in html
    assert "Example University" not in html and "relay.example.edu" not in html


def test_the_harm_page_names_each_way_the_university_is_harmed():
    html = Client().get(reverse("relaytests:info", args=["harm"])).content.decode()
    for harm in (
        "Blacklisting",
        "every</em> server",
        "reputation",
        "Network capacity",
        "Overloaded servers",
        "disk fills up",
        "loses legitimate mail",
    ):
        assert harm in html


@override_settings(PORTAL_POLICY_URL="https://policy.example.edu/aup")
def test_the_policy_page_links_the_policy_from_settings():
    html = Client().get(reverse("relaytests:info", args=["policy"])).content.decode()
    assert "not acceptable use" in html
    assert '<a href="https://policy.example.edu/aup">acceptable use policy</a>' in html


def test_without_a_policy_url_the_policy_page_points_to_the_contacts():
    html = Client().get(reverse("relaytests:info", args=["policy"])).content.decode()
    assert "policy.example.edu" not in html
    assert "for the full text of the acceptable use policy" in html


@override_settings(
    PORTAL_HELP_CONTACT="mail-help@physics.example.edu", PORTAL_HELP_URL="https://help.example.edu/"
)
def test_the_contact_page_gives_the_contacts_from_settings():
    html = Client().get(reverse("relaytests:info", args=["contact"])).content.decode()
    assert '<a href="mailto:mail-help@physics.example.edu">mail-help@physics.example.edu</a>' in html
    assert '<a href="https://help.example.edu/">https://help.example.edu/</a>' in html


def test_without_contacts_the_contact_page_names_the_service_desk():
    html = Client().get(reverse("relaytests:info", args=["contact"])).content.decode()
    assert "Contact Example University's IT service desk." in html


@override_settings(
    RELAYTEST_CANARY_DOMAIN="canary.relaytest.example.org",
    RELAYTEST_PROBE_HELO="probe.example.org",
    RELAYTEST_CANARY_WAIT=900,
)
def test_the_testing_page_says_what_the_probe_does_to_the_server():
    html = Client().get(reverse("relaytests:info", args=["testing"])).content.decode()
    assert "a few minutes at most" not in html
    assert "waits up to 15 minutes" in html
    assert "portal's own\ntest domain, <code>canary.relaytest.example.org</code></strong>" in html
    assert "greeting as <code>probe.example.org</code>" in html
    assert "<code>percent-host</code>" in html
    assert "<code>control-inbound</code>" not in html


def test_the_fixing_page_prefers_the_central_hub():
    html = Client().get(reverse("relaytests:info", args=["fixing"])).content.decode()
    assert html.index("First choice: the central hub") < html.index("Otherwise: one departmental hub")
    assert "relay.example.edu" in html


def test_every_page_links_the_print_stylesheet_for_print_only():
    html = Client().get(reverse("relaytests:info", args=["harm"])).content.decode()
    assert 'href="/static/print.css" media="print"' in html
