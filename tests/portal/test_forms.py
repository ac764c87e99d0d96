"""The register form: every refusal has a clear message, and what it saves is what the scope check accepted."""

import pytest

from relaytests.forms import RegisterServerForm
from relaytests.models import Department, MailServer
from tests.dnsserver import ZoneServer
from tests.portal.factories import make_department, make_server

ZONE = """
mail.physics.example.edu. A 127.0.0.25
xn--mller-kva.physics.example.edu. A 127.0.0.26
mx.xn--fa-hia.physics.example.edu. A 127.0.0.27
physics.example.edu. MX 10 mail.physics.example.edu.
mail.example.com. A 145.0.2.27
"""

pytestmark = pytest.mark.django_db


@pytest.fixture(scope="module")
def zone_server():
    with ZoneServer(ZONE) as server:
        yield server


@pytest.fixture(autouse=True)
def in_scope(settings, zone_server):
    """Loopback is this portal's scope network; names under example.edu; lookups go to the zone above."""
    settings.RELAYTEST_SCOPE_DOMAINS = ["example.edu"]
    settings.RELAYTEST_SCOPE_NETWORKS = ["127.0.0.0/24"]
    settings.RELAYTEST_ALLOW_PRIVATE = False
    settings.RELAYTEST_RESOLVER = zone_server.address


def form_for(department, **data):
    data = {"department": department.pk, "what": "server", "mail_domain": "", **data}
    return RegisterServerForm(data, departments=Department.objects.filter(pk=department.pk))


def test_an_address_in_a_scope_network_is_registered_with_that_address(department, member):
    form = form_for(department, target="127.0.0.5")

    assert form.is_valid(), form.errors
    server = form.save(member)

    assert (server.target, server.kind, server.port, server.addresses) == (
        "127.0.0.5",
        "ip",
        25,
        ["127.0.0.5"],
    )
    assert (server.department, server.created_by) == (department, member)


def test_a_host_name_is_stored_in_its_idna_form_with_the_addresses_it_resolved_to(department, member):
    form = form_for(department, target="Müller.Physics.Example.EDU:2525", mail_domain="Physics.Example.EDU")

    assert form.is_valid(), form.errors
    server = form.save(member)

    assert (server.target, server.kind, server.port) == ("xn--mller-kva.physics.example.edu", "host", 2525)
    assert (server.addresses, server.mail_domain) == (["127.0.0.26"], "physics.example.edu")


def test_a_name_is_written_the_idna_2008_way_where_idna_2003_differs(department, member):
    form = form_for(department, target="mx.fa\u00df.physics.example.edu")  # 2003: mx.fass.physics...

    assert form.is_valid(), form.errors
    assert (form.save(member).target, form.scoped.addresses) == (
        "mx.xn--fa-hia.physics.example.edu",
        ["127.0.0.27"],
    )


def test_a_label_idna_2008_refuses_gets_a_clear_message(department):
    form = form_for(department, target="\u2603.physics.example.edu")

    assert not form.is_valid()
    assert form.errors["target"] == [
        "'\u2603.physics.example.edu' is not a valid host name: label '\u2603' is not valid IDNA 2008 "
        "(Codepoint U+2603 at position 1 of '\u2603' not allowed)"
    ]


def test_a_mail_domain_is_registered_with_its_mx_hosts_addresses_and_as_its_own_mail_domain(
    department, member
):
    form = form_for(department, target="physics.example.edu", what="domain")

    assert form.is_valid(), form.errors
    server = form.save(member)

    assert (server.kind, server.addresses, server.mail_domain) == (
        "domain",
        ["127.0.0.25"],
        "physics.example.edu",
    )


@pytest.mark.parametrize(
    "data, message",
    [
        ({"target": "mail..example.edu"}, "'mail..example.edu' is not a valid host name: empty label"),
        ({"target": "a" * 64 + ".example.edu"}, "is longer than 63 characters"),
        ({"target": "-bad.example.edu"}, "starts or ends with a hyphen"),
        ({"target": "mail.example.edu:99999"}, "port"),
        ({"target": "nosuch.physics.example.edu"}, "nosuch.physics.example.edu"),
        ({"target": "mail.example.com"}, "mail.example.com (145.0.2.27) is outside this portal's scope"),
        ({"target": "127.0.1.5"}, "127.0.1.5 is a loopback address"),
        ({"target": "127.0.0.5", "what": "domain"}, "127.0.0.5 is an address, not a mail domain"),
        ({"target": ""}, "This field is required."),
    ],
)
def test_a_refused_target_says_why(department, data, message):
    form = form_for(department, **data)

    assert not form.is_valid()
    assert message in " ".join(form.errors["target"])
    assert not MailServer.objects.exists()


def test_a_server_registered_already_is_refused_naming_no_department(department, settings):
    make_server(make_department("Chemistry"), target="127.0.0.5", kind="ip", addresses=["127.0.0.5"])
    settings.PORTAL_HELP_CONTACT = "hostmaster@example.edu"

    form = form_for(department, target="127.0.0.5")

    assert not form.is_valid()
    assert form.errors["target"][0] == (
        "127.0.0.5 is registered already. If it is your department's server, central IT "
        "(hostmaster@example.edu) can move it to your department."
    )
    assert "Chemistry" not in str(form.errors)


def test_a_port_that_is_not_a_mail_port_is_refused_with_the_ports_allowed(department):
    form = form_for(department, target="mail.physics.example.edu:6379")

    assert not form.is_valid()
    assert form.errors["target"][0].startswith("Port 6379 is not one this portal tests (25, 465, 587, 2525).")


def test_the_same_address_on_another_port_is_another_server(department):
    make_server(department, target="127.0.0.5", kind="ip", addresses=["127.0.0.5"])

    assert form_for(department, target="127.0.0.5:2525").is_valid()


# ---- the other ports a server's runs test ----


def test_a_server_lists_more_ports_among_the_allowed_ones(department, member):
    form = form_for(department, target="mail.physics.example.edu", more_ports=["587", "465"])

    assert form.is_valid(), form.errors
    server = form.save(member)
    assert (server.port, server.more_ports, server.ports) == (25, [587, 465], [25, 587, 465])


def test_the_register_form_offers_each_allowed_port(department, settings):
    settings.RELAYTEST_ALLOWED_PORTS = [25, 587]

    field = form_for(department).fields["more_ports"]

    assert [value for value, _label in field.choices] == [25, 587]


def test_a_more_port_outside_the_allowed_ports_is_refused_naming_them(department):
    form = form_for(department, target="mail.physics.example.edu", more_ports=["587", "6379"])

    assert not form.is_valid()
    assert form.errors["more_ports"] == ["Port 6379 is not one this portal tests (25, 465, 587, 2525)."]
    assert not MailServer.objects.exists()


def test_the_targets_own_port_among_more_ports_is_tested_once(department, member):
    form = form_for(department, target="mail.physics.example.edu:587", more_ports=["25", "587"])

    assert form.is_valid(), form.errors
    server = form.save(member)
    assert (server.port, server.more_ports) == (587, [25])


def test_a_port_another_server_of_the_target_tests_already_is_refused(department):
    make_server(department, target="127.0.0.5", kind="ip", addresses=["127.0.0.5"], more_ports=[587])

    on_its_more_port = form_for(department, target="127.0.0.5:587")
    listing_its_port = form_for(department, target="127.0.0.5:2525", more_ports=["25"])

    assert not on_its_more_port.is_valid()
    assert on_its_more_port.errors["target"][0].startswith("127.0.0.5:587 is tested already.")
    assert not listing_its_port.is_valid()
    assert listing_its_port.errors["target"][0].startswith("127.0.0.5 is tested already.")
    assert form_for(department, target="127.0.0.5:2525", more_ports=["465"]).is_valid()


def test_a_user_can_register_only_for_a_department_offered_to_them(department):
    other = make_department("Chemistry")

    form = RegisterServerForm(
        {"department": other.pk, "what": "server", "target": "127.0.0.5"},
        departments=Department.objects.filter(pk=department.pk),
    )

    assert not form.is_valid()
    assert "department" in form.errors


def test_a_mail_domain_with_a_port_is_refused(department):
    form = form_for(department, target="127.0.0.5", mail_domain="physics.example.edu:25")

    assert form.errors["mail_domain"] == ["A mail domain has no port."]


@pytest.mark.parametrize(
    ("typed", "message"),
    [
        ("https://mail.physics.example.edu/", "That is a web address. Type only the mail server's name or address, "
                                               "for example mail.physics.example.edu."),
        ("smtp://mail.physics.example.edu:25", "That is a web address. Type only the mail server's name or "
                                                "address, for example mail.physics.example.edu."),
        ("127.0.0.1 2701", "Write the port after a colon, without a space: 127.0.0.1:2701."),
    ],
)  # fmt: skip
def test_a_pasted_url_or_a_port_after_a_space_is_answered_with_what_to_type(department, typed, message):
    form = form_for(department, target=typed)

    assert not form.is_valid()
    error = form.errors["target"][0]
    assert error == message


def test_a_target_out_of_scope_names_the_people_to_ask(department, settings):
    settings.PORTAL_HELP_CONTACT = "hostmaster@example.edu"
    form = form_for(department, target="mail.example.com")

    assert not form.is_valid()
    assert form.errors["target"][0].endswith(
        "If it is your department's server and should be tested, ask central IT (hostmaster@example.edu) "
        "to add it to the portal's scope."
    )
