from django.apps import AppConfig


class ConsoleConfig(AppConfig):
    name = "lucent_admin.console"
    label = "console"
    verbose_name = "Console"
