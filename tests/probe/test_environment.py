"""The engine's defaults from the environment, and the SuiteConfig they give a run."""

from __future__ import annotations

import pytest

from relaytests.probe.environment import ProbeDefaults, SettingError, labels


def test_the_defaults_come_from_the_portals_variables(monkeypatch):
    monkeypatch.setenv("RELAYTEST_PROBE_HELO", "probe.example.edu")
    monkeypatch.setenv("RELAYTEST_INTERNAL_NETWORKS", "10.0.0.0/8, 192.0.2.7")
    monkeypatch.setenv("RELAYTEST_COMMAND_TIMEOUT", "7.5")

    defaults = ProbeDefaults.from_environment()

    assert defaults.probe_helo == "probe.example.edu"
    assert defaults.internal_networks == ("10.0.0.0/8", "192.0.2.7/32")
    assert defaults.command_timeout == 7.5


def test_a_bad_value_names_the_variable(monkeypatch):
    monkeypatch.setenv("RELAYTEST_COMMAND_TIMEOUT", "soon")
    with pytest.raises(SettingError, match="RELAYTEST_COMMAND_TIMEOUT"):
        ProbeDefaults.from_environment()


def test_a_runs_own_values_take_precedence_over_the_defaults(monkeypatch):
    monkeypatch.setenv("RELAYTEST_PROBE_HELO", "probe.example.edu")
    monkeypatch.setenv("RELAYTEST_CANARY_SECRET", "from-the-environment")
    defaults = ProbeDefaults.from_environment()

    config = defaults.suite_config(probe_helo="override.example.edu", run_id="r1")

    assert (config.probe_helo, config.run_id, config.canary_secret) == (
        "override.example.edu",
        "r1",
        "from-the-environment",
    )


def test_no_blocklist_zones_listed_leaves_the_engine_its_default_zones(monkeypatch):
    monkeypatch.delenv("RELAYTEST_DNSBL_ZONES", raising=False)
    assert ProbeDefaults.from_environment().suite_config(canary_secret="s").dnsbl_zones is None
    monkeypatch.setenv("RELAYTEST_DNSBL_ZONES", "dnsbl.example.edu")
    assert ProbeDefaults.from_environment().suite_config(canary_secret="s").dnsbl_zones == (
        "dnsbl.example.edu",
    )


def test_the_vantage_is_outside_unless_a_probe_says_where_it_is(monkeypatch):
    monkeypatch.delenv("RELAYTEST_VANTAGE", raising=False)
    assert ProbeDefaults.from_environment().suite_config(canary_secret="s").vantage == "outside"
    monkeypatch.setenv("RELAYTEST_VANTAGE", "inside")
    assert ProbeDefaults.from_environment().suite_config(canary_secret="s").vantage == "inside"


@pytest.mark.parametrize("value", ["Inside", "in side", "-inside", "x" * 33, "inside/2"])
def test_a_vantage_that_is_no_short_name_stops_the_start(monkeypatch, value):
    monkeypatch.setenv("RELAYTEST_VANTAGE", value)
    with pytest.raises(SettingError, match="RELAYTEST_VANTAGE must be a short lower-case name"):
        ProbeDefaults.from_environment()


def test_the_vantages_of_a_run_are_short_names_listed_once_outside_by_default(monkeypatch):
    monkeypatch.delenv("RELAYTEST_VANTAGES", raising=False)
    assert labels("RELAYTEST_VANTAGES", "outside") == ["outside"]
    monkeypatch.setenv("RELAYTEST_VANTAGES", "outside, inside")
    assert labels("RELAYTEST_VANTAGES", "outside") == ["outside", "inside"]
    monkeypatch.setenv("RELAYTEST_VANTAGES", "outside inside outside")
    with pytest.raises(SettingError, match="names a vantage twice: outside inside outside"):
        labels("RELAYTEST_VANTAGES", "outside")
    monkeypatch.setenv("RELAYTEST_VANTAGES", "outside Campus")
    with pytest.raises(SettingError, match="must list short lower-case names"):
        labels("RELAYTEST_VANTAGES", "outside")
