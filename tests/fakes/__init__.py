"""Fake SMTP servers the engine is tested against (see tests/fakes/smtp.py for the behaviours)."""

from tests.fakes.smtp import BANNERS, BEHAVIOURS, Behaviour, Crowd, FakeSMTPServer, Seen, with_banner

__all__ = ["BANNERS", "BEHAVIOURS", "Behaviour", "Crowd", "FakeSMTPServer", "Seen", "with_banner"]
