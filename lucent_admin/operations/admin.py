from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from lucent_admin.operations.models import AuditEntry, Job, JobEvent


@admin.register(AuditEntry)
class AuditEntryAdmin(admin.ModelAdmin[AuditEntry]):
    list_display = ("at", "actor_name", "action", "target", "outcome")
    list_filter = ("action", "outcome")
    search_fields = ("actor_name", "target", "detail")
    date_hierarchy = "at"

    def has_add_permission(self, request: HttpRequest) -> bool:  # the log is append-only from the console
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class JobEventInline(admin.TabularInline[JobEvent, Job]):
    model = JobEvent
    extra = 0
    can_delete = False
    readonly_fields = ("at", "state", "message")

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Job)
class JobAdmin(admin.ModelAdmin[Job]):
    """Jobs are read-only here: they are started, approved and cancelled in the console (audited)."""

    list_display = ("id", "kind", "target", "state", "done", "total", "requested_by", "created_at")
    list_filter = ("kind", "state")
    search_fields = ("target", "requested_by")
    inlines = [JobEventInline]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
