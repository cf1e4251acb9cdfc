"""The console's websocket: one per page, joined to the groups of what the page shows."""
from __future__ import annotations

from typing import Any

from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.conf import settings

# Close codes in the application range: the browser learns why it was refused.
CLOSE_UNAUTHENTICATED = 4401
CLOSE_FORBIDDEN = 4403


def allowed_groups() -> set[str]:
    return {f"changes.{name}" for name in settings.LUCENT_PROJECTIONS}


class LiveConsumer(AsyncJsonWebsocketConsumer):
    """Forwards change notices of the groups a page subscribes to."""

    groups_joined: set[str]

    async def connect(self) -> None:
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        if not user.is_staff:
            await self.close(code=CLOSE_FORBIDDEN)
            return
        self.groups_joined = set()
        await self.accept()

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        wanted = content.get("subscribe") if isinstance(content, dict) else None
        if not isinstance(wanted, list) or not all(isinstance(g, str) for g in wanted):
            await self.send_json({"error": "send {\"subscribe\": [group, ...]}"})
            return
        unknown = sorted(set(wanted) - allowed_groups())
        if unknown:
            await self.send_json({"error": f"unknown groups: {', '.join(unknown)}"})
            return
        for group in set(wanted) - self.groups_joined:
            await self.channel_layer.group_add(group, self.channel_name)
            self.groups_joined.add(group)
        await self.send_json({"subscribed": sorted(self.groups_joined)})

    async def disconnect(self, code: int) -> None:
        for group in getattr(self, "groups_joined", set()):
            await self.channel_layer.group_discard(group, self.channel_name)

    async def change_notice(self, event: dict[str, Any]) -> None:
        await self.send_json({"notice": event["notice"]})
