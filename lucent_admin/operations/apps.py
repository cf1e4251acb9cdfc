from django.apps import AppConfig


class OperationsConfig(AppConfig):
    name = "lucent_admin.operations"
    label = "operations"
    verbose_name = "Operations"
