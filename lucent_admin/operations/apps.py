from django.apps import AppConfig


class OperationsConfig(AppConfig):
    name = "lucent_admin.operations"
    label = "operations"
    verbose_name = "Operations"

    def ready(self) -> None:
        from django.db.models.signals import post_migrate

        from lucent_admin.operations import signals  # noqa: F401 - connects the audit receivers

        post_migrate.connect(_roles, sender=self)  # a flush (transactional tests) empties the groups: again


def _roles(**_: object) -> None:
    from lucent_admin.operations.roles import ensure_roles

    ensure_roles()
