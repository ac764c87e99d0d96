from django.apps import AppConfig


class RelayTestsConfig(AppConfig):
    name = "relaytests"
    verbose_name = "Relay tests"
