"""portal/settings.py read again under other environment variables, as a process started with them would."""

from __future__ import annotations

import importlib.util


def portal_settings(monkeypatch, environment: dict[str, str]) -> dict:
    """Its names and values, with these variables set for the rest of the test."""
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    spec = importlib.util.find_spec("portal.settings")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)  # a copy: the portal.settings loaded stays as it is
    spec.loader.exec_module(module)
    return vars(module)
