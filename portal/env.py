"""Typed readers for settings from the environment: loud on bad values, quiet defaults.

The readers are the engine's (relaytests/probe/environment.py, which the relaytest command reads
its defaults with too); here a bad value stops Django's start with ImproperlyConfigured.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import ParamSpec, TypeVar

from django.core.exceptions import ImproperlyConfigured

from relaytests.probe import environment

P = ParamSpec("P")
T = TypeVar("T")


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
networks = _improperly_configured(environment.networks)
domains = _improperly_configured(environment.domains)
integers = _improperly_configured(environment.integers)
probe_defaults = _improperly_configured(environment.ProbeDefaults.from_environment)
