"""The personas of every portal test: anonymous, a member of the server's department,
a member of another department, and central IT staff (a member of no department)."""

from __future__ import annotations

import pytest
from django.test import Client
from playwright.sync_api import sync_playwright

from tests.portal import browser as browser_helpers
from tests.portal import factories
from tests.portal.worker import REDIS_URL, empty_broker, publishing_to


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    """Every persona has a password; the production hasher would spend a quarter second on each."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def own_cache(settings, request):
    """Each test its own empty cache (the password-reset counts), not the shared one in the var folder."""
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
            "LOCATION": request.node.nodeid,
        }
    }


@pytest.fixture
def member(db):
    return factories.make_user("alice")


@pytest.fixture
def outsider(db):
    return factories.make_user("mallory")


@pytest.fixture
def staff(db):
    return factories.make_user("central", staff=True)


@pytest.fixture
def department(member):
    return factories.make_department("Physics", member)


@pytest.fixture
def other_department(outsider):
    return factories.make_department("Chemistry", outsider)


@pytest.fixture
def server(department):
    return factories.make_server(department)


def client_for(user) -> Client:
    client = Client()
    if user is not None:
        client.force_login(user)
    return client


@pytest.fixture
def personas(member, outsider, other_department, staff):
    return {"anonymous": None, "member": member, "outsider": outsider, "staff": staff}


@pytest.fixture
def redis_broker():
    """The finalising task a waiting run schedules goes to the test's own, emptied Redis database."""
    empty_broker()
    with publishing_to(REDIS_URL):
        yield


# ---- the browser tests (tests/portal/browser.py) ----


@pytest.fixture(scope="module")
def browser():
    """One Chromium for a module's tests (1.5 s of CPU to start); each page has a context of its own.

    pytest closes it before the next module's tests, so Playwright's event loop, which its sync API
    keeps in this thread, never meets an asyncio test; meanwhile the tests' ORM calls are still sync.
    """
    with pytest.MonkeyPatch.context() as patch, sync_playwright() as playwright:
        patch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
        browser = playwright.chromium.launch(
            executable_path=browser_helpers.CHROMIUM, args=browser_helpers.CHROMIUM_ARGS
        )
        yield browser
        browser.close()


@pytest.fixture
def new_page(browser):
    """Opens pages, each in a context of its own, all closed at the test's end: a page left open goes on
    running its scripts and animations in Chromium until the module's last test (the seven report layout
    tests took 110 busy core-seconds with their pages left open, 95 with them closed)."""
    contexts = []

    def open_page(viewport: dict = browser_helpers.DESKTOP, *, beside=None):
        """A page in a new context, or with `beside` in that page's context (its user signed in already):
        a context is a window of Chromium's, half a core-second to open."""
        if beside is None:
            contexts.append(browser.new_context())
        page = (beside.context if beside else contexts[-1]).new_page()
        page.set_viewport_size(viewport)
        return page

    yield open_page
    for context in contexts:
        context.close()


@pytest.fixture
def page(new_page):
    return new_page()
