from django.contrib import admin

from lucent_admin.operations.models import AuditEntry


@admin.register(AuditEntry)
class AuditEntryAdmin(admin.ModelAdmin):
    list_display = ("at", "actor_name", "action", "target", "outcome")
    list_filter = ("action", "outcome")
    search_fields = ("actor_name", "target", "detail")
    date_hierarchy = "at"

    def has_add_permission(self, request) -> bool:  # the log is append-only from the console
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
