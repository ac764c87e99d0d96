"""Typed readers for settings from the environment: loud on bad values, quiet defaults.

The readers are the engine's (relaytests/probe/environment.py, which the relaytest command reads
its defaults with too); here a bad value stops Django's start with ImproperlyConfigured.
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Callable
from typing import ParamSpec, TypeVar

from django.core.exceptions import ImproperlyConfigured

from relaytests.probe import environment

P = ParamSpec("P")
T = TypeVar("T")
# A request rate as Django REST framework reads it: a number, then a period it knows by its first letter.
_RATE = re.compile(r"\d+/(s|sec|second|m|min|minute|h|hour|d|day)")


def _improperly_configured(read: Callable[P, T]) -> Callable[P, T]:
    @functools.wraps(read)
    def checked(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return read(*args, **kwargs)
        except environment.SettingError as error:
            raise ImproperlyConfigured(str(error)) from None

    return checked


string = _improperly_configured(environment.string)
boolean = _improperly_configured(environment.boolean)
integer = _improperly_configured(environment.integer)
number = _improperly_configured(environment.number)
words = _improperly_configured(environment.words)
labels = _improperly_configured(environment.labels)
networks = _improperly_configured(environment.networks)
domains = _improperly_configured(environment.domains)
integers = _improperly_configured(environment.integers)
probe_defaults = _improperly_configured(environment.ProbeDefaults.from_environment)


def rate(name: str, default: str) -> str:
    """A rate such as 120/minute (the API's, for Django REST framework), checked now: a typo would
    otherwise fail each request it limits."""
    value = os.environ.get(name) or default
    if not _RATE.fullmatch(value):
        raise ImproperlyConfigured(
            f"{name} must be a number of requests per second, minute, hour or day (120/minute), not {value!r}"
        )
    return value
