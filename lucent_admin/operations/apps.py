from django.apps import AppConfig


class OperationsConfig(AppConfig):
    name = "lucent_admin.operations"
    label = "operations"
    verbose_name = "Operations"

    def ready(self) -> None:
        from lucent_admin.operations import signals  # noqa: F401 - connects the audit receivers
