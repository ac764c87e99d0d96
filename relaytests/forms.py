from __future__ import annotations

import re
from datetime import datetime, time, timedelta
from urllib.parse import urlsplit

from django import forms
from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from relaytests import audit, scope
from relaytests.models import ApiToken, AuditEntry, Department, MailServer
from relaytests.probe.targets import TargetError

# What people paste instead of a server's name: a web address, or the port after a space.
URL = re.compile(r"^[a-z][a-z0-9+.-]*://", re.IGNORECASE)
PORT_AFTER_SPACE = re.compile(r"^(\S+)\s+(\d{1,5})$")

KIND_CHOICES = [
    ("server", "A mail server: its hostname or IP address"),
    ("domain", "A mail domain: test each of its MX hosts"),
]


class MorePortsField(forms.TypedMultipleChoiceField):
    """The other ports a server's runs test, among RELAYTEST_ALLOWED_PORTS (read when a form is made)."""

    widget = forms.CheckboxSelectMultiple

    def __init__(self, **kwargs):
        kwargs.setdefault("label", "Also test these ports (optional)")
        kwargs.setdefault(
            "help_text",
            "Each is tested in the same run as a host of its own: relaying through 587 without AUTH, or "
            "through 465 (TLS from the first byte), is as bad as through 25.",
        )
        super().__init__(coerce=int, required=False, **kwargs)
        self.choices = allowed_port_choices  # called each time they are read: a changed setting applies

    def validate(self, value) -> None:
        # Say which ports are tested rather than "Select a valid choice".
        for port in value:
            if not self.valid_value(port):
                raise forms.ValidationError(scope.port_refusal(port), code="invalid_choice")
        super().validate(value)


def allowed_port_choices() -> list[tuple[int, str]]:
    return [(port, str(port)) for port in settings.RELAYTEST_ALLOWED_PORTS]


class RegisterServerForm(forms.Form):
    department = forms.ModelChoiceField(queryset=Department.objects.none(), empty_label=None)
    what = forms.ChoiceField(
        label="What do you want to test?", choices=KIND_CHOICES, initial="server", widget=forms.RadioSelect
    )
    target = forms.CharField(
        label="Hostname, IP address or mail domain",
        max_length=300,
        help_text="For example mail.dept.example.edu, 192.0.2.25, [2001:db8::25], "
        "or dept.example.edu. Add :PORT for a port other than 25.",
    )
    mail_domain = forms.CharField(
        label="The server's mail domain (optional)",
        max_length=255,
        required=False,
        help_text="The domain it receives mail for; address tricks are tried against it too.",
    )
    more_ports = MorePortsField()

    def __init__(self, *args, departments, **kwargs):
        super().__init__(*args, **kwargs)
        self.scoped: scope.ScopedTarget | None = None
        self.fields["department"].queryset = departments
        if len(departments) == 1:
            self.fields["department"].initial = departments[0]

    def clean_mail_domain(self) -> str:
        text = self.cleaned_data["mail_domain"].strip()
        if not text:
            return ""
        try:
            domain, _kind, _port = scope.parse(text, domain=True)
        except TargetError as error:
            raise forms.ValidationError(str(error)) from None
        if ":" in text:
            raise forms.ValidationError("A mail domain has no port.")
        return domain

    def clean(self):
        cleaned = super().clean()
        if "target" not in cleaned or "what" not in cleaned:
            return cleaned
        try:
            refuse_pasted_forms(cleaned["target"])
            target, kind, port = scope.parse(cleaned["target"], domain=cleaned["what"] == "domain")
            more_ports = cleaned.get("more_ports", [])
            self._refuse_duplicate(target, kind, [port, *more_ports])
            self.scoped = scope.check(target, kind, port, more_ports)
        except scope.OutOfScope as error:
            self.add_error("target", f"{error} {whom_to_ask()}")
        except TargetError as error:
            self.add_error("target", str(error))
        except forms.ValidationError as error:
            self.add_error("target", error)
        return cleaned

    def _refuse_duplicate(self, target: str, kind: str, ports: list[int]) -> None:
        """Say that it is taken, on the target's port or on a port another server of the same target tests
        too, never by whom: a department's servers are its own business."""
        for server in MailServer.objects.filter(target=target, kind=kind).only("port", "more_ports"):
            taken = next((port for port in ports if port in server.ports), None)
            if taken is None:
                continue
            shown = target if taken == 25 else f"{target}:{taken}"
            how = "registered already" if taken == ports[0] == server.port else "tested already"
            raise forms.ValidationError(
                f"{shown} is {how}. If it is your department's server, {central_it()} "
                "can move it to your department."
            )

    def register(self, user) -> MailServer | None:
        """Save the valid form's server; None, with the error on the form, when someone else registered
        it between the check and now."""
        try:
            with transaction.atomic():
                return self.save(user)
        except IntegrityError:  # the one-server-per-target constraint
            self.add_error("target", "This server was registered a moment ago by someone else.")
            return None

    def save(self, user) -> MailServer:
        scoped = self.scoped
        with transaction.atomic():
            server = MailServer.objects.create(
                department=self.cleaned_data["department"],
                target=scoped.target,
                kind=scoped.kind,
                port=scoped.port,
                more_ports=scoped.more_ports,
                mail_domain=self.cleaned_data["mail_domain"]
                or (scoped.target if scoped.kind == "domain" else ""),
                addresses=scoped.addresses,
                created_by=user,
            )
            audit.record(user, audit.Action.SERVER_REGISTERED, server, str(server), server.department)
        return server


class ApiRegisterServerForm(RegisterServerForm):
    """The same form for the API, where a department is named by its slug, as its client knows it."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["department"].to_field_name = "slug"


class ApiTokenForm(forms.ModelForm):
    expires_on = forms.DateField(
        label="Expires on (optional)",
        required=False,
        widget=forms.DateInput(attrs={"type": "date"}),
        help_text="From the start of this day on the token is refused. Empty: until you revoke it.",
    )

    class Meta:
        model = ApiToken
        fields = ["name"]

    def clean_expires_on(self):
        day = self.cleaned_data["expires_on"]
        if day and day <= timezone.localdate():
            raise forms.ValidationError("Choose a day after today, or none.")
        return day

    def expires_at(self):
        """The moment the token stops working: the chosen day's start in the portal's time zone."""
        day = self.cleaned_data["expires_on"]
        return day_start(day) if day else None


class AuditFilterForm(forms.Form):
    """The audit log's filters (the page's and its CSV's, from the query string): all optional."""

    action = forms.ChoiceField(choices=[("", "Any action"), *AuditEntry.Action.choices], required=False)
    department = forms.ModelChoiceField(
        queryset=Department.objects.all(), to_field_name="slug", required=False, empty_label="Any department"
    )
    user = forms.CharField(label="User name", max_length=150, required=False)
    since = forms.DateField(label="From", required=False, widget=forms.DateInput(attrs={"type": "date"}))
    until = forms.DateField(label="To", required=False, widget=forms.DateInput(attrs={"type": "date"}))

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("since") and cleaned.get("until") and cleaned["since"] > cleaned["until"]:
            raise forms.ValidationError("The first day comes after the last one.")
        return cleaned

    def entries(self):
        """The valid form's entries, newest first; days are whole days in the portal's time zone."""
        query = self.cleaned_data
        entries = AuditEntry.objects.select_related("department")
        if query["action"]:
            entries = entries.filter(action=query["action"])
        if query["department"]:
            entries = entries.filter(department=query["department"])
        if query["user"]:
            entries = entries.filter(username__iexact=query["user"].strip())
        if query["since"]:
            entries = entries.filter(created_at__gte=day_start(query["since"]))
        if query["until"]:
            entries = entries.filter(created_at__lt=day_start(query["until"] + timedelta(days=1)))
        return entries


def day_start(day):
    """The first moment of the day in the portal's time zone."""
    return timezone.make_aware(datetime.combine(day, time.min))


def refuse_pasted_forms(text: str) -> None:
    """A web address or a port after a space: say what to type instead of a parser's complaint."""
    text = text.strip()
    if URL.match(text):
        host = urlsplit(text).hostname or "mail.dept.example.edu"
        raise forms.ValidationError(
            f"That is a web address. Type only the mail server's name or address, for example {host}."
        )
    spaced = PORT_AFTER_SPACE.match(text)
    if spaced:
        host, port = spaced.groups()
        raise forms.ValidationError(f"Write the port after a colon, without a space: {host}:{port}.")


def whom_to_ask() -> str:
    """What to do about a target outside the scope: the people who can widen it."""
    return (
        f"If it is your department's server and should be tested, ask {central_it()} to add it to the "
        "portal's scope."
    )


def central_it() -> str:
    """Who runs the portal, with how to reach them when the operator said."""
    contact = settings.PORTAL_HELP_CONTACT
    return f"central IT ({contact})" if contact else "central IT"
