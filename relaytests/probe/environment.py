"""Settings from the environment, read once for the portal and the relaytest command alike.

The typed readers are loud on bad values (SettingError names the variable and the value) and quiet
with defaults; the portal's settings (portal/env.py) turn SettingError into Django's
ImproperlyConfigured. `ProbeDefaults.from_environment()` reads the engine's settings that the
portal and the command share, so both start from the same variables with the same defaults.
"""

from __future__ import annotations

import ipaddress
import os
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from relaytests.probe.report import DEFAULT_VANTAGE

if TYPE_CHECKING:
    from relaytests.probe.suite import SuiteConfig

LABEL = re.compile(r"[a-z][a-z0-9-]{0,31}")
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


class SettingError(ValueError):
    """An environment variable whose value cannot be used."""


def string(name: str, default: str = "") -> str:
    """A string, also read from the file named by NAME_FILE (for secrets in containers)."""
    path = os.environ.get(f"{name}_FILE")
    if path:
        with open(path) as f:
            return f.read().strip()
    return os.environ.get(name, default)


def boolean(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    if value.lower() in _TRUE:
        return True
    if value.lower() in _FALSE:
        return False
    raise SettingError(f"{name} must be true or false, not {value!r}")


def integer(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise SettingError(f"{name} must be a whole number, not {value!r}") from None


def number(name: str, default: float) -> float:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        return float(value)
    except ValueError:
        raise SettingError(f"{name} must be a number, not {value!r}") from None


def label(name: str, default: str) -> str:
    """A short name for reports and queues: lower-case letters, digits and hyphens, a letter first."""
    value = os.environ.get(name) or default
    if not LABEL.fullmatch(value):
        raise SettingError(f"{name} must be a short lower-case name such as outside or inside, not {value!r}")
    return value


def probe_queue(vantage: str) -> str:
    """The Celery queue of the portal's probe workers at a vantage (RELAYTEST_VANTAGE): the runs and
    parts tested from there. Here, with the vantage's name, so settings and tasks share it."""
    return f"probe.{vantage}"


def labels(name: str, default: str) -> list[str]:
    """A list of `label`s, at least one (empty is the default), none twice."""
    values = (os.environ.get(name) or default).replace(",", " ").split()
    for value in values:
        if not LABEL.fullmatch(value):
            raise SettingError(
                f"{name} must list short lower-case names such as outside inside, not {value!r}"
            )
    if len(set(values)) < len(values):
        raise SettingError(f"{name} names a vantage twice: {' '.join(values)}")
    return values


def words(name: str, default: str = "") -> list[str]:
    """A comma- or space-separated list."""
    return os.environ.get(name, default).replace(",", " ").split()


def networks(name: str, default: str = "") -> list[str]:
    """A list of IP networks, each checked now so a typo fails at start-up."""
    result = []
    for item in words(name, default):
        try:
            result.append(str(ipaddress.ip_network(item, strict=False)))
        except ValueError:
            raise SettingError(f"{name}: {item!r} is not an IP network") from None
    return result


def domains(name: str, default: str = "") -> list[str]:
    """A list of domain names, each checked now and written as targets are stored: lower-case ASCII,
    a Unicode name as IDNA 2008 (faß.example.de -> xn--fa-hia.example.de)."""
    from relaytests.probe.targets import TargetError, host_name  # the DNS client with it: the portal's only

    result = []
    for item in words(name, default):
        try:
            result.append(host_name(item))
        except TargetError as error:
            raise SettingError(f"{name}: {error}") from None
    return result


def integers(name: str, default: str = "") -> list[int]:
    """A list of whole numbers, each checked now so a typo fails at start-up."""
    try:
        return [int(item) for item in words(name, default)]
    except ValueError:
        raise SettingError(f"{name} must list whole numbers, not {os.environ.get(name)!r}") from None


@dataclass(frozen=True)
class ProbeDefaults:
    """What the relaytest command starts from: the portal's probe settings (README, "Settings")."""

    canary_domain: str
    canary_secret: str | None  # None: the portal uses its SECRET_KEY, the command a secret of its own
    probe_helo: str
    source_address: str | None
    command_timeout: float
    run_deadline: float
    host_budget: float
    internal_networks: tuple[str, ...]
    vantage: str
    resolver: str | None
    dnsbl_zones: tuple[str, ...]
    contact: str

    @classmethod
    def from_environment(cls) -> ProbeDefaults:
        return cls(
            canary_domain=string("RELAYTEST_CANARY_DOMAIN", "canary.relaytest.invalid"),
            canary_secret=string("RELAYTEST_CANARY_SECRET") or None,
            probe_helo=string("RELAYTEST_PROBE_HELO", "relaytest.invalid"),
            source_address=string("RELAYTEST_SOURCE_ADDRESS") or None,
            command_timeout=number("RELAYTEST_COMMAND_TIMEOUT", 60.0),
            run_deadline=number("RELAYTEST_RUN_DEADLINE", 900.0),
            host_budget=number("RELAYTEST_HOST_BUDGET", 240.0),
            internal_networks=tuple(networks("RELAYTEST_INTERNAL_NETWORKS")),
            vantage=label("RELAYTEST_VANTAGE", DEFAULT_VANTAGE),
            resolver=string("RELAYTEST_RESOLVER") or None,
            dnsbl_zones=tuple(words("RELAYTEST_DNSBL_ZONES")),
            contact=string("DEFAULT_FROM_EMAIL", "relaytest@localhost"),
        )

    def suite_config(self, **this_run: Any) -> SuiteConfig:
        """The engine's configuration from these defaults, with what this run sets itself (its id,
        its domain, options given on a command line) taking precedence."""
        from relaytests.probe.suite import SuiteConfig  # the engine only once a run needs it

        shared: dict[str, Any] = {
            "canary_domain": self.canary_domain,
            "canary_secret": self.canary_secret,
            "probe_helo": self.probe_helo,
            "source_address": self.source_address,
            "command_timeout": self.command_timeout,
            "run_deadline": self.run_deadline,
            "host_budget": self.host_budget,
            "internal_networks": self.internal_networks,
            "vantage": self.vantage,
            "resolver": self.resolver,
            "dnsbl_zones": self.dnsbl_zones or None,  # none listed: dnschecks' default zones
            "contact": self.contact,
        }
        return SuiteConfig(**(shared | this_run))
