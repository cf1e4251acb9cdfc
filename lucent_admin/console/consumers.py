"""The console's websocket: one per page, joined to the groups of what the page shows.

On connect it pushes a fresh render of every widget of the page (so a page that
reconnects after a restart catches up); then each change notice of a projection
the page depends on marks widgets dirty, and dirty widgets are flushed as htmx
out-of-band swaps: after GATHER_WINDOW (one trade's notices from several
projections arrive a few ms apart and go out as one frame), each widget at
most every FLUSH_INTERVAL seconds.
"""
from __future__ import annotations

import asyncio
import logging
import time
from importlib import import_module
from typing import Any
from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer

from lucent_admin.console import pushes
from lucent_admin.console.permissions import page_permission
from lucent_admin.console.widgets import PAGES, Widget, page_params, page_widgets
from projections.events import is_identifier
from projections.projector.notices import group_name

log = logging.getLogger(__name__)

# Close codes in the application range: the browser learns why it was refused, and htmx's
# websocket extension (which retries on 1006, 1011, 1012 and 1013) does not retry.
CLOSE_BAD_REQUEST = 4400
SESSION_CHECK_S = 5.0  # how often a live socket checks its session and permission are still there
CLOSE_UNAUTHENTICATED = 4401
CLOSE_FORBIDDEN = 4403


class Refused(Exception):
    """Why a socket is refused: a close code and the reason in words."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


def live_params(page: str, query_string: bytes) -> dict[str, str]:
    """The parameters the page's widgets need, from the socket's query; Refused if any is missing or bad."""
    if page not in PAGES:
        raise Refused(CLOSE_BAD_REQUEST, f"no live page {page!r}")
    query = parse_qs(query_string.decode(errors="replace"))
    params = {}
    for name in sorted(page_params(page)):
        value = query.get(name, [""])[0]
        if not value:
            raise Refused(CLOSE_BAD_REQUEST, f"the {page} page needs ?{name}=")
        if not is_identifier(value):
            raise Refused(CLOSE_BAD_REQUEST, f"{name} is not an identifier")
        params[name] = value
    return params


def session_hash_valid(data: dict[str, Any], user: Any) -> bool:
    """Whether a session's auth hash still matches its account, as Django's ``get_user`` decides for a request:
    a password change rotates the hash (the current secret key's or a fallback's), ending every other session."""
    from django.contrib.auth import HASH_SESSION_KEY
    from django.utils.crypto import constant_time_compare

    if not hasattr(user, "get_session_auth_hash"):
        return True
    stored = data.get(HASH_SESSION_KEY)
    if not stored:
        return False
    hashes = [user.get_session_auth_hash(), *user.get_session_auth_fallback_hash()]
    return any(constant_time_compare(stored, h) for h in hashes)


class LiveConsumer(AsyncWebsocketConsumer):  # type: ignore[misc]  # channels ships no types
    """Pushes re-rendered widgets of one page."""

    widgets: list[Widget]
    params: dict[str, str]

    async def connect(self) -> None:
        try:
            await database_sync_to_async(self.check_user)()
            page = self.scope["url_route"]["kwargs"]["page"]
            self.params = live_params(page, self.scope.get("query_string", b""))
        except Refused as refused:
            await self.refuse(refused)
            return
        self.widgets = page_widgets(page)
        self.groups_joined = {group_name(p) for w in self.widgets for p in w.projections}
        for group in self.groups_joined:
            await self.channel_layer.group_add(group, self.channel_name)
        self.checkpoints: dict[str, int] = {}
        self.dirty: set[str] = set()
        self.flushing: asyncio.Task[None] | None = None
        self.last_sent: dict[str, float] = {}
        await self.accept()
        self.watching: asyncio.Task[None] | None = asyncio.create_task(self.watch_session())
        await self.send_widgets(self.widgets, fresh=True)

    def check_user(self) -> None:
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            raise Refused(CLOSE_UNAUTHENTICATED, "not signed in")
        page = self.scope["url_route"]["kwargs"]["page"]
        if not user.has_perm(page_permission(page)):
            raise Refused(CLOSE_FORBIDDEN, f"this page needs the permission {page_permission(page)!r}")

    async def watch_session(self) -> None:
        """Close the socket once its session ends (sign-out, expiry, a password change) or its account loses the
        page's permission, within SESSION_CHECK_S, rather than streaming on until the server's timeout."""
        try:
            while True:
                await asyncio.sleep(SESSION_CHECK_S)
                ended = await database_sync_to_async(self.session_ended)()
                if ended:
                    log.info("live socket %s closed: %s", self.scope.get("path"), ended.reason)
                    await self.close(code=ended.code, reason=ended.reason)
                    return
        except asyncio.CancelledError:
            return

    def session_ended(self) -> Refused | None:
        """Why this socket may no longer stream, or None."""
        from django.conf import settings
        from django.contrib.auth import SESSION_KEY, get_user_model

        session, user = self.scope.get("session"), self.scope.get("user")
        key = getattr(session, "session_key", None)
        data = import_module(settings.SESSION_ENGINE).SessionStore(key).load() if key else {}
        if user is None or not data or data.get(SESSION_KEY) != str(user.pk):
            return Refused(CLOSE_UNAUTHENTICATED, "signed out, or the session expired")
        fresh = get_user_model()._default_manager.filter(pk=user.pk, is_active=True).first()
        if fresh is not None and not session_hash_valid(data, fresh):
            return Refused(CLOSE_UNAUTHENTICATED, "the account's password changed; sign in again")
        permission = page_permission(self.scope["url_route"]["kwargs"]["page"])
        if fresh is None or not fresh.has_perm(permission):
            return Refused(CLOSE_FORBIDDEN, f"this page needs the permission {permission!r}")
        return None

    async def refuse(self, refused: Refused) -> None:
        """Accept, then close with the refusal's code: every refusal goes through here.

        Closing before accepting makes daphne reject the HTTP handshake; the browser then sees
        1006, which htmx retries for ever. Accepted then closed, it sees our code.
        """
        log.info("live socket %s refused with %s: %s", self.scope.get("path"), refused.code, refused.reason)
        await self.accept()
        await self.close(code=refused.code, reason=refused.reason)

    async def disconnect(self, code: int) -> None:
        for group in getattr(self, "groups_joined", ()):
            await self.channel_layer.group_discard(group, self.channel_name)
        watching = getattr(self, "watching", None)
        if watching is not None:
            watching.cancel()
        flushing = getattr(self, "flushing", None)
        if flushing is not None:
            flushing.cancel()
            self.flushing = None

    async def change_notice(self, event: dict[str, Any]) -> None:
        notice = event["notice"]
        projection = notice.get("projection")
        self.checkpoints[projection] = max(self.checkpoints.get(projection, -1), int(notice.get("checkpoint", 0)))
        for widget in self.widgets:
            if projection in widget.projections and widget.relevant(notice, self.params):
                self.dirty.add(widget.name)
        if self.dirty and self.flushing is None:
            self.flushing = asyncio.create_task(self.flush_later())

    async def flush_later(self) -> None:
        """Send dirty widgets: after a short gather window, each at most every FLUSH_INTERVAL."""
        try:
            while self.dirty:
                soonest = min(self.last_sent.get(name, 0.0) for name in self.dirty) + pushes.FLUSH_INTERVAL
                await asyncio.sleep(max(pushes.GATHER_WINDOW, soonest - time.monotonic()))
                now = time.monotonic()
                due = {n for n in self.dirty if now - self.last_sent.get(n, 0.0) >= pushes.FLUSH_INTERVAL}
                self.dirty -= due
                self.last_sent.update(dict.fromkeys(due, now))
                await self.send_widgets([w for w in self.widgets if w.name in due], fresh=False)
        except asyncio.CancelledError:
            return  # the socket closed
        except Exception:  # noqa: BLE001 - a failed render must not kill the socket
            log.exception("live render failed")
        self.flushing = None

    async def send_widgets(self, widgets: list[Widget], fresh: bool) -> None:
        parts = [
            await pushes.render_shared(w, self.params, None if fresh else pushes.version_of(w, self.checkpoints))
            for w in widgets
        ]
        if parts:
            await self.send(text_data="".join(parts))
