"""Typed readers for settings from the environment: loud on bad values, quiet defaults."""

from __future__ import annotations

import ipaddress
import os
import re

from django.core.exceptions import ImproperlyConfigured

from relaytests.probe.targets import TargetError, host_name

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}
# A request rate as Django REST framework reads it: a number, then a period it knows by its first letter.
_RATE = re.compile(r"\d+/(s|sec|second|m|min|minute|h|hour|d|day)")


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
    raise ImproperlyConfigured(f"{name} must be true or false, not {value!r}")


def integer(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a whole number, not {value!r}") from None


def number(name: str, default: float) -> float:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        return float(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a number, not {value!r}") from None


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
            raise ImproperlyConfigured(f"{name}: {item!r} is not an IP network") from None
    return result


def domains(name: str, default: str = "") -> list[str]:
    """A list of domain names, each checked now and written as targets are stored: lower-case ASCII,
    a Unicode name as IDNA 2008 (faß.example.de -> xn--fa-hia.example.de)."""
    result = []
    for item in words(name, default):
        try:
            result.append(host_name(item))
        except TargetError as error:
            raise ImproperlyConfigured(f"{name}: {error}") from None
    return result


def integers(name: str, default: str = "") -> list[int]:
    """A list of whole numbers, each checked now so a typo fails at start-up."""
    try:
        return [int(item) for item in words(name, default)]
    except ValueError:
        raise ImproperlyConfigured(f"{name} must list whole numbers, not {os.environ.get(name)!r}") from None


def rate(name: str, default: str) -> str:
    """A rate such as 120/minute, checked now: a typo would otherwise fail each request it limits."""
    value = os.environ.get(name) or default
    if not _RATE.fullmatch(value):
        raise ImproperlyConfigured(
            f"{name} must be a number of requests per second, minute, hour or day (120/minute), not {value!r}"
        )
    return value
